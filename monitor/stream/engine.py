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
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from monitor.alerts import AlertPolicy
from monitor.checks import FeatureState
from monitor.checks.record import RecordFlags
from monitor.columns import columns_block, extract_batch
from monitor.detectors import ChangeDetectors
from monitor.drift import DriftResult
from monitor.errors import StateError
from monitor.evaluation import evaluate_drift, evaluate_window, observe_window
from monitor.names import ChangeSeries
from monitor.records import ColumnBatch
from monitor.reference import ReferenceProfile
from monitor.reference.rolling import rolling_profile
from monitor.report import Change, WindowReport, WindowSummary
from monitor.spec import MonitorSpec, StreamSpec
from monitor.stream.merge import PaneOut, PaneSaver, PartitionUpdate, StreamWindows
from monitor.stream.panes import Pane, StreamState, covering_slices
from monitor.times import iso, parse_times
from monitor.windows import ClosedWindow, CountTrack, TimeTrack

__all__ = ["EVENT_CLOCK", "MICRO_BATCH", "SNAPSHOT_VERSION", "FeatureEngine"]

#: Version of :meth:`FeatureEngine.snapshot` output (the ``schema_version`` key).
SNAPSHOT_VERSION = 2


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


class _Stream:
    """One stream in the feature stage: its partitions' states and its merge stage, where windows
    are evaluated (change detectors and rolling-reference history live here)."""

    def __init__(self, spec: StreamSpec, ref: ReferenceProfile | None, partitions: int | None,
                 evaluate: Callable[[_Stream, ClosedWindow[Pane], int], WindowReport],
                 wall: Callable[[], float] = time.time) -> None:
        self.spec = spec
        self.ref = ref
        self.n_partitions = partitions or 1
        self.parts: dict[int, StreamState] = {}
        self.ref_version = ref.profile_version if ref is not None else None  # a hash: compute once
        self.rate = spec.volume.expected_per_second or (ref.rate_per_second if ref is not None else None)
        self.event_mode = spec.time.mode == "event"
        self.detectors = ChangeDetectors(list(spec.detectors))
        # Rolling reference: the last N closed windows' feature states, per window spec.
        self.history: dict[str, deque[dict[str, FeatureState]]] = {
            w.name: deque(maxlen=spec.rolling_reference) for w in spec.windows} if spec.rolling_reference else {}
        self.notify = True  # whether closed windows go through the alert policy

        self.merge = StreamWindows(spec, ref, evaluate=_rebind(self, evaluate), partitions=partitions, wall=wall)
        self.new_pane = self.merge.new_pane

    def part(self, partition: int) -> StreamState:
        ps = self.parts.get(partition)
        if ps is None:
            ps = self.parts[partition] = StreamState(self.spec, self.ref, partitions=self.n_partitions)
        return ps

    @property
    def watermark(self) -> float:
        return max((ps.watermark for ps in self.parts.values()), default=-math.inf)

    @property
    def pending(self) -> bool:
        return any(ps.pending for ps in self.parts.values())


