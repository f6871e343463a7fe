"""Delivery through a crash at the worst moment, on the real broker: a worker dies after a batch's dead letters,
profiles and alert events were acknowledged and before its offsets were stored (``STREAMDQ_TEST_CRASH_POINT``).
The worker that takes over reads the batch again: nothing is lost, and every duplicate carries the key a
receiver deduplicates by (a dead letter's source position, an alert event's ``alert_id``)."""

from __future__ import annotations

import base64
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest

from agents.kafka.topics import ensure_topics, spec_topics
from agents.worker.ingest import CRASH_EXIT_CODE
from monitor.spec import parse_spec
from monitor.testing.synthetic import SyntheticFeatures

from .conftest import consume_all, demo_spec, launch_worker, producer, wait_for

BAD = [b"not json", b'{"no_id": 1}', b'"text"', b'{"record_id": "x", "age": NaN}', b"\xff\xfe"]


def _processed(worker: Any) -> float:
    for line in worker.metrics().splitlines():
        if line.startswith('streamdq_records_total{outcome="processed"'):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


@pytest.mark.timeout(240)
def test_a_crash_between_acknowledged_outputs_and_the_offset_commit_loses_nothing(
        kafka_bootstrap: str, tmp_path: Path) -> None:
    spec = demo_spec(uuid.uuid4().hex[:10], None, window=20, partitions=1)
    spec["alerting"] = {"for_windows": 1, "clear_windows": 1, "renotify_seconds": 0}
    topic = spec["streams"][0]["topic"]
    gen = SyntheticFeatures(seed=7)
    good = 0
    bad_offsets: list[int] = []
    p = producer(kafka_bootstrap)
    ensure_topics(kafka_bootstrap, spec_topics(parse_spec(spec)))
    offset = 0
    for i in range(60):
        rec = gen.record(now=1_700_000_000.0 + i)
        rec["age"] = None  # every window: missing_ratio 1.0, a critical alert
        p.produce(topic, orjson.dumps(rec))
        good += 1
        offset += 1
        if i % 12 == 5:
            p.produce(topic, BAD[len(bad_offsets) % len(BAD)])
            bad_offsets.append(offset)
            offset += 1
    assert p.flush(30) == 0

    crashing = launch_worker(kafka_bootstrap, spec, tmp_path / "a", env={"STREAMDQ_TEST_CRASH_POINT": "after_outputs"},
                             healthy=False)
    try:
        wait_for("the worker to crash after its first batch's outputs", lambda: crashing.proc.poll() is not None,
                 timeout=60, log=crashing.log_tail)
    finally:
        crashing.stop()
    assert crashing.proc.returncode == CRASH_EXIT_CODE, crashing.log_tail()
    assert "exiting before the batch counts as done" in crashing.log.read_text(errors="replace")
    first_deadletters = consume_all(kafka_bootstrap, spec["outputs"]["deadletter_topic"], idle=1.0)
    assert first_deadletters, "the crashed worker's dead letters were acknowledged before it died"

    # A new member (the old one left no session to wait for: it never joined with a static id).
    survivor = launch_worker(kafka_bootstrap, spec, tmp_path / "b")
    try:
        wait_for(f"the new worker to process all {good} records", lambda: _processed(survivor) >= good,
                 timeout=120, log=survivor.log_tail)
        time.sleep(1.0)
        assert _processed(survivor) == good  # read again from the last commit: none, so everything

        letters = [orjson.loads(m.value()) for m in consume_all(
            kafka_bootstrap, spec["outputs"]["deadletter_topic"], expect=2 * len(bad_offsets), idle=2.0)]
        keys = Counter((d["source"]["topic"], d["source"]["partition"], d["source"]["offset"], d["array_index"])
                       for d in letters)
        # nothing lost: every bad message has a dead letter; sent twice at most (before and after the crash)
        assert sorted({k[2] for k in keys}) == bad_offsets
        assert set(keys.values()) <= {1, 2}
        by_key: dict[Any, set[tuple[str, str]]] = {}
        for d in letters:
            k = (d["source"]["offset"], d["array_index"])
            by_key.setdefault(k, set()).add((d["reason"], d["original_b64"]))
        assert all(len(v) == 1 for v in by_key.values()), "duplicates of one record must be identical"
        assert {base64.b64decode(next(iter(v))[1]) for v in by_key.values()} == set(BAD)

        events = [orjson.loads(m.value()) for m in consume_all(kafka_bootstrap, spec["outputs"]["alerts_topic"],
                                                                 idle=2.0)]
        firing = [e for e in events if e["feature"] == "age" and e["check"] == "missing_ratio"
                  and e["status"] == "firing"]
        assert firing, events
        # one incident: however often it was sent, one alert_id and one fingerprint
        assert len({e["alert_id"] for e in firing}) == 1 and len({e["fingerprint"] for e in firing}) == 1
    finally:
        survivor.stop()


@pytest.mark.timeout(180)
def test_an_upgraded_worker_reads_on_from_the_offsets_its_faust_agents_committed(
        kafka_bootstrap: str, tmp_path: Path) -> None:
    """Releases before the ingest service read the inputs with Faust agents, committing under ``streamdq-<spec>``:
    the first start of the new ingest group takes those offsets instead of reading everything again."""
    from confluent_kafka import Consumer, TopicPartition

    spec = demo_spec(uuid.uuid4().hex[:10], None, window=10, partitions=2)
    topic = spec["streams"][0]["topic"]
    ensure_topics(kafka_bootstrap, spec_topics(parse_spec(spec)))
    gen = SyntheticFeatures(seed=5)
    p = producer(kafka_bootstrap)
    for i in range(100):
        p.produce(topic, orjson.dumps(gen.record(now=1_700_000_000.0 + i)), partition=i % 2)
    assert p.flush(30) == 0
    old = Consumer({"bootstrap.servers": kafka_bootstrap, "group.id": f"streamdq-{spec['name']}"})
    old.commit(offsets=[TopicPartition(topic, 0, 30), TopicPartition(topic, 1, 20)], asynchronous=False)
    old.close()
    worker = launch_worker(kafka_bootstrap, spec, tmp_path / "w")
    try:
        wait_for("the worker to read what the old agents had not", lambda: _processed(worker) >= 50, timeout=60,
                 log=worker.log_tail)
        time.sleep(1.5)
        assert _processed(worker) == 50  # (50 - 30) + (50 - 20): nothing read twice
        assert "took 2 offset(s) committed by the Faust group" in worker.log.read_text(errors="replace")
    finally:
        worker.stop()
