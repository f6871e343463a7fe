"""Message decoding: every rejection reason, arrays, conservation of records, robustness."""

from __future__ import annotations

import math
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.records import REASONS, Rejection, decode_message, event_time_seconds
from monitor.spec import StreamSpec
from monitor.testing.synthetic import bad_messages
from tests.strategies import BAD_RECORDS, mixed_records


def make_stream(**kw: Any) -> StreamSpec:
    return StreamSpec.model_validate({
        "name": "f", "windows": [{"name": "w", "kind": "count", "size": 10}],
        "features": [{"name": "x", "type": "numeric"}], **kw,
    })


STREAM = make_stream()
SMALL = make_stream(max_message_bytes=64)

#: One message per reason code: (message, stream, reason).
REASON_CASES: dict[str, tuple[bytes | None, StreamSpec]] = {
    "empty_message": (b"", STREAM),
    "oversized": (b'{"record_id": 1, "x": "' + b"a" * 100 + b'"}', SMALL),
    "malformed_json": (b'{"record_id": 1, "x": ', STREAM),
    "non_finite_number": (b'{"record_id": 1, "x": NaN}', STREAM),
    "not_an_object": (b"1", STREAM),
    "empty_batch": (b"[]", STREAM),
    "missing_id": (b'{"x": 1.0}', STREAM),
    "invalid_id": (b'{"record_id": "", "x": 1.0}', STREAM),
    "invalid_event_time": (b'{"record_id": 1, "event_time": "not a time"}', STREAM),
    "unsupported_schema_version": (b'{"record_id": 1, "schema_version": 2}', STREAM),
    "invalid_columns": (b'{"columns": {"record_id": [1, 2], "x": [1.0]}}', STREAM),
}


#: Reasons decode_message never produces (the Faust layer assigns them).
NOT_FROM_DECODER = {"processing_error", "event_time_in_future"}  # the engine's and the worker's clock's


def test_reason_cases_cover_every_reason() -> None:
    # a new reason code must get a case here (or be declared as not coming from the decoder)
    assert set(REASON_CASES) == set(REASONS) - NOT_FROM_DECODER


@pytest.mark.parametrize("reason", sorted(set(REASONS) - NOT_FROM_DECODER))
def test_each_reason(reason: str) -> None:
    message, stream = REASON_CASES[reason]
    ok, bad = decode_message(message, stream)
    assert ok == []
    assert len(bad) == 1
    [rej] = bad
    assert isinstance(rej, Rejection)
    assert rej.reason == reason
    assert rej.detail
    assert rej.original == message
    assert rej.index is None


def test_none_value_is_empty_message() -> None:
    ok, [rej] = decode_message(None, STREAM)
    assert ok == [] and rej.reason == "empty_message" and rej.original == b""


def test_good_record_accepted() -> None:
    ok, bad = decode_message(b'{"record_id": "a1", "event_time": "2024-01-01T00:00:00Z", "x": 3}', STREAM)
    assert bad == []
    assert ok == [{"record_id": "a1", "event_time": "2024-01-01T00:00:00Z", "x": 3}]


@pytest.mark.parametrize("rid", [0, -5, 2**62, "a", " "])
def test_valid_ids(rid) -> None:
    ok, bad = decode_message(orjson.dumps({"record_id": rid}), STREAM)
    assert bad == [] and ok[0]["record_id"] == rid


def test_custom_id_and_time_fields() -> None:
    s = make_stream(id_field="uid", time_field="ts")
    assert decode_message(b'{"record_id": 1}', s)[1][0].reason == "missing_id"
    assert decode_message(b'{"uid": 1, "ts": "bad"}', s)[1][0].reason == "invalid_event_time"
    assert decode_message(b'{"uid": 1, "event_time": "bad"}', s)[1] == []


@pytest.mark.parametrize(("record", "reason"), BAD_RECORDS)
def test_bad_record_reasons(record, reason: str) -> None:
    message = orjson.dumps(record)
    ok, bad = decode_message(message, STREAM)
    assert ok == []
    assert [b.reason for b in bad] == [reason]


