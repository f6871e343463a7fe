"""The streamdq exception tree.

Every error streamdq raises on purpose derives from :class:`StreamdqError` and
also from the builtin a caller would naturally catch::

    StreamdqError
    ├── ConfigError(ValueError)        a monitor spec or CLI argument is wrong
    ├── ProfileError(ValueError)       a reference profile is unreadable or mismatched
    ├── StateError(ValueError)         a state snapshot cannot be taken or restored
    ├── KafkaLauncherError(RuntimeError) the local broker could not be fetched/started
    └── KafkaUnavailableError(ConnectionError) the cluster could not be reached

Record-level problems (a malformed message, a missing id) are *not*
exceptions: they are :class:`monitor.records.Rejection` values carrying a
reason code, routed to the dead-letter topic.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "KafkaLauncherError",
    "ProfileError",
    "StateError",
    "StreamdqError",
]


class StreamdqError(Exception):
    """Root of all errors raised on purpose by streamdq."""


class ConfigError(StreamdqError, ValueError):
    """A monitor spec (or a command-line argument) is invalid.

    ``problems`` holds one ``(path, message)`` pair per problem, where path
    is the dotted location of the bad key, e.g. ``streams[0].features[1].type``.
    """

    def __init__(self, message: str, problems: list[tuple[str, str]] | None = None) -> None:
        super().__init__(message)
        self.problems: list[tuple[str, str]] = problems or []

    def __str__(self) -> str:
        if not self.problems:
            return super().__str__()
        lines = [super().__str__()]
        lines += [f"  {path}: {msg}" for path, msg in self.problems]
        return "\n".join(lines)


class ProfileError(StreamdqError, ValueError):
    """A reference profile cannot be built, read, or does not match the spec."""


class StateError(StreamdqError, ValueError):
    """A state snapshot cannot be taken (e.g. records are still buffered) or restored (an unknown
    ``schema_version``, or a state saved under another spec or reference)."""


class KafkaLauncherError(StreamdqError, RuntimeError):
    """The local Apache Kafka broker could not be fetched, started or stopped."""


class KafkaUnavailableError(StreamdqError, ConnectionError):
    """The Kafka cluster could not be reached (or refused a request)."""
