"""Pane bookkeeping for count and time windows, tumbling and sliding.

A window of length ``span`` sliding by ``slide`` is made of ``span / slide``
panes; each record updates exactly one pane per window spec, and a window is
emitted (the merge of its panes) when its last pane closes. Tumbling windows
are the one-pane case. Mergeable states make this exact: merging panes equals
accumulating the window directly.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import numpy as np
from numpy.typing import NDArray

from monitor.errors import StateError
from monitor.spec import WindowSpec

__all__ = ["MAX_EMPTY_WINDOWS", "ClosedWindow", "CountTrack", "TimeTrack"]

P = TypeVar("P")

#: Saves one pane as JSON-able data (``Pane.to_state`` for the feature stage).
PaneEncoder = Callable[[P], dict[str, Any]]
#: Rebuilds one pane from what the matching :data:`PaneEncoder` saved.
PaneDecoder = Callable[[dict[str, Any]], P]

#: Version of the track states written by ``to_state`` (both kinds).
TRACK_STATE_VERSION = 1


def _check_state(spec: WindowSpec, state: dict[str, Any]) -> None:
    """Refuse a track state of another version or another window (its pane numbering would not apply)."""
    version = state.get("schema_version")
    if version != TRACK_STATE_VERSION:
        raise StateError(f"unsupported window track state version {version!r} (reads {TRACK_STATE_VERSION})")
    saved = (state.get("window"), state.get("kind"), state.get("span"), state.get("pane_length"))
    if saved != (spec.name, spec.kind, spec.span, spec.pane):
        raise StateError(f"window state of {saved[0]!r} ({saved[1]}, span {saved[2]}, pane {saved[3]}) does not "
                         f"match window {spec.name!r} ({spec.kind}, span {spec.span:g}, pane {spec.pane:g})")


def _header(spec: WindowSpec) -> dict[str, Any]:
    return {"schema_version": TRACK_STATE_VERSION, "window": spec.name, "kind": spec.kind, "span": spec.span,
            "pane_length": spec.pane}


def _finite(x: float, what: str) -> float:
    """``x`` as a JSON number: JSON has no infinities or NaN, and none is expected here."""
    if not math.isfinite(x):
        raise StateError(f"{what} is {x}, which a JSON state cannot hold")
    return float(x)

#: Empty time windows emitted at most for one gap in the data (a jump of days in event
#: time must not emit millions of windows); the rest of the gap is skipped.
MAX_EMPTY_WINDOWS = 100


@dataclass
class ClosedWindow(Generic[P]):
    """A window ready to evaluate: its panes (oldest first, ``None`` for an empty pane)."""

    spec: WindowSpec
    index: int
    start: float
    end: float
    panes: list[P | None]
    partial: bool = False
    meta: dict[str, Any] = field(default_factory=dict)


class CountTrack(Generic[P]):
    """Windows of ``size`` records, tumbling or sliding by ``slide`` records.

    Examples
    --------
    >>> from monitor.spec import WindowSpec
    >>> t = CountTrack(WindowSpec(name="w", kind="count", size=4, slide=2), new_pane=list)
    >>> done = t.add(5, lambda pane, rows, clock: pane.append((rows.start, rows.stop)), clock=0.0)
    >>> [(w.index, w.panes) for w in done]
    [(0, [[(0, 2)], [(2, 4)]])]
    """

    def __init__(self, spec: WindowSpec, *, new_pane: Callable[[], P]) -> None:
        self.spec = spec
        self.new_pane = new_pane
        self.pane_size = int(spec.pane)
        self.n_panes = spec.panes
        # The last n_panes - 1 closed panes with their start clocks (none for tumbling windows).
        self.closed: deque[tuple[P, float]] = deque(maxlen=self.n_panes - 1)
        self.pane: P = new_pane()
        self.pane_index = 0
        self.pane_start = 0.0
        self.filled = 0

    def add(self, n: int, update: Callable[[P, slice, float], None], *, clock: float) -> list[ClosedWindow[P]]:
        """Feed rows ``0..n`` (in order) through ``update(pane, rows, clock)``; return completed windows."""
        out: list[ClosedWindow[P]] = []
        start = 0
        while start < n:
            if self.filled == 0:
                self.pane_start = clock
            take = min(self.pane_size - self.filled, n - start)
            update(self.pane, slice(start, start + take), clock)
            self.filled += take
            start += take
            if self.filled == self.pane_size:
                for w in self._close_pane(clock):
                    w.meta["row"] = start - 1  # the row that completed it
                    out.append(w)
        return out

    def _close_pane(self, clock: float, *, partial: bool = False) -> list[ClosedWindow[P]]:
        panes: list[P | None] = [p for p, _ in self.closed]
        panes.append(self.pane)
        starts = [s for _, s in self.closed] + [self.pane_start]
        out = []
        if len(panes) == self.n_panes or partial:
            out.append(ClosedWindow(self.spec, self.pane_index - len(panes) + 1, starts[0], clock, panes,
                                    partial=partial))
        self.closed.append((self.pane, self.pane_start))
        self.pane, self.pane_index, self.filled = self.new_pane(), self.pane_index + 1, 0
        return out

    def fill(self) -> float:
        """How full the window that closes next is: its records so far / ``size`` (in ``[0, 1)``;
        read-only). A sliding window holds the closed panes it still needs plus the open pane.

        >>> from monitor.spec import WindowSpec
        >>> t = CountTrack(WindowSpec(name="w", kind="count", size=4, slide=2), new_pane=list)
        >>> _ = t.add(3, lambda pane, rows, clock: None, clock=0.0)
        >>> t.fill()  # one closed pane of 2 and 1 record in the open pane
        0.75
        """
        return (len(self.closed) * self.pane_size + self.filled) / self.spec.span

    def flush(self, clock: float) -> list[ClosedWindow[P]]:
        """Emit the open window as partial (end of a replay), if it holds records."""
        if self.filled == 0:
            return []
        return self._close_pane(clock, partial=True)

    def close_open(self, clock: float) -> list[ClosedWindow[P]]:
        """Emit the open window as partial whatever its pane holds (for panes that hold more than the
        rows counted here, e.g. a model window's join outcome)."""
        return self._close_pane(clock, partial=True)

    def to_state(self, encode_pane: PaneEncoder[P]) -> dict[str, Any]:
        """JSON-able state (``schema_version`` 1): the open pane, its index, fill and start clock, and
        the closed panes a sliding window still needs (at most ``panes - 1``), each with its start
        clock. Panes are saved by ``encode_pane``.

        >>> from monitor.spec import WindowSpec
        >>> t = CountTrack(WindowSpec(name="w", kind="count", size=4, slide=2), new_pane=list)
        >>> _ = t.add(3, lambda pane, rows, clock: pane.append(rows.stop - rows.start), clock=5.0)
        >>> state = t.to_state(lambda pane: {"rows": pane})
        >>> state["pane"], state["filled"], state["closed"]
        ({'rows': [1]}, 1, [[{'rows': [2]}, 5.0]])
        >>> u = CountTrack(t.spec, new_pane=list)
        >>> u.load_state(state, lambda d: d["rows"])
        >>> u.to_state(lambda pane: {"rows": pane}) == state
        True
        """
        return {**_header(self.spec), "pane": encode_pane(self.pane), "pane_index": self.pane_index,
                "pane_start": _finite(self.pane_start, "a count pane's start clock"), "filled": self.filled,
                "closed": [[encode_pane(p), _finite(start, "a count pane's start clock")] for p, start in self.closed]}

    def load_state(self, state: dict[str, Any], decode_pane: PaneDecoder[P]) -> None:
        """Continue from :meth:`to_state`'s output (of a track of the same window spec).

        Raises :class:`~monitor.errors.StateError` (and changes nothing) for another version or window.
        """
        _check_state(self.spec, state)
        filled = int(state["filled"])
        if not 0 <= filled < self.pane_size or len(state["closed"]) > self.n_panes - 1:
            raise StateError(f"malformed state of count window {self.spec.name!r}")
        pane = decode_pane(state["pane"])
        closed = deque(((decode_pane(p), float(start)) for p, start in state["closed"]), maxlen=self.n_panes - 1)
        self.pane, self.closed, self.filled = pane, closed, filled
        self.pane_index, self.pane_start = int(state["pane_index"]), float(state["pane_start"])


class TimeTrack(Generic[P]):
    """Windows of ``seconds``, tumbling or sliding, over event or processing time.

    Panes are opened when a record falls in them and closed when the horizon
    (the clock, or the watermark minus the allowed lateness) passes their end.

    Examples
    --------
    >>> from monitor.spec import WindowSpec
    >>> t = TimeTrack(WindowSpec(name="t", kind="time", seconds=10), new_pane=list)
    >>> t.add(np.array([0.0, 12.0]), lambda pane, rows: pane.append(rows.tolist())).tolist()
    []
    >>> [(w.index, w.start, w.end, w.panes) for w in t.advance(20.0)]
    [(0, 0.0, 10.0, [[[0]]]), (1, 10.0, 20.0, [[[1]]])]
    """

    def __init__(self, spec: WindowSpec, *, new_pane: Callable[[], P]) -> None:
        self.spec = spec
        self.new_pane = new_pane
        self.pane_len = spec.pane
        self.n_panes = spec.panes
        self.open: dict[int, P] = {}
        self.closed: deque[tuple[int, P | None]] = deque(maxlen=max(self.n_panes - 1, 1))
        self.next_to_close: int | None = None  # lowest pane index not closed yet
        self.closed_any = False
        self.first_time: float | None = None  # earliest time routed before any pane closed
        self.skipped = 0

    def pane_of(self, t: NDArray[np.float64]) -> NDArray[np.int64]:
        return np.floor(t / self.pane_len).astype(np.int64)

    def add(self, t: NDArray[np.float64], update: Callable[[P, NDArray[np.intp]], None]) -> NDArray[np.intp]:
        """Route the rows (times ``t``; NaN = excluded) to their panes through ``update(pane, rows)``.

        Returns the rows that fell in panes already closed (they are left out).
        """
        ok = ~np.isnan(t)
        if not ok.any():
            return np.empty(0, dtype=np.intp)
        rows_all = np.flatnonzero(ok)
        panes = self.pane_of(t[ok])
        lowest = int(panes.min())
        if not self.closed_any:
            # Until a pane closes, an earlier record just opens an earlier pane.
            self.next_to_close = lowest if self.next_to_close is None else min(self.next_to_close, lowest)
            tmin = float(t[ok].min())
            self.first_time = tmin if self.first_time is None else min(self.first_time, tmin)
        dropped = np.empty(0, dtype=np.intp)
        assert self.next_to_close is not None
        if lowest < self.next_to_close:
            keep = panes >= self.next_to_close
            dropped = rows_all[~keep]
            rows_all, panes = rows_all[keep], panes[keep]
            if not panes.size:
                return dropped
        lo, hi = int(panes.min()), int(panes.max())
        uniq = [lo] if lo == hi else np.unique(panes).tolist()  # mostly one pane: no sort
        for k in uniq:
            k = int(k)
            rows = rows_all[panes == k] if len(uniq) > 1 else rows_all
            pane = self.open.get(k)
            if pane is None:
                pane = self.open[k] = self.new_pane()
            update(pane, rows)
        return dropped

    def advance(self, horizon: float) -> list[ClosedWindow[P]]:
        """Close every pane whose end is at or before ``horizon``; return the windows completed."""
        if self.next_to_close is None or not math.isfinite(horizon):
            return []
        last = math.floor(horizon / self.pane_len) - 1  # the highest pane index that may close
        out: list[ClosedWindow[P]] = []
        emitted_empty = 0
        k = self.next_to_close
        while k <= last:
            pane = self.open.pop(k, None)
            if pane is None and emitted_empty >= MAX_EMPTY_WINDOWS:
                # A long gap: jump to the next pane holding data instead of emitting every empty window.
                nxt = min([j for j in self.open if j > k] + [last + 1])
                self.skipped += nxt - k
                self.closed.clear()
                k = nxt
                continue
            out += self._emit(k, pane)
            self.closed_any = True
            emitted_empty = emitted_empty + 1 if pane is None else 0  # the cap is per gap
            k += 1
        self.next_to_close = k
        return out

    def fill(self, horizon: float) -> float | None:
        """How far the window that closes next has come: ``(horizon - its start) / its length``,
        clipped to ``[0, 1]``, where ``horizon`` is the time windows close against (the watermark
        minus the allowed lateness, or the processing-time clock). ``None`` before any record or
        without a finite horizon. Read-only.

        >>> from monitor.spec import WindowSpec
        >>> t = TimeTrack(WindowSpec(name="t", kind="time", seconds=10), new_pane=list)
        >>> t.fill(5.0) is None
        True
        >>> _ = t.add(np.array([12.0]), lambda pane, rows: None)
        >>> t.fill(14.5), t.fill(30.0)
        (0.45, 1.0)
        """
        if self.next_to_close is None or not math.isfinite(horizon):
            return None
        end = (self.next_to_close + 1) * self.pane_len
        return min(max((horizon - (end - self.spec.span)) / self.spec.span, 0.0), 1.0)

    def _emit(self, k: int, pane: P | None) -> list[ClosedWindow[P]]:
        out = []
        history = [p for (j, p) in self.closed if j > k - self.n_panes]
        panes = [*history, pane] if self.n_panes > 1 else [pane]
        index = k - self.n_panes + 1
        start = index * self.pane_len
        # A window that began before the first record seen is only partly covered (no volume check).
        partial = self.first_time is not None and start < self.first_time
        out.append(ClosedWindow(self.spec, index, start, start + self.spec.span, panes, partial=partial))
        if self.n_panes > 1:
            self.closed.append((k, pane))
        return out

    def to_state(self, encode_pane: PaneEncoder[P]) -> dict[str, Any]:
        """JSON-able state (``schema_version`` 1): the open panes by index (late records' counts
        included), the closed panes a sliding window still needs (``null`` for an empty one), the
        lowest pane not closed yet, the earliest time routed before the first close, and the panes
        skipped over gaps. Panes are saved by ``encode_pane``.

        >>> from monitor.spec import WindowSpec
        >>> t = TimeTrack(WindowSpec(name="t", kind="time", seconds=10, slide=5), new_pane=list)
        >>> _ = t.add(np.array([1.0, 7.0, 12.0]), lambda pane, rows: pane.extend(rows.tolist()))
        >>> _ = t.advance(10.0)
        >>> state = t.to_state(lambda pane: {"rows": pane})
        >>> state["open"], state["closed"], state["next_to_close"]
        ([[2, {'rows': [2]}]], [[1, {'rows': [1]}]], 2)
        >>> u = TimeTrack(t.spec, new_pane=list)
        >>> u.load_state(state, lambda d: d["rows"])
        >>> [(w.index, w.panes) for w in u.advance(15.0)] == [(w.index, w.panes) for w in t.advance(15.0)]
        True
        """
        return {**_header(self.spec),
                "open": [[k, encode_pane(p)] for k, p in self.open.items()],
                "closed": [[k, None if p is None else encode_pane(p)] for k, p in self.closed],
                "next_to_close": self.next_to_close, "closed_any": self.closed_any,
                "first_time": None if self.first_time is None else _finite(self.first_time, "a window's first time"),
                "skipped": self.skipped}

    def load_state(self, state: dict[str, Any], decode_pane: PaneDecoder[P]) -> None:
        """Continue from :meth:`to_state`'s output (of a track of the same window spec).

        Raises :class:`~monitor.errors.StateError` (and changes nothing) for another version or window.
        """
        _check_state(self.spec, state)
        if len(state["closed"]) > max(self.n_panes - 1, 1):
            raise StateError(f"malformed state of time window {self.spec.name!r}")
        opened = {int(k): decode_pane(p) for k, p in state["open"]}
        closed = deque(((int(k), None if p is None else decode_pane(p)) for k, p in state["closed"]),
                       maxlen=max(self.n_panes - 1, 1))
        nxt, first = state["next_to_close"], state["first_time"]
        self.open, self.closed = opened, closed
        self.next_to_close = None if nxt is None else int(nxt)
        self.closed_any = bool(state["closed_any"])
        self.first_time = None if first is None else float(first)
        self.skipped = int(state["skipped"])

    def flush(self) -> list[ClosedWindow[P]]:
        """Close every open pane (end of a replay); the windows are marked partial."""
        if not self.open:
            return []
        last = max(self.open)
        out = self.advance((last + 1) * self.pane_len)
        for w in out:
            w.partial = w.partial or w is out[-1]
        return out
