"""A corpus of bad (and odd but acceptable) input messages, each with its documented outcome.

Every :class:`Case` is one Kafka message (``value`` is ``None`` for a tombstone) and says what a
worker must do with it: how many records it processes, and the dead-letter reason of each record
it dead-letters (in message order). ``detail`` is text the dead letter's detail must contain.
``compression`` names the producer ``compression.type`` to send it with. ``stream`` is the stream
whose topic it goes to: ``"overflow"`` isolates a case known to break the engine (see
:data:`KNOWN_BUGS`), so its failure cannot spill over to the batches of the others.

``tests/integration/test_corpus.py`` sends the corpus through a real worker on a real broker,
interleaved with good records; ``tests/unit/test_decode_properties.py`` checks the same
expectations against :func:`monitor.records.decode_message` alone.

Records here use the features of ``deploy/monitor.yaml`` (``record_id``, ``event_time``, ``age``,
``income``, ``country``, ``device``, ...), with ``max_message_bytes`` 1 MiB.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

__all__ = ["CASES", "KNOWN_BUGS", "MAX_MESSAGE_BYTES", "Case", "good"]

MAX_MESSAGE_BYTES = 1_048_576

#: Cases that fail today because of a known engine bug (case name -> why). The expectation stays the
#: documented behaviour; the integration test marks them ``xfail(strict=False)``.
#: None today: 1.7e308 (which made merging window panes raise OverflowError) is processed since the
#: statistics are robust to any finite double.
KNOWN_BUGS: dict[str, str] = {}


@dataclass(frozen=True)
class Case:
    name: str
    value: bytes | None
    processed: int = 0
    deadletters: tuple[str, ...] = ()
    detail: str | None = None
    compression: str | None = None
    stream: str = "features"
    note: str = ""
    #: What a worker dead-letters beyond the decoder (checks against its clock), taken from ``processed``.
    worker_deadletters: tuple[str, ...] = ()

    @property
    def worker_processed(self) -> int:
        """Records a worker processes."""
        return self.processed - len(self.worker_deadletters)

    @property
    def worker_letters(self) -> tuple[str, ...]:
        """A worker's dead-letter reasons for the message."""
        return self.deadletters + self.worker_deadletters

    @property
    def records(self) -> int:
        """Records the message holds (processed + dead-lettered)."""
        return self.processed + len(self.deadletters)


def good(rid: str, **over: Any) -> dict[str, Any]:
    """A clean record (every feature in its domain), with ``over`` applied."""
    rec: dict[str, Any] = {"record_id": rid, "event_time": "2026-01-01T00:00:00Z", "age": 41.5, "income": 52000.0,
                           "tenure_months": 12, "basket_value": 60.0, "session_seconds": 300,
                           "country": "DE", "device": "mobile", "is_returning": True, "coupon_code": None}
    rec.update(over)
    return rec


def _j(obj: Any) -> bytes:
    return orjson.dumps(obj)


