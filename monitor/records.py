"""Decoding and envelope validation of input messages.

A Kafka message carries one JSON record or a JSON array of records. Problems
are values, not exceptions: each bad record becomes a :class:`Rejection` with a
reason code from :data:`REASONS` and its original bytes, and its neighbours in
the same array are still accepted.

Examples
--------
>>> from monitor.spec import StreamSpec
>>> s = StreamSpec.model_validate({"name": "f", "windows": [{"name": "w", "kind": "count",
...     "size": 10}], "features": [{"name": "x", "type": "numeric"}]})
>>> ok, bad = decode_message(b'[{"record_id": 1, "event_time": 0, "x": 1.5}, {"x": 2}]', s)
>>> [r["x"] for r in ok], [b.reason for b in bad]
([1.5], ['missing_id'])
>>> decode_message(b'{"record_id": "a", "x": NaN}', s)[1][0].reason
'non_finite_number'
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, overload

import numpy as np
import orjson

from monitor.spec import StreamSpec
from monitor.times import MAX_EPOCH, MIN_EPOCH, iso_seconds, parse_times

__all__ = [
    "REASONS",
    "SCHEMA_VERSIONS",
    "ColumnBatch",
    "FromPartition",
    "Rejection",
    "check_record",
    "checked",
    "decode_message",
    "decode_messages",
    "encode_original",
    "event_time_seconds",
    "future_rows",
]

#: Record schema versions this release reads (the ``schema_version`` key is optional).
SCHEMA_VERSIONS = frozenset({1})

#: Every reason code a record can be dead-lettered with, and what it means.
REASONS: dict[str, str] = {
    "empty_message": "the message has no value (null or zero bytes)",
    "oversized": "the message is larger than the stream's max_message_bytes",
    "malformed_json": "the message is not valid JSON",
    "non_finite_number": "the message contains NaN or Infinity",
    "not_an_object": "the record is not a JSON object",
    "empty_batch": "the message is an empty JSON array",
    "missing_id": "the record lacks the stream's id field",
    "invalid_id": "the id is not a non-empty string or an integer",
    "invalid_event_time": "the event-time field is not an ISO-8601 string or epoch seconds",
    "unsupported_schema_version": "the record's schema_version is not one this release reads",
    "invalid_columns": "a columnar message whose columns are not equally long lists",
    "event_time_in_future": "the event time is further ahead of the worker's clock than time.max_future_seconds",
    "processing_error": "the engine raised on this record (a streamdq bug: please report it)",
}


@dataclass(frozen=True, slots=True)
class FromPartition:
    """A decoded record (or its rejection) with the input partition it was read from (a replay of a Kafka topic:
    each partition's records update that partition's windows, as in a worker)."""

    partition: int
    item: Any  # dict[str, Any] | Rejection


@dataclass(frozen=True, slots=True)
class Rejection:
    """A record that cannot be monitored, bound for the dead-letter topic.

    ``original`` holds the bytes as received (for a bad element of an array,
    that element re-encoded as JSON); ``index`` is its position in the array.
    """

    reason: str
    detail: str
    original: bytes
    index: int | None = None


class _NonFinite(ValueError):
    pass


def _refuse_constant(name: str) -> Any:
    raise _NonFinite(name)


#: orjson's nesting limit: deeper JSON is rejected (a parser must bound its recursion).
MAX_DEPTH = 1024


def _parse(value: bytes) -> tuple[Any, Rejection | None]:
    try:
        return orjson.loads(value), None
    except orjson.JSONDecodeError as exc:
        message, pos = str(exc), exc.pos
    # orjson rejects NaN/Infinity with a generic message; tell the two cases apart.
    if "infinity" in message:
        return None, Rejection("non_finite_number", f"a number beyond the double range (it would be infinite) "
                               f"at character {pos}", value)
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError as exc:  # orjson says "str is not valid UTF-8: surrogates not allowed"
        hint = "; it looks like UTF-16" if value[:2] in (b"\xff\xfe", b"\xfe\xff") else ""
        return None, Rejection("malformed_json", f"value is not valid UTF-8 "
                               f"(byte 0x{value[exc.start]:02x} at offset {exc.start}{hint})", value)
    if text.startswith("\ufeff"):
        return None, Rejection("malformed_json", "value starts with a UTF-8 byte order mark (bytes ef bb bf); "
                               "JSON messages must not carry one", value)
    try:
        json.loads(text, parse_constant=_refuse_constant)
    except _NonFinite as exc:
        return None, Rejection("non_finite_number", f"literal {exc} is not allowed", value)
    except (ValueError, RecursionError):
        pass
    if "depth limit" in message:
        message = f"JSON nested deeper than {MAX_DEPTH} levels (at character {pos})"
    return None, Rejection("malformed_json", message, value)


def encode_original(element: Any, message: bytes) -> bytes:
    """The original of one bad element of an array (or row of a columnar batch): re-encoded as JSON.

    orjson reads JSON nested up to 1024 levels but writes at most 255, so a deeper element is
    written by the standard library; one too deep even for that (its recursion limit) is
    represented by the whole ``message``.
    """
    try:
        return orjson.dumps(element, default=str)  # str: values of records not read from JSON (a DataFrame's)
    except TypeError:
        pass
    try:
        return json.dumps(element, ensure_ascii=False, separators=(",", ":"), default=str).encode("utf-8")
    except (RecursionError, ValueError):
        return message


def event_time_seconds(value: Any) -> float | None:
    """Epoch seconds of an event-time value, or ``None`` if it is not one.

    Accepts epoch seconds (int or float) and ISO-8601 strings; a string without
    a zone is taken as UTC.

    >>> event_time_seconds("1970-01-01T00:01:00Z"), event_time_seconds(5), event_time_seconds("x")
    (60.0, 5.0, None)
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        try:
            f = float(value)
        except OverflowError:  # an int beyond float range
            return None
    elif isinstance(value, str):
        f = iso_seconds(value)
    else:
        return None
    return f if MIN_EPOCH <= f <= MAX_EPOCH else None  # NaN fails both comparisons


