"""Windows over a stream."""

from monitor.windows.tumbling import TumblingWindow

__all__ = ["TumblingWindow"]
