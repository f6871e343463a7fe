"""Building confluent-kafka clients with the security settings, and failing fast and clearly when they
cannot connect.

librdkafka retries a refused password or an untrusted certificate forever, reports it only to an
``error_cb`` (or its log), and a blocking call then ends with ``KafkaError{code=_TRANSPORT,...}``.
:func:`check_connection` does one metadata round trip first and turns what went wrong into one line a
person can act on (:func:`explain`), raised as :class:`~monitor.errors.KafkaUnavailableError`:
at once for authentication and TLS failures (they do not heal), after ``timeout`` for the rest.

Examples
--------
>>> from confluent_kafka import KafkaError
>>> line = explain(KafkaError(KafkaError._TRANSPORT, "Connect to ipv4#127.0.0.1:1 failed: Connection refused "
...                "(after 0ms in state CONNECT)"), bootstrap="127.0.0.1:1", security=KafkaSecurity())
>>> line.split(": ")[0]
'cannot reach Kafka at 127.0.0.1:1 (PLAINTEXT)'
>>> line.split(": ", 1)[1]
'Connect to ipv4#127.0.0.1:1 failed: Connection refused; check KAFKA_BOOTSTRAP and STREAMDQ_KAFKA_SECURITY_PROTOCOL'
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient

from agents.kafka.security import KafkaSecurity
from monitor.errors import KafkaUnavailableError

__all__ = ["ErrorLog", "check_connection", "client_config", "explain"]

#: Errors no retry fixes: the connection check stops at the first one.
PERMANENT = frozenset({KafkaError._AUTHENTICATION, KafkaError.SASL_AUTHENTICATION_FAILED, KafkaError._SSL})
_DETAIL = re.compile(r"^\S+://\S+/(?:bootstrap|\d+): |\s*\(after \d+ms in state \w+[^)]*\)$")


def client_config(bootstrap: str, security: KafkaSecurity, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A confluent-kafka client config: ``bootstrap.servers``, the security settings, then ``extra``."""
    return {"bootstrap.servers": bootstrap, **security.confluent_config(), **(extra or {})}


class ErrorLog:
    """An ``error_cb`` that keeps the first permanent error and the latest other one (two slots: bounded)."""

    def __init__(self) -> None:
        self.permanent: KafkaError | None = None
        self.last: KafkaError | None = None

    def __call__(self, error: KafkaError) -> None:
        if error.code() in PERMANENT:
            self.permanent = self.permanent or error
        elif error.code() != KafkaError._ALL_BROKERS_DOWN:  # says less than the error before it
            self.last = error


def _detail(error: KafkaError) -> str:
    """librdkafka's message without the broker prefix and the ``(after Nms in state X)`` suffix."""
    return _DETAIL.sub("", error.str()).strip()


def explain(error: KafkaError | None, *, bootstrap: str, security: KafkaSecurity) -> str:
    """One line saying what went wrong connecting to ``bootstrap`` and which setting to check (no secrets)."""
    code = error.code() if error is not None else None
    if code in (KafkaError._AUTHENTICATION, KafkaError.SASL_AUTHENTICATION_FAILED):
        return (f"Kafka authentication failed for user {security.username!r} ({security.mechanism}) at {bootstrap}: "
                f"check STREAMDQ_KAFKA_SASL_USERNAME, {security.password_source} and STREAMDQ_KAFKA_SASL_MECHANISM")
    if code == KafkaError._SSL and error is not None and "certificate verify failed" in error.str():
        return (f"the TLS certificate of Kafka at {bootstrap} is not trusted: check STREAMDQ_KAFKA_SSL_CAFILE "
                f"({security.cafile or 'unset: the system CAs'}) and that the broker's name matches its certificate")
    if code == KafkaError._SSL and error is not None:
        return (f"TLS handshake with Kafka at {bootstrap} failed ({_detail(error)}): check the STREAMDQ_KAFKA_SSL_* "
                "settings")
    reason = _detail(error) if error is not None else "no broker answered"
    return (f"cannot reach Kafka at {bootstrap} ({security.describe()}): {reason}; check KAFKA_BOOTSTRAP and "
            "STREAMDQ_KAFKA_SECURITY_PROTOCOL")


def check_connection(bootstrap: str, security: KafkaSecurity, *, timeout: float = 30.0) -> None:
    """One metadata round trip to ``bootstrap``; raise :class:`KafkaUnavailableError` with :func:`explain`'s
    line at the first authentication or TLS failure, or when no broker answered within ``timeout`` seconds."""
    errors = ErrorLog()
    admin = AdminClient(client_config(bootstrap, security, {"error_cb": errors, "log_level": 0,
                                                            "socket.connection.setup.timeout.ms": 5000}))
    deadline = time.monotonic() + timeout
    failure: KafkaError | None = None
    while True:
        try:
            if admin.list_topics(timeout=max(0.1, min(1.0, deadline - time.monotonic()))).brokers:
                return
        except KafkaException as exc:
            failure = exc.args[0]  # "Failed to get metadata": the error_cb knows why
        admin.poll(0)  # serves error_cb
        if errors.permanent is not None:
            raise KafkaUnavailableError(explain(errors.permanent, bootstrap=bootstrap, security=security))
        if time.monotonic() >= deadline:
            raise KafkaUnavailableError(explain(errors.last or failure, bootstrap=bootstrap, security=security))
