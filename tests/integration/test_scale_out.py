"""Several workers, one answer, on the real broker: each stream window is evaluated once, by the merge
agent, on every partition's records; each alert transition is sent once, with one ``alert_id``; a worker
killed for good hands its partitions (and, if it held it, the merge agent) to the others, and every window
still counts exactly the records produced for it.

Records go to partition ``i % P`` with event time ``BASE + i / 1000``: a time window of 2 s holds 2,000
records, a count window of ``size`` takes ``size / P`` records of each partition.
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
EVENTS_PER_SECOND = 1_000
TIME_WINDOW = 2.0


def _spec(uid: str, partitions: int, count_window: int) -> dict[str, Any]:
    spec = demo_spec(uid, None, window=count_window, partitions=partitions)
    s = spec["streams"][0]
    s["windows"].append({"name": "t2s", "kind": "time", "seconds": TIME_WINDOW})
    s["time"] = {"mode": "event", "allowed_lateness_seconds": 5.0, "idle_timeout_seconds": 5.0}
    s["duplicates"] = {"enabled": True, "capacity": 20_000}
    return spec


def _produce(bootstrap: str, topic: str, records: int, partitions: int, rate: float, done: threading.Event,
             *, missing: range = range(0)) -> None:
    gen = SyntheticFeatures(seed=21)
    p = producer(bootstrap)
    t0 = time.monotonic()
    for i in range(records):
        rec = gen.record(now=BASE + i / EVENTS_PER_SECOND)
        rec["event_time"] = BASE + i / EVENTS_PER_SECOND
        if i in missing:
            rec["income"] = None  # a missing-value spike: one incident, one alert
        p.produce(topic, orjson.dumps(rec), key=str(rec["record_id"]).encode(), partition=i % partitions)
        p.poll(0)
        ahead = (i + 1) / rate - (time.monotonic() - t0)
        if ahead > 0.005:
            time.sleep(ahead)
    p.flush(30)
    done.set()


def _far_ahead(bootstrap: str, topic: str, partitions: int) -> None:
    """One record per partition far ahead in event time: every partition's watermark passes every window."""
    p = producer(bootstrap)
    for partition in range(partitions):
        rec = SyntheticFeatures(seed=99).record(now=BASE + 1_000)
        rec["event_time"] = BASE + 1_000 + partition
        p.produce(topic, orjson.dumps(rec), partition=partition)
    assert p.flush(30) == 0


def _profiles(bootstrap: str, spec: dict[str, Any], count_windows: int, time_windows: int,
              window: str) -> list[dict[str, Any]] | None:
    profiles = [orjson.loads(m.value()) for m in consume_all(bootstrap, spec["outputs"]["profiles_topic"], idle=1.0)]
    counts = {p["window"]["index"] for p in profiles if p["window"]["name"] == window}
    times = {p["window"]["index"] for p in profiles if p["window"]["name"] == "t2s"}
    return profiles if len(counts) >= count_windows and len(times) >= time_windows else None