def test_size_limit_is_inclusive() -> None:
    body = b'{"record_id": 1, "x": "' + b"a" * 100 + b'"}'
    at_limit = make_stream(max_message_bytes=len(body))
    assert decode_message(body, at_limit)[0] != []
    over = make_stream(max_message_bytes=len(body) - 1)
    assert decode_message(body, over)[1][0].reason == "oversized"


def test_oversized_checked_before_parsing() -> None:
    # not even JSON, but too large: oversized wins
    _ok, [rej] = decode_message(b"\xff" * 65, SMALL)
    assert rej.reason == "oversized" and rej.original == b"\xff" * 65


@pytest.mark.parametrize(
    "literal", [b"NaN", b"Infinity", b"-Infinity", b"1e999", b"-1e999", b"1E400"])
def test_non_finite_numbers(literal: bytes) -> None:
    message = b'{"record_id": 1, "x": ' + literal + b"}"
    ok, [rej] = decode_message(message, STREAM)
    assert ok == [] and rej.reason == "non_finite_number"
    in_array = b'[{"record_id": 1, "x": ' + literal + b'}, {"record_id": 2, "x": 1}]'
    ok, [rej] = decode_message(in_array, STREAM)
    # the whole message fails to parse, so nothing is accepted
    assert ok == [] and rej.reason == "non_finite_number" and rej.index is None


@pytest.mark.parametrize(
    "message",
    [b"\xff\xfe garbage", b'{"record_id": "\xff"}', b'{"record_id": 1, "x": "\xc3\x28"}', b"\x80",
     b'{"record_id": "\xed\xa0\x80"}'],  # the last is an encoded lone surrogate
)
def test_invalid_utf8_is_malformed_json(message: bytes) -> None:
    ok, [rej] = decode_message(message, STREAM)
    assert ok == [] and rej.reason == "malformed_json" and rej.original == message


@pytest.mark.parametrize("message", [b"{", b"nan", b"{'a': 1}", b'{"a":infinity}', b"[1,]", b"   "])
def test_malformed_json(message: bytes) -> None:
    assert decode_message(message, STREAM)[1][0].reason == "malformed_json"


def test_array_bad_element_rejected_alone() -> None:
    records = [
        {"record_id": 1, "x": 1.0},
        {"x": 2.0},                          # missing_id
        {"record_id": 3, "x": 3.0},
        "text",                              # not_an_object
        [7, 8],                              # not_an_object (nested array)
        {"record_id": 5, "schema_version": 7},  # unsupported_schema_version
        {"record_id": 6, "event_time": 12.5, "x": None},
    ]
    ok, bad = decode_message(orjson.dumps(records), STREAM)
    assert [r["record_id"] for r in ok] == [1, 3, 6]
    assert [(b.index, b.reason) for b in bad] == [
        (1, "missing_id"), (3, "not_an_object"), (4, "not_an_object"),
        (5, "unsupported_schema_version")]
    # each rejection carries that element, re-encoded
    assert [orjson.loads(b.original) for b in bad] == [records[1], records[3], records[4], records[5]]


@settings(max_examples=150, deadline=None)
@given(items=mixed_records)
def test_accepted_plus_rejected_equals_sent(items) -> None:
    records = [r for r, _ in items]
    ok, bad = decode_message(orjson.dumps(records), STREAM)
    assert len(ok) + len(bad) == len(records)
    want_bad = [(i, reason) for i, (_, reason) in enumerate(items) if reason is not None]
    assert [(b.index, b.reason) for b in bad] == want_bad
    assert ok == [r for r, reason in items if reason is None]
    for b in bad:
        assert orjson.loads(b.original) == records[b.index]


