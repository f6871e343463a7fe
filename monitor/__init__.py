"""streamdq's engine: pure, synchronous statistics, checks, drift and alert rules.

Nothing here imports Kafka or Faust (a test enforces it), so the engine can be
unit tested, replayed offline over a file and benchmarked alone. The entry
point is :class:`Monitor` (``Monitor.from_spec(...)``); it returns
:class:`~monitor.report.Report` values, or :class:`Results` from a batch run.
"""

from monitor.engine import Monitor
from monitor.results import Results

__all__ = ["Monitor", "Results"]
