"""The ``streamdq`` command line: its commands, the demo and the local-Kafka launcher."""

from agents.cli.main import cli, main

__all__ = ["cli", "main"]