def checked(records: Iterable[Any], stream: StreamSpec) -> Iterator[dict[str, Any] | Rejection]:
    """The records as the worker takes them: each checked against the envelope of ``stream``, one that
    fails it becoming a :class:`Rejection` with its reason and its JSON (rejections pass through).

    >>> from monitor.spec import StreamSpec
    >>> s = StreamSpec.model_validate({"name": "f", "windows": [{"name": "w", "kind": "count", "size": 9}],
    ...                                "features": [{"name": "x", "type": "numeric"}]})
    >>> [r if isinstance(r, dict) else (r.reason, r.original) for r in checked([{"record_id": 1}, {"x": 2}], s)]
    [{'record_id': 1}, ('missing_id', b'{"x":2}')]
    """
    for rec in records:
        if isinstance(rec, FromPartition):
            inner = rec.item
            if not isinstance(inner, Rejection):
                problem = check_record(inner, stream)
                if problem is not None:
                    inner = Rejection(problem[0], problem[1], encode_original(inner, b""))
            yield FromPartition(rec.partition, inner)  # type: ignore[misc]
            continue
        if isinstance(rec, Rejection):
            yield rec
            continue
        problem = check_record(rec, stream)
        yield rec if problem is None else Rejection(problem[0], problem[1], encode_original(rec, b""))


def check_record(rec: Any, stream: StreamSpec) -> tuple[str, str] | None:
    """``(reason, detail)`` if ``rec`` fails the record envelope of ``stream``, else ``None``."""
    if not isinstance(rec, dict):
        return "not_an_object", f"expected a JSON object, got {type(rec).__name__}"
    version = rec.get("schema_version", 1)
    # True == 1 in Python, and lists/dicts are unhashable; 1.0 is 1 in JSON Schema too.
    if isinstance(version, bool) or not isinstance(version, int | float) or version not in SCHEMA_VERSIONS:
        return "unsupported_schema_version", f"schema_version {version!r} (reads {sorted(SCHEMA_VERSIONS)})"
    rid = rec.get(stream.id_field)
    if rid is None:
        return "missing_id", f"field {stream.id_field!r} is missing or null"
    if isinstance(rid, bool) or not (isinstance(rid, int) or (isinstance(rid, str) and rid)):
        return "invalid_id", f"field {stream.id_field!r} must be a non-empty string or an integer"
    if rec.get(stream.time_field) is not None and event_time_seconds(rec[stream.time_field]) is None:
        return "invalid_event_time", f"field {stream.time_field!r} = {rec[stream.time_field]!r:.80}"
    return None


