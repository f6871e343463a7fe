"""Kafka plumbing shared by the worker and the command line: topic creation and topic-range reads."""

__all__: list[str] = []
