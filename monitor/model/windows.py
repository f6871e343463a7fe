"""What the model stage keeps per model version: its window accumulators (one :class:`ModelPane`
per open count window, windowed by :class:`~monitor.windows.CountTrack` like every window), its
error-stream detectors, and the helpers that read prediction and label records."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from monitor.detectors import ERROR_DETECTORS
from monitor.join import LatencyHistogram
from monitor.performance import CBPEstimator, Performance
from monitor.records import ColumnBatch
from monitor.report import Change
from monitor.spec import ModelSpec, WindowSpec
from monitor.windows import CountTrack

__all__ = ["DEFAULT_VERSION", "MAX_ID_CHARS", "MAX_LABEL_CHARS", "ModelPane", "VersionState", "columns_of",
           "error_point", "join_key", "version_label"]

#: Version of predictions that carry none.
DEFAULT_VERSION = "unversioned"

#: Longest model name or version kept (longer ones are cut): they become metric labels.
MAX_LABEL_CHARS = 64


class ModelPane:
    """The accumulator of one open model window of one version: performance (labels windows), the
    label-free estimate, label latency, the join outcome of the period (predictions windows) and the
    event-time span of what it holds."""

    __slots__ = ("basis", "changes", "count", "estimator", "evicted", "expired", "joined", "latency", "perf",
                 "t_max", "t_min")

    def __init__(self, basis: str, perf: Performance | None, estimator: CBPEstimator | None) -> None:
        self.basis = basis
        self.perf = perf
        self.estimator = estimator
        self.count = 0
        self.joined = 0
        self.expired = 0  # never joined: TTL ran out, or evicted (``evicted`` of them)
        self.evicted = 0
        self.latency = LatencyHistogram()
        self.changes: list[Change] = []
        self.t_min = math.inf
        self.t_max = -math.inf

    def stamp(self, times: Sequence[float]) -> None:
        """Widen the event-time span to ``times``."""
        if len(times):
            self.t_min = min(self.t_min, *times)
            self.t_max = max(self.t_max, *times)


def model_window(spec: WindowSpec) -> WindowSpec:
    """A model window's spec as its track runs it: tumbling (model windows do not slide)."""
    return spec if spec.slide is None else spec.model_copy(update={"slide": None})


class VersionState:
    """Everything kept per (model, version): a track per model window and basis, and the detectors."""

    __slots__ = ("detectors", "errors_seen", "labels", "model", "predictions", "version")

    def __init__(self, model: str, version: str, spec: ModelSpec, *,
                 new_labels: Callable[[], ModelPane], new_predictions: Callable[[], ModelPane]) -> None:
        self.model = model
        self.version = version
        self.labels: list[CountTrack[ModelPane]] = [
            CountTrack(model_window(w), new_pane=new_labels) for w in spec.windows]
        self.predictions: list[CountTrack[ModelPane]] = [
            CountTrack(model_window(w), new_pane=new_predictions) for w in spec.windows]
        self.detectors: dict[str, Any] = {name: ERROR_DETECTORS[name]() for name in spec.detectors or []}
        self.errors_seen = 0


def error_point(task: str, threshold: float, payload: dict[str, Any], label: Any) -> float:
    """One point of the error stream: 0/1 misclassification, or the absolute error of a regressor."""
    if task == "binary":
        return float((payload["s"] >= threshold) != bool(label))
    if task == "multiclass":
        return float(payload["c"] != label)
    return abs(float(payload["v"]) - float(label))


#: Record ids longer than this are joined by a digest (a snapshot chunk must stay far below Kafka's message limit).
MAX_ID_CHARS = 256


def join_key(value: Any) -> str:
    """The join key of a record id: ``str(id)``, or a SHA-256 digest of it when longer than :data:`MAX_ID_CHARS`.

    >>> join_key(17), join_key("a" * 300)[:7], len(join_key("a" * 300))
    ('17', 'sha256:', 71)
    """
    key = str(value)
    if len(key) <= MAX_ID_CHARS:
        return key
    return "sha256:" + hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def version_label(value: Any, default: str) -> str:
    if value is None or value == "":
        return default
    return str(value)[:MAX_LABEL_CHARS]


def columns_of(records: Sequence[dict[str, Any]] | ColumnBatch, names: Iterable[str]) -> dict[str, list[Any]]:
    if isinstance(records, ColumnBatch):
        nulls = [None] * len(records)
        return {n: list(records.columns.get(n, nulls)) for n in names}
    return {n: [r.get(n) for r in records] for n in names}
