"""Tumbling windows by record count or by processing time."""

from __future__ import annotations

import math
from dataclasses import dataclass

from monitor.spec import WindowSpec

__all__ = ["TumblingWindow"]


@dataclass(slots=True)
class TumblingWindow:
    """Decides when one tumbling window closes.

    ``count`` windows close after ``size`` records; ``time`` windows cover
    ``[k * seconds, (k + 1) * seconds)`` of the clock and close when the clock
    passes the end (on the next record or on :meth:`expired`). The window holds
    no records, only its index and bounds, so its memory is constant.

    Examples
    --------
    >>> from monitor.spec import WindowSpec
    >>> w = TumblingWindow(WindowSpec(name="w", kind="count", size=2), now=0.0)
    >>> [w.add(t) for t in (1.0, 2.0)]
    [False, True]
    >>> t = TumblingWindow(WindowSpec(name="t", kind="time", seconds=10), now=5.0)
    >>> t.start, t.end, t.expired(9.9), t.expired(10.0)
    (0.0, 10.0, False, True)
    """

    spec: WindowSpec
    index: int
    start: float
    end: float | None
    count: int

    def __init__(self, spec: WindowSpec, *, now: float, index: int = 0) -> None:
        self.spec = spec
        self.count = 0
        if spec.kind == "time":
            k = math.floor(now / spec.seconds)  # type: ignore[operator]
            self.index, self.start, self.end = k, k * spec.seconds, (k + 1) * spec.seconds  # type: ignore[operator]
        else:
            self.index, self.start, self.end = index, now, None

    def add(self, now: float) -> bool:
        """Count one record; ``True`` when it completes a count window."""
        self.count += 1
        if self.spec.kind == "count":
            self.end = now
            return self.count >= self.spec.size  # type: ignore[operator]
        return False

    def expired(self, now: float) -> bool:
        """``True`` when a time window's end has passed."""
        return self.end is not None and self.spec.kind == "time" and now >= self.end

    def next(self, now: float) -> TumblingWindow:
        return TumblingWindow(self.spec, now=now, index=self.index + 1)
