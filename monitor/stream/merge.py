"""One evaluation per stream window: the panes of every partition merged, then evaluated once.

The feature stage runs in two steps (see :mod:`monitor.stream.engine`):

1. **per partition** (:class:`~monitor.stream.panes.StreamState`, one per stream and input
   partition): records update the partition's panes; a pane closes on the partition's own
   watermark (time windows, event time), clock (processing time) or record count (count windows),
   and goes out as a :class:`PaneOut` in a :class:`PartitionUpdate`, with the partition's progress;
2. **per stream** (:class:`StreamWindows`): the panes of all partitions are merged by pane index; a
   window closes once every partition that is not idle has passed its end, and is then evaluated
   once (checks, drift, change detectors, alert rules).

What a window is, across partitions:

* **time windows**: the window ``[start, end)`` holds every partition's records of that event time
  (or processing time); it closes when the slowest partition's watermark minus the allowed lateness
  has passed ``end``. Lateness is judged per partition, against its own watermark.
* **count windows**: a stream of ``P`` partitions counts ``ceil(pane / P)`` records per pane in each
  partition (``pane`` is the slide, or the size of a tumbling window); the stream's pane ``k`` is the
  merge of pane ``k`` of every partition, so a window holds ``size`` records (rounded up to a
  multiple of ``P`` per pane). It closes when every partition has filled its pane.

Either way the answer depends on the records and their partitions, never on which worker reads
which partition, nor on how records were batched. A partition marked idle (no records for
``time.idle_timeout_seconds``: an update with ``idle``, its open time panes sent with it) stops holding
windows back: its time
is taken to stand where the stream stood when it went idle and to follow the wall clock from there (so a
stream idle on every partition closes its time windows on the wall clock); count windows stop waiting
for it after another ``idle_timeout_seconds``. Records it sends later for panes already closed are
counted as late.

Memory: per window spec, the merged open panes (one per pane index between the slowest and the
fastest partition, plus those a sliding window still needs) and, per partition, a few numbers.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from monitor.errors import StateError
from monitor.spec import StreamSpec, WindowSpec
from monitor.stream.panes import Pane, count_pane_size
from monitor.windows import MAX_EMPTY_WINDOWS, ClosedWindow

__all__ = ["MERGE_STATE_VERSION", "PaneOut", "PaneSaver", "PartitionUpdate", "StreamWindows", "count_pane_size"]

#: Version of :meth:`StreamWindows.to_state` output and of encoded :class:`PartitionUpdate` s.
MERGE_STATE_VERSION = 1


@dataclass
class PaneOut:
    """One pane a partition closed: for ``window``, pane ``index``, its state and clocks."""

    window: str
    index: int
    pane: Pane
    #: Count windows: the clock at the pane's first record and when it filled (event or wall time).
    start: float = 0.0
    end: float = 0.0
    #: The row of the batch that closed it (orders the windows one batch closes; in-process only).
    row: int = 0
    #: A count pane flushed unfilled at the end of input.
    partial: bool = False

    def to_state(self) -> dict[str, Any]:
        return {"window": self.window, "index": self.index, "pane": self.pane.to_state(), "start": self.start,
                "end": self.end, "partial": self.partial}


@dataclass
class PartitionUpdate:
    """What one partition of a stream tells the merge: the panes it closed, then its progress.

    ``horizon``: every time pane ending at or before it is complete on this partition (the
    partition's watermark minus the allowed lateness, or its processing clock). ``counts``: by count
    window, the partition's next pane index (every lower one is complete). ``first_times``: by time
    window, the earliest time the partition routed before its first pane closed (windows starting
    before the earliest of all partitions are partial).
    """

    stream: str
    partition: int
    panes: list[PaneOut] = field(default_factory=list)
    horizon: float = -math.inf
    counts: dict[str, int] = field(default_factory=dict)
    first_times: dict[str, float | None] = field(default_factory=dict)
    #: Records the partition processed in the batch this update covers.
    records: int = 0
    #: The batch's running watermark per row (in-process only: orders the windows it closes).
    heads: NDArray[np.float64] | None = None
    #: End of input (a replay's close): the partition's unfilled panes are in ``panes``.
    final: bool = False
    #: The partition has had no records for a while: it stops holding the stream's windows back.
    idle: bool = False

    def to_state(self) -> dict[str, Any]:
        """JSON-able form (``schema_version`` 1), what a worker publishes for the merge stage."""
        return {"schema_version": MERGE_STATE_VERSION, "stream": self.stream, "partition": self.partition,
                "panes": [p.to_state() for p in self.panes],
                "horizon": None if not math.isfinite(self.horizon) else self.horizon,
                "counts": self.counts, "first_times": self.first_times, "records": self.records,
                "final": self.final, "idle": self.idle}

    @classmethod
    def from_state(cls, spec: StreamSpec, new_pane: Callable[[dict[str, Any]], Pane],
                   state: dict[str, Any]) -> PartitionUpdate:
        if state.get("schema_version") != MERGE_STATE_VERSION:
            raise StateError(f"unsupported partition update version {state.get('schema_version')!r} "
                             f"(reads {MERGE_STATE_VERSION})")
        if state.get("stream") != spec.name:
            raise StateError(f"update of stream {state.get('stream')!r} given to stream {spec.name!r}")
        try:
            panes = [PaneOut(p["window"], int(p["index"]), new_pane(p["pane"]), float(p["start"]), float(p["end"]),
                             partial=bool(p["partial"])) for p in state["panes"]]
            horizon = -math.inf if state["horizon"] is None else float(state["horizon"])
            return cls(spec.name, int(state["partition"]), panes, horizon,
                       {k: int(v) for k, v in state["counts"].items()},
                       {k: None if v is None else float(v) for k, v in state["first_times"].items()},
                       int(state["records"]), final=bool(state["final"]), idle=bool(state.get("idle", False)))
        except StateError:
            raise
        except (KeyError, TypeError, ValueError) as exc:
            raise StateError(f"malformed partition update of stream {spec.name!r}: {exc!r}") from exc


@dataclass
class _Progress:
    """What the merge knows of one partition."""

    horizon: float = -math.inf
    counts: dict[str, int] = field(default_factory=dict)
    first_times: dict[str, float | None] = field(default_factory=dict)
    #: By window: the highest pane index received (a pane sent again after a restart is ignored).
    last: dict[str, int] = field(default_factory=dict)
    idle: bool = False
    final: bool = False
    #: While idle: the wall clock and the stream's horizon when the merge first saw it idle with data
    #: elsewhere. From then on its time is taken to advance with the wall clock.
    idle_since: float | None = None
    idle_base: float = -math.inf

    def to_state(self) -> dict[str, Any]:
        return {"horizon": None if not math.isfinite(self.horizon) else self.horizon, "counts": self.counts,
                "first_times": self.first_times, "last": self.last, "idle": self.idle, "final": self.final,
                "idle_since": self.idle_since,
                "idle_base": None if not math.isfinite(self.idle_base) else self.idle_base}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> _Progress:
        return cls(-math.inf if state["horizon"] is None else float(state["horizon"]),
                   {k: int(v) for k, v in state["counts"].items()},
                   {k: None if v is None else float(v) for k, v in state["first_times"].items()},
                   {k: int(v) for k, v in state["last"].items()}, bool(state["idle"]), bool(state["final"]),
                   None if state["idle_since"] is None else float(state["idle_since"]),
                   -math.inf if state["idle_base"] is None else float(state["idle_base"]))


class _Assembly:
    """One window spec's merged panes, closed into windows as the partitions' progress allows.

    Panes are numbered as in the partitions: time panes by ``floor(t / pane)``, count panes by
    their order in each partition. A window is the merge of its ``panes`` consecutive panes.
    """

    def __init__(self, spec: WindowSpec, new_pane: Callable[[], Pane]) -> None:
        self.spec = spec
        self.new_pane = new_pane
        self.time = spec.kind == "time"
        self.pane_len = spec.pane if self.time else 1.0
        self.n_panes = spec.panes
        #: Open panes: by pane index, each partition's pane (merged when the pane closes, in partition
        #: order, so that the floating-point result does not depend on arrival order).
        self.parts: dict[int, dict[int, Pane]] = {}
        self.clocks: dict[int, tuple[float, float]] = {}  # count panes: (first record, filled) clocks
        self.closed: deque[tuple[int, Pane | None, tuple[float, float] | None]] = deque(
            maxlen=max(self.n_panes - 1, 1))
        self.next_to_close: int | None = None if self.time else 0
        self.closed_any = False
        self.rows: dict[int, int] = {}  # count panes: the row of its batch that filled it (in-process order)
        self.unfilled: set[int] = set()  # count panes a partition flushed unfilled at its end of input
        self.first_time: float | None = None
        self.skipped = 0
        self.late: list[int] = []  # records of panes that arrived after their window closed, to count

    def put(self, partition: int, out: PaneOut) -> None:
        k = out.index
        if self.next_to_close is not None and k < self.next_to_close and (self.closed_any or not self.time):
            # The window closed without this partition (it was idle): its records count as late.
            self.late.append(out.pane.records.count + out.pane.records.late_excluded)
            return
        if self.time and not self.closed_any:
            self.next_to_close = k if self.next_to_close is None else min(self.next_to_close, k)
        self.parts.setdefault(k, {})[partition] = out.pane  # merged at close, in partition order
        if not self.time:
            start, end = self.clocks.get(k, (out.start, out.end))
            self.clocks[k] = (min(start, out.start), max(end, out.end))
            self.rows[k] = out.row
            if out.partial:
                self.unfilled.add(k)

    def _late_into_open(self) -> None:
        if not self.late:
            return
        k = self.next_to_close if self.next_to_close is not None else 0
        panes = self.parts.setdefault(k, {})
        pane = panes.get(-1)
        if pane is None:
            pane = panes[-1] = self.new_pane()  # a pane of its own, merged with the partitions' at close
        pane.records.late_excluded += sum(self.late)
        self.late.clear()

    def advance(self, horizon: float) -> list[ClosedWindow[Pane]]:
        """Close every pane ending at or before ``horizon`` (a time, or a count pane index); return
        the windows completed."""
        self._late_into_open()
        if self.next_to_close is None or not math.isfinite(horizon):
            return []
        last = math.floor(horizon / self.pane_len) - 1 if self.time else int(horizon) - 1
        out: list[ClosedWindow[Pane]] = []
        emitted_empty = 0
        k = self.next_to_close
        while k <= last:
            pane = self._take(k)
            if self.time and pane is None and emitted_empty >= MAX_EMPTY_WINDOWS:
                nxt = min([j for j in self.parts if j > k] + [last + 1])
                self.skipped += nxt - k
                self.closed.clear()
                k = nxt
                continue
            out += self._emit(k, pane, self.clocks.pop(k, None))
            self.closed_any = True
            emitted_empty = emitted_empty + 1 if pane is None else 0
            k += 1
        self.next_to_close = k
        return out

    def _take(self, k: int) -> Pane | None:
        """Pane ``k`` merged over the partitions (in partition order), removed from the open ones."""
        panes = self.parts.pop(k, None)
        if not panes:
            return None
        order = sorted(panes)
        if len(order) == 1:
            return panes[order[0]]
        merged = self.new_pane()
        for p in order:
            merged += panes[p]
        return merged

    def _emit(self, k: int, pane: Pane | None, clocks: tuple[float, float] | None, *,
              partial: bool = False) -> list[ClosedWindow[Pane]]:
        history = [(p, c) for (j, p, c) in self.closed if j > k - self.n_panes]
        if self.n_panes > 1:
            self.closed.append((k, pane, clocks))
        index = k - self.n_panes + 1
        if self.time:
            start = index * self.pane_len
            partial = partial or (self.first_time is not None and start < self.first_time)
            panes = [p for p, _ in history] + [pane] if self.n_panes > 1 else [pane]
            return [ClosedWindow(self.spec, index, start, start + self.spec.span, panes, partial=partial)]
        # A count window: complete once it has all its panes; at the end of input, what there is.
        row = self.rows.pop(k, 0)
        if index < 0 and not partial:
            return []
        spans = [c for _, c in history if c is not None] + ([clocks] if clocks is not None else [])
        start = spans[0][0] if spans else 0.0
        end = spans[-1][1] if spans else 0.0
        panes = [p for p, _ in history] + [pane]
        partial = partial or any(j in self.unfilled for j in range(k - len(panes) + 1, k + 1))
        if len(self.unfilled) > 0 and min(self.unfilled) <= k - self.n_panes:
            self.unfilled = {j for j in self.unfilled if j > k - self.n_panes}
        window = ClosedWindow(self.spec, max(index, k - len(panes) + 1), start, end, panes, partial=partial)
        window.meta["row"] = row
        return [window]

    def flush(self) -> list[ClosedWindow[Pane]]:
        """End of input: close every pane still open; the last window is marked partial."""
        self._late_into_open()
        if not self.parts:
            return []
        last = max(self.parts)
        if self.time:
            out = self.advance((last + 1) * self.pane_len)
            for w in out:
                w.partial = w.partial or w is out[-1]
            return out
        out = self.advance(last)  # the complete panes below the last one
        pane = self._take(last)
        out += self._emit(last, pane, self.clocks.pop(last, None), partial=True)
        self.next_to_close = last + 1
        return out

    def to_state(self, encode: PaneSaver) -> dict[str, Any]:
        name = self.spec.name
        return {"window": name, "kind": self.spec.kind, "span": self.spec.span, "pane_length": self.spec.pane,
                "open": [[k, {str(p): encode(f"{name}/o/{k}/{p}", pane) for p, pane in panes.items()}]
                         for k, panes in self.parts.items()],
                "clocks": [[k, list(c)] for k, c in self.clocks.items()],
                "closed": [[k, None if p is None else encode(f"{name}/c/{k}", p), None if c is None else list(c)]
                           for k, p, c in self.closed],
                "next_to_close": self.next_to_close, "closed_any": self.closed_any, "first_time": self.first_time,
                "skipped": self.skipped, "late": self.late, "unfilled": sorted(self.unfilled)}

    def load_state(self, state: dict[str, Any], decode: Callable[[Any], Pane]) -> None:
        saved = (state.get("window"), state.get("kind"), state.get("span"), state.get("pane_length"))
        if saved != (self.spec.name, self.spec.kind, self.spec.span, self.spec.pane):
            raise StateError(f"merge state of window {saved[0]!r} does not match window {self.spec.name!r}")
        self.parts = {int(k): {int(p): decode(pane) for p, pane in panes.items()} for k, panes in state["open"]}
        self.clocks = {int(k): (float(c[0]), float(c[1])) for k, c in state["clocks"]}
        self.closed = deque(((int(k), None if p is None else decode(p), _clocks(c))
                             for k, p, c in state["closed"]), maxlen=max(self.n_panes - 1, 1))
        nxt = state["next_to_close"]
        self.next_to_close = None if nxt is None else int(nxt)
        self.closed_any = bool(state["closed_any"])
        self.first_time = None if state["first_time"] is None else float(state["first_time"])
        self.skipped = int(state["skipped"])
        self.late = [int(x) for x in state["late"]]
        self.unfilled = {int(x) for x in state["unfilled"]}


#: Saves one pane of the merge stage, given its key (unique within the stream, e.g. ``w/o/12/3``: window
#: ``w``, open pane 12 of partition 3; ``w/c/11``: closed pane 11): returns what stands for it in the state.
PaneSaver = Callable[[str, Pane], Any]


def _pane_state(key: str, pane: Pane) -> dict[str, Any]:
    return pane.to_state()


def _clocks(c: list[float] | None) -> tuple[float, float] | None:
    return None if c is None else (float(c[0]), float(c[1]))


class StreamWindows:
    """The merge stage of one stream: every partition's panes in, each stream window closed once.

    ``evaluate(window, row)`` turns a closed window into its report (the caller's: checks, drift,
    detectors, alert policy); :meth:`add` returns what it returned, in the order the windows
    closed. ``partitions`` is the number of partitions to wait for (``None``: those seen so far).

    Examples
    --------
    >>> from monitor.spec import StreamSpec
    >>> spec = StreamSpec.model_validate({"name": "s", "windows": [{"name": "t", "kind": "time", "seconds": 10}],
    ...                                   "features": [{"name": "x", "type": "numeric"}]})
    >>> merge = StreamWindows(spec, None, partitions=2, evaluate=lambda w, row: (w.index, w.panes[0].records.count))
    >>> a, b = Pane(spec, None), Pane(spec, None)
    >>> a.records.count, b.records.count = 3, 4
    >>> merge.add(PartitionUpdate("s", 0, [PaneOut("t", 0, a)], horizon=25.0))
    []
    >>> merge.add(PartitionUpdate("s", 1, [PaneOut("t", 0, b)], horizon=12.0))  # both partitions past 10 s
    [(0, 7)]
    """

    def __init__(self, spec: StreamSpec, ref: Any, *, evaluate: Callable[[ClosedWindow[Pane], int], Any],
                 partitions: int | None = None, wall: Callable[[], float] = time.time) -> None:
        self.spec = spec
        self.ref = ref
        self.evaluate = evaluate
        self.wall = wall

        def new_pane() -> Pane:
            return Pane(spec, ref)

        self.new_pane = new_pane
        self.assemblies = [_Assembly(w, new_pane) for w in spec.windows]
        self.progress: dict[int, _Progress] = {p: _Progress() for p in range(partitions or 0)}

    # -- input --------------------------------------------------------------------------------------

    def add(self, update: PartitionUpdate) -> list[Any]:
        """Take one partition's closed panes and progress; evaluate every window that closed."""
        prog = self.progress.get(update.partition)
        if prog is None:
            prog = self.progress[update.partition] = _Progress()
        by_name = {a.spec.name: a for a in self.assemblies}
        for out in update.panes:
            if out.index <= prog.last.get(out.window, -1) and not out.partial:
                continue  # sent again (the partition was restored from an earlier checkpoint)
            assembly = by_name.get(out.window)
            if assembly is None:
                raise StateError(f"stream {self.spec.name!r} has no window {out.window!r}")
            assembly.put(update.partition, out)
            prog.last[out.window] = out.index
        prog.horizon = max(prog.horizon, update.horizon)
        for name, k in update.counts.items():
            prog.counts[name] = max(prog.counts.get(name, 0), k)
        for name, t in update.first_times.items():
            if t is not None:
                old = prog.first_times.get(name)
                prog.first_times[name] = t if old is None else min(old, t)
        prog.final = prog.final or update.final
        self._set_idle(prog, update.idle)
        return self._advance(update.heads, final=False)

    def advance(self) -> list[Any]:
        """Evaluate what closed since the wall clock moved on (idle partitions' time follows it)."""
        return self._advance(None, final=False)

    @staticmethod
    def _set_idle(prog: _Progress, idle: bool) -> None:
        if idle and not prog.idle:
            prog.idle_since, prog.idle_base = None, -math.inf  # anchored by _anchor_idle
        prog.idle = idle

    def _anchor_idle(self) -> None:
        """An idle partition's time starts following the wall clock from where the stream stands once another
        partition has data (before that there is nothing to hold back)."""
        pending = [p for p in self.progress.values() if p.idle and p.idle_since is None]
        if not pending:
            return
        live = [p.horizon for p in self._live() if math.isfinite(p.horizon)]
        known = [p.horizon for p in self.progress.values() if math.isfinite(p.horizon)]
        base = min(live) if live else (max(known) if known else -math.inf)
        if not math.isfinite(base):
            return
        now = self.wall()
        for p in pending:
            p.idle_since, p.idle_base = now, max(base, p.horizon)

    def close(self) -> list[Any]:
        """End of input: every open pane closed into windows (the last of each window spec partial)."""
        return self._advance(None, final=True)

    def fill(self) -> dict[str, float | None]:
        """Read-only: how full the window that closes next is, by window name, 0..1: count windows by the
        records of the panes the merge stage holds for it (each partition's pane counts once it is full),
        time windows by ``(horizon - start) / length``. ``None`` before any pane or progress."""
        out: dict[str, float | None] = {}
        horizon = self.horizon()
        for a in self.assemblies:
            k = a.next_to_close
            if a.time:
                if k is None or not math.isfinite(horizon):
                    out[a.spec.name] = None
                    continue
                end = (k + 1) * a.pane_len
                out[a.spec.name] = min(max((horizon - (end - a.spec.span)) / a.spec.span, 0.0), 1.0)
                continue
            held = sum(p.records.count for j, p, _ in a.closed if p is not None and j > (k or 0) - a.n_panes)
            held += sum(p.records.count for p in a.parts.get(k or 0, {}).values())
            out[a.spec.name] = min(held / a.spec.span, 1.0) if (held or a.closed_any) else None
        return out

    # -- the horizons -----------------------------------------------------------------------------

    def _live(self) -> list[_Progress]:
        live = [p for p in self.progress.values() if not p.idle and not p.final]
        return live

    def horizon(self) -> float:
        """The time up to which every partition is complete: the slowest partition's, where an idle one
        stands where the stream stood when it went idle, plus the wall-clock time since (so an idle
        partition stops holding windows back; a stream idle on every partition closes its windows on the
        wall clock). ``-inf`` while a partition that is not idle has no progress."""
        self._anchor_idle()
        now = self.wall()
        times = [p.horizon for p in self._live()]
        times += [p.idle_base + (now - p.idle_since) for p in self.progress.values()
                  if p.idle and not p.final and p.idle_since is not None]
        if not times:
            finals = [p.horizon for p in self.progress.values()]
            return max(finals) if finals else -math.inf
        return min(times)

    def _count_pool(self) -> list[_Progress]:
        """The partitions count windows wait for: all but the finished ones and those idle for longer than
        ``time.idle_timeout_seconds`` while the stream had data elsewhere."""
        self._anchor_idle()
        now, timeout = self.wall(), self.spec.time.idle_timeout_seconds
        return [p for p in self.progress.values() if not p.final and not (
            p.idle and p.idle_since is not None and now - p.idle_since >= timeout)]

    def _advance(self, heads: NDArray[np.float64] | None, *, final: bool) -> list[Any]:
        lateness = self.spec.time.allowed_lateness_seconds
        closing: list[tuple[int, int, ClosedWindow[Pane]]] = []
        for i, a in enumerate(self.assemblies):
            if a.time and not a.closed_any:
                firsts = [t for p in self.progress.values() if (t := p.first_times.get(a.spec.name)) is not None]
                if firsts:
                    a.first_time = min(firsts)
            if final:
                closed = a.flush()
            elif a.time:
                closed = a.advance(self.horizon())
            else:
                pool = self._count_pool() or list(self.progress.values())
                closed = a.advance(min(p.counts.get(a.spec.name, 0) for p in pool) if pool else 0)
            for w in closed:
                if heads is not None and len(heads):
                    if a.time and self.spec.time.mode == "event":
                        row = int(np.searchsorted(heads, w.end + lateness, side="left"))
                    else:
                        row = int(w.meta.get("row", len(heads) - 1))
                    row = min(row, len(heads) - 1)
                else:
                    row = 0
                closing.append((row, i, w))
        closing.sort(key=lambda item: (item[0], item[1]))
        return [self.evaluate(w, row) for row, _, w in closing]

    # -- checkpoints ----------------------------------------------------------------------------

    def to_state(self, save: PaneSaver = _pane_state) -> dict[str, Any]:
        """JSON-able state (``schema_version`` 1): the open panes (each partition's) and the closed ones sliding
        windows still need, and every partition's progress. Each pane is what ``save(key, pane)`` returns (by
        default its state; a worker stores panes under their keys apart, see :mod:`agents.worker.merge`)."""
        return {"schema_version": MERGE_STATE_VERSION, "stream": self.spec.name,
                "windows": [a.to_state(save) for a in self.assemblies],
                "partitions": {str(p): prog.to_state() for p, prog in self.progress.items()}}

    def load_state(self, state: dict[str, Any], load: Callable[[Any], dict[str, Any]] | None = None) -> None:
        """Continue from :meth:`to_state` 's output (same spec and reference; ``load`` gives back each pane's state
        from what ``save`` returned); :class:`StateError` and no change for anything else."""
        if state.get("schema_version") != MERGE_STATE_VERSION or state.get("stream") != self.spec.name:
            raise StateError(f"merge state {state.get('stream')!r} v{state.get('schema_version')!r} cannot be "
                             f"restored into stream {self.spec.name!r} (reads v{MERGE_STATE_VERSION})")
        spec, ref = self.spec, self.ref

        def decode(p: Any) -> Pane:
            return Pane.from_state(spec, ref, load(p) if load is not None else p)

        try:
            assemblies = [_Assembly(w, self.new_pane) for w in spec.windows]
            if len(state["windows"]) != len(assemblies):
                raise StateError(f"merge state of stream {spec.name!r} has other windows than the spec")
            for a, s in zip(assemblies, state["windows"], strict=True):
                a.load_state(s, decode)
            progress = {int(p): _Progress.from_state(s) for p, s in state["partitions"].items()}
        except StateError:
            raise
        except (KeyError, TypeError, ValueError) as exc:
            raise StateError(f"malformed merge state of stream {spec.name!r}: {exc!r}") from exc
        self.assemblies, self.progress = assemblies, progress
