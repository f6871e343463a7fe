"""``streamdq status`` against a real worker on the real broker: the /status document, the CLI's JSON and
table output (stdout piped), --watch, and the one-line failure once the worker is gone."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import orjson
from jsonschema import Draft202012Validator

from monitor.testing.synthetic import Scenario, SyntheticFeatures

from .conftest import consume_all, demo_spec, launch_worker, make_reference, producer, wait_for

REPO = Path(__file__).resolve().parents[2]
DRIFTED = {"age", "country"}


def _cli(*args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "agents.cli", "status", *args], capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def _status(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url + "/status", timeout=5) as resp:
        return orjson.loads(resp.read())


def test_status_of_a_running_worker(kafka_bootstrap: str, tmp_path: Path, uid: str) -> None:
    validator = Draft202012Validator(json.loads((REPO / "schemas" / "status.schema.json").read_text()))
    spec = demo_spec(uid, make_reference(tmp_path / "reference.profile.json"), window=1000, partitions=1)
    worker = launch_worker(kafka_bootstrap, spec, tmp_path)
    try:
        # Before any record: the stream is listed, nothing closed yet.
        before = _cli("--url", worker.url, "--json")
        assert before.returncode == 0, before.stderr
        doc = orjson.loads(before.stdout)
        validator.validate(doc)
        [stream] = doc["streams"]
        assert (stream["name"], stream["records_processed"]) == ("features", 0)
        assert [w["last_closed"] for w in stream["windows"]] == [None]
        assert {f["state"] for f in stream["features"]} == {"no data"}

        topic = spec["streams"][0]["topic"]
        gen = SyntheticFeatures(seed=7)
        p = producer(kafka_bootstrap)
        for i in range(6000):
            rec = gen.record(now=time.time(), scenario=Scenario(drift=i >= 3000))
            p.produce(topic, orjson.dumps(rec), key=rec["record_id"])
            p.poll(0)
        p.flush(30)
        wait_for("6 closed windows", lambda: (lambda s: s["records_processed"] == 6000
                 and (s["windows"][0]["last_closed"] or {}).get("index") == 5)(_status(worker.url)["streams"][0]),
                 log=worker.log_tail)

        # The open alerts are exactly those the alerts topic left firing.
        events = [orjson.loads(m.value()) for m in consume_all(kafka_bootstrap, spec["outputs"]["alerts_topic"])]
        firing: dict[str, dict[str, Any]] = {}
        for e in events:
            if e["status"] == "firing":
                firing[e["fingerprint"]] = e
            else:
                firing.pop(e["fingerprint"], None)
        assert {e["feature"] for e in firing.values()} & DRIFTED, events

        got = _cli("--url", worker.url, "--json")
        assert got.returncode == 0, got.stderr
        doc = orjson.loads(got.stdout)
        validator.validate(doc)
        assert doc["status"] == "ok" and doc["assigned_partitions"] == [f"{topic}:0"]
        assert {a["fingerprint"] for a in doc["open_alerts"]} == set(firing)
        for a in doc["open_alerts"]:
            e = firing[a["fingerprint"]]
            assert (a["stream"], a["feature"], a["check"], a["severity"]) == (
                e["stream"], e["feature"], e["check"], e["severity"])
        [stream] = doc["streams"]
        last = stream["windows"][0]["last_closed"]
        assert (last["index"], last["count"], last["partial"]) == (5, 1000, False)
        features = {f["name"]: f for f in stream["features"]}
        for name in DRIFTED:
            assert features[name]["window"] == "w1000" and features[name]["count"] == 1000
            assert any(d["drifted"] for d in features[name]["drift"].values()), features[name]
            assert features[name]["state"] in ("alert", "drifted")
        alerting = {(a["feature"], a["check"]) for a in doc["open_alerts"] if a["feature"]}
        for name, f in features.items():
            assert set(f["alerting"]) == {c for n, c in alerting if n == name}
            assert (f["state"] == "alert") == bool(f["alerting"])
            assert 0.0 <= f["quality"]["missing_ratio"] <= 1.0

        # The table, with stdout piped (a log file): plain lines, no colour codes, every open alert shown.
        table = _cli("--url", worker.url)
        assert table.returncode == 0, table.stderr
        out = table.stdout
        assert "\x1b[" not in out
        assert "streams and windows" in out and "features (last closed window)" in out and "open alerts" in out
        assert "6,000" in out and "#5" in out
        for a in doc["open_alerts"]:
            assert any(a["check"] in line and (a["feature"] or "(record)") in line for line in out.splitlines()), out
        assert max(len(line) for line in out.splitlines()) <= 160

        # --watch --json: one JSON document per line and refresh, until stopped.
        proc = subprocess.Popen([sys.executable, "-m", "agents.cli", "status", "--url", worker.url, "--json",
                                 "--watch", "0.5"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            assert proc.stdout is not None
            lines = [proc.stdout.readline() for _ in range(3)]  # blocks until each refresh printed its line
        finally:
            proc.terminate()
            proc.communicate(timeout=10)
        assert all(orjson.loads(line)["streams"][0]["records_processed"] == 6000 for line in lines), lines
    finally:
        worker.stop()

    gone = _cli("--url", worker.url)
    assert gone.returncode == 1
    assert gone.stdout == ""
    [line] = gone.stderr.strip().splitlines()
    assert line.startswith(f"error: cannot reach the worker at {worker.url} ("), line