def _rebind(rt: _Stream, evaluate: Callable[[_Stream, ClosedWindow[Pane], int], WindowReport]
            ) -> Callable[[ClosedWindow[Pane], int], WindowReport]:
    def run(w: ClosedWindow[Pane], row: int) -> WindowReport:
        return evaluate(rt, w, row)
    return run


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
        partitions: Mapping[str, int] | None = None,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.spec = spec
        #: The wall clock of the merge stage's idle partitions (whatever ``clock`` is).
        self.wall = wall
        self._event_clock = clock is EVENT_CLOCK
        self.clock: Callable[[], float] = self._latest_event_time if self._event_clock else clock
        self.references = dict(references or {})
        for name, ref in self.references.items():
            ref.check_against(spec.stream(name))
        #: Partitions of each stream's topic (count panes are ``ceil(pane / P)`` records in each, and the
        #: merge waits for all of them); a stream not named here waits for the partitions it has seen.
        self.partitions = dict(partitions or {})
        self._streams = {s.name: self._new_stream(s.name) for s in spec.streams}
        #: Between the windows' verdicts and notifications (the :class:`monitor.Monitor`'s, shared with
        #: the model stage); its state is checkpointed by the worker.
        self.policy = policy if policy is not None else AlertPolicy(spec.alerting)
        self.records_processed: dict[str, int] = {s.name: 0 for s in spec.streams}

    def _new_stream(self, name: str) -> _Stream:
        return _Stream(self.spec.stream(name), self.references.get(name), self.partitions.get(name), self._evaluate,
                       self.wall)

    def _latest_event_time(self) -> float:
        finite = [rt.watermark for rt in self._streams.values() if math.isfinite(rt.watermark)]
        return max(finite) if finite else 0.0

    def watermark(self, stream: str, partition: int | None = None) -> float:
        """The latest event time seen on ``stream`` (of one partition, or the latest of all; ``-inf`` before any)."""
        rt = self._streams[stream]
        if partition is None:
            return rt.watermark
        ps = rt.parts.get(partition)
        return ps.watermark if ps is not None else -math.inf

    def window_fill(self, stream: str) -> dict[str, float | None]:
        """Read-only: for each window of ``stream`` (by name), how full the window that closes next is,
        0..1, as the merge stage sees it (:meth:`StreamWindows.fill <monitor.stream.merge.StreamWindows.fill>`;
        ``None`` before any record, and on a worker that does not run the merge stage). A count window adds
        the records of this engine's partitions whose open pane is the one the window waits for (all of them
        offline; a worker's own)."""
        rt = self._streams[stream]
        out = rt.merge.fill()
        waiting = {a.spec.name: a.next_to_close for a in rt.merge.assemblies if not a.time}
        for w in rt.spec.windows:
            if w.kind != "count":
                continue
            filled = sum(t.filled for ps in rt.parts.values() for t in ps.tracks
                         if isinstance(t, CountTrack) and t.spec.name == w.name and t.pane_index == waiting[w.name])
            if filled:
                out[w.name] = min((out.get(w.name) or 0.0) + filled / w.span, 1.0)
        return out

    # -- input -------------------------------------------------------------------------------

    def process(self, stream: str, records: Iterable[dict[str, Any]], *, partition: int = 0) -> list[WindowReport]:
        """Update ``stream``'s windows with a batch of records of one input ``partition``; return the
        reports of the windows that closed (see :mod:`monitor.stream.merge` for windows across partitions).

        ``records`` may be a :class:`~monitor.records.ColumnBatch` (columnar message), used as is.
        """
        return self._merge(self.update(stream, records, partition=partition))

    def update(self, stream: str, records: Iterable[dict[str, Any]], *, partition: int = 0) -> list[PartitionUpdate]:
        """The partition step alone: update ``partition``'s panes with a batch; return what goes to the
        merge stage (buffered records first, if any; see :meth:`merge`)."""
        rt = self._streams[stream]
        ps = rt.part(partition)
        now = None if self._event_clock else self.clock()
        if isinstance(records, ColumnBatch):
            updates = self._flush_updates() if rt.pending else []
            return [*updates, self._process(rt, ps, partition, records, now)]
        batch = records if isinstance(records, list) else list(records)
        if ps.pending:
            batch, ps.pending = ps.pending + batch, []
        return [self._process(rt, ps, partition, batch, now)]

    def decode_update(self, state: dict[str, Any]) -> PartitionUpdate:
        """A :class:`~monitor.stream.merge.PartitionUpdate` from its :meth:`to_state
        <monitor.stream.merge.PartitionUpdate.to_state>` form (as a worker publishes it);
        :class:`~monitor.errors.StateError` for one that does not fit this spec."""
        rt = self._streams.get(state.get("stream")) if isinstance(state, dict) else None  # type: ignore[arg-type]
        if rt is None:
            raise StateError(f"partition update of an unknown stream: {str(state)[:80]!r}")
        spec, ref = rt.spec, rt.ref

        def pane(p: dict[str, Any]) -> Pane:
            return Pane.from_state(spec, ref, p)

        return PartitionUpdate.from_state(spec, pane, state)

    def merge(self, update: PartitionUpdate) -> list[WindowReport]:
        """The merge step alone: one partition's closed panes and progress in, the reports of the
        stream windows that closed out (evaluated once, through the alert policy)."""
        return self._streams[update.stream].merge.add(update)

    def _merge(self, updates: list[PartitionUpdate]) -> list[WindowReport]:
        reports: list[WindowReport] = []
        for u in updates:
            reports += self.merge(u)
        return reports

    def process_one(self, stream: str, record: dict[str, Any]) -> list[WindowReport]:
        """Buffer one record (of partition 0); every :data:`MICRO_BATCH` records the buffer is processed as a batch."""
        rt = self._streams[stream]
        ps = rt.part(0)
        pending = ps.pending
        pending.append(record)
        if len(pending) < MICRO_BATCH:
            return []
        ps.pending = []
        return self._merge([self._process(rt, ps, 0, pending, None if self._event_clock else self.clock())])

    def _flush_updates(self) -> list[PartitionUpdate]:
        updates: list[PartitionUpdate] = []
        for rt in self._streams.values():
            for p, ps in rt.parts.items():
                if ps.pending:
                    batch, ps.pending = ps.pending, []
                    updates.append(self._process(rt, ps, p, batch, None if self._event_clock else self.clock()))
        return updates

    def flush(self) -> list[WindowReport]:
        """Process every buffered record now."""
        return self._merge(self._flush_updates())

    def tick(self, now: float | None = None) -> list[WindowReport]:
        """Flush buffers and close processing-time windows whose end has passed (call periodically)."""
        return self._merge(self.tick_updates(now))

    def tick_updates(self, now: float | None = None) -> list[PartitionUpdate]:
        """The partition step of :meth:`tick` alone: buffered records processed, and every partition's
        processing-time panes closed up to ``now``; their updates for the merge stage."""
        updates = self._flush_updates()
        now = self.clock() if now is None else now
        for rt in self._streams.values():
            if rt.event_mode:
                continue
            updates += [self._tick_partition(rt, ps, p, now) for p, ps in rt.parts.items()]
        return updates

    def progress(self, stream: str, partition: int, *, idle: bool = False) -> PartitionUpdate:
        """A partition's progress for the merge stage, e.g. to tell it the partition is ``idle`` (no records
        for ``time.idle_timeout_seconds``): then the partition's open time panes are closed and sent with it
        (the merge stage stops waiting for the partition, so what it holds must not be left behind; a record
        for them that comes later is counted as late)."""
        rt = self._streams[stream]
        ps = rt.part(partition)
        panes: list[PaneOut] = []
        if idle:
            for track in ps.tracks:
                if isinstance(track, TimeTrack) and track.open:
                    closed = track.advance((max(track.open) + 1) * track.pane_len)
                    panes += [PaneOut(w.spec.name, w.index, w.panes[0]) for w in closed if w.panes[0] is not None]
        update = self._progress(rt, ps, partition, panes, horizon=self._horizon(rt, ps, self.clock()))
        update.idle = idle
        return update

    def _tick_partition(self, rt: _Stream, ps: StreamState, partition: int, now: float) -> PartitionUpdate:
        panes: list[PaneOut] = []
        for track in ps.tracks:
            if isinstance(track, TimeTrack):
                panes += [PaneOut(w.spec.name, w.index, w.panes[0]) for w in track.advance(now)
                          if w.panes[0] is not None]
        return self._progress(rt, ps, partition, panes, horizon=now)

    def close(self, *, notify: bool = True) -> list[WindowReport]:
        """End of input (a replay): flush buffers, then emit every open window, marked partial.

        Without ``notify`` the partial windows are evaluated (their verdicts are in ``alerts``) but
        not put through the alert policy: no events (a worker would not have closed them yet)."""
        reports = self.flush()
        for update in self.final_updates():
            reports += self.merge(update)
        return reports + self.close_merge(notify=notify)

    def final_updates(self) -> list[PartitionUpdate]:
        """End of input, the partition step alone: every partition's open panes (flushed) as updates
        marked ``final``. Buffered records must have been flushed (:meth:`flush`)."""
        now = self.clock()
        updates: list[PartitionUpdate] = []
        for rt in self._streams.values():
            for p, ps in rt.parts.items():
                # The progress before the flush: an unfilled count pane does not complete its window.
                update = self._progress(rt, ps, p, [], horizon=-math.inf)
                for track in ps.tracks:
                    if isinstance(track, CountTrack):
                        update.panes += [PaneOut(w.spec.name, w.index, w.panes[0], w.start, w.end,  # type: ignore[arg-type]
                                                 partial=True) for w in track.flush(now)]
                    else:
                        update.panes += [PaneOut(w.spec.name, w.index, w.panes[0]) for w in track.flush()
                                         if w.panes[0] is not None]
                update.final = True
                updates.append(update)
        return updates

    def close_merge(self, *, notify: bool = True) -> list[WindowReport]:
        """End of input, the merge step alone: every stream's open windows closed (the last partial)."""
        reports: list[WindowReport] = []
        for rt in self._streams.values():
            rt.notify = notify
            try:
                reports += rt.merge.close()
            finally:
                rt.notify = True
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
        rt = self._streams[stream]
        return {"schema_version": SNAPSHOT_VERSION, "stream": stream,
                "records_processed": self.records_processed[stream],
                "partitions": {str(p): ps.to_state() for p, ps in sorted(rt.parts.items())},
                "merge": rt.merge.to_state()}

    def reset(self, stream: str) -> None:
        """Start ``stream`` afresh, as at construction: no windows, duplicates, watermark or detector history."""
        self._streams[stream] = self._new_stream(stream)
        self.records_processed[stream] = 0

    def restore(self, stream: str, state: dict[str, Any]) -> None:
        """Continue ``stream`` from a :meth:`snapshot` taken under the same spec and reference.

        Replaces the stream's partitions' windows, duplicate filters and watermarks, its merge stage's
        open windows and its records processed; leaves its change detectors, rolling-reference history
        and the alert policy as they are. Raises :class:`~monitor.errors.StateError`, changing nothing,
        for an unknown ``schema_version``, a snapshot of another stream, spec or reference, or while
        records of ``stream`` are buffered.
        """
        version = state.get("schema_version") if isinstance(state, dict) else None
        if version != SNAPSHOT_VERSION:
            raise StateError(f"unsupported feature-stage snapshot version {version!r} (reads {SNAPSHOT_VERSION})")
        if state.get("stream") != stream:
            raise StateError(f"snapshot of stream {state.get('stream')!r} cannot be restored into stream {stream!r}")
        processed = state.get("records_processed")
        if not isinstance(processed, int) or isinstance(processed, bool) or processed < 0:
            raise StateError(f"malformed snapshot of stream {stream!r}: records_processed is {processed!r}")
        parts, merge = state.get("partitions"), state.get("merge")
        if not isinstance(parts, dict) or not isinstance(merge, dict):
            raise StateError(f"malformed snapshot of stream {stream!r}: no partition or merge state")
        rt = self._streams[stream]
        if rt.pending:
            raise StateError(f"stream {stream!r} has pending records: flush them before restoring a state over them")
        fresh = self._new_stream(stream)
        try:
            for p, ps_state in parts.items():
                fresh.part(int(p)).load_state(ps_state)
        except (TypeError, ValueError) as exc:
            raise StateError(f"malformed snapshot of stream {stream!r}: {exc!r}") from exc
        fresh.merge.load_state(merge)
        rt.parts, rt.merge = fresh.parts, fresh.merge
        rt.merge.evaluate = fresh.merge.evaluate = _rebind(rt, self._evaluate)
        self.records_processed[stream] = processed

    # -- per partition (a worker's checkpoints) --------------------------------------------------

    def partition_state(self, stream: str, partition: int) -> dict[str, Any] | None:
        """JSON-able state of one partition of ``stream`` (its panes, duplicate filter and watermark;
        ``None`` if it has none): what a worker checkpoints with that partition's offset."""
        ps = self._streams[stream].parts.get(partition)
        return None if ps is None else ps.to_state()

    def load_partition(self, stream: str, partition: int, state: dict[str, Any] | None) -> None:
        """Continue ``partition`` of ``stream`` from :meth:`partition_state` (``None``: start it afresh).
        :class:`~monitor.errors.StateError`, changing nothing, for a state that does not fit."""
        rt = self._streams[stream]
        ps = StreamState(rt.spec, rt.ref, partitions=rt.n_partitions)
        if state is not None:
            ps.load_state(state)
        rt.parts[partition] = ps

    def drop_partition(self, stream: str, partition: int) -> None:
        """Forget ``partition`` of ``stream`` (revoked: its new owner continues it)."""
        self._streams[stream].parts.pop(partition, None)

    def partitions_of(self, stream: str) -> list[int]:
        """The partitions of ``stream`` this engine holds state for."""
        return sorted(self._streams[stream].parts)

    def merge_state(self, stream: str, save: PaneSaver | None = None) -> dict[str, Any]:
        """JSON-able state of ``stream``'s merge stage (open panes, every partition's progress; see
        :meth:`StreamWindows.to_state <monitor.stream.merge.StreamWindows.to_state>` for ``save``)."""
        merge = self._streams[stream].merge
        return merge.to_state() if save is None else merge.to_state(save)

    def load_merge(self, stream: str, state: dict[str, Any] | None,
                   load: Callable[[Any], dict[str, Any]] | None = None) -> None:
        """Continue ``stream``'s merge stage from :meth:`merge_state` (``None``: afresh)."""
        rt = self._streams[stream]
        merge = StreamWindows(rt.spec, rt.ref, evaluate=_rebind(rt, self._evaluate),
                              partitions=self.partitions.get(stream), wall=self.wall)
        if state is not None:
            merge.load_state(state, load)
        rt.merge = merge

    def merge_stage(self, stream: str) -> StreamWindows:
        """``stream``'s merge stage (read-only use: its partitions' progress, its horizon)."""
        return self._streams[stream].merge

    def set_idle(self, stream: str, partition: int, idle: bool = True) -> list[WindowReport]:
        """Mark a partition of ``stream`` idle (it stops holding the stream's windows back, see :meth:`progress`)
        or active; return the reports of the windows that closed."""
        return self.merge(self.progress(stream, partition, idle=idle))

    def advance(self, stream: str) -> list[WindowReport]:
        """Evaluate what closed in ``stream``'s merge stage since the wall clock moved on (idle partitions)."""
        return self._streams[stream].merge.advance()

    # -- the batch path ----------------------------------------------------------------------

    def _progress(self, rt: _Stream, ps: StreamState, partition: int, panes: list[PaneOut], *,
                  horizon: float, records: int = 0, heads: NDArray[np.float64] | None = None) -> PartitionUpdate:
        """A partition's update: the panes it closed, and how far each of its tracks has come."""
        counts: dict[str, int] = {}
        firsts: dict[str, float | None] = {}
        for track in ps.tracks:
            if isinstance(track, CountTrack):
                counts[track.spec.name] = track.pane_index
            else:
                firsts[track.spec.name] = track.first_time
        return PartitionUpdate(rt.spec.name, partition, panes, horizon, counts, firsts, records, heads)

    def _horizon(self, rt: _Stream, ps: StreamState, now: float) -> float:
        """Up to where this partition's time panes are complete: its watermark minus the allowed
        lateness (event time), or the clock (processing time)."""
        if rt.event_mode:
            return ps.watermark - rt.spec.time.allowed_lateness_seconds
        return now

    def _process(self, rt: _Stream, ps: StreamState, partition: int, records: Sequence[dict[str, Any]] | ColumnBatch,
                 now: float | None) -> PartitionUpdate:
        n = len(records)
        if n == 0:
            return self._progress(rt, ps, partition, [], horizon=-math.inf)
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
            if spec.allow_extra_fields or (ex.complete and ps.only_known_fields(records, timed=timed)):
                field_sets = [()]  # no record has a field outside the spec (or it does not matter)
            else:
                keys = list(map(tuple, records))  # each record's field names, in order
                uniq = dict.fromkeys(keys)
                field_sets = list(uniq)
                if len(uniq) > 1:
                    table = {k: i for i, k in enumerate(uniq)}
                    layout = np.fromiter(map(table.__getitem__, keys), dtype=np.int32, count=n)
        flags, now = self._flags(ps, n, ids, times, field_sets, layout, now)
        shared = len(ps.tracks) > 1
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
                state = ps.new_pane()
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
        panes: list[PaneOut] = []
        for track in ps.tracks:
            if isinstance(track, CountTrack):
                panes += [PaneOut(track.spec.name, w.index, w.panes[0], w.start, w.end,  # type: ignore[arg-type]
                                  row=int(w.meta.get("row", n - 1)))
                          for w in track.add(n, update_slice, clock=now)]
                continue
            if rt.event_mode:
                t = np.where(flags.late, np.nan, flags.time)
                dropped = track.add(t, update_rows)
                if dropped.size or flags.late.any():
                    # Each late record is counted in the pane open at its arrival (the one
                    # holding the partition's watermark it fell behind), whatever the batching.
                    at = np.concatenate([flags.head[flags.late], flags.head[dropped]])
                    self._count_excluded(track, at)
                closed = track.advance(ps.watermark - lateness)
            else:
                track.add(np.full(n, now), update_rows)
                closed = track.advance(now) if track.next_to_close is not None else []
            panes += [PaneOut(track.spec.name, w.index, w.panes[0]) for w in closed if w.panes[0] is not None]
        self.records_processed[spec.name] += n
        return self._progress(rt, ps, partition, panes, horizon=self._horizon(rt, ps, now), records=n,
                              heads=flags.head)

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
    def _changes(rt: _Stream, w: ClosedWindow[Pane], pane: Pane,
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

    def _evaluate(self, rt: _Stream, w: ClosedWindow[Pane], row: int) -> WindowReport:
        return self._report(rt, w, policy=rt.notify)

    def _report(self, rt: _Stream, w: ClosedWindow[Pane], *, policy: bool = True) -> WindowReport:
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
