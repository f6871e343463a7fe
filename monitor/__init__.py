"""streamdq's engine: pure, synchronous statistics, checks, drift and alert rules.

Nothing here imports Kafka or Faust (a test enforces it), so the engine can be
unit tested, replayed offline over a file and benchmarked alone.
"""

__all__: list[str] = []
