"""The dead-letter envelope (``schemas/deadletter.schema.json``)."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any

import orjson

from monitor.records import REASONS, Rejection

__all__ = ["DEADLETTER_SCHEMA_VERSION", "MAX_ORIGINAL_BYTES", "deadletter_envelope"]

DEADLETTER_SCHEMA_VERSION = 1

#: Original bytes kept in an envelope at most (an oversized message is cut here,
#: so the dead letter itself always fits the topic's message size limit).
MAX_ORIGINAL_BYTES = 256 * 1024


def deadletter_envelope(*, stream: str, topic: str, partition: int, offset: int,
                        timestamp_ms: int | None, rejection: Rejection) -> bytes:
    """JSON bytes carrying the reason, the source position and the original bytes (base64).

    Examples
    --------
    >>> env = orjson.loads(deadletter_envelope(stream="f", topic="f", partition=0, offset=7,
    ...     timestamp_ms=None, rejection=Rejection("malformed_json", "bad", b"{oops")))
    >>> env["reason"], env["source"]["offset"], base64.b64decode(env["original_b64"])
    ('malformed_json', 7, b'{oops')
    """
    doc: dict[str, Any] = {
        "schema_version": DEADLETTER_SCHEMA_VERSION,
        "stream": stream,
        "reason": rejection.reason,
        "reason_text": REASONS.get(rejection.reason, rejection.reason),
        "detail": rejection.detail[:1000],
        "source": {"topic": topic, "partition": partition, "offset": offset, "timestamp_ms": timestamp_ms},
        "array_index": rejection.index,
        "original_size": len(rejection.original),
        "original_truncated": len(rejection.original) > MAX_ORIGINAL_BYTES,
        "original_b64": base64.b64encode(rejection.original[:MAX_ORIGINAL_BYTES]).decode("ascii"),
        "deadlettered_at": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
    }
    return orjson.dumps(doc)
