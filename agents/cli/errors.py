"""How every ``streamdq`` command reports user mistakes: a message and an exit code, no traceback.

Kafka client errors are turned into one line saying what is wrong in words (the raw librdkafka
text, ``KafkaError{code=_TRANSPORT,val=-195,str="..."}``, names no cause a user can act on).
"""

from __future__ import annotations

import functools
import os
import re
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from monitor.errors import ConfigError, KafkaUnavailableError, StreamdqError

__all__ = ["friendly", "kafka_error_line"]

F = TypeVar("F", bound=Callable[..., Any])

#: librdkafka error codes meaning that no broker could be reached (or none answered in time).
UNREACHABLE = frozenset({"_TRANSPORT", "_ALL_BROKERS_DOWN", "_RESOLVE", "_TIMED_OUT", "_TIMED_OUT_QUEUE",
                         "_MSG_TIMED_OUT", "_NOENT"})
#: Codes meaning a broker answered but the connection was refused at the security layer.
REFUSED = frozenset({"_AUTHENTICATION", "_SSL", "SASL_AUTHENTICATION_FAILED", "TOPIC_AUTHORIZATION_FAILED",
                     "CLUSTER_AUTHORIZATION_FAILED", "GROUP_AUTHORIZATION_FAILED", "UNSUPPORTED_SASL_MECHANISM",
                     "ILLEGAL_SASL_STATE"})

_RAW = re.compile(r'KafkaError\{code=(?P<code>[A-Z0-9_]+),val=-?\d+,str="(?P<text>.*?)"\}', re.DOTALL)
_AT = re.compile(r"cannot reach Kafka at (?P<where>\S+?):\s")
#: librdkafka's own wording of the usual causes, and what to say instead.
_CAUSES = (
    ("Connection refused", "connection refused: nothing listens there"),
    ("Name or service not known", "the host name does not resolve"),
    ("Failed to resolve", "the host name does not resolve"),
    ("timed out", "no answer in time"),
    ("Broker transport failure", "no broker answered"),
    ("All broker connections are down", "no broker answered"),
)


def _parts(error: Any) -> tuple[str | None, str]:
    """``(code name, text)`` of a ``KafkaError``, a ``KafkaException`` or their string form."""
    inner = error.args[0] if isinstance(error, Exception) and error.args else error
    if hasattr(inner, "name") and hasattr(inner, "str"):  # a confluent_kafka.KafkaError
        return str(inner.name()), str(inner.str())
    text = str(inner)
    m = _RAW.search(text)
    return (m["code"], m["text"]) if m else (None, text)


def kafka_error_line(error: Any, bootstrap: str | None = None) -> str:
    """One line for a Kafka client error: ``cannot reach Kafka at HOST:PORT (cause); ...`` when no broker
    answered, a short rewording otherwise; never the raw ``KafkaError{...}`` text.

    Examples
    --------
    >>> raw = 'KafkaError{code=_TRANSPORT,val=-195,str="Failed to get metadata: Local: Broker transport failure"}'
    >>> kafka_error_line(raw, "127.0.0.1:1")  # doctest: +NORMALIZE_WHITESPACE
    'cannot reach Kafka at 127.0.0.1:1 (no broker answered); is the broker running, and do KAFKA_BOOTSTRAP or
     --bootstrap name it?'
    >>> kafka_error_line('KafkaError{code=POLICY_VIOLATION,val=44,str="Broker: Policy violation"}')
    'Kafka refused the request: Broker: Policy violation (POLICY_VIOLATION)'
    """
    code, text = _parts(error)
    where = f" at {bootstrap}" if bootstrap else ""
    if code in UNREACHABLE or (code is None and "transport failure" in text):
        cause = next((said for raw, said in _CAUSES if raw.lower() in text.lower()), "no broker answered")
        return (f"cannot reach Kafka{where} ({cause}); is the broker running, and do KAFKA_BOOTSTRAP or "
                "--bootstrap name it?")
    text = text.removeprefix("Local: ")
    if code in REFUSED:
        return f"Kafka{where} refused the connection or request: {text} ({code}); check the security settings"
    return f"Kafka{where} refused the request: {text}" + (f" ({code})" if code else "")


def _kafka_unavailable(exc: KafkaUnavailableError) -> str:
    """Reword ``cannot reach Kafka at HOST:PORT: KafkaError{...}`` (raised by ``agents.kafka``)."""
    text = str(exc)
    if "KafkaError{" not in text:
        return text
    m = _AT.search(text)
    line = kafka_error_line(text, m["where"] if m else None)
    if m is None or line.startswith("cannot reach"):
        return line
    return f"cannot reach Kafka at {m['where']}: {line}"


def _is_kafka_exception(exc: BaseException) -> bool:
    from confluent_kafka import KafkaException  # only when a command failed: keeps every start fast

    return isinstance(exc, KafkaException)


def friendly(fn: F) -> F:
    """Turn :class:`ConfigError` into exit 2 (listing each bad key) and other
    :class:`StreamdqError` into exit 1, with the message on stderr; Kafka client
    errors (unreachable broker and the like) also exit 1, with one readable line."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ConfigError as exc:
            click.secho(f"error: {exc.args[0]}", fg="red", err=True)
            for path, msg in exc.problems:
                click.echo(f"  {click.style(path, bold=True)}: {msg}", err=True)
            sys.exit(2)
        except KafkaUnavailableError as exc:
            click.secho(f"error: {_kafka_unavailable(exc)}", fg="red", err=True)
            sys.exit(1)
        except StreamdqError as exc:
            click.secho(f"error: {exc}", fg="red", err=True)
            sys.exit(1)
        except Exception as exc:
            if not _is_kafka_exception(exc):
                raise
            where = kwargs.get("bootstrap") or os.environ.get("KAFKA_BOOTSTRAP")
            click.secho(f"error: {kafka_error_line(exc, where)}", fg="red", err=True)
            sys.exit(1)

    return wrapper  # type: ignore[return-value]
