"""Columnar messages ({"columns": {...}}): decoding, dead letters per row, and the same results as rows."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest
from jsonschema import Draft202012Validator

from monitor.engine import Monitor
from monitor.records import ColumnBatch, decode_message
from monitor.reference import build_profile
from monitor.spec import load_spec
from monitor.testing.synthetic import Scenario, SyntheticFeatures

REPO = Path(__file__).resolve().parents[2]
SPEC = load_spec(REPO / "deploy" / "monitor.yaml")
STREAM = SPEC.streams[0]
SCHEMA = Draft202012Validator(json.loads((REPO / "schemas" / "feature_record.schema.json").read_text()),
                              format_checker=Draft202012Validator.FORMAT_CHECKER)


def columns_of(records: list[dict[str, Any]]) -> dict[str, list[Any]]:
    keys = list(dict.fromkeys(k for r in records for k in r))
    return {k: [r.get(k) for r in records] for k in keys}


def test_a_columnar_message_decodes_to_a_column_batch() -> None:
    records = SyntheticFeatures(seed=1).records(5, now=1_700_000_000.0)
    message = orjson.dumps({"columns": columns_of(records)})
    SCHEMA.validate(orjson.loads(message))
    ok, bad = decode_message(message, STREAM)
    assert isinstance(ok, ColumnBatch) and bad == []
    assert list(ok) == records  # rows rebuilt from the columns are the records sent


@pytest.mark.parametrize(("columns", "reason"), [
    ({"record_id": [1, 2], "age": [1.0]}, "invalid_columns"),
    ({"record_id": 1}, "invalid_columns"),
    ({}, "invalid_columns"),
    ({"record_id": []}, "empty_batch"),
])
def test_malformed_columns_are_dead_lettered_whole(columns: dict[str, Any], reason: str) -> None:
    ok, bad = decode_message(orjson.dumps({"columns": columns}), STREAM)
    assert list(ok) == [] and [b.reason for b in bad] == [reason]


def test_bad_rows_are_dead_lettered_alone() -> None:
    cols = {"record_id": ["a", "", None, True, "e"], "event_time": [None, None, None, None, "not a time"],
            "age": [30, 31, 32, 33, 34]}
    ok, bad = decode_message(orjson.dumps({"columns": cols}), STREAM)
    assert [r["record_id"] for r in ok] == ["a"]
    assert [(b.index, b.reason) for b in bad] == [(1, "invalid_id"), (2, "missing_id"), (3, "invalid_id"),
                                                   (4, "invalid_event_time")]
    assert orjson.loads(bad[0].original) == {"record_id": "", "event_time": None, "age": 31}
    assert len(ok) + len(bad) == 5  # every row is accounted for


def test_wrong_schema_version_rejects_the_whole_message() -> None:
    ok, bad = decode_message(orjson.dumps({"schema_version": 2, "columns": {"record_id": [1]}}), STREAM)
    assert list(ok) == [] and [b.reason for b in bad] == ["unsupported_schema_version"]


def test_engine_reports_are_identical_for_rows_and_columns() -> None:
    gen = SyntheticFeatures(seed=4)
    ref = build_profile(STREAM, lambda: SyntheticFeatures(seed=9).records(5000, now=1_700_000_000.0),
                        source={"kind": "test"})
    records = [gen.record(now=1_700_000_000.0 + i * 0.01, scenario=Scenario(drift=i >= 4000)) for i in range(8000)]
    records[17]["surprise"] = 1  # an unexpected field inside one record
    rows = Monitor(SPEC, references={"features": ref}, clock=lambda: 1_700_000_100.0)
    cols = Monitor(SPEC, references={"features": ref}, clock=lambda: 1_700_000_100.0)
    out_rows, out_cols = [], []
    for i in range(0, len(records), 700):
        chunk = records[i:i + 700]
        out_rows += rows.process("features", chunk)
        out_cols += cols.process("features", ColumnBatch(columns_of(chunk)))
    out_rows += rows.close()
    out_cols += cols.close()
    assert out_rows, "no window closed"
    dump = [orjson.dumps(r.to_dict(), option=orjson.OPT_SERIALIZE_NUMPY) for r in out_rows]
    # Column batches give every row of the batch the union of fields, so only the schema-change
    # counts may differ; everything else is identical.
    for a, b in zip(out_rows, out_cols, strict=True):
        da, db = a.to_dict(), b.to_dict()
        da["records"].pop("unexpected_field_ratio"), db["records"].pop("unexpected_field_ratio")
        da["records"].pop("unexpected_fields"), db["records"].pop("unexpected_fields")
        da["alerts"], db["alerts"], da["events"], db["events"] = None, None, None, None
        opt = orjson.OPT_SERIALIZE_NUMPY
        assert orjson.dumps(da, option=opt) == orjson.dumps(db, option=opt)
    assert any(b"psi" in d for d in dump)


def test_valid_arrays_take_the_column_wise_check_and_keep_their_parsed_times() -> None:
    records = SyntheticFeatures(seed=2).records(50, now=1_700_000_000.0)
    ok, bad = decode_message(orjson.dumps(records), STREAM)
    assert bad == [] and list(ok) == records
    times = getattr(ok, "times", None)
    assert times is not None and times.tolist() == [1_700_000_000.0] * 50
    # one bad record: the record-by-record path names it, the others pass
    records[7]["event_time"] = "yesterday"
    ok, bad = decode_message(orjson.dumps(records), STREAM)
    assert [b.index for b in bad] == [7] and len(ok) == 49 and getattr(ok, "times", None) is None
