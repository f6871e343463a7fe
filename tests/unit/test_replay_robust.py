"""Replay never aborts on data, and alerts only from windows a worker would have closed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import yaml

REPO = Path(__file__).resolve().parents[2]
SPEC = {"version": 1, "name": "r", "streams": [{
    "name": "f", "windows": [{"name": "w100", "kind": "count", "size": 100}], "min_samples": 50,
    "features": [{"name": "x", "type": "numeric"}]}]}


def _run(tmp_path: Path, lines: list[bytes], *extra: str) -> tuple[subprocess.CompletedProcess[str], Path]:
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(SPEC))
    data = tmp_path / "live.jsonl"
    data.write_bytes(b"".join(line + b"\n" for line in lines))
    out = tmp_path / ("out" + "".join(extra).replace("-", ""))
    res = subprocess.run([sys.executable, "-m", "agents.cli", "replay", str(spec), "--input", str(data),
                          "--out", str(out), *extra], capture_output=True, text=True, timeout=120, cwd=REPO)
    return res, out


def _jsonl(path: Path) -> list[dict[str, object]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def test_bad_lines_are_dead_lettered_with_their_line_number_and_the_replay_goes_on(tmp_path: Path) -> None:
    good = [orjson.dumps({"record_id": i, "event_time": 1000.0 + i, "x": 1.0}) for i in range(250)]
    lines = [*good[:10], b'{"record_id": 10, "x": ', b"\xff\xfe not utf-8", *good[10:], b'{"x": 2.0}']
    res, out = _run(tmp_path, lines)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "250 records" in res.stdout
    dead = _jsonl(out / "deadletters.jsonl")
    assert [(d["reason"], str(d["detail"]).split(":")[0]) for d in dead] == [
        ("malformed_json", "line 11"), ("malformed_json", "line 12"), ("missing_id", "line 253")]
    assert dead[0]["original"] == '{"record_id": 10, "x": '
    windows = [w for w in _jsonl(out / "windows.jsonl") if w["feature"] is None]
    assert [(w["window"]["index"], w["count"], w["window"]["partial"]) for w in windows] == [  # type: ignore[index]
        (0, 100, False), (1, 100, False), (2, 50, True)]


def test_partial_windows_raise_alerts_only_with_close_partial(tmp_path: Path) -> None:
    clean = [orjson.dumps({"record_id": i, "event_time": 1000.0 + i, "x": 1.0}) for i in range(100)]
    missing = [orjson.dumps({"record_id": 100 + i, "event_time": 1100.0 + i}) for i in range(50)]  # x missing
    res, out = _run(tmp_path, [*clean, *missing])
    assert res.returncode == 0, res.stderr
    assert _jsonl(out / "alerts.jsonl") == []
    [partial] = [w for w in _jsonl(out / "windows.jsonl") if w["feature"] == "x" and w["window"]["partial"]]  # type: ignore[index]
    assert partial["alerts"] and partial["quality"]["missing_ratio"] == 1.0  # type: ignore[index]
    res, out = _run(tmp_path, [*clean, *missing], "--close-partial")
    assert res.returncode == 0, res.stderr
    assert [(a["check"], a["status"], a["window"]["partial"]) for a in _jsonl(out / "alerts.jsonl")] == [  # type: ignore[index]
        ("missing_ratio", "firing", True)]
