"""Shared pieces of the performance accumulators: input checks, score bins, histogram ROC AUC."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "DEFAULT_ECE_BINS",
    "DEFAULT_SCORE_BINS",
    "DEFAULT_THRESHOLD",
    "LOG_LOSS_EPS",
    "auc_from_weights",
    "auc_tie_bound",
    "bin_index",
    "check_bins",
    "check_label",
    "check_labels",
    "check_score",
    "check_scores",
    "check_threshold",
    "ratio",
]

#: Equal-width bins over ``[0, 1]`` of the per-class score histograms (ROC AUC resolution 1/1000).
DEFAULT_SCORE_BINS = 1000
#: Equal-width bins of the expected calibration error.
DEFAULT_ECE_BINS = 10
#: Decision threshold: a score ``>= threshold`` is a positive prediction.
DEFAULT_THRESHOLD = 0.5
#: Probabilities are clipped to ``[eps, 1 - eps]`` in the log loss (scikit-learn's and River's value).
LOG_LOSS_EPS = 1e-15


def check_bins(n_bins: int) -> int:
    if isinstance(n_bins, bool) or not isinstance(n_bins, int) or n_bins < 1:
        raise ValueError(f"n_bins must be a positive integer, got {n_bins!r}")
    return n_bins


def check_threshold(threshold: float) -> float:
    t = float(threshold)
    if not 0.0 <= t <= 1.0:
        raise ValueError(f"threshold must lie in [0, 1], got {threshold!r}")
    return t


def check_score(score: float) -> float:
    s = float(score)
    if not 0.0 <= s <= 1.0:  # also rejects NaN
        raise ValueError(f"score must be a probability in [0, 1], got {score!r}")
    return s


def check_scores(scores: ArrayLike) -> NDArray[np.float64]:
    s = np.asarray(scores, dtype=np.float64).ravel()
    if s.size and not bool(np.all((s >= 0.0) & (s <= 1.0))):  # NaN fails both comparisons
        bad = s[~((s >= 0.0) & (s <= 1.0))][0]
        raise ValueError(f"scores must be probabilities in [0, 1], got {bad!r}")
    return s


def check_label(y: Any) -> int:
    if y == 1:
        return 1
    if y == 0:
        return 0
    raise ValueError(f"binary label must be 0 or 1, got {y!r}")


def check_labels(y: ArrayLike) -> NDArray[np.int64]:
    a = np.asarray(y).ravel()
    pos = a == 1
    if a.size and not bool(np.all(pos | (a == 0))):
        raise ValueError(f"binary labels must be 0 or 1, got {a[~(pos | (a == 0))][0]!r}")
    out: NDArray[np.int64] = pos.astype(np.int64)
    return out


def bin_index(scores: NDArray[np.float64], n_bins: int) -> NDArray[np.intp]:
    """Equal-width bin of each score in ``[0, 1]``: ``floor(s * n_bins)``, with ``s = 1`` in the last bin.

    The scalar form ``min(int(s * n_bins), n_bins - 1)`` gives the same bin (same float product,
    truncation toward zero), so ``update`` and ``update_many`` agree bit for bit.
    """
    return np.minimum((scores * n_bins).astype(np.intp), n_bins - 1)


def auc_from_weights(pos: NDArray[Any], neg: NDArray[Any]) -> float | None:
    """ROC AUC from per-bin positive and negative weights over the same ordered bins.

    ``AUC = sum_b pos_b (neg_below_b + neg_b / 2) / (P N)``: a positive beats every negative in a
    lower bin and ties (counts one half) with every negative in its own bin. ``None`` unless both
    totals are positive.
    """
    p_tot, n_tot = float(pos.sum()), float(neg.sum())
    if p_tot <= 0.0 or n_tot <= 0.0:
        return None
    negf = neg.astype(np.float64)
    below = np.cumsum(negf) - negf
    num = float(np.dot(pos.astype(np.float64), below + 0.5 * negf))
    return min(max(num / (p_tot * n_tot), 0.0), 1.0)


def auc_tie_bound(pos: NDArray[Any], neg: NDArray[Any]) -> float | None:
    """Largest possible gap between :func:`auc_from_weights` and the exact AUC of the unbinned scores.

    Only pairs sharing a bin can be misranked, and each moves the AUC by at most one half of its
    weight: ``sum_b pos_b neg_b / (2 P N)``.
    """
    p_tot, n_tot = float(pos.sum()), float(neg.sum())
    if p_tot <= 0.0 or n_tot <= 0.0:
        return None
    return float(np.dot(pos.astype(np.float64), neg.astype(np.float64))) / (2.0 * p_tot * n_tot)


def ratio(num: float, den: float) -> float | None:
    """``num / den``, ``None`` when the denominator is zero (the metric is undefined)."""
    return num / den if den > 0 else None
