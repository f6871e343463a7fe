"""Exactly-once window counts through a SIGKILL, on the real broker.

A worker reads a three-partition topic while it is produced to, is killed with SIGKILL mid-stream and
is started again (same ``STREAMDQ_INSTANCE_ID``): each partition restores the checkpoint its committed
offset points to and reads on from there, and the merge agent takes its state back from its table. Every
window must count exactly the records produced for it: none lost with the dead process's open windows,
none counted twice from the records read again after the checkpoint (their panes, sent again, are merged
once). Windows closed after the checkpoint and before the kill may be published twice, identically.

Records go to partition ``i % 3``, so a count window of 600 takes 200 records of each partition.
"""

from __future__ import annotations

import signal
import threading
import time
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

import orjson
import pytest

from monitor.testing.synthetic import SyntheticFeatures

from .conftest import consume_all, demo_spec, launch_worker, metric_total, producer, wait_for

BASE = 1_700_000_000.0
RECORDS = 16_000
RATE = 2_000  # records/s produced
EVENTS_PER_SECOND = 1_000  # event time advances 1 s per 1,000 records
# Lateness is judged per partition, against its own watermark: a backlog read after the restart is not late.
COUNT_WINDOW, TIME_WINDOW, LATENESS = 600, 2.0, 5.0
PARTITIONS = 3


def _produce(bootstrap: str, topic: str, done: threading.Event) -> None:
    gen = SyntheticFeatures(seed=11)
    p = producer(bootstrap)
    t0 = time.monotonic()
    for i in range(RECORDS):
        rec = gen.record(now=BASE + i / EVENTS_PER_SECOND)
        rec["event_time"] = BASE + i / EVENTS_PER_SECOND
        p.produce(topic, orjson.dumps(rec), key=str(rec["record_id"]).encode(), partition=i % PARTITIONS)
        p.poll(0)
        ahead = (i + 1) / RATE - (time.monotonic() - t0)
        if ahead > 0.005:
            time.sleep(ahead)
    p.flush(30)
    done.set()


@pytest.mark.timeout(300)
def test_sigkill_mid_stream_then_restart_counts_every_record_once(kafka_bootstrap: str, tmp_path: Path) -> None:
    uid = uuid.uuid4().hex[:10]
    spec = demo_spec(uid, None, window=COUNT_WINDOW, partitions=3)
    s = spec["streams"][0]
    s["windows"].append({"name": "t2s", "kind": "time", "seconds": TIME_WINDOW})
    s["time"] = {"mode": "event", "allowed_lateness_seconds": LATENESS}
    s["duplicates"] = {"enabled": True, "capacity": 20_000}
    env = {"STREAMDQ_INSTANCE_ID": f"exact-{uid}", "STREAMDQ_CHECKPOINT_SECONDS": "0.5"}
    first = launch_worker(kafka_bootstrap, spec, tmp_path / "first", env=env)
    done = threading.Event()
    feeder = threading.Thread(target=_produce, args=(kafka_bootstrap, s["topic"], done), daemon=True)
    feeder.start()
    try:
        wait_for("the first worker to process a third of the stream and checkpoint",
                 lambda: metric_total(first, "streamdq_records_total{outcome=\"processed\"") >= RECORDS // 3
                 and metric_total(first, "streamdq_checkpoints_total") >= 2, timeout=60, log=first.log_tail)
    finally:
        first.proc.send_signal(signal.SIGKILL)
        first.proc.wait(timeout=10)
    killed_at = _killed_note(first)
    # Back as a restarted pod would be: same instance id, same address.
    second = launch_worker(kafka_bootstrap, spec, tmp_path / "second", env=env, timeout=60, port=first.port)
    try:
        assert done.wait(60), "the producer did not finish"
        log = second.log.read_text(errors="replace")
        assert "from checkpoints" in log, second.log_tail()
        wait_for("the second worker to catch up", lambda: _closed(kafka_bootstrap, spec, 0), timeout=90,
                 log=second.log_tail)
        # One record per partition far ahead in event time: the watermark passes every window's end.
        p = producer(kafka_bootstrap)
        for partition in range(3):
            late_rec = SyntheticFeatures(seed=99).record(now=BASE + 1_000)
            late_rec["event_time"] = BASE + 1_000 + partition
            p.produce(s["topic"], orjson.dumps(late_rec), partition=partition)
        assert p.flush(30) == 0
        expected_time = int(RECORDS / EVENTS_PER_SECOND // TIME_WINDOW)
        profiles = wait_for("every window closed", lambda: _closed(kafka_bootstrap, spec, expected_time),
                            timeout=90, log=second.log_tail)
    finally:
        second.stop()
    counts: dict[tuple[str, int], set[int]] = defaultdict(set)
    late: dict[tuple[str, int], set[int]] = defaultdict(set)
    for p in profiles:
        key = (p["window"]["name"], p["window"]["index"])
        counts[key].add(p["count"])
        late[key].add(p["records"]["late_excluded"])
    w = f"w{COUNT_WINDOW}"
    assert {i for n, i in counts if n == w} == set(range(RECORDS // COUNT_WINDOW)), killed_at  # the last one: open
    assert all(counts[(w, i)] == {COUNT_WINDOW} for i in range(RECORDS // COUNT_WINDOW)), \
        {k: v for k, v in counts.items() if k[0] == w and v != {COUNT_WINDOW}}
    per_window = int(TIME_WINDOW * EVENTS_PER_SECOND)
    first_index = int(BASE // TIME_WINDOW)
    for k in range(expected_time):
        assert counts[("t2s", first_index + k)] == {per_window}, \
            (k, {i - first_index: (c, late[(n, i)]) for (n, i), c in counts.items() if n == "t2s"})
        assert late[("t2s", first_index + k)] == {0}


def _killed_note(worker: Any) -> str:
    return f"the first worker was killed (its log ends: {worker.log_tail(5)})"


def _closed(bootstrap: str, spec: dict[str, Any], expected_time: int) -> list[dict[str, Any]] | None:
    profiles = [orjson.loads(m.value()) for m in consume_all(bootstrap, spec["outputs"]["profiles_topic"], idle=1.0)]
    w = f"w{COUNT_WINDOW}"
    count_windows = {p["window"]["index"] for p in profiles if p["window"]["name"] == w}
    time_windows = {p["window"]["index"] for p in profiles if p["window"]["name"] == "t2s"}
    if len(count_windows) >= RECORDS // COUNT_WINDOW and len(time_windows) >= expected_time:
        return profiles
    return None
