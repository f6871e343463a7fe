"""Kafka plumbing shared by the worker and the command line: security settings, client configs and
connection checks, topic creation and topic-range reads."""

__all__: list[str] = []
