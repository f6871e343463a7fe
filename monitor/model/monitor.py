"""Model monitoring inside the stream: predictions joined to delayed labels, rolling performance per
model version, label-free estimates (CBPE) and concept-drift detectors on the error stream. No I/O.

One :class:`ModelMonitor` serves one ``kind: predictions`` stream and the ``kind: labels`` stream
its model names. The worker hands it every batch of both (after the engine has checked them for
quality and drift like any stream) with the Kafka partition and offsets; offline callers pass
partition 0 and no offsets.

* Predictions and labels meet in one :class:`~monitor.join.LabelJoinStore` per input partition
  (the two topics are co-partitioned by record id), bounded by ``model.join``. A prediction waits
  at most ``ttl_seconds`` for its label, then counts as expired; an early label waits as long for
  its prediction.
* Per model version (at most ``model.max_versions``, least recently seen dropped) and per model
  window (``model.windows``, count windows), two window series:

  - **labels**: every ``size`` joined examples, the realised performance (binary: accuracy,
    precision, recall, F1, ROC AUC, log loss, Brier, calibration error; multiclass: accuracy and
    macro precision/recall/F1; regression: MAE, RMSE, MAPE), the label-free CBPE estimate on the
    same examples beside it (binary), the label latency, and the error-stream detectors' firings;
  - **predictions**: every ``size`` predictions, the CBPE estimate (binary; what is known before
    any label arrives) and the join outcome of the period: predictions joined and expired, label
    latency.

* Each window's checks become :class:`~monitor.alerts.Observation` values with ``model`` set to
  ``name:version`` and go through the same :class:`~monitor.alerts.AlertPolicy` as every other
  alert (pass the engine's, so they share the checkpointed state).

Time: in event mode a store's "now" is the latest event time it has seen on either topic (TTL
expiry follows the data, so a replay expires the same predictions); in processing mode it is the
clock, and a prediction's age counts from its arrival.

Memory: per partition the join store's bounds; per model version and window two accumulators of
fixed size (score histograms of 1000 bins, a (k+1)^2 confusion matrix or running sums), a latency
histogram and one River detector per configured name.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from river import drift

from monitor.alerts import Alert, AlertPolicy, Observation
from monitor.columns import iso, parse_times
from monitor.join import JoinedExample, LabelJoinStore, LatencyHistogram, PendingPrediction, combined_stats
from monitor.model.reference import (
    Performance,
    calibrator_from,
    new_performance,
    predicted,
    reference_metrics,
    truth,
    update_many,
)
from monitor.performance import CBPEstimator, IsotonicCalibrator
from monitor.records import ColumnBatch
from monitor.reference import ReferenceProfile
from monitor.spec import MonitorSpec, StreamSpec, Threshold, WindowSpec

__all__ = ["DEFAULT_VERSION", "ERROR_DETECTORS", "ModelMonitor", "ModelWindowReport"]

#: Version of predictions that carry none.
DEFAULT_VERSION = "unversioned"

#: River detectors on the error stream, by the name the spec uses. DDM with River's defaults (30 warm-up
#: examples, 3 sigma) fired on a third of stationary 15 %-error streams within 40,000 examples (it fixes its
#: baseline on too few); with 1,000 warm-up examples and 4 sigma it fired on none of 40 such streams and
#: still caught the error rate doubling (15 % -> 30 %) within 550-2,000 examples. The others: River's defaults.
ERROR_DETECTORS: dict[str, Callable[[], Any]] = {
    "ddm": lambda: drift.binary.DDM(warm_start=1000, warning_threshold=3.0, drift_threshold=4.0),
    "eddm": drift.binary.EDDM,
    "hddm_a": drift.binary.HDDMA,
    "hddm_w": drift.binary.HDDMW,
    "adwin": lambda: drift.ADWIN(delta=0.002),  # type: ignore[no-untyped-call]
}

#: Longest model name or version kept (longer ones are cut): they become metric labels.
MAX_LABEL_CHARS = 64

# (check, metric, direction): +1 when a higher metric is better (the check is the drop), -1 when lower is.
_REALISED_DROPS = (("accuracy_drop", "accuracy"), ("precision_drop", "precision"), ("recall_drop", "recall"),
                   ("f1_drop", "f1"), ("roc_auc_drop", "roc_auc"))
_MULTICLASS_NAMES = {"precision": "macro_precision", "recall": "macro_recall", "f1": "macro_f1"}
_ESTIMATED_DROPS = (("estimated_accuracy_drop", "accuracy"), ("estimated_roc_auc_drop", "roc_auc"),
                    ("estimated_f1_drop", "f1"))
_REGRESSION_INCREASES = (("mae_increase", "mae"), ("rmse_increase", "rmse"), ("mape_increase", "mape"))
#: Metrics the label-free estimate and the realised performance share (the estimation error is reported for them).
ESTIMATED_METRICS = ("accuracy", "precision", "recall", "f1", "roc_auc")


@dataclass(frozen=True, slots=True)
class ModelWindowReport:
    """One closed model window of one model version.

    ``basis`` is ``"labels"`` (a window of joined examples: realised performance, the estimate on the
    same examples beside it) or ``"predictions"`` (a window of predictions: the label-free estimate and
    the join outcome of the period).
    """

    stream: str
    model: str
    version: str
    basis: str
    window: dict[str, Any]
    count: int
    realised: dict[str, Any] | None
    estimated: dict[str, Any] | None
    reference: dict[str, Any] | None
    join: dict[str, Any]
    reference_version: str | None
    changes: list[dict[str, Any]] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)
    events: list[Alert] = field(default_factory=list)
    observations: list[Observation] = field(default_factory=list)
    end_time: float = 0.0

    @property
    def model_key(self) -> str:
        """``name:version``: the alerts' ``model`` field."""
        return f"{self.model}:{self.version}"

    def estimation_error(self) -> dict[str, float]:
        """``|estimated - realised|`` per metric both carry (labels windows of binary models)."""
        if not self.realised or not self.estimated:
            return {}
        out = {}
        for m in ESTIMATED_METRICS:
            r, e = self.realised.get(m), self.estimated.get(m)
            if r is not None and e is not None:
                out[m] = abs(float(e) - float(r))
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": 1,
            "stream": self.stream,
            "model": self.model,
            "model_version": self.version,
            "basis": self.basis,
            "window": self.window,
            "count": self.count,
            "realised": self.realised,
            "estimated": self.estimated,
            "estimation_error": self.estimation_error() or None,
            "reference": self.reference,
            "reference_version": self.reference_version,
            "join": self.join,
            "changes": self.changes,
            "alerts": [a.alert_id for a in self.alerts],
            "events": [e.alert_id for e in self.events],
        }


