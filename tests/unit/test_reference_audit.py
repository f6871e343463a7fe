"""Reference and spec sanity (issue #14 item 5): ``reference build`` decodes and checks records as the worker
does, excludes and counts what it would dead-letter, reports features whose reference data breaks the spec
(``--strict`` makes that an error); ``validate`` warns about drift that cannot run for lack of a reference."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from agents.cli.speccheck import drift_features, spec_warnings
from monitor.errors import ProfileError
from monitor.reference import ReferenceAudit, ReferenceProfile, build_profile, build_profile_from_file
from monitor.spec import StreamSpec, parse_spec

REPO = Path(__file__).resolve().parents[2]

FEATURES = [
    {"name": "age", "type": "numeric", "range": {"min": 18, "max": 100}},
    {"name": "income", "type": "numeric", "range": {"min": 0}},
    {"name": "country", "type": "categorical", "categories": ["US", "DE", "FR"]},
    {"name": "code", "type": "categorical", "nullable": True, "pattern": "[A-Z]+"},
    {"name": "note", "type": "string"},
]


def stream_dict(**kw: Any) -> dict[str, Any]:
    return {"name": "features", "windows": [{"name": "w", "kind": "count", "size": 100}], "features": FEATURES, **kw}


STREAM = StreamSpec.model_validate(stream_dict())


def clean(i: int) -> dict[str, Any]:
    return {"record_id": f"r{i}", "event_time": 1_700_000_000 + i, "age": 20 + i % 60, "income": 1000.0 + i,
            "country": ["US", "DE", "FR"][i % 3], "code": None if i % 4 else "AB", "note": "ok"}


def write_jsonl(path: Path, lines: list[bytes]) -> Path:
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def dirty_lines() -> list[bytes]:
    """200 records: 10 without id, 5 with a bad event time, 3 lines not JSON, 2 non-UTF-8, the rest clean
    but with ages down to -0.34 (every 10th), a country outside the list (every 50th), a bad code (2)."""
    lines = []
    for i in range(180):
        r = clean(i)
        if i % 10 == 0:
            r["age"] = -0.34
        if i % 50 == 1:
            r["country"] = "XX"
        if i in (4, 8):
            r["code"] = "ab1"
        lines.append(orjson.dumps(r))
    lines += [orjson.dumps({k: v for k, v in clean(1000 + i).items() if k != "record_id"}) for i in range(10)]
    lines += [orjson.dumps({**clean(2000 + i), "event_time": "next tuesday"}) for i in range(5)]
    lines += [b'{"record_id": "t1", "age": 4', b"not json", b"[1, 2"]
    lines += [b'{"record_id": "u1", "note": "\xff"}', b'\xfe\xff{"record_id": "u2"}']
    return lines


# ---------------------------------------------------------------- the audit


def test_build_excludes_and_counts_what_the_worker_would_dead_letter(tmp_path: Path) -> None:
    audit = ReferenceAudit(STREAM)
    profile = build_profile_from_file(STREAM, write_jsonl(tmp_path / "r.jsonl", dirty_lines()), audit=audit)
    assert profile.rows == 180 == audit.profiled
    assert audit.read == 200 and audit.excluded == 20
    assert dict(audit.rejected) == {"missing_id": 10, "invalid_event_time": 5, "malformed_json": 5}
    assert audit.examples["missing_id"].startswith("line 181: field 'record_id' is missing")
    assert audit.examples["invalid_event_time"] == "line 191: field 'event_time' = 'next tuesday'"
    assert audit.examples["malformed_json"].startswith("line 196: ")
    # the excluded records shaped nothing: the profile equals one of the 180 accepted records alone
    accepted = [orjson.loads(x) for x in dirty_lines()[:180]]
    alone = build_profile(STREAM, lambda: accepted, source={"kind": "test"})
    assert profile.features == alone.features


def test_each_way_of_breaking_the_spec_is_reported(tmp_path: Path) -> None:
    audit = ReferenceAudit(STREAM)
    build_profile_from_file(STREAM, write_jsonl(tmp_path / "r.jsonl", dirty_lines()), audit=audit)
    found = {f.name: f.problems for f in audit.findings}
    assert set(found) == {"age", "country", "code"}
    assert found["age"] == ["18 of 180 values (10%) outside range [18, 100]: reference min -0.34, max 79"]
    assert found["country"] == ["4 of 180 values (2.22%) outside the declared categories (US, DE, FR): 'XX' (4)"]
    assert found["code"] == ["2 of 180 values (1.11%) do not match pattern '[A-Z]+'"]


def test_mostly_missing_and_wrong_types_are_reported_but_not_for_nullable_features() -> None:
    rows = [{**clean(i), "income": None if i % 4 else 5.0, "age": "old" if i == 3 else 30} for i in range(100)]
    for r in rows:
        r["code"] = None  # nullable: missing everywhere is expected
    audit = ReferenceAudit(STREAM)
    build_profile(STREAM, lambda: audit.check(rows), source={"kind": "test"}, audit=audit)
    found = {f.name: f.problems for f in audit.findings}
    assert found == {"age": ["1 of 100 values (1%) are not a number"],
                     "income": ["mostly missing: 75 of 100 records (75%) have no value"]}


def test_a_clean_reference_has_no_findings() -> None:
    audit = ReferenceAudit(STREAM)
    build_profile(STREAM, lambda: audit.check(clean(i) for i in range(300)), source={"kind": "test"}, audit=audit)
    assert audit.findings == [] and audit.excluded == 0 and audit.read == 300
    assert "within the spec" in audit.summary_lines()[-1]


def test_csv_rows_get_the_record_checks_too(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    rows = [clean(i) for i in range(50)]
    rows[7]["record_id"] = ""        # an empty cell: missing
    rows[9]["event_time"] = "never"
    with path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    audit = ReferenceAudit(STREAM)
    profile = build_profile_from_file(STREAM, path, audit=audit)
    assert profile.rows == 48
    assert dict(audit.rejected) == {"missing_id": 1, "invalid_event_time": 1}
    assert audit.examples["missing_id"] == "record 8: field 'record_id' is missing or null"


def test_nothing_acceptable_is_an_error_naming_the_reasons(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "r.jsonl", [orjson.dumps({"age": 30 + i}) for i in range(5)])
    with pytest.raises(ProfileError, match=r"all 5 were excluded \(missing_id 5; e\.g\. line 1: field 'record_id'"):
        build_profile_from_file(STREAM, path, audit=ReferenceAudit(STREAM))


def test_without_an_audit_the_library_profiles_every_row_as_before() -> None:
    rows = [{"age": 30.0 + i, "income": 1.0} for i in range(10)]  # no ids: the library call does not judge them
    assert build_profile(STREAM, lambda: rows, source={"kind": "test"}).rows == 10


# ---------------------------------------------------------------- the command


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "agents.cli", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=120)


def write_spec(tmp_path: Path, **stream: Any) -> Path:
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump({"version": 1, "name": "t", "streams": [stream_dict(**stream)]}))
    return path


def test_cli_reference_build_prints_a_summary_and_writes_the_profile(tmp_path: Path) -> None:
    data = write_jsonl(tmp_path / "r.jsonl", dirty_lines())
    out = tmp_path / "p.json"
    res = run_cli("reference", "build", str(write_spec(tmp_path)), "--input", str(data), "--out", str(out))
    assert res.returncode == 0, res.stderr
    text = res.stdout
    assert "200 records read, 180 profiled, 20 excluded" in text
    for line in ("missing_id", "invalid_event_time", "malformed_json"):
        assert line in text
    assert "age: 18 of 180 values (10%) outside range [18, 100]: reference min -0.34" in text
    assert "3 feature(s) whose reference data breaks the spec" in text
    assert ReferenceProfile.load(out).rows == 180


def test_cli_reference_build_strict_fails_and_writes_nothing(tmp_path: Path) -> None:
    data = write_jsonl(tmp_path / "r.jsonl", dirty_lines())
    out = tmp_path / "p.json"
    res = run_cli("reference", "build", str(write_spec(tmp_path)), "--input", str(data), "--out", str(out),
                  "--strict")
    assert res.returncode == 1
    assert "--strict: the reference data of 3 feature(s) breaks the spec (age, country, code)" in res.stderr
    assert not out.exists()
    assert "Traceback" not in res.stdout + res.stderr


def test_cli_reference_build_strict_passes_clean_data(tmp_path: Path) -> None:
    data = write_jsonl(tmp_path / "r.jsonl", [orjson.dumps(clean(i)) for i in range(300)])
    out = tmp_path / "p.json"
    res = run_cli("reference", "build", str(write_spec(tmp_path)), "--input", str(data), "--out", str(out),
                  "--strict")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "300 records read, 300 profiled, 0 excluded" in res.stdout and out.exists()


# ---------------------------------------------------------------- validate


def test_drift_features() -> None:
    assert drift_features(STREAM) == ["age", "income", "country", "code"]  # not the string feature
    off = StreamSpec.model_validate(stream_dict(drift={"methods": []}))
    assert drift_features(off) == []
    one = StreamSpec.model_validate(stream_dict(
        drift={"methods": []}, features=[{"name": "a", "type": "numeric", "drift_methods": ["ks"]}]))
    assert drift_features(one) == ["a"]


def test_spec_warnings() -> None:
    def warnings(**kw: Any) -> list[str]:
        return spec_warnings(parse_spec({"version": 1, "name": "t", "streams": [stream_dict(**kw)]}))

    [w] = warnings()
    assert w.startswith("stream 'features' has no reference: profile, so drift is never measured for its 4 "
                        "drift-tested feature(s) (age, income, country, code; methods: auto)")
    assert warnings(reference="ref.json") == []
    assert warnings(drift={"methods": []}) == []
    assert warnings(features=[{"name": "note", "type": "string"}]) == []
    [w] = warnings(drift={"methods": ["psi", "ks"]})
    assert "methods: psi, ks" in w
    [w] = warnings(rolling_reference=3)
    assert "only compared with the previous 3 window(s) (rolling_reference)" in w


def test_cli_validate_warns_on_stderr_and_exits_0(tmp_path: Path) -> None:
    res = run_cli("validate", str(write_spec(tmp_path)))
    assert res.returncode == 0, res.stderr
    assert "valid" in res.stdout
    assert "warning: stream 'features' has no reference: profile, so drift is never measured" in res.stderr
    assert "warning" not in res.stdout


def test_cli_validate_deploy_spec_has_no_warning() -> None:
    res = run_cli("validate", str(REPO / "deploy" / "monitor.yaml"))
    assert res.returncode == 0 and "warning" not in res.stderr, res.stderr
