"""The worker: the Faust app, its agents, checkpoints, web pages and metrics."""

__all__: list[str] = []
