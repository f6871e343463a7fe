"""Progress of ``reference build`` and ``replay``: totals, rate and ETA; plain lines or JSON lines when the
output is piped (the CLI run in a subprocess with stdout and stderr piped), never a wrapped line."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from agents.cli.progress import RecordProgress, count_records
from monitor.testing.synthetic import Scenario, SyntheticFeatures

ROOT = Path(__file__).resolve().parents[2]
N = 25_000


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_count_records(tmp_path: Path) -> None:
    jsonl = tmp_path / "a.jsonl"
    jsonl.write_bytes(b'{"a": 1}\n{"a": 2}\n{"a": 3}')  # no newline after the last line
    assert count_records(jsonl) == 3
    csv = tmp_path / "a.csv"
    csv.write_text("a,b\n1,2\n3,4\n")
    assert count_records(csv) == 2
    parquet = tmp_path / "a.parquet"
    pq.write_table(pa.table({"a": list(range(7))}), parquet)
    assert count_records(parquet) == 7
    assert count_records(tmp_path / "missing.jsonl") is None
    assert count_records(tmp_path / "a.txt") is None


def test_plain_lines_with_total_rate_and_eta() -> None:
    clock, out = FakeClock(), io.StringIO()
    with RecordProgress("replaying", total=40_000, stream=out, interval=2.0, clock=clock) as progress:
        for n in range(10_000, 40_001, 10_000):
            clock.now += 1.5
            progress(n)
    assert out.getvalue().splitlines() == [
        "replaying: 20,000 of 40,000 records (50%), 6,667 records/s, ETA 3s",
        "replaying: 40,000 of 40,000 records (100%) in 6s, 6,667 records/s",
    ]


def test_total_dropped_when_lines_held_several_records() -> None:
    clock, out = FakeClock(), io.StringIO()
    with RecordProgress("replaying", total=10, stream=out, interval=0.0, clock=clock) as progress:
        clock.now = 1.0
        progress(5)
        clock.now = 2.0
        progress(20)
    assert out.getvalue().splitlines() == [
        "replaying: 5 of 10 records (50%), 5 records/s, ETA 1s",
        "replaying: 20 records, 10 records/s",
        "replaying: 20 of 20 records (100%) in 2s, 10 records/s",
    ]


def test_json_lines() -> None:
    clock, out = FakeClock(), io.StringIO()
    with RecordProgress("profiling", total=None, json_lines=True, json_stream=out, interval=1.0,
                        clock=clock) as progress:
        clock.now = 2.0
        progress(1000)
    first, last = (orjson.loads(line) for line in out.getvalue().splitlines())
    assert first == {"event": "progress", "what": "profiling", "records": 1000, "total": None, "elapsed_seconds": 2.0,
                     "records_per_second": 500.0, "eta_seconds": None, "done": False}
    assert last["done"] is True and last["total"] == 1000


def test_nothing_written_when_the_work_failed() -> None:
    out = io.StringIO()
    with pytest.raises(RuntimeError), RecordProgress("replaying", total=5, stream=out, interval=0.0):
        raise RuntimeError("boom")
    assert out.getvalue() == ""


# ------------------------------------------------------------------ the CLI, output piped


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    work = tmp_path_factory.mktemp("progress")
    raw = yaml.safe_load((ROOT / "deploy" / "monitor.yaml").read_text())
    raw["streams"] = raw["streams"][:1]
    raw["streams"][0]["reference"] = str(work / "ref.json")
    raw["streams"][0]["windows"] = [{"name": "w5000", "kind": "count", "size": 5000}]
    spec = work / "spec.yaml"
    spec.write_text(yaml.safe_dump(raw))
    gen = SyntheticFeatures(seed=3)
    clean = work / "clean.jsonl"
    clean.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in gen.records(N, now=1_700_000_000.0)))
    drifted = work / "drifted.jsonl"
    drifted.write_bytes(b"".join(orjson.dumps(r) + b"\n"
                                 for r in gen.records(N, now=1_700_000_000.0, scenario=Scenario(drift=True))))
    return {"spec": spec, "clean": clean, "drifted": drifted, "ref": work / "ref.json", "out": work / "replay"}


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "agents.cli", *args], capture_output=True, text=True, timeout=300,
                          stdin=subprocess.DEVNULL, cwd=ROOT, env={**os.environ, "COLUMNS": "80"})


def test_cli_piped_plain_lines_then_json_lines(inputs: dict[str, Path]) -> None:
    build = _run("reference", "build", str(inputs["spec"]), "--input", str(inputs["clean"]),
                 "--out", str(inputs["ref"]))
    assert build.returncode == 0, build.stderr
    progress = build.stderr.splitlines()
    assert progress[-1].startswith(f"profiling: {N:,} of {N:,} records (100%) in "), build.stderr
    assert progress[-1].endswith(" records/s")
    assert "\r" not in build.stderr and "\x1b[" not in build.stderr + build.stdout
    assert f"wrote {inputs['ref']}" in build.stdout

    replay = _run("replay", str(inputs["spec"]), "--input", str(inputs["drifted"]), "--out", str(inputs["out"]))
    assert replay.returncode == 0, replay.stderr
    assert replay.stderr.splitlines()[-1].startswith(f"replaying: {N:,} of {N:,} records (100%) in ")
    assert "\x1b[" not in replay.stdout + replay.stderr
    lines = replay.stdout.splitlines()
    # The table is as wide as its content (COLUMNS=80 would have wrapped it): each row holds a whole check name.
    assert max(map(len, lines)) > 80
    rows = [line for line in lines if line.startswith("│") and "events" not in line]
    assert rows and all(line.count("│") == 6 for line in rows), replay.stdout
    assert any("age" in line and "firing" in line for line in rows), replay.stdout
    assert lines[-1] == "wrote " + ", ".join(str(inputs["out"] / f) for f in
                                              ("alerts.jsonl", "windows.jsonl", "deadletters.jsonl"))

    as_json = _run("replay", str(inputs["spec"]), "--input", str(inputs["drifted"]), "--out", str(inputs["out"]),
                   "--json")
    assert as_json.returncode == 0, as_json.stderr
    docs = [orjson.loads(line) for line in as_json.stdout.splitlines()]
    *progress_docs, result = docs
    assert progress_docs and all(d["event"] == "progress" and d["total"] == N for d in progress_docs)
    assert progress_docs[-1]["done"] is True and progress_docs[-1]["records"] == N
    assert result["event"] == "result" and result["records"] == N and result["windows"] == N // 5000
    assert any(a["feature"] == "age" and a["status"] == "firing" for a in result["alerts"])
    assert as_json.stderr == ""

    build_json = _run("reference", "build", str(inputs["spec"]), "--input", str(inputs["clean"]), "--out",
                      str(inputs["ref"]), "--json")
    assert build_json.returncode == 0, build_json.stderr
    *_, last = (orjson.loads(line) for line in build_json.stdout.splitlines())
    assert last["event"] == "result" and last["records"] == N and last["out"] == str(inputs["ref"])
    assert f"wrote {inputs['ref']}" in build_json.stderr
