"""The decode-and-validate path on anything (issue #14 item 6): the bad-input corpus gets its documented
outcome from the decoder alone, and arbitrary bytes, arbitrary JSON and arbitrary record-shaped or columnar
messages never make it raise: every record comes back accepted or as a Rejection with a known reason."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.records import REASONS, ColumnBatch, Rejection, check_record, decode_message, decode_messages
from monitor.spec import StreamSpec, parse_spec
from tests.support.corpus import CASES, MAX_MESSAGE_BYTES, Case

REPO = Path(__file__).resolve().parents[2]
_raw = yaml.safe_load((REPO / "deploy" / "monitor.yaml").read_text())
_raw["streams"] = _raw["streams"][:1]
STREAM: StreamSpec = parse_spec(_raw).streams[0]
DECODER_REASONS = set(REASONS) - {"processing_error", "event_time_in_future"}  # the engine's; the worker's clock


def dumps(value: Any) -> bytes:
    """JSON bytes, integers of any size included (orjson writes 64 bits at most; producers may write more)."""
    return json.dumps(value, ensure_ascii=False).encode("utf-8")


def test_the_corpus_is_large_and_covers_every_decoder_reason() -> None:
    assert len(CASES) >= 30
    assert len({c.name for c in CASES}) == len(CASES)
    assert {r for c in CASES for r in c.deadletters} == DECODER_REASONS
    assert STREAM.max_message_bytes == MAX_MESSAGE_BYTES


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_corpus_case_gets_its_outcome_from_the_decoder(case: Case) -> None:
    ok, bad = decode_message(case.value, STREAM)
    assert (len(ok), [b.reason for b in bad]) == (case.processed, list(case.deadletters))
    if case.detail is not None:
        assert any(case.detail in b.detail for b in bad), [b.detail for b in bad]
    for b in bad:
        assert b.detail and "surrogates not allowed" not in b.detail
        if b.index is None:  # a whole message: its bytes as received
            assert b.original == (case.value or b"")


def _check_outcome(message: bytes | None, ok: Any, bad: list[Rejection]) -> None:
    assert all(isinstance(b, Rejection) and b.reason in DECODER_REASONS and b.detail for b in bad)
    assert ok or bad, "every message yields a record or a rejection"
    for rec in ok:  # what is accepted passes the record envelope
        assert check_record(rec, STREAM) is None
    if isinstance(ok, ColumnBatch):
        assert all(len(col) == len(ok) for col in ok.columns.values())


# JSON values of every shape, with the awkward scalars a producer may send.
_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=12),
    st.sampled_from(["", "2026-01-01T00:00:00Z", "yesterday", "9999-12-31T23:59:59Z", "1", "US", "\u0000"]),
)
_json = st.recursive(_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=5), st.dictionaries(st.text(max_size=8), inner, max_size=5)), max_leaves=25)
_id_values = st.one_of(_scalars, st.lists(_scalars, max_size=2), st.dictionaries(st.text(max_size=3), _scalars,
                                                                                  max_size=2))
_records = st.fixed_dictionaries(
    {}, optional={"record_id": _id_values, "event_time": _id_values, "schema_version": _id_values,
                  "age": _json, "country": _json, "is_returning": _json, "unknown": _json})


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=_json)
def test_arbitrary_json_never_raises(value: Any) -> None:
    message = dumps(value)
    ok, bad = decode_message(message, STREAM)
    _check_outcome(message, ok, bad)
    if isinstance(value, list) and value:  # one outcome per element
        assert len(ok) + len(bad) == len(value)


@settings(max_examples=400, deadline=None)
@given(records=st.lists(_records, min_size=1, max_size=8), as_array=st.booleans())
def test_arbitrary_records_are_accepted_or_rejected_one_by_one(records: list[dict[str, Any]], as_array: bool) -> None:
    if as_array:
        ok, bad = decode_message(dumps(records), STREAM)
        _check_outcome(None, ok, bad)
        assert len(ok) + len(bad) == len(records)
        assert sorted(b.index for b in bad if b.index is not None) == [b.index for b in bad]
    for rec in records:
        ok, bad = decode_message(dumps(rec), STREAM)
        _check_outcome(None, ok, bad)
        assert len(ok) + len(bad) == 1
        problem = check_record(orjson.loads(dumps(rec)), STREAM)  # as parsed: beyond 64 bits an integer is a float
        assert (bad[0].reason if bad else None) == (problem[0] if problem else None)


@settings(max_examples=300, deadline=None)
@given(columns=st.dictionaries(st.sampled_from(["record_id", "event_time", "age", "country", "schema_version", "x"]),
                               st.one_of(st.lists(_scalars, max_size=6), _scalars), max_size=5),
       extra=st.dictionaries(st.sampled_from(["schema_version", "other"]), _scalars, max_size=1))
def test_arbitrary_columnar_messages_never_raise(columns: dict[str, Any], extra: dict[str, Any]) -> None:
    message = dumps({"columns": columns, **extra})
    ok, bad = decode_message(message, STREAM)
    _check_outcome(message, ok, bad)
    lengths = {len(c) for c in columns.values() if isinstance(c, list)}
    if not extra and columns and all(isinstance(c, list) for c in columns.values()) and len(lengths) == 1 \
            and lengths != {0}:
        assert len(ok) + len(bad) == lengths.pop()  # a well-formed batch: one outcome per row


_fragments = st.sampled_from([
    b"{", b"}", b"[", b"]", b",", b":", b'"record_id"', b'"event_time"', b'"columns"', b'"age"', b"1", b"-0",
    b"1.7e308", b"1e400", b"NaN", b"-Infinity", b"null", b"true", b'"2026-01-01T00:00:00Z"', b'""', b"\xff",
    b"\xef\xbb\xbf", b"\xed\xa0\x80", b"\\ud800", b'"\\u0000"', b" ", b"\x00",
])


@settings(max_examples=500, deadline=None)
@given(parts=st.lists(_fragments, max_size=40), raw=st.binary(max_size=64), cut=st.integers(0, 200))
def test_arbitrary_bytes_never_raise(parts: list[bytes], raw: bytes, cut: int) -> None:
    for message in (b"".join(parts), raw, b"".join(parts)[:cut] + raw):
        ok, bad = decode_message(message, STREAM)
        _check_outcome(message, ok, bad)


@settings(max_examples=200, deadline=None)
@given(case=st.sampled_from([c for c in CASES if c.value]), pos=st.integers(0, 10**6), byte=st.integers(0, 255),
       op=st.sampled_from(["flip", "cut", "insert"]))
def test_mutated_corpus_messages_never_raise(case: Case, pos: int, byte: int, op: str) -> None:
    value = case.value or b""
    i = pos % (len(value) + 1)
    mutated = {"flip": value[:i] + bytes([byte]) + value[i + 1:], "cut": value[:i],
               "insert": value[:i] + bytes([byte]) + value[i:]}[op]
    ok, bad = decode_message(mutated, STREAM)
    _check_outcome(mutated, ok, bad)


_SINGLES = [c.value for c in CASES if c.value is not None] + [
    orjson.dumps({"record_id": f"g{i}", "event_time": 1_700_000_000 + i, "age": 30 + i}) for i in range(20)]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(_SINGLES), min_size=1, max_size=12))
def test_single_messages_decoded_together_give_what_each_gives_alone(values: list[bytes]) -> None:
    together = decode_messages(values, STREAM)
    alone = [decode_message(v, STREAM) for v in values]
    one_record_each = all(len(ok) == 1 and not bad and not isinstance(ok, ColumnBatch) for ok, bad in alone)
    if together is not None:  # declining is always allowed (each is then decoded alone); a wrong answer never
        assert one_record_each and list(together) == [ok[0] for ok, _ in alone]
        assert together.times is not None and len(together.times) == len(values)


def test_valid_single_messages_take_the_fast_path() -> None:
    values = [orjson.dumps({"record_id": i, "event_time": 1_700_000_000 + i, "age": 40}) for i in range(50)]
    together = decode_messages(values, STREAM)
    assert together is not None and [r["record_id"] for r in together] == list(range(50))
