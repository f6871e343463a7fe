"""Windows over a stream: count and time, tumbling and sliding (pane based)."""

from monitor.windows.track import MAX_EMPTY_WINDOWS, ClosedWindow, CountTrack, TimeTrack

__all__ = ["MAX_EMPTY_WINDOWS", "ClosedWindow", "CountTrack", "TimeTrack"]