@settings(max_examples=100, deadline=None)
@given(items=mixed_records)
def test_single_record_messages(items) -> None:
    for record, reason in items:
        ok, bad = decode_message(orjson.dumps(record), STREAM)
        assert len(ok) + len(bad) == 1
        if reason is None:
            assert ok == [record]
        else:
            assert [b.reason for b in bad] == [reason] and bad[0].index is None


@settings(max_examples=300, deadline=None)
@given(message=st.binary(max_size=200))
def test_never_raises_on_arbitrary_bytes(message: bytes) -> None:
    ok, bad = decode_message(message, STREAM)
    assert all(isinstance(r, dict) for r in ok)
    assert all(b.reason in REASONS for b in bad)
    assert ok or bad


_fragments = st.sampled_from([
    b"{", b"}", b"[", b"]", b",", b":", b'"record_id"', b'"x"', b"1", b"-1.5e3", b"NaN", b"Infinity",
    b"null", b"true", b'"s"', b"\xff", b" ", b"1e999", b'"event_time"', b'"schema_version"',
])


@settings(max_examples=300, deadline=None)
@given(parts=st.lists(_fragments, max_size=30))
def test_never_raises_on_json_like_bytes(parts: list[bytes]) -> None:
    message = b"".join(parts)
    ok, bad = decode_message(message, STREAM)
    assert all(b.reason in REASONS for b in bad)
    assert ok or bad


def test_synthetic_bad_messages_get_their_reason() -> None:
    from itertools import islice

    for message, reason in islice(bad_messages(seed=3), 24):
        ok, bad = decode_message(message, STREAM)
        assert ok == [] and [b.reason for b in bad] == [reason]


# ---------------------------------------------------------------- bugs


@pytest.mark.parametrize("version", [b"[1]", b"{}"])
def test_unhashable_schema_version_is_rejected_not_raised(version: bytes) -> None:
    ok, bad = decode_message(b'{"record_id": 1, "schema_version": ' + version + b"}", STREAM)
    assert ok == [] and [b.reason for b in bad] == ["unsupported_schema_version"]


@pytest.mark.parametrize("message", [b"[" * 5000, b"[" * 2000 + b"]" * 2000, b'{"a":' * 3000])
def test_deep_nesting_does_not_raise(message: bytes) -> None:
    ok, bad = decode_message(message, STREAM)
    assert ok == [] and [b.reason for b in bad] == ["malformed_json"]


def test_utf16_message_with_nan_is_malformed() -> None:
    message = '{"record_id": 1, "x": NaN}'.encode("utf-16-le")
    assert [b.reason for b in decode_message(message, STREAM)[1]] == ["malformed_json"]


def test_utf16_message_is_malformed() -> None:
    message = '{"record_id": 1, "x": 1}'.encode("utf-16")
    assert [b.reason for b in decode_message(message, STREAM)[1]] == ["malformed_json"]


@pytest.mark.parametrize("version", [b"true", b"false", b"0", b"2", b'"1"'])
def test_unsupported_schema_versions(version: bytes) -> None:
    # true == 1 in Python: a bool must still not pass as version 1
    ok, bad = decode_message(b'{"record_id": 1, "schema_version": ' + version + b"}", STREAM)
    assert ok == [] and [b.reason for b in bad] == ["unsupported_schema_version"]


@pytest.mark.parametrize("version", [b"1", b"1.0"])
def test_supported_schema_version(version: bytes) -> None:
    ok, bad = decode_message(b'{"record_id": 1, "schema_version": ' + version + b"}", STREAM)
    assert bad == [] and len(ok) == 1


# ---------------------------------------------------------------- event time


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("1970-01-01T00:01:00Z", 60.0),
        ("1970-01-01T00:01:00", 60.0),                 # no zone: UTC
        ("1970-01-01T01:01:00+01:00", 60.0),
        ("1970-01-01T00:01:00.250Z", 60.25),
        ("2024-05-01T12:00:00Z", 1714564800.0),
        ("2024-05-01", 1714521600.0),
        (0, 0.0),
        (5, 5.0),
        (-1.5, -1.5),
        (1714564800.123, 1714564800.123),
    ],
)
def test_event_time_seconds_valid(value, seconds: float) -> None:
    got = event_time_seconds(value)
    assert isinstance(got, float)
    assert got == pytest.approx(seconds, abs=1e-6)