class _Window:
    """One open model window of one version: an accumulator that closes every ``size`` items."""

    __slots__ = ("basis", "changes", "count", "estimator", "evicted", "expired", "index", "joined", "latency", "perf",
                 "spec", "t_max", "t_min")

    def __init__(self, spec: WindowSpec, basis: str, index: int, perf: Performance | None,
                 estimator: CBPEstimator | None) -> None:
        self.spec = spec
        self.basis = basis
        self.index = index
        self.perf = perf
        self.estimator = estimator
        self.count = 0
        self.joined = 0
        self.expired = 0  # never joined: TTL ran out, or evicted (``evicted`` of them)
        self.evicted = 0
        self.latency = LatencyHistogram()
        self.changes: list[dict[str, Any]] = []
        self.t_min = math.inf
        self.t_max = -math.inf

    @property
    def room(self) -> int:
        return int(self.spec.span) - self.count

    def stamp(self, times: Sequence[float]) -> None:
        if len(times):
            self.t_min = min(self.t_min, *times)
            self.t_max = max(self.t_max, *times)


class _Version:
    """Everything kept per (model, version)."""

    __slots__ = ("detectors", "errors_seen", "labels", "model", "predictions", "version")

    def __init__(self, model: str, version: str, labels: list[_Window], predictions: list[_Window],
                 detectors: dict[str, Any]) -> None:
        self.model = model
        self.version = version
        self.labels = labels
        self.predictions = predictions
        self.detectors = detectors
        self.errors_seen = 0