def _cases() -> list[Case]:
    deep = b"[" * 500 + b'"leaf"' + b"]" * 500  # valid JSON (orjson reads 1024 levels, writes 255)
    wide = good("c-wide")
    wide.update({f"unknown_field_{i:05d}": i for i in range(10_000)})
    cols = {k: [v, v, v] for k, v in good("x").items()}
    cols["record_id"] = ["c-col-1", "c-col-2", "c-col-3"]
    bad_row = {k: [v, v, v] for k, v in good("x").items()}
    bad_row["record_id"] = ["c-colbad-1", None, "c-colbad-3"]
    return [
        # -- not JSON
        Case("truncated_object", b'{"record_id": "c-trunc", "age": 4', deadletters=("malformed_json",),
             detail="unexpected end of data"),
        Case("truncated_array", b'[{"record_id": "c-ta1"}, {"record_id": ', deadletters=("malformed_json",)),
        Case("trailing_garbage", b'{"record_id": "c-trail"} and more', deadletters=("malformed_json",),
             detail="unexpected content after document"),
        Case("single_quotes", b"{'record_id': 'c-sq'}", deadletters=("malformed_json",)),
        Case("whitespace_only", b"   \n\t ", deadletters=("malformed_json",), detail="input data is empty"),
        Case("control_character_in_string", b'{"record_id": "c-\x01ctl"}', deadletters=("malformed_json",),
             detail="control character"),
        Case("lone_surrogate_escape", b'{"record_id": "c-\\ud800"}', deadletters=("malformed_json",),
             detail="surrogate"),
        Case("non_utf8", b'{"record_id": "c-nonutf8", "country": "\xff\xfeUS"}', deadletters=("malformed_json",),
             detail="value is not valid UTF-8 (byte 0xff at offset 39)"),
        Case("utf16", '{"record_id": "c-utf16"}'.encode("utf-16"), deadletters=("malformed_json",),
             detail="it looks like UTF-16"),
        Case("utf8_bom", b'\xef\xbb\xbf{"record_id": "c-bom"}', deadletters=("malformed_json",),
             detail="byte order mark"),
        Case("deep_nesting", b"[" * 100_000, deadletters=("malformed_json",),
             detail="JSON nested deeper than 1024 levels"),
        # -- no value
        Case("empty_value", b"", deadletters=("empty_message",)),
        Case("tombstone", None, deadletters=("empty_message",), note="a null value (compaction tombstone)"),
        # -- JSON, but not records
        Case("json_null", b"null", deadletters=("not_an_object",)),
        Case("json_string", b'"c-just-a-string"', deadletters=("not_an_object",)),
        Case("json_number", b"42", deadletters=("not_an_object",)),
        Case("json_true", b"true", deadletters=("not_an_object",)),
        Case("array_of_non_objects", b'[1, "two", null]', deadletters=("not_an_object",) * 3,
             note="each element dead-lettered alone"),
        Case("nested_array", _j([[good("c-nested")]]), deadletters=("not_an_object",)),
        Case("empty_array", b"[]", deadletters=("empty_batch",)),
        Case("mixed_array", _j([good("c-mix-1"), 7, {"age": 30}, good("c-mix-2"), {"record_id": ""}]),
             processed=2, deadletters=("not_an_object", "missing_id", "invalid_id"),
             note="the good neighbours of bad elements are processed"),
        # -- ids
        Case("missing_id", _j({"age": 30, "country": "US"}), deadletters=("missing_id",)),
        Case("null_id", _j(good("x") | {"record_id": None}), deadletters=("missing_id",)),
        Case("empty_object", b"{}", deadletters=("missing_id",)),
        Case("empty_string_id", _j(good("")), deadletters=("invalid_id",)),
        Case("boolean_id", _j(good("x") | {"record_id": True}), deadletters=("invalid_id",)),
        Case("float_id", _j(good("x") | {"record_id": 1.5}), deadletters=("invalid_id",)),
        Case("object_id", _j(good("x") | {"record_id": {"a": 1}}), deadletters=("invalid_id",)),
        Case("huge_integer_id", b'{"record_id": 1000000000000000000000000000000, "age": 30}',
             deadletters=("invalid_id",), note="beyond 64 bits the parser gives a float (1e30), not an integer"),
        Case("duplicate_key_last_null", b'{"record_id": "c-dupnull", "record_id": null}', deadletters=("missing_id",),
             note="with duplicate keys the last one wins"),
        Case("duplicate_keys", b'{"record_id": "c-dup-a", "record_id": "c-dup-b", "age": 30}', processed=1,
             note="the last one wins: record c-dup-b"),
        # -- numbers
        Case("nan", b'{"record_id": "c-nan", "age": NaN}', deadletters=("non_finite_number",),
             detail="literal NaN"),
        Case("minus_infinity", b'{"record_id": "c-ninf", "income": -Infinity}', deadletters=("non_finite_number",),
             detail="literal -Infinity"),
        Case("number_1e400", b'{"record_id": "c-1e400", "age": 1e400}', deadletters=("non_finite_number",),
             detail="beyond the double range"),
        Case("integer_beyond_double", b'{"record_id": "c-bigint", "age": 1' + b"0" * 400 + b"}",
             deadletters=("non_finite_number",)),
        Case("number_1e_minus_400", b'{"record_id": "c-tiny", "age": 1e-400}', processed=1,
             note="underflows to 0.0: a value out of the age range, counted"),
        Case("number_1_7e308", _j(good("c-1.7e308") | {"income": 1.7e308}), processed=1, stream="overflow",
             note="the largest doubles are valid values (far out of any range, counted)"),
        Case("wrong_feature_types", _j(good("c-types") | {"age": "old", "country": 5, "is_returning": "yes"}),
             processed=1, note="type violations are counted per feature, not dead-lettered"),
        # -- schema version
        Case("schema_version_2", _j(good("c-sv2") | {"schema_version": 2}),
             deadletters=("unsupported_schema_version",)),
        Case("schema_version_string", _j(good("c-svs") | {"schema_version": "1"}),
             deadletters=("unsupported_schema_version",)),
        Case("schema_version_true", _j(good("c-svt") | {"schema_version": True}),
             deadletters=("unsupported_schema_version",)),
        Case("schema_version_1_0", _j(good("c-sv10") | {"schema_version": 1.0}), processed=1),
        # -- event time
        Case("event_time_not_a_time", _j(good("c-et1") | {"event_time": "yesterday"}),
             deadletters=("invalid_event_time",), detail="'yesterday'"),
        Case("event_time_boolean", _j(good("c-et2") | {"event_time": True}), deadletters=("invalid_event_time",)),
        Case("event_time_beyond_year_9999", _j(good("c-et3") | {"event_time": 1e15}),
             deadletters=("invalid_event_time",)),
        Case("event_time_month_13", _j(good("c-et4") | {"event_time": "2026-13-01T00:00:00Z"}),
             deadletters=("invalid_event_time",)),
        Case("event_time_far_future", _j(good("c-et5") | {"event_time": "9999-12-31T23:59:59Z"}), processed=1,
             worker_deadletters=("event_time_in_future",),
             note="a valid time (decoded); a worker dead-letters it: more than time.max_future_seconds ahead"),
        # -- size
        Case("oversized_2mb", _j(good("c-2mb") | {"device": "x" * 2_000_000}), deadletters=("oversized",),
             detail="bytes > max_message_bytes 1048576", note="the dead letter keeps the first 256 KiB"),
        Case("string_500kb", _j(good("c-500kb") | {"device": "d" * 500_000}), processed=1,
             note="an out-of-domain category, counted"),
        Case("unknown_fields_10000", _j(wide), processed=1, note="unexpected fields, counted (schema change)"),
        Case("deep_value_within_limit", _j(good("c-deep"))[:-1] + b', "extra": ' + deep + b"}", processed=1,
             note="500 levels deep: valid JSON, an unexpected field"),
        Case("deep_element_without_id_in_array", b'[' + _j(good("c-deep-ok")) + b', {"extra": ' + deep + b"}]",
             processed=1, deadletters=("missing_id",),
             note="the bad element's original is re-encoded even though orjson writes only 255 levels"),
        # -- columnar batches
        Case("columnar", _j({"columns": cols}), processed=3),
        Case("columnar_ragged", _j({"columns": {"record_id": ["a", "b"], "age": [1]}}),
             deadletters=("invalid_columns",)),
        Case("columnar_empty", _j({"columns": {"record_id": [], "age": []}}), deadletters=("empty_batch",)),
        Case("columnar_null_id_row", _j({"columns": bad_row}), processed=2, deadletters=("missing_id",)),
        # -- compressed producers (the broker stores compressed batches; the consumer decompresses)
        Case("gzip_array", _j([good("c-gz-1"), good("c-gz-2")]), processed=2, compression="gzip"),
        Case("gzip_malformed", b'{"record_id": "c-gz-bad", ', deadletters=("malformed_json",), compression="gzip"),
        Case("zstd_record", _j(good("c-zstd")), processed=1, compression="zstd"),
        Case("zstd_missing_id", _j({"age": 50}), deadletters=("missing_id",), compression="zstd"),
        Case("lz4_array", _j([good("c-lz4-1"), good("c-lz4-2"), good("c-lz4-3")]), processed=3, compression="lz4"),
        Case("lz4_non_utf8", b'{"record_id": "c-lz4-\x80"}', deadletters=("malformed_json",), compression="lz4",
             detail="byte 0x80"),
    ]


#: The corpus (at least one case for every reason code the decoder gives).
CASES: list[Case] = _cases()