@pytest.mark.parametrize(
    "value", [True, False, None, "x", "", "2024-13-01", [0], {"t": 0}, math.nan, math.inf, -math.inf])
def test_event_time_seconds_invalid(value) -> None:
    assert event_time_seconds(value) is None


def test_event_time_seconds_huge_int() -> None:
    assert event_time_seconds(10**400) is None


@pytest.mark.parametrize(
    ("event_time", "accepted"),
    [(b'"2024-05-01T12:00:00Z"', True), (b"1714564800", True), (b"1.5", True),
     (b'"yesterday"', False), (b"true", False), (b"[1]", False), (b'""', False)],
)
def test_event_time_in_records(event_time: bytes, accepted: bool) -> None:
    ok, bad = decode_message(b'{"record_id": 1, "event_time": ' + event_time + b"}", STREAM)
    assert (len(ok), len(bad)) == ((1, 0) if accepted else (0, 1))
    if not accepted:
        assert bad[0].reason == "invalid_event_time"


def test_event_time_is_optional() -> None:
    assert decode_message(b'{"record_id": 1}', STREAM) == ([{"record_id": 1}], [])


# ---------------------------------------------------------------- details say what is wrong


@pytest.mark.parametrize(
    ("message", "reason", "detail"),
    [
        (b'{"record_id": "ab\xffc"}', "malformed_json", "value is not valid UTF-8 (byte 0xff at offset 17)"),
        (b"\x80", "malformed_json", "value is not valid UTF-8 (byte 0x80 at offset 0)"),
        (b'{"record_id": "\xed\xa0\x80"}', "malformed_json", "value is not valid UTF-8 (byte 0xed at offset 15)"),
        ('{"record_id": 1}'.encode("utf-16"), "malformed_json",
         "value is not valid UTF-8 (byte 0xff at offset 0; it looks like UTF-16)"),
        (b'\xef\xbb\xbf{"record_id": 1}', "malformed_json",
         "value starts with a UTF-8 byte order mark (bytes ef bb bf); JSON messages must not carry one"),
        (b"[" * 2000, "malformed_json", "JSON nested deeper than 1024 levels (at character 1025)"),
        (b'{"record_id": 1, "x": 1e400}', "non_finite_number",
         "a number beyond the double range (it would be infinite) at character 22"),
        (b'{"record_id": 1, "x": -Infinity}', "non_finite_number", "literal -Infinity is not allowed"),
    ],
)
def test_rejection_details_say_what_is_wrong(message: bytes, reason: str, detail: str) -> None:
    ok, [rej] = decode_message(message, STREAM)
    assert ok == [] and (rej.reason, rej.detail) == (reason, detail)
    assert "surrogates not allowed" not in rej.detail


@pytest.mark.parametrize("depth", [300, 1000])
def test_a_deeply_nested_bad_element_is_rejected_not_raised(depth: int) -> None:
    # orjson reads 1024 levels but writes only 255: re-encoding the bad element used to raise TypeError
    deep = b"[" * depth + b"]" * depth
    message = b'[{"record_id": 1, "x": 1}, {"x": ' + deep + b"}]"
    ok, [rej] = decode_message(message, STREAM)
    assert [r["record_id"] for r in ok] == [1] and (rej.reason, rej.index) == ("missing_id", 1)
    assert rej.original in (b'{"x":' + deep + b"}", message)  # the element, or the message when too deep
    cols = b'{"columns": {"record_id": [null, 2], "x": [' + deep + b", 1]}}"
    ok, [rej] = decode_message(cols, STREAM)
    assert len(ok) == 1 and rej.reason == "missing_id"
