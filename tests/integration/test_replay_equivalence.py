"""The same records replayed offline and streamed through a worker produce the same alerts."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from monitor.replay import replay
from monitor.spec import parse_spec
from monitor.testing.synthetic import Scenario, SyntheticFeatures

from .conftest import consume_all, demo_spec, launch_worker, make_reference, metric_total, producer, wait_for

BASE_TIME = 1_750_000_000.0


def _records() -> list[dict[str, Any]]:
    gen = SyntheticFeatures(seed=21)
    out = []
    phases = [(3000, Scenario()), (3000, Scenario(drift=True)), (2000, Scenario(missing_spike=True))]
    for n, scenario in phases:
        for _ in range(n):
            out.append(gen.record(now=BASE_TIME + len(out) * 0.01, scenario=scenario))
    return out


def _key(event: dict[str, Any]) -> tuple[Any, ...]:
    return (event["alert_id"], event["feature"], event["check"], event["severity"], round(event["value"], 9),
            event["sample_size"])


@pytest.mark.timeout(300)
def test_replay_and_worker_raise_the_same_alerts(kafka_bootstrap: str, tmp_path: Path) -> None:
    spec = demo_spec(uuid.uuid4().hex[:10], make_reference(tmp_path / "ref.json"), window=1000, partitions=1)
    records = _records()
    worker = launch_worker(kafka_bootstrap, spec, tmp_path)
    try:
        p = producer(kafka_bootstrap)
        topic = spec["streams"][0]["topic"]
        # Mixed message shapes on purpose: single records and arrays of 50 (batching must not matter).
        i = 0
        while i < len(records):
            if (i // 500) % 2:
                p.produce(topic, orjson.dumps(records[i:i + 50]))
                i += 50
            else:
                p.produce(topic, orjson.dumps(records[i]))
                i += 1
            p.poll(0)
        assert p.flush(30) == 0
        wait_for("the worker to process every record",
                 lambda: metric_total(worker, 'streamdq_records_total{outcome="processed",stream="features"}')
                 == len(records), log=worker.log_tail)
        live = [orjson.loads(m.value()) for m in consume_all(kafka_bootstrap, spec["outputs"]["alerts_topic"],
                                                             expect=1, idle=3.0)]
    finally:
        worker.stop()

    jsonl = tmp_path / "history.jsonl"
    jsonl.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))
    parsed = parse_spec(yaml.safe_load(yaml.safe_dump(spec)))
    from monitor.reference import load_references

    summary = replay(parsed, {parsed.streams[0].name: (orjson.loads(line) for line in jsonl.read_bytes().splitlines())},
                     tmp_path / "out", references=load_references(parsed))
    offline = [orjson.loads(line) for line in (tmp_path / "out" / "alerts.jsonl").read_bytes().splitlines()]
    offline = [e for e in offline if not e["window"].get("partial")]

    assert summary.records == len(records)
    assert live, "the worker raised no alert"
    assert {e["check"] for e in live} >= {"psi", "missing_ratio"}
    assert {e["status"] for e in live} == {"firing", "resolved"}  # the drift ends: its alerts resolve
    assert sorted(map(_key, live)) == sorted(map(_key, offline))

    # The same range replayed from the topic (the CLI's --topic path) gives the same file, and a
    # reference profile can be built from a topic range too.
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(yaml.safe_dump(spec, sort_keys=False))
    env = {**os.environ, "KAFKA_BOOTSTRAP": kafka_bootstrap}
    topic = spec["streams"][0]["topic"]
    res = subprocess.run([sys.executable, "-m", "agents.cli", "replay", str(spec_path), "--topic", topic,
                          "--out", str(tmp_path / "from-topic")], capture_output=True, text=True, timeout=120,
                         env=env)
    assert res.returncode == 0, res.stdout + res.stderr
    assert (tmp_path / "from-topic" / "alerts.jsonl").read_bytes() == (tmp_path / "out" / "alerts.jsonl").read_bytes()
    res = subprocess.run([sys.executable, "-m", "agents.cli", "reference", "build", str(spec_path), "--topic", topic,
                          "--from", "0", "--to", "500", "--out", str(tmp_path / "topic-ref.json")],
                         capture_output=True, text=True, timeout=120, env=env)
    assert res.returncode == 0, res.stdout + res.stderr
    profile = orjson.loads((tmp_path / "topic-ref.json").read_bytes())
    # offsets count messages: the first 500 messages are single records (arrays come after them)
    assert profile["rows"] == 500 and profile["source"]["kind"] == "kafka"



@pytest.mark.timeout(300)
def test_replay_of_a_multi_partition_topic_equals_the_worker(kafka_bootstrap: str, tmp_path: Path) -> None:
    """Three partitions, keyed records: ``replay --topic`` reads the partitions side by side, each updating its
    own windows, so every window and alert equals the worker's (it used to read partition 0 to its end, then 1,
    ..., and judge most of partitions 1 and 2 late)."""
    spec = demo_spec(uuid.uuid4().hex[:10], make_reference(tmp_path / "ref.json"), window=900, partitions=3)
    records = _records()
    worker = launch_worker(kafka_bootstrap, spec, tmp_path)
    topic = spec["streams"][0]["topic"]
    try:
        p = producer(kafka_bootstrap)
        for rec in records:
            p.produce(topic, orjson.dumps(rec), key=str(rec["record_id"]).encode())
            p.poll(0)
        assert p.flush(30) == 0
        wait_for("the worker to process every record",
                 lambda: metric_total(worker, 'streamdq_records_total{outcome="processed",stream="features"}')
                 == len(records), log=worker.log_tail)
        time.sleep(3)  # the merge agent's last windows
        live = [orjson.loads(m.value()) for m in consume_all(kafka_bootstrap, spec["outputs"]["alerts_topic"],
                                                             expect=1, idle=3.0)]
        profiles = [orjson.loads(m.value()) for m in consume_all(kafka_bootstrap, spec["outputs"]["profiles_topic"],
                                                                 expect=1, idle=2.0)]
    finally:
        worker.stop()
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(yaml.safe_dump(spec, sort_keys=False))
    env = {**os.environ, "KAFKA_BOOTSTRAP": kafka_bootstrap}
    res = subprocess.run([sys.executable, "-m", "agents.cli", "replay", str(spec_path), "--topic", topic,
                          "--out", str(tmp_path / "from-topic")], capture_output=True, text=True, timeout=120,
                         env=env)
    assert res.returncode == 0, res.stdout + res.stderr
    rows = [orjson.loads(line) for line in (tmp_path / "from-topic" / "windows.jsonl").read_bytes().splitlines()]
    offline_windows = {(r["window"]["index"], r["count"]) for r in rows
                       if r.get("feature") is None and not r["window"]["partial"]}
    live_windows = {(p["window"]["index"], p["count"]) for p in profiles}
    assert live_windows and offline_windows == live_windows
    assert {c for _, c in live_windows} == {900}  # 300 of each partition
    late = [r["records"]["late_ratio"] for r in rows if r.get("feature") is None]
    assert max(late) == 0.0  # the partitions read side by side: nothing judged late
    offline = [orjson.loads(line) for line in (tmp_path / "from-topic" / "alerts.jsonl").read_bytes().splitlines()]
    offline = [e for e in offline if not e["window"].get("partial")]
    assert live and sorted(map(_key, live)) == sorted(map(_key, offline))