class ColumnBatch(Sequence[dict[str, Any]]):
    """Records given column-wise: ``{"columns": {"record_id": [...], "age": [...], ...}}``.

    The third message form (besides one object and an array of objects): a
    producer that batches pays neither the per-record object nor, in the
    engine, the row-to-column transposition. Behaves as a sequence of row
    dicts for code that wants rows; :meth:`monitor.Monitor.process` uses
    the columns directly.

    Examples
    --------
    >>> b = ColumnBatch({"record_id": [1, 2], "x": [0.5, None]})
    >>> len(b), b[1]
    (2, {'record_id': 2, 'x': None})
    """

    __slots__ = ("columns", "n", "times")

    def __init__(self, columns: dict[str, list[Any]], *, times: np.ndarray | None = None) -> None:
        self.columns = columns
        self.n = len(next(iter(columns.values()))) if columns else 0
        #: Event times already parsed while decoding (epoch seconds, NaN where absent), if any.
        self.times = times

    def __len__(self) -> int:
        return self.n

    @overload
    def __getitem__(self, i: int) -> dict[str, Any]: ...

    @overload
    def __getitem__(self, i: slice) -> list[dict[str, Any]]: ...

    def __getitem__(self, i: int | slice) -> dict[str, Any] | list[dict[str, Any]]:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(self.n))]
        return {k: v[i] for k, v in self.columns.items()}

    @classmethod
    def concat(cls, batches: Sequence[ColumnBatch]) -> ColumnBatch:
        """One batch of the rows of ``batches`` in order (they have the same columns).

        >>> b = ColumnBatch.concat([ColumnBatch({"record_id": [1], "x": [0.5]}),
        ...                         ColumnBatch({"x": [2.0], "record_id": [2]})])
        >>> b.columns, b.times
        ({'record_id': [1, 2], 'x': [0.5, 2.0]}, None)
        """
        if len(batches) == 1:
            return batches[0]
        names = list(batches[0].columns)
        if any(set(b.columns) != set(names) for b in batches):
            raise ValueError("column batches with different columns cannot be concatenated")
        columns = {k: [v for b in batches for v in b.columns[k]] for k in names}
        parts = [b.times for b in batches if b.times is not None]
        times: np.ndarray | None = np.concatenate(parts) if len(parts) == len(batches) else None
        return cls(columns, times=times)

    def keep(self, rows: list[int]) -> ColumnBatch:
        """The batch restricted to ``rows`` (in order)."""
        times = self.times[rows] if self.times is not None else None
        return ColumnBatch({k: [v[i] for i in rows] for k, v in self.columns.items()}, times=times)


def _decode_columns(data: dict[str, Any], value: bytes, stream: StreamSpec) -> tuple[ColumnBatch | list[Any],
                                                                                     list[Rejection]]:
    cols = data.get("columns")
    version = data.get("schema_version", 1)
    if isinstance(version, bool) or not isinstance(version, int | float) or version not in SCHEMA_VERSIONS:
        return [], [Rejection("unsupported_schema_version", f"schema_version {version!r:.40}", value)]
    extra = set(data) - {"columns", "schema_version"}
    if not isinstance(cols, dict) or not cols or extra or not all(isinstance(c, list) for c in cols.values()) \
            or len({len(c) for c in cols.values()}) != 1:
        return [], [Rejection("invalid_columns", "'columns' must map names to lists of one common length"
                              + (f"; unknown top-level keys {sorted(extra)}" if extra else ""), value)]
    batch = ColumnBatch(cols)
    if batch.n == 0:
        return [], [Rejection("empty_batch", "the columns hold no records", value)]
    bad: list[Rejection] = []
    ids = cols.get(stream.id_field)
    problems: dict[int, tuple[str, str]] = {}
    versions = cols.get("schema_version")  # a per-row version column: each row checked as check_record does
    if versions is not None:
        for i, v in enumerate(versions):
            if isinstance(v, bool) or not isinstance(v, int | float) or v not in SCHEMA_VERSIONS:
                problems[i] = ("unsupported_schema_version",
                               f"schema_version {v!r:.40} (reads {sorted(SCHEMA_VERSIONS)})")
    if ids is None:
        for i in range(batch.n):
            problems.setdefault(i, ("missing_id", f"column {stream.id_field!r} is missing"))
    elif not set(map(type, ids)) <= {str, int} or "" in ids:
        for i, rid in enumerate(ids):
            if rid is None:
                problems.setdefault(i, ("missing_id", f"field {stream.id_field!r} is missing or null"))
            elif isinstance(rid, bool) or not (isinstance(rid, int) or (isinstance(rid, str) and rid)):
                problems.setdefault(i, ("invalid_id",
                                        f"field {stream.id_field!r} must be a non-empty string or an integer"))
    times = cols.get(stream.time_field)
    if times is not None:
        parsed = batch.times = parse_times(times)
        for i in np.flatnonzero(np.isnan(parsed)).tolist():
            if times[i] is not None and i not in problems:
                problems[i] = ("invalid_event_time", f"field {stream.time_field!r} = {times[i]!r:.80}")
    if not problems:
        return batch, bad
    for i in sorted(problems):
        reason, detail = problems[i]
        bad.append(Rejection(reason, detail, encode_original(batch[i], value), index=i))
    keep = [i for i in range(batch.n) if i not in problems]
    return (batch.keep(keep) if keep else []), bad


class RecordBatch(list):  # type: ignore[type-arg]
    """A list of records whose event times were already parsed while validating them."""

    times: np.ndarray | None = None