class ModelMonitor:
    """Joins, windows, estimates and checks of one predictions stream's model.

    Parameters
    ----------
    spec
        The monitor spec.
    stream
        Name of the ``kind: predictions`` stream.
    reference
        That stream's reference profile; its ``model`` section (labelled reference rows) gives the
        reference performance the drops are measured against and the CBPE calibration map.
    policy
        The alert policy the observations go through (share the engine's).
    clock
        Wall clock (processing-time mode).

    Examples
    --------
    >>> from monitor.spec import MonitorSpec
    >>> spec = MonitorSpec.model_validate({"version": 1, "name": "m", "streams": [
    ...     {"name": "preds", "kind": "predictions", "windows": [{"name": "w", "kind": "count", "size": 100}],
    ...      "features": [{"name": "score", "type": "numeric", "range": {"min": 0, "max": 1}}],
    ...      "model": {"name": "churn", "task": "binary", "labels": "labels", "score_field": "score",
    ...                "windows": [{"name": "w4", "kind": "count", "size": 4}], "min_samples": 1}},
    ...     {"name": "labels", "kind": "labels", "windows": [{"name": "w", "kind": "count", "size": 100}],
    ...      "features": [{"name": "label", "type": "categorical"}]}]})
    >>> mm = ModelMonitor(spec, "preds")
    >>> preds = [{"record_id": i, "event_time": 100.0 + i, "score": s} for i, s in enumerate([0.9, 0.8, 0.3, 0.1])]
    >>> [r.basis for r in mm.add_predictions(preds)]
    ['predictions']
    >>> [r] = mm.add_labels([{"record_id": i, "event_time": 110.0, "label": y} for i, y in enumerate([1, 0, 0, 0])])
    >>> r.basis, r.count, r.realised["accuracy"], round(r.estimated["accuracy"], 3), r.join["latency"]["max"]
    ('labels', 4, 0.75, 0.825, 10.0)
    """

    def __init__(self, spec: MonitorSpec, stream: str, *, reference: ReferenceProfile | None = None,
                 policy: AlertPolicy | None = None, clock: Callable[[], float] = time.time) -> None:
        self.spec = spec
        self.stream: StreamSpec = spec.stream(stream)
        if self.stream.model is None:
            raise ValueError(f"stream {stream!r} is not a kind: predictions stream")
        self.model = self.stream.model
        self.labels_stream: StreamSpec = spec.stream(self.model.labels)
        self.policy = policy if policy is not None else AlertPolicy(spec.alerting)
        self.clock = clock
        self.event_mode = self.stream.time.mode == "event"
        section = reference.model if reference is not None else None
        self.reference_version = reference.profile_version if reference is not None else None
        self.reference: dict[str, Any] | None = reference_metrics(section)
        self.calibrator: IsotonicCalibrator | None = calibrator_from(section)
        self.stores: dict[int, LabelJoinStore] = {}
        #: Partitions whose store changed since :meth:`mark_checkpointed`.
        self.changed: set[int] = set()
        self._versions: OrderedDict[tuple[str, str], _Version] = OrderedDict()
        #: Counts of what could not join: predictions without a usable score/class/value, labels without a
        #: usable value, model versions dropped beyond ``max_versions``.
        self.counters = {"unusable_predictions": 0, "unusable_labels": 0, "versions_dropped": 0}
        #: Versions dropped since :meth:`take_dropped` (at most ``max_versions`` per batch in practice).
        self.dropped: list[tuple[str, str]] = []

    # -- stores -------------------------------------------------------------------------------------------

    def store(self, partition: int) -> LabelJoinStore:
        """The join store of ``partition`` (created empty on first use)."""
        s = self.stores.get(partition)
        if s is None:
            j = self.model.join
            s = self.stores[partition] = LabelJoinStore(j.ttl_seconds, j.max_pending, j.max_orphans,
                                                        partition=partition)
        return s

    def restore(self, partition: int, store: LabelJoinStore) -> None:
        """Install a store read back from a checkpoint (before any record of that partition)."""
        self.stores[partition] = store

    def reset(self) -> None:
        """Forget every store and open window (before restoring the stores from a checkpoint)."""
        self.stores.clear()
        self.changed.clear()
        self._versions.clear()

    def mark_checkpointed(self, partition: int) -> None:
        self.changed.discard(partition)

    def join_stats(self) -> dict[str, Any]:
        """Join counters, sizes, label coverage and latency over every partition."""
        return combined_stats(self.stores.values())

    # -- input --------------------------------------------------------------------------------------------

    def add_predictions(self, records: Sequence[dict[str, Any]], *, partition: int = 0,
                        offsets: Sequence[int] | None = None) -> list[ModelWindowReport]:
        """A batch of prediction records (decoded and envelope-checked; a ColumnBatch works too)."""
        n = len(records)
        if not n:
            return []
        m = self.model
        st = self.store(partition)
        cols = _columns(records, [self.stream.id_field, m.model_field, m.version_field, *m.prediction_fields])
        times = self._times(records, self.stream.time_field, cols_n=n)
        ids = cols[self.stream.id_field]
        fields = {f: cols[f] for f in m.prediction_fields}
        names, versions = cols[m.model_field], cols[m.version_field]
        joined: list[JoinedExample] = []
        expired: list[PendingPrediction] = []
        by_version: dict[tuple[str, str], list[tuple[dict[str, Any], float]]] = {}
        counters = st.counters
        tick = self._ticker(st, "predictions")
        for i in range(n):
            payload = predicted(m, {f: fields[f][i] for f in fields})
            if payload is None:
                self.counters["unusable_predictions"] += 1
                continue
            t, now, moved = tick(times[i])
            if moved:
                expired += self._expire(st)
            key = (_label(names[i], m.name), _label(versions[i], DEFAULT_VERSION))
            before = (counters["skipped_predictions"], counters["duplicate_predictions"])
            j = st.add_prediction(PendingPrediction(_join_key(ids[i]), key[0], key[1], t, payload,
                                                    -1 if offsets is None else int(offsets[i])), now)
            if (counters["skipped_predictions"], counters["duplicate_predictions"]) != before and j is None:
                continue  # already applied before a restart, or a duplicate dropped: not counted again
            by_version.setdefault(key, []).append((payload, t))
            if j is not None:
                joined.append(j)
        self.changed.add(partition)
        tracked = [(self._version(key), items) for key, items in by_version.items()]  # before routing evictions
        self._count_lost(expired)
        self._count_lost(st.take_evicted(), evicted=True)
        reports: list[ModelWindowReport] = []
        for v, items in tracked:
            reports += self._add_predicted(v, items)
        return reports + self._add_joined(joined)

    def add_labels(self, records: Sequence[dict[str, Any]], *, partition: int = 0,
                   offsets: Sequence[int] | None = None) -> list[ModelWindowReport]:
        """A batch of label records of the labels stream."""
        n = len(records)
        if not n:
            return []
        m = self.model
        st = self.store(partition)
        cols = _columns(records, [self.labels_stream.id_field, m.label_field])
        times = self._times(records, self.labels_stream.time_field, cols_n=n)
        ids, values = cols[self.labels_stream.id_field], cols[m.label_field]
        joined: list[JoinedExample] = []
        expired: list[PendingPrediction] = []
        tick = self._ticker(st, "labels")
        for i in range(n):
            y = truth(m, values[i])
            if y is None:
                self.counters["unusable_labels"] += 1
                continue
            t, now, moved = tick(times[i])
            if moved:
                expired += self._expire(st)
            j = st.add_label(_join_key(ids[i]), y, t, now, offset=-1 if offsets is None else int(offsets[i]))
            if j is not None:
                joined.append(j)
        self.changed.add(partition)
        self._count_lost(expired)
        self._count_lost(st.take_evicted(), evicted=True)
        return self._add_joined(joined)

    def expire(self, now: float | None = None) -> list[ModelWindowReport]:
        """Expire past-TTL entries of every store (call periodically; in processing-time mode this is what
        ages predictions when no record arrives). ``now`` defaults to the clock in processing-time mode and
        to each store's own latest time in event mode. Expiry closes no window: the list is always empty."""
        for p, st in self.stores.items():
            sizes = (st.n_pending, st.n_orphans)
            if now is not None:
                expired = st.expire(now)
            else:
                if not self.event_mode:
                    st.clocks["labels"] = st.clocks["predictions"] = self.clock()
                expired = self._expire(st)
            if expired or sizes != (st.n_pending, st.n_orphans):
                self.changed.add(p)
                self._count_lost(expired)
        return []

    def close(self) -> list[ModelWindowReport]:
        """End of input (a replay): emit every open window with data, marked partial."""
        reports: list[ModelWindowReport] = []
        for v in list(self._versions.values()):
            for k, w in enumerate(v.predictions):
                if w.count or w.joined or w.expired:
                    reports.append(self._close(v, w, partial=True))
                    v.predictions[k] = self._new_window(w.spec, "predictions", w.index + 1)
            for k, w in enumerate(v.labels):
                if w.count:
                    reports.append(self._close(v, w, partial=True))
                    v.labels[k] = self._new_window(w.spec, "labels", w.index + 1)
        return reports

    # -- internals ----------------------------------------------------------------------------------------

    def _times(self, records: Sequence[dict[str, Any]], time_field: str, *, cols_n: int) -> np.ndarray:
        if not self.event_mode:  # the ticker uses the clock: ages count from arrival
            return np.full(cols_n, np.nan)
        if isinstance(records, ColumnBatch):
            t = records.times if records.times is not None else parse_times(
                records.columns.get(time_field, [None] * cols_n))
        else:
            parsed = getattr(records, "times", None)
            t = parsed if parsed is not None else parse_times([r.get(time_field) for r in records])
        return np.asarray(t, dtype=np.float64)

    def _expire(self, st: LabelJoinStore) -> list[PendingPrediction]:
        """Expire by the topics' clocks: a prediction once the labels have moved ``ttl`` past it, or the predictions
        ``ttl + label_lag_seconds`` past it (labels stopped or far behind); an early label symmetrically. So a lag
        between the two consumers below ``label_lag_seconds`` changes nothing."""
        lag = self.model.join.label_lag_seconds if self.event_mode else 0.0
        lc, pc = st.clocks["labels"], st.clocks["predictions"]
        return st.expire(max(lc, pc - lag), orphans_now=max(pc, lc - lag))

    def _ticker(self, st: LabelJoinStore, topic: str) -> Callable[[float], tuple[float, float, bool]]:
        """Per record of ``topic``: ``(its time, the store's now, whether a clock moved)``.

        Event time: each topic has its own clock in the store, the latest event time read from it, capped
        at the wall clock + ``join.future_tolerance_seconds`` (a mis-dated record cannot leap it ahead); a
        record without an event time takes its topic's clock (before any: the other topic's, else the wall
        clock, without moving either). Processing time: both clocks are the wall clock."""
        clocks = st.clocks
        wall = self.clock()
        if not self.event_mode:
            moved = [wall > clocks["predictions"] or wall > clocks["labels"]]
            clocks["predictions"] = clocks["labels"] = max(wall, clocks["predictions"], clocks["labels"])

            def processing(_t: float) -> tuple[float, float, bool]:
                first, moved[0] = moved[0], False
                return wall, wall, first

            return processing
        cap = wall + self.model.join.future_tolerance_seconds
        other = "labels" if topic == "predictions" else "predictions"

        def event(t: float) -> tuple[float, float, bool]:
            t = float(t)
            mine = clocks[topic]
            if math.isfinite(t):
                t = min(t, cap)
                if t > mine:
                    clocks[topic] = t
                    return t, max(t, clocks[other]), True
                return t, max(mine, clocks[other]), False
            fallback = mine if math.isfinite(mine) else clocks[other] if math.isfinite(clocks[other]) else wall
            return fallback, max(fallback, mine, clocks[other]), False

        return event

    def _version(self, key: tuple[str, str]) -> _Version:
        v = self._versions.get(key)
        if v is not None:
            self._versions.move_to_end(key)
            return v
        m = self.model
        v = _Version(key[0], key[1],
                     labels=[self._new_window(w, "labels", 0) for w in m.windows],
                     predictions=[self._new_window(w, "predictions", 0) for w in m.windows],
                     detectors={name: ERROR_DETECTORS[name]() for name in m.detectors or []})
        self._versions[key] = v
        while len(self._versions) > m.max_versions:
            dropped, _ = self._versions.popitem(last=False)
            self.counters["versions_dropped"] += 1
            self.dropped.append(dropped)
        return v

    def take_dropped(self) -> list[tuple[str, str]]:
        """The (model, version) pairs dropped beyond ``max_versions`` since the last call (their metric series go)."""
        out, self.dropped = self.dropped, []
        return out

    def _new_window(self, spec: WindowSpec, basis: str, index: int) -> _Window:
        m = self.model
        estimator = CBPEstimator(m.threshold, calibrator=self.calibrator) if m.task == "binary" else None
        return _Window(spec, basis, index, new_performance(m) if basis == "labels" else None, estimator)

    def _add_predicted(self, v: _Version, items: list[tuple[dict[str, Any], float]]) -> list[ModelWindowReport]:
        reports: list[ModelWindowReport] = []
        for k in range(len(v.predictions)):
            start = 0
            while start < len(items):
                w = v.predictions[k]
                chunk = items[start:start + w.room]
                start += len(chunk)
                if w.estimator is not None:
                    w.estimator.update_many(np.fromiter((p["s"] for p, _ in chunk), dtype=np.float64,
                                                        count=len(chunk)))
                w.count += len(chunk)
                w.stamp([t for _, t in chunk])
                if w.room == 0:
                    reports.append(self._close(v, w))
                    v.predictions[k] = self._new_window(w.spec, "predictions", w.index + 1)
        return reports

    def _count_lost(self, expired: list[PendingPrediction], *, evicted: bool = False) -> None:
        """Predictions that will never join (TTL ran out, or evicted by ``max_pending``): counted against the
        label coverage of their version's prediction windows (no window closes on it)."""
        for p in expired:
            v = self._versions.get((p.model, p.model_version))
            if v is None:
                continue  # a dropped version
            for w in v.predictions:
                w.expired += 1
                w.evicted += evicted

    def _add_joined(self, joined: list[JoinedExample]) -> list[ModelWindowReport]:
        if not joined:
            return []
        m = self.model
        groups: dict[tuple[str, str], list[JoinedExample]] = {}
        for j in joined:
            groups.setdefault((j.prediction.model, j.prediction.model_version), []).append(j)
        reports: list[ModelWindowReport] = []
        for key, items in groups.items():
            v = self._version(key)
            for w in v.predictions:  # the join outcome of the prediction windows' period
                w.joined += len(items)
                for j in items:
                    w.latency.add(j.latency_seconds)
            # The error stream, one point per labelled example, in join order.
            fired_at: list[tuple[int, list[str]]] = []
            for i, j in enumerate(items):
                err = _error(m.task, m.threshold, j.prediction.prediction, j.label)
                v.errors_seen += 1
                fired = []
                for name, det in v.detectors.items():
                    det.update(err)
                    if det.drift_detected:
                        fired.append(name)
                if fired:
                    fired_at.append((i, fired))
            for k in range(len(v.labels)):
                start = 0
                while start < len(items):
                    w = v.labels[k]
                    chunk = items[start:start + w.room]
                    for i, fired in fired_at:
                        if start <= i < start + len(chunk):
                            w.changes.append({"series": "error", "detectors": fired,
                                              "example": v.errors_seen - len(items) + i + 1})
                    start += len(chunk)
                    update_many(w.perf, m, [j.prediction.prediction for j in chunk],  # type: ignore[arg-type]
                                [j.label for j in chunk])
                    if w.estimator is not None:
                        w.estimator.update_many(np.fromiter((j.prediction.prediction["s"] for j in chunk),
                                                            dtype=np.float64, count=len(chunk)))
                    for j in chunk:
                        w.latency.add(j.latency_seconds)
                    w.count += len(chunk)
                    w.stamp([j.label_time for j in chunk])
                    if w.room == 0:
                        reports.append(self._close(v, w))
                        v.labels[k] = self._new_window(w.spec, "labels", w.index + 1)
        return reports

    def _close(self, v: _Version, w: _Window, *, partial: bool = False) -> ModelWindowReport:
        end = w.t_max if math.isfinite(w.t_max) else (self.clock() if not self.event_mode else 0.0)
        start = w.t_min if math.isfinite(w.t_min) else end
        window = {"name": w.spec.name, "kind": "count", "basis": w.basis, "index": w.index, "start": iso(start),
                  "end": iso(end), "partial": partial}
        realised = w.perf.get() if w.perf is not None else None
        estimated = w.estimator.estimate() if w.estimator is not None else None
        join: dict[str, Any] = {"latency": w.latency.summary()}
        if w.basis == "predictions":
            decided = w.joined + w.expired
            join |= {"joined": w.joined, "expired": w.expired, "evicted": w.evicted,
                     "label_expired_ratio": w.expired / decided if decided else None}
        report = ModelWindowReport(stream=self.stream.name, model=v.model, version=v.version, basis=w.basis,
                                   window=window, count=w.count, realised=realised, estimated=estimated,
                                   reference=self.reference, join=join, reference_version=self.reference_version,
                                   changes=list(w.changes), end_time=end)
        report.observations.extend(self._observe(report, decided=w.joined + w.expired))
        report.alerts.extend(o.to_alert() for o in report.observations if o.severity is not None)
        report.events.extend(self.policy.observe(report.observations, now=end))
        return report

    def _observe(self, r: ModelWindowReport, *, decided: int) -> list[Observation]:
        """Every evaluated model check of a closed window (raised or not)."""
        m = self.model
        out: list[Observation] = []
        where = f"window {r.window['name']}#{r.window['index']} of {r.basis}"
        who = f"{self.stream.name} model {r.model_key}"
        ratio = self.spec.alerting.clear_ratio

        def add(check: str, value: float | None, n: int, what: str, details: dict[str, Any] | None = None) -> None:
            thr: Threshold | None = m.level_for(check)
            if thr is None or value is None or not math.isfinite(value) or n < m.min_samples:
                return
            severity, clear, level = thr.verdict(value, ratio)
            out.append(Observation(stream=self.stream.name, feature=None, check=check, value=float(value),
                                   severity=severity, clear=clear, threshold=level,
                                   sample_size=n, window=r.window, reference_version=r.reference_version,
                                   summary=f"{who}: {what} in {where} (level {level:g}, {severity or 'ok'})",
                                   details=details or {}, model=r.model_key))

        ref = r.reference or {}
        if r.basis == "labels" and r.realised is not None:
            got = r.realised
            if m.task == "regression":
                for check, metric in _REGRESSION_INCREASES:
                    base, now = ref.get(metric), got.get(metric)
                    if base and now is not None:
                        add(check, now / base - 1.0, r.count,
                            f"{metric.upper()} {now:.4g} vs reference {base:.4g} ({now / base - 1.0:+.1%})")
            else:
                for check, metric in _REALISED_DROPS:
                    name = _MULTICLASS_NAMES.get(metric, metric) if m.task == "multiclass" else metric
                    base, now = ref.get(name), got.get(name)
                    if base is not None and now is not None:
                        add(check, base - now, r.count, f"{metric} {now:.3f} vs reference {base:.3f} "
                            f"(drop {base - now:+.3f})")
                if m.task == "binary":
                    if ref.get("log_loss") is not None and got.get("log_loss") is not None:
                        inc = got["log_loss"] - ref["log_loss"]
                        add("log_loss_increase", inc, r.count, f"log loss {got['log_loss']:.3f} vs reference "
                            f"{ref['log_loss']:.3f}")
                    if got.get("ece") is not None:
                        add("calibration_error", got["ece"], r.count, f"calibration error (ECE) {got['ece']:.3f}")
            fired = sorted({d for c in r.changes for d in c["detectors"]})
            if m.detectors:
                level = 0.0
                sev = "warning" if fired else None
                if r.count >= m.min_samples or fired:
                    out.append(Observation(
                        stream=self.stream.name, feature=None, check="change_in_error", value=float(len(r.changes)),
                        severity=sev, clear=not fired, threshold=level, sample_size=r.count, window=r.window,
                        reference_version=r.reference_version,
                        summary=(f"{who}: {', '.join(fired)} detected a change in the error rate in {where}"
                                 if fired else f"{who}: no change in the error rate in {where}"),
                        details={"detectors": fired, "changes": r.changes}, model=r.model_key))
        if r.basis == "predictions":
            est = r.estimated
            if est is not None:
                for check, metric in _ESTIMATED_DROPS:
                    base, now = ref.get(metric), est.get(metric)
                    if base is not None and now is not None:
                        add(check, base - now, r.count, f"estimated {metric} {now:.3f} (no labels needed) vs "
                            f"reference {base:.3f} (drop {base - now:+.3f})")
            if est is not None and ref.get("count") and ref.get("predicted_positives") is not None:
                share, base = est["predicted_positives"] / est["count"], ref["predicted_positives"] / ref["count"]
                add("positive_rate_change", abs(share - base), r.count,
                    f"{share:.1%} of predictions positive vs {base:.1%} in the reference (class proportion)")
            ratio_v = r.join.get("label_expired_ratio")
            if ratio_v is not None:
                add("label_expired_ratio", ratio_v, decided,
                    f"{ratio_v:.1%} of the predictions decided in the period got no label within the TTL "
                    f"({r.join['expired']} expired, {r.join['joined']} labelled)")
        return out


