"""Label-free performance estimation for binary classifiers from calibrated scores (CBPE).

Confidence-based performance estimation (NannyML's CBPE): when the model's scores are calibrated
probabilities, ``P(y = 1 | score) = p``, so each prediction contributes ``p`` of a positive and
``1 - p`` of a negative to the *expected* confusion matrix, and the expected metrics follow without
waiting for labels. Scores that are not calibrated are first mapped through an
:class:`IsotonicCalibrator` fitted on labelled reference data.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.optimize import isotonic_regression

from monitor.performance._scores import (
    DEFAULT_SCORE_BINS,
    DEFAULT_THRESHOLD,
    auc_from_weights,
    auc_tie_bound,
    bin_index,
    check_bins,
    check_labels,
    check_score,
    check_scores,
    check_threshold,
    ratio,
)

__all__ = ["CBPEstimator", "IsotonicCalibrator"]


class IsotonicCalibrator:
    """Monotone map from a model score to ``P(y = 1 | score)``, fitted on labelled reference data.

    :meth:`fit` bins the reference scores into ``n_bins`` equal-width bins, takes each non-empty
    bin's mean score and positive rate, and fits an isotonic (non-decreasing) regression of rate
    on score weighted by the bin counts (pool-adjacent-violators, :func:`scipy.optimize.isotonic_regression`).
    The map keeps the two ends of every constant run as breakpoints and interpolates linearly
    between them, clamping outside the reference range, as scikit-learn's ``IsotonicRegression``
    (``out_of_bounds="clip"``) and NannyML's default calibrator do. The pre-binning bounds the map to
    at most ``2 n_bins`` breakpoints whatever the reference size; the map is JSON-serialisable
    (``to_state``/``from_state``) but, being a fit, not mergeable.

    Parameters
    ----------
    x, y
        Breakpoints: strictly increasing scores in ``[0, 1]`` and non-decreasing probabilities.

    Examples
    --------
    >>> cal = IsotonicCalibrator.fit([0.1, 0.2, 0.3, 0.4], [0, 1, 0, 1])
    >>> cal.x, cal.y
    ([0.1, 0.2, 0.3, 0.4], [0.0, 0.5, 0.5, 1.0])
    >>> cal(0.25), cal(0.0), cal(0.9)
    (0.5, 0.0, 1.0)
    """

    __slots__ = ("_x", "_y", "x", "y")

    def __init__(self, x: ArrayLike, y: ArrayLike) -> None:
        xs = np.asarray(x, dtype=np.float64).ravel()
        ys = np.asarray(y, dtype=np.float64).ravel()
        if xs.size == 0 or xs.size != ys.size:
            raise ValueError("a calibration map needs matching, non-empty x and y")
        if not (np.all(np.diff(xs) > 0) and np.all(np.diff(ys) >= 0)):
            raise ValueError("calibration breakpoints must be strictly increasing in x and non-decreasing in y")
        check_scores(xs)
        check_scores(ys)
        self._x, self._y = xs, ys
        self.x: list[float] = xs.tolist()
        self.y: list[float] = ys.tolist()

    @classmethod
    def fit(cls, scores: ArrayLike, labels: ArrayLike, *, n_bins: int = DEFAULT_SCORE_BINS) -> IsotonicCalibrator:
        """Fit the map on reference ``scores`` in ``[0, 1]`` and their 0/1 ``labels``."""
        s, yv = check_scores(scores), check_labels(labels)
        if s.size != yv.size:
            raise ValueError(f"scores and labels differ in length: {s.size} != {yv.size}")
        if not s.size:
            raise ValueError("cannot fit a calibration map on no data")
        idx = bin_index(s, check_bins(n_bins))
        counts = np.bincount(idx, minlength=n_bins)
        used = counts > 0
        w = counts[used].astype(np.float64)
        xm = np.bincount(idx, weights=s, minlength=n_bins)[used] / w
        rate = np.bincount(idx, weights=yv.astype(np.float64), minlength=n_bins)[used] / w
        res = isotonic_regression(rate, weights=w, increasing=True)
        return cls._from_blocks(xm, np.asarray(res.x, dtype=np.float64), np.asarray(res.blocks))

    @classmethod
    def fit_counts(cls, pos_counts: ArrayLike, neg_counts: ArrayLike) -> IsotonicCalibrator:
        """Fit the map on binned reference data: per equal-width score bin, the count of positive and of
        negative labels (what :class:`~monitor.performance.BinaryPerformance` keeps), each bin at its centre.

        >>> IsotonicCalibrator.fit_counts([0, 1, 3, 4], [4, 3, 1, 0]).y
        [0.0, 0.25, 0.75, 1.0]
        """
        pos = np.asarray(pos_counts, dtype=np.float64).ravel()
        neg = np.asarray(neg_counts, dtype=np.float64).ravel()
        if pos.shape != neg.shape or not pos.size or (pos < 0).any() or (neg < 0).any():
            raise ValueError("pos_counts and neg_counts must be non-negative arrays of one length")
        w = pos + neg
        used = w > 0
        if not used.any():
            raise ValueError("cannot fit a calibration map on no data")
        centres = (np.arange(pos.size, dtype=np.float64) + 0.5) / pos.size
        res = isotonic_regression(pos[used] / w[used], weights=w[used], increasing=True)
        return cls._from_blocks(centres[used], np.asarray(res.x, dtype=np.float64), np.asarray(res.blocks))

    @classmethod
    def _from_blocks(cls, xm: NDArray[np.float64], fitted: NDArray[np.float64],
                     blocks: NDArray[Any]) -> IsotonicCalibrator:
        fitted = np.clip(fitted, 0.0, 1.0)
        xs: list[float] = []
        ys: list[float] = []
        for start, stop in itertools.pairwise(blocks.tolist()):
            v = float(fitted[start])
            xs.append(float(xm[start]))
            ys.append(v)
            if stop - 1 > start:
                xs.append(float(xm[stop - 1]))
                ys.append(v)
        return cls(xs, ys)

    def transform(self, scores: ArrayLike) -> NDArray[np.float64]:
        """Calibrated probabilities of a batch of scores."""
        return np.interp(check_scores(scores), self._x, self._y)

    def __call__(self, score: float) -> float:
        return float(np.interp(check_score(score), self._x, self._y))

    def to_state(self) -> dict[str, Any]:
        return {"schema_version": 1, "x": list(self.x), "y": list(self.y)}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> IsotonicCalibrator:
        if state.get("schema_version") != 1:
            raise ValueError(f"unsupported IsotonicCalibrator state version {state.get('schema_version')!r}")
        return cls(state["x"], state["y"])

    __hash__ = None  # type: ignore[assignment]  # compared by value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, IsotonicCalibrator) and self.to_state() == other.to_state()

    def __repr__(self) -> str:
        return f"IsotonicCalibrator(breakpoints={len(self.x)})"


class CBPEstimator:
    """Expected binary-classification performance of a window from its scores alone, mergeable.

    Each score ``s`` in ``[0, 1]`` is a prediction (positive when ``s >= threshold``) and, through
    the optional ``calibrator`` (identity otherwise), a probability ``p`` that its label is 1. The
    expected confusion matrix is ``E[TP] = sum_{pred 1} p``, ``E[FP] = sum_{pred 1} (1 - p)``,
    ``E[FN] = sum_{pred 0} p``, ``E[TN] = sum_{pred 0} (1 - p)``, and accuracy, precision, recall
    and F1 are computed from it, as NannyML's CBPE does. ``accuracy_std`` is the standard deviation
    of the realised accuracy given the scores, ``sqrt(sum p (1 - p)) / n`` (each prediction is right
    with probability ``p`` or ``1 - p``), the scale of the sampling noise around the estimate.

    Expected ROC AUC treats every prediction as a fractional positive of weight ``p`` and negative
    of weight ``1 - p``, ranked by the *model's* score (as NannyML >= 0.10 ranks by the
    uncalibrated score and weights by the calibrated one). The weights are accumulated in the same
    ``n_bins`` equal-width score histogram as :class:`~monitor.performance.BinaryPerformance`, so
    pairs in one bin count as ties (a prediction's own positive/negative halves included, as in
    NannyML's trapezoid), the error from binning is at most ``auc_resolution_bound`` and memory is
    ``2 n_bins`` numbers. Merging (``+=``) adds the sums and histograms; the estimators must share
    threshold, bins and calibrator.

    The estimate is only as good as the calibration: it is unbiased for calibrated scores and
    assumes no concept drift (``P(y | score)`` unchanged since the calibrator was fitted).

    Parameters
    ----------
    threshold
        Decision threshold in ``[0, 1]`` applied to the raw score.
    n_bins
        Score-histogram resolution for the expected ROC AUC.
    calibrator
        Map from raw score to probability; ``None`` takes the scores as calibrated.

    Examples
    --------
    >>> est = CBPEstimator()
    >>> est.update_many(np.array([0.75, 0.5, 0.25, 0.125]))
    >>> r = est.estimate()
    >>> r["expected_tp"], r["expected_fp"], r["expected_fn"], r["expected_tn"]
    (1.25, 0.75, 0.375, 1.625)
    >>> r["accuracy"], r["precision"], round(r["recall"], 6)
    (0.71875, 0.625, 0.769231)
    >>> CBPEstimator().estimate() is None
    True
    """

    __slots__ = ("_counts", "_p_neg", "_p_pos", "_pos_w", "_pq", "calibrator", "n_bins", "n_pred_neg",
                 "n_pred_pos", "threshold")

    def __init__(self, threshold: float = DEFAULT_THRESHOLD, *, n_bins: int = DEFAULT_SCORE_BINS,
                 calibrator: IsotonicCalibrator | None = None) -> None:
        self.threshold = check_threshold(threshold)
        self.n_bins = check_bins(n_bins)
        self.calibrator = calibrator
        self._counts = np.zeros(n_bins, dtype=np.int64)
        self._pos_w = np.zeros(n_bins, dtype=np.float64)
        self.n_pred_pos = 0
        self.n_pred_neg = 0
        self._p_pos = 0.0  # sum of p over positive predictions
        self._p_neg = 0.0  # sum of p over negative predictions
        self._pq = 0.0  # sum of p (1 - p)

    def calibrate(self, reference_scores: ArrayLike, reference_labels: ArrayLike) -> IsotonicCalibrator:
        """Fit an :class:`IsotonicCalibrator` on labelled reference data and use it from now on.

        Only allowed before the first update: the accumulated sums hold probabilities from the old map.
        """
        if self.n:
            raise ValueError("calibrate before the first update (the accumulated probabilities used the old map)")
        self.calibrator = IsotonicCalibrator.fit(reference_scores, reference_labels, n_bins=self.n_bins)
        return self.calibrator

    def update(self, score: float) -> None:
        """Add one prediction's score."""
        s = check_score(score)
        p = s if self.calibrator is None else self.calibrator(s)
        idx = min(int(s * self.n_bins), self.n_bins - 1)
        self._counts[idx] += 1
        self._pos_w[idx] += p
        self._pq += p * (1.0 - p)
        if s >= self.threshold:
            self.n_pred_pos += 1
            self._p_pos += p
        else:
            self.n_pred_neg += 1
            self._p_neg += p

    def update_many(self, scores: ArrayLike) -> None:
        """Add a batch of scores (vectorised)."""
        s = check_scores(scores)
        if not s.size:
            return
        p = s if self.calibrator is None else self.calibrator.transform(s)
        idx = bin_index(s, self.n_bins)
        self._counts += np.bincount(idx, minlength=self.n_bins)
        self._pos_w += np.bincount(idx, weights=p, minlength=self.n_bins)
        self._pq += float(np.dot(p, 1.0 - p))
        pred = s >= self.threshold
        n_pos = int(np.count_nonzero(pred))
        self.n_pred_pos += n_pos
        self.n_pred_neg += int(s.size) - n_pos
        self._p_pos += float(p[pred].sum())
        self._p_neg += float(p[~pred].sum())

    @property
    def n(self) -> int:
        return self.n_pred_pos + self.n_pred_neg

    @property
    def auc_resolution_bound(self) -> float | None:
        """Upper bound on the binning error of the expected ROC AUC (same-bin weight pairs)."""
        return auc_tie_bound(self._pos_w, self._neg_w())

    def _neg_w(self) -> NDArray[np.float64]:
        return np.maximum(self._counts - self._pos_w, 0.0)

    def estimate(self) -> dict[str, float | int | None] | None:
        """Expected metrics as a dict, or ``None`` when no score was seen; undefined metrics are ``None``."""
        n = self.n
        if not n:
            return None
        etp, efn = self._p_pos, self._p_neg
        efp, etn = self.n_pred_pos - etp, self.n_pred_neg - efn
        return {
            "count": n,
            "predicted_positives": self.n_pred_pos,
            "expected_positives": etp + efn,
            "expected_tp": etp,
            "expected_fp": efp,
            "expected_fn": efn,
            "expected_tn": etn,
            "accuracy": (etp + etn) / n,
            "accuracy_std": math.sqrt(max(self._pq, 0.0)) / n,
            "precision": ratio(etp, self.n_pred_pos),
            "recall": ratio(etp, etp + efn),
            "f1": ratio(2 * etp, 2 * etp + efp + efn),
            "roc_auc": auc_from_weights(self._pos_w, self._neg_w()),
        }

    get = estimate  # River's statistic protocol

    def _check_compatible(self, other: CBPEstimator) -> None:
        if (self.threshold, self.n_bins) != (other.threshold, other.n_bins):
            raise ValueError("cannot merge CBPEstimators with different threshold or bins")
        if self.calibrator != other.calibrator:
            raise ValueError("cannot merge CBPEstimators with different calibrators")

    def __iadd__(self, other: CBPEstimator) -> CBPEstimator:
        self._check_compatible(other)
        self._counts += other._counts
        self._pos_w += other._pos_w
        self.n_pred_pos += other.n_pred_pos
        self.n_pred_neg += other.n_pred_neg
        self._p_pos += other._p_pos
        self._p_neg += other._p_neg
        self._pq += other._pq
        return self

    def __add__(self, other: CBPEstimator) -> CBPEstimator:
        out = CBPEstimator.from_state(self.to_state())
        out += other
        return out

    def to_state(self) -> dict[str, Any]:
        return {
            "schema_version": 1,
            "threshold": self.threshold,
            "n_bins": self.n_bins,
            "calibrator": None if self.calibrator is None else self.calibrator.to_state(),
            "n_pred_pos": self.n_pred_pos,
            "n_pred_neg": self.n_pred_neg,
            "p_sum_pred_pos": self._p_pos,
            "p_sum_pred_neg": self._p_neg,
            "pq_sum": self._pq,
            "counts": self._counts.tolist(),
            "pos_weights": self._pos_w.tolist(),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> CBPEstimator:
        if state.get("schema_version") != 1:
            raise ValueError(f"unsupported CBPEstimator state version {state.get('schema_version')!r}")
        cal = None if state["calibrator"] is None else IsotonicCalibrator.from_state(state["calibrator"])
        est = cls(state["threshold"], n_bins=int(state["n_bins"]), calibrator=cal)
        counts = np.asarray(state["counts"], dtype=np.int64)
        pos_w = np.asarray(state["pos_weights"], dtype=np.float64)
        if counts.shape != (est.n_bins,) or pos_w.shape != (est.n_bins,):
            raise ValueError("CBPEstimator state arrays do not match its bins")
        est._counts, est._pos_w = counts, pos_w
        est.n_pred_pos, est.n_pred_neg = int(state["n_pred_pos"]), int(state["n_pred_neg"])
        est._p_pos, est._p_neg = float(state["p_sum_pred_pos"]), float(state["p_sum_pred_neg"])
        est._pq = float(state["pq_sum"])
        return est

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CBPEstimator) and self.to_state() == other.to_state()

    def __repr__(self) -> str:
        return f"CBPEstimator(n={self.n}, threshold={self.threshold}, calibrated={self.calibrator is not None})"
