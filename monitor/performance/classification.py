"""Rolling model performance once labels have joined: binary and multiclass accumulators
(regression: :mod:`monitor.performance.regression`).

All follow the house statistic protocol (``update``/``update_many``/``get``, ``+=`` merges,
``to_state``/``from_state`` JSON) and use bounded memory, so one accumulator per model version
and window can live in a table and windows or partitions can be merged.

River's metrics (``river.metrics``) are not used as the backing store: their ``+`` builds a
:class:`river.metrics.Metrics` *collection* instead of merging two streams, they have no
serialisable state, River's ``ROCAUC`` costs ``O(n_thresholds)`` Python work per update with a
10-threshold default, and River's ``MAPE`` counts ``y = 0`` as zero error. The accumulators here
keep exact counts and sums instead (a fixed-resolution score histogram for ROC AUC), which merge
by addition.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from monitor.performance._scores import (
    DEFAULT_ECE_BINS,
    DEFAULT_SCORE_BINS,
    DEFAULT_THRESHOLD,
    LOG_LOSS_EPS,
    auc_from_weights,
    auc_tie_bound,
    bin_index,
    check_bins,
    check_label,
    check_labels,
    check_score,
    check_scores,
    check_threshold,
    ratio,
)
from monitor.stats.histogram import OTHER

__all__ = ["BinaryPerformance", "Label", "MulticlassPerformance"]


#: A class label: JSON-serialisable scalar.
Label = str | int


class BinaryPerformance:
    """Performance of a binary classifier from labelled ``(y_true, y_score)`` pairs, mergeable.

    ``y_true`` is 0/1 and ``y_score`` the predicted probability of class 1 in ``[0, 1]``; a score
    ``>= threshold`` is a positive prediction. :meth:`get` reports the confusion-matrix metrics
    (accuracy, precision, recall, F1), ROC AUC, log loss (probabilities clipped to
    ``[1e-15, 1 - 1e-15]``), the Brier score and the expected calibration error.

    ROC AUC comes from one score histogram per class with ``n_bins`` equal-width bins over
    ``[0, 1]`` (bin ``floor(s * n_bins)``, ``s = 1`` in the last bin):
    ``AUC = P(s_pos > s_neg) + P(s_pos = s_neg) / 2`` with scores in the same bin counted as ties.
    That is the exact (Mann-Whitney) AUC whenever no positive shares a bin with a negative; otherwise
    the error is at most :attr:`auc_resolution_bound` ``= sum_b pos_b neg_b / (2 P N)`` (at most
    about ``1 / (2 n_bins)`` for scores with a smooth density). The histogram makes AUC mergeable
    by addition and memory constant (``2 n_bins`` counters).

    The ECE is the positive-class reliability error over ``ece_bins`` equal-width bins:
    ``ECE = sum_b (n_b / n) |mean(y)_b - mean(score)_b|``. Its bins are unions of the AUC bins
    (``n_bins`` must be a multiple of ``ece_bins``), so an ECE bin holds the scores in
    ``[j / ece_bins, (j + 1) / ece_bins)``, the last one closed.

    Metrics undefined on the data are ``None``: precision without a positive prediction, recall
    without a positive label, F1 when there is neither (``F1 = 2TP / (2TP + FP + FN)``, so it is
    0, not ``None``, when positives exist but none is found), ROC AUC with a single class.

    Parameters
    ----------
    threshold
        Decision threshold in ``[0, 1]``.
    n_bins
        Score-histogram resolution for ROC AUC.
    ece_bins
        Bins of the expected calibration error.

    Examples
    --------
    >>> bp = BinaryPerformance()
    >>> for y, s in [(0, 0.1), (0, 0.4), (1, 0.35), (1, 0.8)]:
    ...     bp.update(y, s)
    >>> r = bp.get()
    >>> r["accuracy"], r["precision"], r["recall"], r["roc_auc"]
    (0.75, 1.0, 0.5, 0.75)
    >>> other = BinaryPerformance()
    >>> other.update_many(np.array([1, 0]), np.array([0.9, 0.6]))
    >>> bp += other
    >>> bp.get()["count"], bp.get()["positives"], bp.get()["f1"]
    (6, 3, 0.6666666666666666)
    >>> BinaryPerformance().get() is None
    True
    """

    __slots__ = ("_brier", "_ece_score", "_log_loss", "_neg", "_per_ece", "_pos", "ece_bins", "fn", "fp",
                 "n_bins", "threshold", "tn", "tp")

    def __init__(self, threshold: float = DEFAULT_THRESHOLD, *, n_bins: int = DEFAULT_SCORE_BINS,
                 ece_bins: int = DEFAULT_ECE_BINS) -> None:
        self.threshold = check_threshold(threshold)
        self.n_bins = check_bins(n_bins)
        self.ece_bins = check_bins(ece_bins)
        if n_bins % ece_bins:
            raise ValueError(f"n_bins ({n_bins}) must be a multiple of ece_bins ({ece_bins})")
        self._per_ece = n_bins // ece_bins
        self._pos = np.zeros(n_bins, dtype=np.int64)
        self._neg = np.zeros(n_bins, dtype=np.int64)
        self._ece_score = np.zeros(ece_bins, dtype=np.float64)
        self.tp = self.fp = self.fn = self.tn = 0
        self._log_loss = 0.0
        self._brier = 0.0

    def update(self, y: Any, score: float) -> None:
        """Add one labelled prediction."""
        yi, s = check_label(y), check_score(score)
        idx = min(int(s * self.n_bins), self.n_bins - 1)
        if yi:
            self._pos[idx] += 1
        else:
            self._neg[idx] += 1
        self._ece_score[idx // self._per_ece] += s
        if s >= self.threshold:
            if yi:
                self.tp += 1
            else:
                self.fp += 1
        elif yi:
            self.fn += 1
        else:
            self.tn += 1
        p = min(max(s, LOG_LOSS_EPS), 1.0 - LOG_LOSS_EPS)
        self._log_loss -= math.log(p) if yi else math.log(1.0 - p)
        self._brier += (s - yi) ** 2

    def update_many(self, y: ArrayLike, score: ArrayLike) -> None:
        """Add a batch of labelled predictions (vectorised; the same result as one ``update`` per pair)."""
        yv, sv = check_labels(y), check_scores(score)
        if yv.size != sv.size:
            raise ValueError(f"y and score differ in length: {yv.size} != {sv.size}")
        if not sv.size:
            return
        idx = bin_index(sv, self.n_bins)
        is_pos = yv == 1
        self._pos += np.bincount(idx[is_pos], minlength=self.n_bins)
        self._neg += np.bincount(idx[~is_pos], minlength=self.n_bins)
        self._ece_score += np.bincount(idx // self._per_ece, weights=sv, minlength=self.ece_bins)
        pred = sv >= self.threshold
        self.tp += int(np.count_nonzero(pred & is_pos))
        self.fp += int(np.count_nonzero(pred & ~is_pos))
        self.fn += int(np.count_nonzero(~pred & is_pos))
        self.tn += int(np.count_nonzero(~pred & ~is_pos))
        p = np.clip(sv, LOG_LOSS_EPS, 1.0 - LOG_LOSS_EPS)
        self._log_loss -= float(np.sum(np.where(is_pos, np.log(p), np.log(1.0 - p))))
        self._brier += float(np.sum((sv - yv) ** 2))

    @property
    def n(self) -> int:
        return self.tp + self.fp + self.fn + self.tn

    @property
    def roc_auc(self) -> float | None:
        """Histogram ROC AUC, ``None`` unless both classes were seen."""
        return auc_from_weights(self._pos, self._neg)

    @property
    def auc_resolution_bound(self) -> float | None:
        """Upper bound on ``|roc_auc - exact AUC|`` from positives and negatives sharing a bin."""
        return auc_tie_bound(self._pos, self._neg)

    @property
    def ece(self) -> float | None:
        """Expected calibration error of the positive-class probability, ``None`` when empty."""
        n = self.n
        if not n:
            return None
        # (n_b / n) |pos_b / n_b - score_sum_b / n_b| == |pos_b - score_sum_b| / n
        positives = self._pos.reshape(self.ece_bins, self._per_ece).sum(axis=1)
        return float(np.abs(positives - self._ece_score).sum()) / n

    def get(self) -> dict[str, float | int | None] | None:
        """All metrics as a dict, or ``None`` when nothing was seen."""
        n = self.n
        if not n:
            return None
        tp, fp, fn, tn = self.tp, self.fp, self.fn, self.tn
        return {
            "count": n,
            "positives": tp + fn,
            "predicted_positives": tp + fp,
            "accuracy": (tp + tn) / n,
            "precision": ratio(tp, tp + fp),
            "recall": ratio(tp, tp + fn),
            "f1": ratio(2 * tp, 2 * tp + fp + fn),
            "roc_auc": self.roc_auc,
            "log_loss": self._log_loss / n,
            "brier": self._brier / n,
            "ece": self.ece,
        }

    def _check_compatible(self, other: BinaryPerformance) -> None:
        if (self.threshold, self.n_bins, self.ece_bins) != (other.threshold, other.n_bins, other.ece_bins):
            raise ValueError("cannot merge BinaryPerformance with different threshold or bins")

    def __iadd__(self, other: BinaryPerformance) -> BinaryPerformance:
        self._check_compatible(other)
        self._pos += other._pos
        self._neg += other._neg
        self._ece_score += other._ece_score
        self.tp += other.tp
        self.fp += other.fp
        self.fn += other.fn
        self.tn += other.tn
        self._log_loss += other._log_loss
        self._brier += other._brier
        return self

    def __add__(self, other: BinaryPerformance) -> BinaryPerformance:
        out = BinaryPerformance.from_state(self.to_state())
        out += other
        return out

    def to_state(self) -> dict[str, Any]:
        return {
            "schema_version": 1,
            "threshold": self.threshold,
            "n_bins": self.n_bins,
            "ece_bins": self.ece_bins,
            "tp": self.tp,
            "fp": self.fp,
            "fn": self.fn,
            "tn": self.tn,
            "log_loss_sum": self._log_loss,
            "brier_sum": self._brier,
            "ece_score_sums": self._ece_score.tolist(),
            "pos_counts": self._pos.tolist(),
            "neg_counts": self._neg.tolist(),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> BinaryPerformance:
        if state.get("schema_version") != 1:
            raise ValueError(f"unsupported BinaryPerformance state version {state.get('schema_version')!r}")
        bp = cls(state["threshold"], n_bins=int(state["n_bins"]), ece_bins=int(state["ece_bins"]))
        pos = np.asarray(state["pos_counts"], dtype=np.int64)
        neg = np.asarray(state["neg_counts"], dtype=np.int64)
        ece = np.asarray(state["ece_score_sums"], dtype=np.float64)
        if pos.shape != (bp.n_bins,) or neg.shape != (bp.n_bins,) or ece.shape != (bp.ece_bins,):
            raise ValueError("BinaryPerformance state arrays do not match its bins")
        bp._pos, bp._neg, bp._ece_score = pos, neg, ece
        bp.tp, bp.fp, bp.fn, bp.tn = (int(state[k]) for k in ("tp", "fp", "fn", "tn"))
        bp._log_loss = float(state["log_loss_sum"])
        bp._brier = float(state["brier_sum"])
        return bp

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __eq__(self, other: object) -> bool:
        return isinstance(other, BinaryPerformance) and self.to_state() == other.to_state()

    def __repr__(self) -> str:
        return f"BinaryPerformance(n={self.n}, threshold={self.threshold})"


class MulticlassPerformance:
    """Accuracy and macro precision/recall/F1 of a multiclass classifier, from a bounded confusion matrix.

    Rows are the true class, columns the predicted class, over ``classes`` plus a last
    :data:`~monitor.stats.OTHER` row/column for labels outside the list, so memory is
    ``(k + 1)^2`` counters whatever the stream sends. Accuracy compares the raw labels
    (two different unknown labels are a miss even though both land in ``OTHER``).

    Per class ``c``: precision ``= cm[c, c] / column_c``, recall ``= cm[c, c] / row_c``,
    F1 ``= 2 cm[c, c] / (row_c + column_c)``. The macro averages run over the listed classes that
    occur in the window (as a true or a predicted label; scikit-learn's default label set), with an
    undefined per-class term counted as 0 (scikit-learn's ``zero_division=0``); ``OTHER`` is not a
    class and is left out of them. ``per_class`` reports ``None`` for undefined terms instead.

    River's :class:`river.metrics.ConfusionMatrix` is unbounded (a nested dict growing with every
    new label) and neither mergeable nor serialisable, hence the fixed numpy matrix.

    Examples
    --------
    >>> mp = MulticlassPerformance(["cat", "dog"])
    >>> mp.update_many(["cat", "cat", "dog", "bird"], ["cat", "dog", "dog", "bird"])
    >>> r = mp.get()
    >>> r["accuracy"], r["macro_precision"], r["macro_recall"], r["other_true"]
    (0.75, 0.75, 0.75, 1)
    >>> mp.confusion.tolist()
    [[1, 1, 0], [0, 1, 0], [0, 0, 1]]
    """

    __slots__ = ("_index", "classes", "confusion", "correct")

    def __init__(self, classes: Sequence[Label]) -> None:
        self.classes: list[Label] = [c.item() if isinstance(c, np.generic) else c for c in classes]
        if len(set(self.classes)) != len(self.classes):
            raise ValueError("classes must be distinct")
        if OTHER in self.classes:
            raise ValueError(f"{OTHER!r} is reserved for labels outside the class list")
        self._index: dict[Label, int] = {c: i for i, c in enumerate(self.classes)}
        k = len(self.classes) + 1
        self.confusion = np.zeros((k, k), dtype=np.int64)
        self.correct = 0

    def _idx(self, label: Any) -> int:
        return self._index.get(label, len(self.classes))

    def update(self, y_true: Any, y_pred: Any) -> None:
        self.confusion[self._idx(y_true), self._idx(y_pred)] += 1
        if y_true == y_pred:
            self.correct += 1

    def update_many(self, y_true: Sequence[Any] | NDArray[Any], y_pred: Sequence[Any] | NDArray[Any]) -> None:
        """Add a batch (index lookups, then one ``bincount`` over the flattened matrix)."""
        if len(y_true) != len(y_pred):
            raise ValueError(f"y_true and y_pred differ in length: {len(y_true)} != {len(y_pred)}")
        n = len(y_true)
        if not n:
            return
        k = len(self.classes) + 1
        other = k - 1
        ti = np.fromiter((self._index.get(v, other) for v in y_true), dtype=np.intp, count=n)
        pi = np.fromiter((self._index.get(v, other) for v in y_pred), dtype=np.intp, count=n)
        self.confusion += np.bincount(ti * k + pi, minlength=k * k).reshape(k, k)
        self.correct += sum(1 for a, b in zip(y_true, y_pred, strict=True) if a == b)

    @property
    def n(self) -> int:
        return int(self.confusion.sum())

    def get(self) -> dict[str, Any] | None:
        """Metrics as a dict, or ``None`` when nothing was seen."""
        n = self.n
        if not n:
            return None
        k = len(self.classes)
        diag: list[int] = np.diag(self.confusion)[:k].tolist()
        predicted: list[int] = self.confusion[:, :k].sum(axis=0).tolist()
        support: list[int] = self.confusion[:k, :].sum(axis=1).tolist()
        per_class: dict[str, dict[str, float | int | None]] = {}
        prec: list[float] = []
        rec: list[float] = []
        f1: list[float] = []
        for i, c in enumerate(self.classes):
            tp, npred, sup = diag[i], predicted[i], support[i]
            p, r, f = ratio(tp, npred), ratio(tp, sup), ratio(2 * tp, npred + sup)
            per_class[str(c)] = {"precision": p, "recall": r, "f1": f, "support": sup}
            if npred + sup > 0:
                prec.append(p or 0.0)
                rec.append(r or 0.0)
                f1.append(f or 0.0)
        return {
            "count": n,
            "accuracy": self.correct / n,
            "macro_precision": float(np.mean(prec)) if prec else None,
            "macro_recall": float(np.mean(rec)) if rec else None,
            "macro_f1": float(np.mean(f1)) if f1 else None,
            "other_true": int(self.confusion[k, :].sum()),
            "other_pred": int(self.confusion[:, k].sum()),
            "per_class": per_class,
        }

    def __iadd__(self, other: MulticlassPerformance) -> MulticlassPerformance:
        if other.classes != self.classes:
            raise ValueError("cannot merge MulticlassPerformance over different class lists")
        self.confusion += other.confusion
        self.correct += other.correct
        return self

    def __add__(self, other: MulticlassPerformance) -> MulticlassPerformance:
        out = MulticlassPerformance.from_state(self.to_state())
        out += other
        return out

    def to_state(self) -> dict[str, Any]:
        return {"schema_version": 1, "classes": list(self.classes), "confusion": self.confusion.tolist(),
                "correct": self.correct}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> MulticlassPerformance:
        if state.get("schema_version") != 1:
            raise ValueError(f"unsupported MulticlassPerformance state version {state.get('schema_version')!r}")
        mp = cls(state["classes"])
        cm = np.asarray(state["confusion"], dtype=np.int64)
        if cm.shape != mp.confusion.shape:
            raise ValueError("MulticlassPerformance confusion matrix does not match its classes")
        mp.confusion = cm
        mp.correct = int(state["correct"])
        return mp

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __eq__(self, other: object) -> bool:
        return isinstance(other, MulticlassPerformance) and self.to_state() == other.to_state()

    def __repr__(self) -> str:
        return f"MulticlassPerformance(n={self.n}, classes={self.classes!r})"
