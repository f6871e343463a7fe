"""The feature stage: records in, window reports and alerts out. No I/O.

One :class:`FeatureEngine` serves every stream of a spec (quality and drift of
features, predictions and labels streams alike). :meth:`FeatureEngine.process`
takes a batch of decoded, envelope-valid records (one Kafka message's array,
or what a consumer poll returned), extracts typed columns once and updates
every window of the stream column-wise; :meth:`FeatureEngine.process_one`
buffers single records into micro-batches. Each call returns the reports of the
windows that closed. Time windows close on the watermark (event time) or on
:meth:`FeatureEngine.tick` (processing time); :meth:`FeatureEngine.close` flushes
the open windows at the end of a replay. :meth:`FeatureEngine.snapshot` and
:meth:`FeatureEngine.restore` checkpoint a stream's windowing state as JSON (the
worker saves it with the input offset it covers). The clock is injected, so tests and
replays control time. Use it through :class:`monitor.Monitor`, which adds the
model stage and owns the alert policy.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from monitor.alerts import AlertPolicy
from monitor.checks.record import RecordFlags
from monitor.columns import columns_block, extract_batch
from monitor.drift import DriftResult
from monitor.errors import StateError
from monitor.evaluation import evaluate_drift, evaluate_window, observe_window
from monitor.names import ChangeSeries
from monitor.records import ColumnBatch
from monitor.reference import ReferenceProfile
from monitor.reference.rolling import rolling_profile
from monitor.report import Change, WindowReport, WindowSummary
from monitor.spec import MonitorSpec
from monitor.stream.panes import Pane, StreamState, covering_slices
from monitor.times import iso, parse_times
from monitor.windows import ClosedWindow, CountTrack, TimeTrack

__all__ = ["EVENT_CLOCK", "MICRO_BATCH", "SNAPSHOT_VERSION", "FeatureEngine"]

#: Version of :meth:`FeatureEngine.snapshot` output (the ``schema_version`` key).
SNAPSHOT_VERSION = 1


class _EventClock:
    def __repr__(self) -> str:
        return "EVENT_CLOCK"


#: Pass as ``clock`` to let the latest event time stand for "now" (offline replay): then
#: freshness is measured against the stream's own head and count windows carry event times.
EVENT_CLOCK: Any = _EventClock()

#: Records :meth:`FeatureEngine.process_one` buffers before processing them as one batch. Each batch
#: costs some fixed work per feature and window (numpy calls, pane summaries and merges), which
#: a large buffer spreads thinly; the price is latency (a window's report waits for the buffer
#: to fill, or for :meth:`FeatureEngine.flush` / :meth:`FeatureEngine.tick`) and the buffer's references.
MICRO_BATCH = 16384


class FeatureEngine:
    """Quality and drift monitoring of every stream in a monitor spec.

    Memory per stream: one pane state per feature per open pane (one per
    tumbling window; ``size/slide`` per sliding window, plus panes still
    waiting for late records in event time), each bounded (see
    :class:`~monitor.checks.FeatureState`), the duplicate filter
    (``duplicates.capacity`` ids) and at most :data:`MICRO_BATCH` pending
    records. No record is retained after its batch.

    Examples
    --------
    >>> from monitor.spec import MonitorSpec
    >>> spec = MonitorSpec.model_validate({"version": 1, "name": "t", "streams": [{
    ...     "name": "f", "windows": [{"name": "w3", "kind": "count", "size": 3}], "min_samples": 3,
    ...     "features": [{"name": "x", "type": "numeric"}]}]})
    >>> engine = FeatureEngine(spec, clock=lambda: 0.0)
    >>> engine.process("f", [{"record_id": 1, "x": 1.0}, {"record_id": 2}])
    []
    >>> [report] = engine.process("f", [{"record_id": 3, "x": 2.0}])
    >>> report.count, round(report.features["x"].ratios["missing_ratio"], 3)
    (3, 0.333)
    >>> [(a.check, a.severity) for a in report.alerts]
    [('missing_ratio', 'critical')]
    """

    def __init__(
        self,
        spec: MonitorSpec,
        *,
        references: Mapping[str, ReferenceProfile] | None = None,
        clock: Callable[[], float] = time.time,
        policy: AlertPolicy | None = None,
    ) -> None:
        self.spec = spec
        self._event_clock = clock is EVENT_CLOCK
        self.clock: Callable[[], float] = self._latest_event_time if self._event_clock else clock
        self.references = dict(references or {})
        for name, ref in self.references.items():
            ref.check_against(spec.stream(name))
        self._streams = {s.name: StreamState(s, self.references.get(s.name)) for s in spec.streams}
        #: Between the windows' verdicts and notifications (the :class:`monitor.Monitor`'s, shared with
        #: the model stage); its state is checkpointed by the worker.
        self.policy = policy if policy is not None else AlertPolicy(spec.alerting)
        self.records_processed: dict[str, int] = {s.name: 0 for s in spec.streams}

    def _latest_event_time(self) -> float:
        finite = [rt.watermark for rt in self._streams.values() if math.isfinite(rt.watermark)]
        return max(finite) if finite else 0.0

    def watermark(self, stream: str) -> float:
        """The latest event time seen on ``stream`` (``-inf`` before any)."""
        return self._streams[stream].watermark

    # -- input -------------------------------------------------------------------------------

    def process(self, stream: str, records: Iterable[dict[str, Any]]) -> list[WindowReport]:
        """Update ``stream``'s windows with a batch of records; return reports of windows that closed.

        ``records`` may be a :class:`~monitor.records.ColumnBatch` (columnar message), used as is.
        """
        rt = self._streams[stream]
        if isinstance(records, ColumnBatch):
            reports = self.flush() if rt.pending else []
            return reports + self._process(rt, records, None if self._event_clock else self.clock())
        batch = records if isinstance(records, list) else list(records)
        if rt.pending:
            batch, rt.pending = rt.pending + batch, []
        return self._process(rt, batch, None if self._event_clock else self.clock())

    def process_one(self, stream: str, record: dict[str, Any]) -> list[WindowReport]:
        """Buffer one record; every :data:`MICRO_BATCH` records the buffer is processed as a batch."""
        rt = self._streams[stream]
        pending = rt.pending
        pending.append(record)
        if len(pending) < MICRO_BATCH:
            return []
        rt.pending = []
        return self._process(rt, pending, None if self._event_clock else self.clock())

    def flush(self) -> list[WindowReport]:
        """Process every buffered record now."""
        reports: list[WindowReport] = []
        for rt in self._streams.values():
            if rt.pending:
                batch, rt.pending = rt.pending, []
                reports += self._process(rt, batch, None if self._event_clock else self.clock())
        return reports

    def tick(self, now: float | None = None) -> list[WindowReport]:
        """Flush buffers and close processing-time windows whose end has passed (call periodically)."""
        reports = self.flush()
        now = self.clock() if now is None else now
        for rt in self._streams.values():
            if rt.event_mode:
                continue
            for track in rt.tracks:
                if isinstance(track, TimeTrack):
                    reports += [self._report(rt, w) for w in track.advance(now)]
        return reports

    def close(self, *, notify: bool = True) -> list[WindowReport]:
        """End of input (a replay): flush buffers, then emit every open window, marked partial.

        Without ``notify`` the partial windows are evaluated (their verdicts are in ``alerts``) but
        not put through the alert policy: no events (a worker would not have closed them yet)."""
        reports = self.flush()
        now = self.clock()
        for rt in self._streams.values():
            for track in rt.tracks:
                closed = track.flush(now) if isinstance(track, CountTrack) else track.flush()
                reports += [self._report(rt, w, policy=notify) for w in closed]
        return reports

    # -- checkpoints ------------------------------------------------------------------------

    def snapshot(self, stream: str) -> dict[str, Any]:
        """JSON-able state of ``stream``'s windowing (``schema_version`` 1), to checkpoint with the
        input offset it covers and give back to :meth:`restore`.

        It holds the records processed and :meth:`StreamState.to_state
        <monitor.stream.panes.StreamState.to_state>`'s state: every window's panes, the duplicate
        filter and the watermark. Not in it: the change detectors and the rolling-reference history
        (the evaluation stage's, checkpointed separately) and the alert policy (:attr:`policy`, which
        the caller checkpoints). Its size is bounded by the windows' pane states and the duplicate
        filter's capacity, whatever the number of records.

        The snapshot flushes nothing: call :meth:`flush` first (and publish its reports), or it
        raises :class:`~monitor.errors.StateError` while records are buffered.

        Examples
        --------
        >>> import orjson
        >>> from monitor.spec import MonitorSpec
        >>> spec = MonitorSpec.model_validate({"version": 1, "name": "t", "streams": [{
        ...     "name": "f", "windows": [{"name": "w3", "kind": "count", "size": 3}], "detectors": [],
        ...     "features": [{"name": "x", "type": "numeric"}]}]})
        >>> engine = FeatureEngine(spec, clock=lambda: 0.0)
        >>> engine.process("f", [{"record_id": 1, "x": 1.0}, {"record_id": 2}])
        []
        >>> saved = orjson.dumps(engine.snapshot("f"))
        >>> again = FeatureEngine(spec, clock=lambda: 0.0)
        >>> again.restore("f", orjson.loads(saved))
        >>> [r.count for r in again.process("f", [{"record_id": 3, "x": 2.0}])], again.records_processed
        ([3], {'f': 3})
        """
        return {"schema_version": SNAPSHOT_VERSION, "stream": stream,
                "records_processed": self.records_processed[stream],
                "state": self._streams[stream].to_state()}

    def reset(self, stream: str) -> None:
        """Start ``stream`` afresh, as at construction: no windows, duplicates, watermark or detector history."""
        spec = self.spec.stream(stream)
        self._streams[stream] = StreamState(spec, self.references.get(stream))
        self.records_processed[stream] = 0

    def restore(self, stream: str, state: dict[str, Any]) -> None:
        """Continue ``stream`` from a :meth:`snapshot` taken under the same spec and reference.

        Replaces the stream's windows, duplicate filter, watermark and records processed; leaves its
        change detectors, rolling-reference history and the alert policy as they are. Raises
        :class:`~monitor.errors.StateError`, changing nothing, for an unknown ``schema_version``, a
        snapshot of another stream, spec or reference, or while records of ``stream`` are buffered.
        """
        version = state.get("schema_version") if isinstance(state, dict) else None
        if version != SNAPSHOT_VERSION:
            raise StateError(f"unsupported feature-stage snapshot version {version!r} (reads {SNAPSHOT_VERSION})")
        if state.get("stream") != stream:
            raise StateError(f"snapshot of stream {state.get('stream')!r} cannot be restored into stream {stream!r}")
        processed = state.get("records_processed")
        if not isinstance(processed, int) or isinstance(processed, bool) or processed < 0:
            raise StateError(f"malformed snapshot of stream {stream!r}: records_processed is {processed!r}")
        inner = state.get("state")
        if not isinstance(inner, dict):
            raise StateError(f"malformed snapshot of stream {stream!r}: no stream state")
        self._streams[stream].load_state(inner)
        self.records_processed[stream] = processed

    # -- the batch path ----------------------------------------------------------------------

    def _process(self, rt: StreamState, records: Sequence[dict[str, Any]] | ColumnBatch,
                 now: float | None) -> list[WindowReport]:
        n = len(records)
        if n == 0:
            return []
        spec = rt.spec
        if isinstance(records, ColumnBatch):
            given = records.columns
            cols, block = columns_block(given, spec.features, n)
            ids: Sequence[Any] = given[spec.id_field]
            times: Sequence[Any] | NDArray[np.float64] = (
                records.times if records.times is not None else given.get(spec.time_field, [None] * n))
            field_sets: list[tuple[str, ...]] = [tuple(given)]
            layout = np.zeros(n, dtype=np.int32)
        else:
            parsed = getattr(records, "times", None)  # a RecordBatch from decode_message carries them
            ex = extract_batch(records, spec.features, spec.id_field, spec.time_field if parsed is None else None)
            cols, ids, block = ex.columns, ex.ids, ex.block
            times = parsed if parsed is not None else (ex.times if ex.times is not None else [])
            layout = np.zeros(n, dtype=np.int32)
            # Without a null time, every record has the time field (the common case: one check less).
            timed = parsed is None and None not in times
            if spec.allow_extra_fields or (ex.complete and rt.only_known_fields(records, timed=timed)):
                field_sets = [()]  # no record has a field outside the spec (or it does not matter)
            else:
                keys = list(map(tuple, records))  # each record's field names, in order
                uniq = dict.fromkeys(keys)
                field_sets = list(uniq)
                if len(uniq) > 1:
                    table = {k: i for i, k in enumerate(uniq)}
                    layout = np.fromiter(map(table.__getitem__, keys), dtype=np.int32, count=n)
        flags, now = self._flags(rt, n, ids, times, field_sets, layout, now)
        reports: list[WindowReport] = []
        shared = len(rt.tracks) > 1
        memo: dict[Any, list[Any]] = {}

        def add_rows(pane: Pane, rows: slice | NDArray[np.intp]) -> None:
            if not shared:
                pane.update(cols, flags, rows, block)
                return
            # With several windows, the rows each one takes are summarised once and merged into
            # every pane (merging is cheap: counters, moments, histograms, samples). The first
            # empty pane to take a summary adopts it instead of merging a copy.
            if not isinstance(rows, slice) and len(rows) == n:
                rows = slice(0, n)
            key = (rows.start, rows.stop) if isinstance(rows, slice) else rows.tobytes()
            entry = memo.get(key)
            if entry is None and key == (0, n):
                parts = covering_slices(memo, n)
                if parts is not None:
                    # A count window split this batch into summarised slices: merging them is
                    # much cheaper than summarising the whole batch again.
                    for part in parts:
                        pane += part
                    return
            if entry is None:
                state = rt.new_pane()
                state.update(cols, flags, rows, block)
                entry = memo[key] = [state, False]
            if not entry[1] and pane.records.count == 0 and pane.records.late_excluded == 0:
                pane.features = entry[0].features
                pane.records += entry[0].records  # not adopted: late records are counted on it
                entry[1] = True
                # Later merges read the adopted feature states before this batch ends; nothing
                # mutates them until the next batch, when the memo is gone.
            else:
                pane += entry[0]

        def update_slice(pane: Pane, rows: slice, _clock: float) -> None:
            add_rows(pane, rows)

        def update_rows(pane: Pane, rows: NDArray[np.intp]) -> None:
            add_rows(pane, rows)

        lateness = spec.time.allowed_lateness_seconds
        closing: list[tuple[int, int, WindowReport]] = []  # (row that closed it, track, report)
        for k, track in enumerate(rt.tracks):
            if isinstance(track, CountTrack):
                closed = track.add(n, update_slice, clock=now)
            else:
                if rt.event_mode:
                    t = np.where(flags.late, np.nan, flags.time)
                    dropped = track.add(t, update_rows)
                    if dropped.size or flags.late.any():
                        # Each late record is counted in the pane open at its arrival (the one
                        # holding the watermark it fell behind), whatever the batching.
                        at = np.concatenate([flags.head[flags.late], flags.head[dropped]])
                        self._count_excluded(track, at)
                    closed = track.advance(rt.watermark - lateness)
                    for w in closed:  # the first row whose watermark passed the window's end
                        w.meta["row"] = min(int(np.searchsorted(flags.head, w.end + lateness, side="left")), n - 1)
                else:
                    track.add(np.full(n, now), update_rows)
                    closed = track.advance(now) if track.next_to_close is not None else []
            closing += [(int(w.meta.get("row", n - 1)), k, self._report(rt, w, policy=False)) for w in closed]
        # The policy sees the windows in the order records closed them, whatever the batching.
        closing.sort(key=lambda item: (item[0], item[1]))
        reports += [self._apply_policy(report) for _, _, report in closing]
        self.records_processed[spec.name] += n
        return reports

    @staticmethod
    def _count_excluded(track: TimeTrack[Pane], at: NDArray[np.float64]) -> None:
        """Late records are counted (not merged) in the pane of the watermark each arrived at."""
        panes, counts = np.unique(track.pane_of(at), return_counts=True)
        for idx, k in zip(panes.tolist(), counts.tolist(), strict=True):
            if track.next_to_close is not None and idx < track.next_to_close:
                idx = track.next_to_close  # that pane closed in this batch's advance: the oldest open one
            pane = track.open.get(idx)
            if pane is None:
                pane = track.open[idx] = track.new_pane()
            pane.records.late_excluded += k

    def _flags(self, rt: StreamState, n: int, ids: Sequence[Any], times: Sequence[Any] | NDArray[np.float64],
               field_sets: list[tuple[str, ...]], layout: NDArray[np.int32],
               now: float | None) -> tuple[RecordFlags, float]:
        """Per-record facts: duplicates, unexpected fields (per distinct field set), lateness, freshness."""
        spec = rt.spec
        duplicate = rt.dedup.check(ids) if rt.dedup is not None else np.zeros(n, dtype=bool)
        if spec.allow_extra_fields:
            names: list[tuple[str, ...]] = [() for _ in field_sets]
        else:
            names = [tuple(sorted(set(k) - rt.known)) for k in field_sets]
        unexpected = np.array([bool(x) for x in names], dtype=bool)[layout]
        t_raw = times if isinstance(times, np.ndarray) else parse_times(times)
        has_time = ~np.isnan(t_raw)
        if now is None:  # event clock: the newest event time so far, this batch included
            latest = float(t_raw[has_time].max()) if has_time.any() else -math.inf
            now = max(rt.watermark, latest)
            if not math.isfinite(now):
                now = 0.0
        running = np.maximum.accumulate(np.concatenate([[rt.watermark], np.where(has_time, t_raw, -np.inf)]))
        before = running[:-1]
        lateness = spec.time.allowed_lateness_seconds
        out_of_order = has_time & (t_raw < before)
        late = has_time & (t_raw < before - lateness)
        # A record without an event time takes the latest one seen; before any, the batch's first
        # (never the wall clock, which would make every later, older event time look late); with no
        # event time at all it stays out of time windows (count windows still count it).
        first = float(t_raw[has_time][0]) if has_time.any() else np.nan
        fill = np.where(np.isfinite(before), before, first)
        t = np.where(has_time, t_raw, fill)
        rt.watermark = float(running[-1])
        # Freshness: processing clock minus event time. With the event clock (replay) it is the
        # record's distance behind the stream head at its arrival, independent of batching.
        head = running[1:] if self._event_clock else now
        lag = np.where(has_time, head - t_raw, np.nan)
        flags = RecordFlags(duplicate=duplicate, unexpected=unexpected, late=late, out_of_order=out_of_order,
                            has_time=has_time, lag=lag, time=t, unexpected_names=names, layout=layout,
                            head=running[1:])  # monotone (-inf before the first event time)
        return flags, now

    # -- closing a window ---------------------------------------------------------------------

    @staticmethod
    def _changes(rt: StreamState, w: ClosedWindow[Pane], pane: Pane,
                 drift: dict[str, dict[str, DriftResult]]) -> list[Change]:
        """Feed the window's aggregates to the change detectors: every series point, with the
        detectors (if any) that flagged a change at it."""
        if not rt.detectors.names or rt.ref is None or w.partial:
            return []
        out: list[Change] = []
        for name, state in pane.features.items():
            ref = rt.ref.features.get(name)
            if ref is None:
                continue
            series: list[tuple[ChangeSeries, float]] = []
            if state.moments is not None and state.moments.n and ref.mean is not None and ref.std:
                z = (float(state.moments.mean or 0.0) - ref.mean) / (ref.std / math.sqrt(state.moments.n))
                series.append((ChangeSeries.MEAN, z))
            distances = [d.statistic for d in drift.get(name, {}).values()
                         if d.p_value is None and d.statistic is not None]
            if distances:
                series.append((ChangeSeries.DRIFT, distances[0]))
            for label, value in series:
                fired = rt.detectors.update((w.spec.name, name, str(label)), value)
                out.append(Change(label, tuple(fired), feature=name, value=value))
        return out

    def _apply_policy(self, report: WindowReport) -> WindowReport:
        events = self.policy.observe(report.observations, now=report.end_time)
        return report.with_events(events, incidents=self.policy.incidents(report.observations))

    def _report(self, rt: StreamState, w: ClosedWindow[Pane], *, policy: bool = True) -> WindowReport:
        spec = rt.spec
        present = [p for p in w.panes if p is not None]
        if len(w.panes) == 1 and present:
            merged = present[0]
        else:
            merged = rt.new_pane()
            for p in present:
                merged += p
        features = {name: st.result() for name, st in merged.features.items()}
        count = merged.records.count
        volume = None
        if w.spec.kind == "time" and rt.rate and not w.partial:
            expected = rt.rate * w.spec.span
            # Rounded: a rate estimated from float timestamps must not turn exactly 4x into 1.9999999.
            volume = round(abs(math.log2(max(count, 0.5) / expected)), 6)
        records = {**merged.records.result(),
                   "expected_records": rt.rate * w.spec.span if (w.spec.kind == "time" and rt.rate) else None,
                   "volume_deviation": volume}
        drift = evaluate_drift(self.spec, spec, merged.features, rt.ref) if rt.ref is not None and count else {}
        history = rt.history.get(w.spec.name)
        if history is not None and count:
            if len(history) == history.maxlen:
                rolling = rolling_profile(spec, list(history), fixed=rt.ref)
                for name, results in evaluate_drift(self.spec, spec, merged.features, rolling,
                                                    rolling=True).items():
                    drift.setdefault(name, {}).update(results)
            if not w.partial:
                history.append(merged.features)
        start, end = w.start, w.end
        if w.spec.kind == "count" and records["event_time_min"] is not None:
            start, end = records["event_time_min"], records["event_time_max"]  # the records' own span
        window = {"name": w.spec.name, "kind": w.spec.kind, "index": w.index, "start": iso(start),
                  "end": iso(end), "partial": w.partial}
        summary = WindowSummary(stream=spec.name, window=window, count=count, features=features, records=records,
                                reference_version=rt.ref_version, end_time=end)
        changes = tuple(self._changes(rt, w, merged, drift))
        observations = observe_window(self.spec, spec, summary, drift, changes)
        report = WindowReport(summary=summary, drift=drift, changes=changes, observations=tuple(observations),
                              alerts=tuple(evaluate_window(observations)))
        return self._apply_policy(report) if policy else report