def _valid_batch(data: list[Any], stream: StreamSpec) -> RecordBatch | None:
    """The whole array, when every record passes the envelope checks (checked column-wise, the
    common case); ``None`` when some record needs the record-by-record path to say why."""
    if set(map(type, data)) != {dict}:
        return None
    if any("schema_version" in r for r in data):
        return None
    ids = [r.get(stream.id_field) for r in data]
    if not set(map(type, ids)) <= {str, int} or "" in ids:
        return None
    raw = [r.get(stream.time_field) for r in data]
    times = parse_times(raw)
    bad = np.isnan(times)
    if bad.any() and any(raw[i] is not None for i in np.flatnonzero(bad).tolist()):
        return None
    batch = RecordBatch(data)
    batch.times = times
    return batch


def decode_messages(values: Sequence[bytes], stream: StreamSpec) -> RecordBatch | None:
    """Single-record messages decoded together: their records, in order, when every message is one valid
    record (the common case), checked column-wise at once; ``None`` when any is not, and then each is
    decoded on its own with :func:`decode_message` (which says why). Each value is parsed on its own,
    so the answer is always what :func:`decode_message` would give message by message.

    >>> from monitor.spec import MonitorSpec
    >>> stream = MonitorSpec.model_validate({"version": 1, "name": "t", "streams": [{
    ...     "name": "s", "windows": [{"name": "w", "kind": "count", "size": 3}],
    ...     "features": [{"name": "x", "type": "numeric"}]}]}).streams[0]
    >>> [r["record_id"] for r in decode_messages([b'{"record_id": 1}', b'{"record_id": "b"}'], stream)]
    [1, 'b']
    >>> decode_messages([b'{"record_id": 1}', b'{"no_id": 2}'], stream) is None
    True
    """
    limit = stream.max_message_bytes
    try:
        data = [orjson.loads(v) for v in values if v and len(v) <= limit]
    except orjson.JSONDecodeError:
        return None
    if len(data) != len(values) or not data:
        return None
    return _valid_batch(data, stream)


def decode_message(value: bytes | None, stream: StreamSpec) -> tuple[Sequence[dict[str, Any]], list[Rejection]]:
    """Decode one message into accepted records and rejections.

    Three forms: one JSON object, a JSON array of objects, or a columnar
    ``{"columns": {...}}`` object (returned as a :class:`ColumnBatch`). Never
    raises for bad input. Every record of the message ends up in exactly one
    of the two results, so ``accepted + rejected`` always equals what was sent.
    """
    if not value:
        return [], [Rejection("empty_message", "message value is empty", value or b"")]
    if len(value) > stream.max_message_bytes:
        return [], [
            Rejection("oversized", f"{len(value)} bytes > max_message_bytes {stream.max_message_bytes}", value)
        ]
    data, rejection = _parse(value)
    if rejection is not None:
        return [], [rejection]
    if isinstance(data, list):
        if not data:
            return [], [Rejection("empty_batch", "the JSON array holds no records", value)]
        fast = _valid_batch(data, stream)
        if fast is not None:
            return fast, []
        ok: list[dict[str, Any]] = []
        bad: list[Rejection] = []
        for i, rec in enumerate(data):
            problem = check_record(rec, stream)
            if problem is None:
                ok.append(rec)
            else:
                bad.append(Rejection(problem[0], problem[1], encode_original(rec, value), index=i))
        return ok, bad
    if isinstance(data, dict) and "columns" in data and stream.id_field not in data:
        return _decode_columns(data, value, stream)
    problem = check_record(data, stream)
    if problem is not None:
        return [], [Rejection(problem[0], problem[1], value)]
    return [data], []


def future_rows(records: Sequence[dict[str, Any]] | ColumnBatch, stream: StreamSpec, now: float) -> list[int]:
    """The rows of a decoded batch whose event time is more than ``time.max_future_seconds`` ahead of ``now``
    (a wall clock): a worker dead-letters them as ``event_time_in_future`` instead of letting one record
    move its partition's watermark (and every window after it) into the future.

    >>> from monitor.spec import StreamSpec
    >>> s = StreamSpec.model_validate({"name": "s", "windows": [{"name": "w", "kind": "count", "size": 2}],
    ...                                "features": [{"name": "x", "type": "numeric"}]})
    >>> future_rows([{"record_id": 1, "event_time": 100.0}, {"record_id": 2, "event_time": 1e10}], s, now=100.0)
    [1]
    """
    limit = stream.time.max_future_seconds
    if limit is None or stream.time.mode != "event":
        return []
    times = getattr(records, "times", None)
    if times is None:
        if isinstance(records, ColumnBatch):
            raw = records.columns.get(stream.time_field)
            values: list[Any] = list(raw) if raw is not None else []
        else:
            values = [r.get(stream.time_field) for r in records]
        parsed = [event_time_seconds(v) if v is not None else None for v in values]
        times = np.array([np.nan if t is None else t for t in parsed], dtype=np.float64)
    ahead = np.asarray(times, dtype=np.float64) > now + limit
    return np.flatnonzero(ahead).tolist() if ahead.any() else []