def _exact(profiles: list[dict[str, Any]], window: str, size: int, count_windows: int, time_windows: int) -> None:
    counts: dict[tuple[str, int], set[int]] = defaultdict(set)
    late: dict[tuple[str, int], set[int]] = defaultdict(set)
    for p in profiles:
        key = (p["window"]["name"], p["window"]["index"])
        counts[key].add(p["count"])
        late[key].add(p["records"]["late_excluded"])
    assert {i for n, i in counts if n == window} == set(range(count_windows))
    assert all(counts[(window, i)] == {size} for i in range(count_windows)), \
        {k: v for k, v in counts.items() if k[0] == window and v != {size}}
    first = int(BASE // TIME_WINDOW)
    per_window = int(TIME_WINDOW * EVENTS_PER_SECOND)
    for k in range(time_windows):
        assert counts[("t2s", first + k)] == {per_window}, \
            (k, {i - first: (c, late[(n, i)]) for (n, i), c in counts.items() if n == "t2s"})
        assert late[("t2s", first + k)] == {0}


@pytest.mark.timeout(300)
def test_two_workers_evaluate_each_window_once_and_send_each_alert_once(kafka_bootstrap: str,
                                                                         tmp_path: Path) -> None:
    uid = uuid.uuid4().hex[:10]
    partitions, size, records = 4, 800, 12_000
    spec = _spec(uid, partitions, size)
    topic = spec["streams"][0]["topic"]
    workers = [launch_worker(kafka_bootstrap, spec, tmp_path / f"w{i}", env={"STREAMDQ_INSTANCE_ID": f"so{i}-{uid}"})
               for i in range(2)]
    try:
        wait_for("both workers to hold input partitions",
                 lambda: all(metric_total(w, "streamdq_assigned_partitions") >= 1 for w in workers), timeout=60,
                 log=workers[0].log_tail)
        done = threading.Event()
        _produce(kafka_bootstrap, topic, records, partitions, 4_000, done, missing=range(4_000, 6_000))
        _far_ahead(kafka_bootstrap, topic, partitions)
        count_windows, time_windows = records // size, int(records / EVENTS_PER_SECOND // TIME_WINDOW)
        profiles = wait_for("every window closed",
                            lambda: _profiles(kafka_bootstrap, spec, count_windows, time_windows, f"w{size}"),
                            timeout=120, log=workers[0].log_tail)
        processed = [metric_total(w, 'streamdq_records_total{outcome="processed"') for w in workers]
    finally:
        for w in workers:
            w.stop()
    assert all(n > 0 for n in processed) and sum(processed) == records + partitions, processed
    _exact(profiles, f"w{size}", size, count_windows, time_windows)
    # Each window evaluated once: one profile per window, not one per worker.
    seen = [(p["window"]["name"], p["window"]["index"]) for p in profiles]
    assert len(seen) == len(set(seen)), sorted(k for k in set(seen) if seen.count(k) > 1)
    events = [orjson.loads(m.value()) for m in consume_all(kafka_bootstrap, spec["outputs"]["alerts_topic"], idle=1.0)]
    missing = [e for e in events if e["check"] == "missing_ratio" and e.get("feature") == "income"]
    firing = [e for e in missing if e["status"] == "firing"]
    assert firing, [(e["check"], e.get("feature"), e["status"]) for e in events]
    # One event per transition, one alert_id per incident: no worker sends its own copy.
    transitions = [(e["fingerprint"], e["status"], e["alert_id"]) for e in events]
    assert len(transitions) == len(set(transitions)), transitions
    assert len({e["alert_id"] for e in firing}) == len(firing)


@pytest.mark.timeout(360)
def test_a_worker_killed_for_good_hands_over_and_every_window_stays_exact(kafka_bootstrap: str,
                                                                           tmp_path: Path) -> None:
    uid = uuid.uuid4().hex[:10]
    partitions, size, records = 6, 600, 18_000
    spec = _spec(uid, partitions, size)
    topic = spec["streams"][0]["topic"]
    env = {"STREAMDQ_CHECKPOINT_SECONDS": "0.5"}
    workers = [launch_worker(kafka_bootstrap, spec, tmp_path / f"w{i}",
                             env={**env, "STREAMDQ_INSTANCE_ID": f"k{i}-{uid}"}) for i in range(3)]
    try:
        wait_for("every worker to hold input partitions",
                 lambda: all(metric_total(w, "streamdq_assigned_partitions") >= 1 for w in workers), timeout=90,
                 log=workers[0].log_tail)
        done = threading.Event()
        feeder = threading.Thread(target=_produce, args=(kafka_bootstrap, topic, records, partitions, 2_000, done),
                                  daemon=True)
        feeder.start()
        victim = workers[1]
        wait_for("a third of the stream processed and checkpointed",
                 lambda: sum(metric_total(w, 'streamdq_records_total{outcome="processed"') for w in workers)
                 >= records // 3 and metric_total(victim, "streamdq_checkpoints_total") >= 2, timeout=60,
                 log=victim.log_tail)
        victim.proc.send_signal(signal.SIGKILL)  # never comes back: its partitions move after its session
        victim.proc.wait(timeout=10)
        survivors = [workers[0], workers[2]]
        assert done.wait(90), "the producer did not finish"
        wait_for("the survivors to take every partition",
                 lambda: sum(metric_total(w, "streamdq_assigned_partitions") for w in survivors) >= partitions,
                 timeout=60, log=survivors[0].log_tail)
        _far_ahead(kafka_bootstrap, topic, partitions)
        count_windows, time_windows = records // size, int(records / EVENTS_PER_SECOND // TIME_WINDOW)
        profiles = wait_for("every window closed",
                            lambda: _profiles(kafka_bootstrap, spec, count_windows, time_windows, f"w{size}"),
                            timeout=120, log=survivors[0].log_tail)
    finally:
        for w in workers:
            w.stop()
    _exact(profiles, f"w{size}", size, count_windows, time_windows)
