"""A model's reference performance: built from labelled reference rows, stored in the reference profile.

The reference profile of a ``kind: predictions`` stream may carry a ``model``
section when its rows also hold the label (``model.label_field``): the
model's performance accumulator state over those rows (mergeable, like the
rest of the profile). The monitor compares every window against its metrics,
and fits a binary model's CBPE calibration map from its per-class score
histograms.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from monitor.performance.cbpe import IsotonicCalibrator
from monitor.performance.classification import BinaryPerformance, MulticlassPerformance
from monitor.performance.regression import RegressionPerformance
from monitor.spec import ModelSpec

__all__ = ["Performance", "ReferenceBuilder", "calibrator_from", "label_key", "merge_performance_states",
           "new_performance", "performance_from_state", "reference_metrics"]

Performance = BinaryPerformance | MulticlassPerformance | RegressionPerformance


def new_performance(model: ModelSpec) -> Performance:
    """An empty accumulator for ``model``'s task."""
    if model.task == "binary":
        return BinaryPerformance(model.threshold)
    if model.task == "multiclass":
        return MulticlassPerformance(list(model.classes or []))
    return RegressionPerformance()


def performance_from_state(task: str, state: dict[str, Any]) -> Performance:
    if task == "binary":
        return BinaryPerformance.from_state(state)
    if task == "multiclass":
        return MulticlassPerformance.from_state(state)
    if task == "regression":
        return RegressionPerformance.from_state(state)
    raise ValueError(f"unknown model task {task!r}")


def merge_performance_states(task: str, a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """The state of both accumulators merged."""
    merged = performance_from_state(task, a)
    merged += performance_from_state(task, b)  # type: ignore[operator]  # same task, same type
    return merged.to_state()


def label_key(value: Any) -> str | None:
    """A class label as the string the spec names it by (``1`` and ``1.0`` -> ``"1"``, ``True`` -> ``"true"``);
    ``None`` when missing or not a usable label.

    >>> label_key(1), label_key(1.0), label_key(True), label_key("fraud"), label_key(None), label_key(0.5)
    ('1', '1', 'true', 'fraud', None, None)
    """
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return str(int(value))
    return None


#: Largest magnitude of a regression value or label taken (beyond, squared errors would overflow to inf).
MAX_VALUE = 1e15


def number(value: Any) -> float | None:
    """A finite number of magnitude at most :data:`MAX_VALUE`, or ``None`` (missing, NaN/inf, huge, wrong type).

    >>> number(2), number(True), number(float("nan")), number(1e200)
    (2.0, None, None, None)
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        x = float(value)
    except OverflowError:  # an int too large for a float
        return None
    return x if math.isfinite(x) and abs(x) <= MAX_VALUE else None


def truth(model: ModelSpec, value: Any) -> Any:
    """A label value as the task's ground truth: 0/1 (binary), class name (multiclass), float (regression);
    ``None`` when unusable."""
    if model.task == "regression":
        return number(value)
    key = label_key(value)
    if key is None:
        return None
    if model.task == "binary":
        return 1 if key == model.positive_label else 0
    return key


def predicted(model: ModelSpec, fields: dict[str, Any]) -> dict[str, Any] | None:
    """The prediction payload of a record (``{"s": score}``, ``{"c": class}`` or ``{"v": value}``), or ``None``
    when the record's prediction is missing or invalid (then it is not joined; the stream's quality checks
    report it)."""
    if model.task == "binary":
        s = number(fields.get(model.score_field))  # type: ignore[arg-type]
        return {"s": s} if s is not None and 0.0 <= s <= 1.0 else None
    if model.task == "multiclass":
        c = label_key(fields.get(model.class_field))  # type: ignore[arg-type]
        return None if c is None else {"c": c}
    v = number(fields.get(model.value_field))  # type: ignore[arg-type]
    return None if v is None else {"v": v}


def update_many(perf: Performance, model: ModelSpec, payloads: Sequence[dict[str, Any]], ys: Sequence[Any]) -> None:
    """Add labelled predictions (payloads from :func:`predicted`, truths from :func:`truth`)."""
    if not payloads:
        return
    if isinstance(perf, BinaryPerformance):
        perf.update_many(np.asarray(ys, dtype=np.int64), np.fromiter((p["s"] for p in payloads), dtype=np.float64,
                                                                     count=len(payloads)))
    elif isinstance(perf, MulticlassPerformance):
        perf.update_many(list(ys), [p["c"] for p in payloads])
    else:
        perf.update_many(np.asarray(ys, dtype=np.float64),
                         np.fromiter((p["v"] for p in payloads), dtype=np.float64, count=len(payloads)))


class ReferenceBuilder:
    """Accumulates a model's reference performance from labelled reference rows (bounded memory)."""

    def __init__(self, model: ModelSpec) -> None:
        self.model = model
        self.perf = new_performance(model)
        self.examples = 0

    def update(self, rows: Sequence[dict[str, Any]]) -> None:
        payloads, ys = [], []
        for r in rows:
            p = predicted(self.model, r)
            y = truth(self.model, r.get(self.model.label_field))
            if p is not None and y is not None:
                payloads.append(p)
                ys.append(y)
        update_many(self.perf, self.model, payloads, ys)
        self.examples += len(ys)

    def result(self) -> dict[str, Any] | None:
        """The profile's ``model`` section, ``None`` when no row carried both a prediction and a label."""
        if not self.examples:
            return None
        return {"name": self.model.name, "task": self.model.task, "label_field": self.model.label_field,
                "examples": self.examples, "performance": self.perf.to_state()}


def reference_metrics(section: dict[str, Any] | None) -> dict[str, Any] | None:
    """The reference performance metrics of a profile's ``model`` section."""
    if section is None:
        return None
    return performance_from_state(section["task"], section["performance"]).get()


def calibrator_from(section: dict[str, Any] | None) -> IsotonicCalibrator | None:
    """A binary model's CBPE calibration map, fitted on the reference's per-class score histograms."""
    if section is None or section.get("task") != "binary":
        return None
    state = section["performance"]
    pos, neg = np.asarray(state["pos_counts"], dtype=np.int64), np.asarray(state["neg_counts"], dtype=np.int64)
    if not (pos.sum() and neg.sum()):
        return None
    return IsotonicCalibrator.fit_counts(pos, neg)