def _error(task: str, threshold: float, payload: dict[str, Any], label: Any) -> float:
    """One point of the error stream: 0/1 misclassification, or the absolute error of a regressor."""
    if task == "binary":
        return float((payload["s"] >= threshold) != bool(label))
    if task == "multiclass":
        return float(payload["c"] != label)
    return abs(float(payload["v"]) - float(label))


#: Record ids longer than this are joined by a digest (a snapshot chunk must stay far below Kafka's message limit).
MAX_ID_CHARS = 256


def _join_key(value: Any) -> str:
    """The join key of a record id: ``str(id)``, or a SHA-256 digest of it when longer than :data:`MAX_ID_CHARS`.

    >>> _join_key(17), _join_key("a" * 300)[:7], len(_join_key("a" * 300))
    ('17', 'sha256:', 71)
    """
    key = str(value)
    if len(key) <= MAX_ID_CHARS:
        return key
    return "sha256:" + hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def _label(value: Any, default: str) -> str:
    if value is None or value == "":
        return default
    return str(value)[:MAX_LABEL_CHARS]


def _columns(records: Sequence[dict[str, Any]] | ColumnBatch, names: Iterable[str]) -> dict[str, list[Any]]:
    if isinstance(records, ColumnBatch):
        nulls = [None] * len(records)
        return {n: list(records.columns.get(n, nulls)) for n in names}
    return {n: [r.get(n) for r in records] for n in names}
