"""Model monitoring inside the stream: predictions joined to delayed labels, rolling performance per
model version, label-free estimates (CBPE) and concept-drift detectors on the error stream. No I/O.

One :class:`ModelMonitor` serves one ``kind: predictions`` stream and the ``kind: labels`` stream
its model names. :class:`monitor.Monitor` hands it every batch of both (after the feature stage has checked them for
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
  alert (:class:`monitor.Monitor` passes its one policy to both stages).

Time: in event mode a store's "now" is the latest event time it has seen on either topic (TTL
expiry follows the data, so a replay expires the same predictions); in processing mode it is the
clock, and a prediction's age counts from its arrival.

Memory: per partition the join store's bounds; per model version and window two accumulators of
fixed size (score histograms of 1000 bins, a (k+1)^2 confusion matrix or running sums), a latency
histogram and one River detector per configured name.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from monitor.alerts import AlertPolicy
from monitor.evaluation import evaluate_window, observe_model_window
from monitor.join import JoinedExample, LabelJoinStore, PendingPrediction, combined_stats
from monitor.model.windows import (
    DEFAULT_VERSION,
    ModelPane,
    VersionState,
    columns_of,
    error_point,
    join_key,
    version_label,
)
from monitor.names import ChangeSeries
from monitor.performance import CBPEstimator, IsotonicCalibrator, calibrator_from, reference_metrics
from monitor.performance.reference import new_performance, predicted, truth, update_many
from monitor.records import ColumnBatch
from monitor.reference import ReferenceProfile
from monitor.report import Change, ModelWindowReport
from monitor.spec import MonitorSpec, StreamSpec
from monitor.times import iso, parse_times
from monitor.windows import ClosedWindow

__all__ = ["ModelMonitor"]


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
        self._versions: OrderedDict[tuple[str, str], VersionState] = OrderedDict()
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

    def add(self, stream: str, records: Sequence[dict[str, Any]], *, partition: int | Sequence[int] = 0,
            offsets: Sequence[int] | None = None) -> list[ModelWindowReport]:
        """A batch of the predictions or the labels stream (by name), from one ``partition`` or with one
        partition per record; each partition's records are joined in their own store, in their order."""
        add = self.add_predictions if stream == self.stream.name else self.add_labels
        if isinstance(partition, int):
            return add(records, partition=partition, offsets=offsets)
        by_partition: dict[int, list[int]] = {}
        for i, p in enumerate(partition):
            by_partition.setdefault(int(p), []).append(i)
        if len(by_partition) == 1:
            return add(records, partition=next(iter(by_partition)), offsets=offsets)
        rows = list(records)
        reports: list[ModelWindowReport] = []
        for p, idx in by_partition.items():
            reports += add([rows[i] for i in idx], partition=p,
                           offsets=None if offsets is None else [offsets[i] for i in idx])
        return reports

    def add_predictions(self, records: Sequence[dict[str, Any]], *, partition: int = 0,
                        offsets: Sequence[int] | None = None) -> list[ModelWindowReport]:
        """A batch of prediction records (decoded and envelope-checked; a ColumnBatch works too)."""
        n = len(records)
        if not n:
            return []
        m = self.model
        st = self.store(partition)
        cols = columns_of(records, [self.stream.id_field, m.model_field, m.version_field, *m.prediction_fields])
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
            key = (version_label(names[i], m.name), version_label(versions[i], DEFAULT_VERSION))
            before = (counters["skipped_predictions"], counters["duplicate_predictions"])
            j = st.add_prediction(PendingPrediction(join_key(ids[i]), key[0], key[1], t, payload,
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
        cols = columns_of(records, [self.labels_stream.id_field, m.label_field])
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
            j = st.add_label(join_key(ids[i]), y, t, now, offset=-1 if offsets is None else int(offsets[i]))
            if j is not None:
                joined.append(j)
        self.changed.add(partition)
        self._count_lost(expired)
        self._count_lost(st.take_evicted(), evicted=True)
        return self._add_joined(joined)

    def expire(self, now: float | None = None) -> None:
        """Expire past-TTL entries of every store (call periodically; in processing-time mode this is what
        ages predictions when no record arrives). ``now`` defaults to the clock in processing-time mode and
        to each store's own latest time in event mode. Expiry closes no window (the expired predictions
        count against the open prediction windows' label coverage)."""
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

    def close(self, *, notify: bool = True) -> list[ModelWindowReport]:
        """End of input (a replay): emit every open window with data, marked partial (through the alert
        policy only with ``notify``)."""
        reports: list[ModelWindowReport] = []
        for v in list(self._versions.values()):
            for track in v.predictions:
                pane = track.pane
                if pane.count or pane.joined or pane.expired:
                    reports += [self._close(v, w, notify=notify) for w in track.close_open(0.0)]
            for track in v.labels:
                if track.pane.count:
                    reports += [self._close(v, w, notify=notify) for w in track.close_open(0.0)]
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

    def _version(self, key: tuple[str, str]) -> VersionState:
        v = self._versions.get(key)
        if v is not None:
            self._versions.move_to_end(key)
            return v
        m = self.model
        v = VersionState(key[0], key[1], m, new_labels=lambda: self._new_pane("labels"),
                         new_predictions=lambda: self._new_pane("predictions"))
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

    def _new_pane(self, basis: str) -> ModelPane:
        m = self.model
        estimator = CBPEstimator(m.threshold, calibrator=self.calibrator) if m.task == "binary" else None
        return ModelPane(basis, new_performance(m) if basis == "labels" else None, estimator)

    def _add_predicted(self, v: VersionState, items: list[tuple[dict[str, Any], float]]) -> list[ModelWindowReport]:
        def update(pane: ModelPane, rows: slice, _clock: float) -> None:
            chunk = items[rows]
            if pane.estimator is not None:
                pane.estimator.update_many(np.fromiter((p["s"] for p, _ in chunk), dtype=np.float64,
                                                       count=len(chunk)))
            pane.count += len(chunk)
            pane.stamp([t for _, t in chunk])

        reports: list[ModelWindowReport] = []
        for track in v.predictions:
            reports += [self._close(v, w) for w in track.add(len(items), update, clock=0.0)]
        return reports

    def _count_lost(self, expired: list[PendingPrediction], *, evicted: bool = False) -> None:
        """Predictions that will never join (TTL ran out, or evicted by ``max_pending``): counted against the
        label coverage of their version's prediction windows (no window closes on it)."""
        for p in expired:
            v = self._versions.get((p.model, p.model_version))
            if v is None:
                continue  # a dropped version
            for track in v.predictions:
                track.pane.expired += 1
                track.pane.evicted += evicted

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
            for track in v.predictions:  # the join outcome of the prediction windows' period
                track.pane.joined += len(items)
                for j in items:
                    track.pane.latency.add(j.latency_seconds)
            # The error stream, one point per labelled example, in join order.
            fired_at: list[tuple[int, list[str]]] = []
            for i, j in enumerate(items):
                err = error_point(m.task, m.threshold, j.prediction.prediction, j.label)
                v.errors_seen += 1
                fired = []
                for name, det in v.detectors.items():
                    det.update(err)
                    if det.drift_detected:
                        fired.append(name)
                if fired:
                    fired_at.append((i, fired))
            first = v.errors_seen - len(items) + 1  # the example number of items[0]

            def update(pane: ModelPane, rows: slice, _clock: float, items: list[JoinedExample] = items,
                       fired_at: list[tuple[int, list[str]]] = fired_at, first: int = first) -> None:
                chunk = items[rows]
                for i, fired in fired_at:
                    if rows.start <= i < rows.stop:
                        pane.changes.append(Change(ChangeSeries.ERROR, tuple(fired), example=first + i))
                update_many(pane.perf, m, [j.prediction.prediction for j in chunk],  # type: ignore[arg-type]
                            [j.label for j in chunk])
                if pane.estimator is not None:
                    pane.estimator.update_many(np.fromiter((j.prediction.prediction["s"] for j in chunk),
                                                           dtype=np.float64, count=len(chunk)))
                for j in chunk:
                    pane.latency.add(j.latency_seconds)
                pane.count += len(chunk)
                pane.stamp([j.label_time for j in chunk])

            for track in v.labels:
                reports += [self._close(v, w) for w in track.add(len(items), update, clock=0.0)]
        return reports

    def _close(self, v: VersionState, closed: ClosedWindow[ModelPane], *, notify: bool = True) -> ModelWindowReport:
        [w] = [p for p in closed.panes if p is not None]  # model windows are tumbling: one pane
        end = w.t_max if math.isfinite(w.t_max) else (self.clock() if not self.event_mode else 0.0)
        start = w.t_min if math.isfinite(w.t_min) else end
        window = {"name": closed.spec.name, "kind": "count", "basis": w.basis, "index": closed.index,
                  "start": iso(start), "end": iso(end), "partial": closed.partial}
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
                                   changes=tuple(w.changes), end_time=end)
        observations = tuple(observe_model_window(self.spec, self.stream, report, decided=w.joined + w.expired))
        alerts = tuple(evaluate_window(observations))
        events = self.policy.observe(observations, now=end) if notify else []
        incidents = self.policy.incidents(observations) if notify else {}
        return replace(report, observations=observations, alerts=alerts, events=tuple(events), incidents=incidents)
