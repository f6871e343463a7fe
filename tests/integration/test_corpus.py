"""The bad-input corpus (``tests/support/corpus.py``) through a real worker on a real broker.

Every corpus message is sent between good records (three before, three after; some through gzip, zstd and
lz4 producers), then 1,000 more good records so that every window (tumbling, sliding and event-time) closes
over them. Then: each class is dead-lettered with its precise reason (read back from the dead-letter topic,
matched by source offset) or processed as documented; ``/health`` answered ok throughout; processed +
dead-lettered = produced in ``/metrics``; no good record was dead-lettered; the worker is still running;
``reference build --topic`` over the same topic excludes exactly what the worker dead-lettered.

The 1.7e308 case goes to a second stream of the same worker (with sliding windows, whose pane merges once
overflowed), so that an engine error on it could not spill over to the other cases. Cases listed in
:data:`tests.support.corpus.KNOWN_BUGS` (none today) are marked ``xfail(strict=False)``.
"""

from __future__ import annotations

import base64
import copy
import os
import re
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic
from prometheus_client.parser import text_string_to_metric_families

from monitor.testing.synthetic import SyntheticFeatures
from tests.support.corpus import CASES, KNOWN_BUGS, MAX_MESSAGE_BYTES, Case

from .conftest import consume_all, demo_spec, launch_worker, make_reference

pytestmark = pytest.mark.timeout(300)

#: Good records sent before and after each corpus message, and after the whole corpus.
AROUND, TRAILING = 3, 1000
#: Input topics accept messages this large, so that the 2 MB case reaches the worker (which dead-letters it).
TOPIC_MAX_BYTES = 4 * 1024 * 1024
ORIGINAL_CUT = 256 * 1024  # agents.worker.deadletter.MAX_ORIGINAL_BYTES


class HealthWatch(threading.Thread):
    """Polls ``/health`` every 0.5 s and keeps every answer that was not 200 and ``ok``."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url, self.polls = url, 0
        self.bad: list[tuple[float, int | None, Any]] = []
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.is_set():
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=10) as resp:
                    body = orjson.loads(resp.read())
                    if resp.status != 200 or body.get("status") != "ok":
                        self.bad.append((time.time(), resp.status, body))
            except Exception as exc:  # a refused, failed or 503 poll (HTTPError) is what we record
                self.bad.append((time.time(), None, repr(exc)))
            self.polls += 1
            self.halt.wait(0.5)


def _samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {(s.name, frozenset(s.labels.items())): s.value
            for fam in text_string_to_metric_families(text) for s in fam.samples}


def _counter(samples: dict[Any, float], name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


@pytest.fixture(scope="module")
def corpus_run(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    work = tmp_path_factory.mktemp("corpus")
    uid = uuid.uuid4().hex[:10]
    spec = demo_spec(uid, make_reference(work / "reference.profile.json"), partitions=1)
    main = spec["streams"][0]
    main["windows"] = [{"name": "w500", "kind": "count", "size": 500},
                       {"name": "s400", "kind": "count", "size": 400, "slide": 200},
                       {"name": "t60s", "kind": "time", "seconds": 60}]
    overflow = copy.deepcopy(main)
    overflow.update(name="overflow", topic=f"overflow-{uid}")
    spec["streams"].append(overflow)
    topics = {"features": main["topic"], "overflow": overflow["topic"]}
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    for fut in admin.create_topics([NewTopic(t, num_partitions=1, replication_factor=1,
                                             config={"max.message.bytes": str(TOPIC_MAX_BYTES)})
                                    for t in topics.values()]).values():
        fut.result(30)
    worker = launch_worker(kafka_bootstrap, spec, work)
    watch = HealthWatch(worker.url)
    watch.start()
    try:
        yield _run(kafka_bootstrap, spec, topics, worker, watch)
    finally:
        watch.halt.set()
        worker.stop()


def _run(bootstrap: str, spec: dict[str, Any], topics: dict[str, str], worker: Any,
         watch: HealthWatch) -> dict[str, Any]:
    base = {"bootstrap.servers": bootstrap, "linger.ms": 5, "log_level": 0, "message.max.bytes": TOPIC_MAX_BYTES}
    producers = {codec: Producer({**base, "compression.type": codec or "none"})
                 for codec in (None, "gzip", "zstd", "lz4")}
    positions: dict[str, tuple[str, int]] = {}   # case name -> (topic, offset)
    good_at: list[tuple[str, int]] = []
    errors: list[str] = []

    def delivered(tag: str) -> Any:
        def cb(err: Any, msg: Any) -> None:
            if err is not None:
                errors.append(f"{tag}: {err}")
            elif tag.startswith("good:"):
                good_at.append((msg.topic(), msg.offset()))
            else:
                positions[tag] = (msg.topic(), msg.offset())
        return cb

    gen = SyntheticFeatures(seed=17)
    goods = Counter[str]()

    def send_good(stream: str, n: int) -> None:
        for rec in gen.records(n, now=time.time()):
            producers[None].produce(topics[stream], orjson.dumps(rec), key=rec["record_id"].encode(),
                                    on_delivery=delivered(f"good:{rec['record_id']}"))
            goods[stream] += 1
        producers[None].poll(0)

    for case in CASES:
        send_good(case.stream, AROUND)
        assert producers[None].flush(30) == 0
        p = producers[case.compression]
        p.produce(topics[case.stream], case.value, key=case.name.encode(), on_delivery=delivered(case.name))
        assert p.flush(30) == 0
        send_good(case.stream, AROUND)
    for stream in topics:
        send_good(stream, TRAILING)
    for p in producers.values():
        assert p.flush(60) == 0
    assert not errors, errors
    assert set(positions) == {c.name for c in CASES}

    produced = {s: goods[s] + sum(c.records for c in CASES if c.stream == s) for s in topics}
    deadline = time.monotonic() + 180
    samples: dict[Any, float] = {}
    while time.monotonic() < deadline:
        samples = _samples(worker.metrics())
        done = {s: _counter(samples, "streamdq_records_total", stream=s, outcome="processed")
                + _counter(samples, "streamdq_records_total", stream=s, outcome="deadlettered") for s in topics}
        if done == produced:
            break
        assert worker.proc.poll() is None, f"the worker exited:\n{worker.log_tail()}"
        time.sleep(0.5)
    # at least what the corpus documents; processing_error ones (the known bug) come on top of it
    expected_dl = sum(len(c.worker_letters) for c in CASES)
    letters = [orjson.loads(m.value()) for m in consume_all(bootstrap, spec["outputs"]["deadletter_topic"],
                                                            expect=expected_dl, idle=3.0, timeout=90)]
    at: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for env in letters:
        at.setdefault((env["source"]["topic"], env["source"]["offset"]), []).append(env)
    return {"bootstrap": bootstrap, "spec": spec, "worker": worker, "watch": watch, "samples": samples,
            "produced": produced, "goods": dict(goods), "positions": positions, "good_at": good_at,
            "letters": letters, "at": at, "topics": topics}


def _params() -> list[Any]:
    return [pytest.param(c, id=c.name, marks=[pytest.mark.xfail(strict=False, reason=KNOWN_BUGS[c.name])]
                         if c.name in KNOWN_BUGS else []) for c in CASES]


@pytest.mark.parametrize("case", _params())
def test_case_gets_its_documented_outcome(corpus_run: dict[str, Any], case: Case) -> None:
    where = corpus_run["positions"][case.name]
    got = sorted(corpus_run["at"].get(where, []), key=lambda e: (e["array_index"] is None, e["array_index"] or 0))
    assert [e["reason"] for e in got] == list(case.worker_letters), [(e["reason"], e["detail"]) for e in got]
    for env in got:
        assert env["stream"] == case.stream and env["reason_text"]
        if env["array_index"] is None:  # the whole message: its original bytes (cut at 256 KiB)
            value = case.value or b""
            assert base64.b64decode(env["original_b64"]) == value[:ORIGINAL_CUT]
            assert env["original_size"] == len(value)
            assert env["original_truncated"] == (len(value) > ORIGINAL_CUT)
    if case.detail is not None:
        assert any(case.detail in e["detail"] for e in got), [e["detail"] for e in got]
    if case.stream != "features":  # alone on its stream: everything there is as documented too
        stream_letters = [e for e in corpus_run["letters"] if e["stream"] == case.stream]
        assert stream_letters == got, [(e["reason"], e["detail"][:200]) for e in stream_letters]
        s = corpus_run["samples"]
        assert _counter(s, "streamdq_records_total", stream=case.stream, outcome="processed") == \
            corpus_run["goods"][case.stream] + case.worker_processed


def test_processed_plus_deadlettered_equals_produced(corpus_run: dict[str, Any]) -> None:
    s, produced = corpus_run["samples"], corpus_run["produced"]
    for stream in corpus_run["topics"]:
        processed = _counter(s, "streamdq_records_total", stream=stream, outcome="processed")
        dead = _counter(s, "streamdq_records_total", stream=stream, outcome="deadlettered")
        assert processed + dead == produced[stream], (stream, processed, dead, corpus_run["worker"].log_tail())
    main = [c for c in CASES if c.stream == "features"]
    assert _counter(s, "streamdq_records_total", stream="features", outcome="processed") == \
        corpus_run["goods"]["features"] + sum(c.worker_processed for c in main)
    want = Counter(r for c in main for r in c.worker_letters)
    for reason, n in want.items():
        assert _counter(s, "streamdq_deadletter_records_total", stream="features", reason=reason) == n, reason
    assert _counter(s, "streamdq_deadletter_records_total", stream="features", reason="processing_error") == 0


def test_no_good_record_is_lost(corpus_run: dict[str, Any]) -> None:
    on_main = corpus_run["topics"]["features"]
    goods = [pos for pos in corpus_run["good_at"] if pos[0] == on_main]
    assert len(goods) == corpus_run["goods"]["features"]
    lost = [corpus_run["at"][pos] for pos in goods if pos in corpus_run["at"]]
    assert not lost, lost
    main_letters = [e for e in corpus_run["letters"] if e["stream"] == "features"]
    assert len(main_letters) == sum(len(c.worker_letters) for c in CASES if c.stream == "features")


def test_health_was_ok_throughout_and_the_worker_is_alive(corpus_run: dict[str, Any]) -> None:
    watch = corpus_run["watch"]
    assert watch.polls >= 5
    assert watch.bad == []
    assert corpus_run["worker"].proc.poll() is None, corpus_run["worker"].log_tail()


def test_corpus_messages_fit_the_documented_limits() -> None:
    big = next(c for c in CASES if c.name == "oversized_2mb")
    assert big.value is not None and len(big.value) > MAX_MESSAGE_BYTES and len(big.value) < TOPIC_MAX_BYTES


def test_reference_build_from_the_topic_excludes_what_the_worker_dead_lettered(corpus_run: dict[str, Any],
                                                                               tmp_path: Path) -> None:
    """``reference build --topic`` decodes and checks like the worker: it leaves out (and counts, per reason)
    exactly the records the worker's decoder dead-lettered, and profiles those it decoded (a reference build has
    no clock: a far-future event time, which a worker refuses, is profiled)."""
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(yaml.safe_dump(corpus_run["spec"], sort_keys=False))
    res = subprocess.run([sys.executable, "-m", "agents.cli", "reference", "build", str(spec_path),
                          "--stream", "features", "--topic", corpus_run["topics"]["features"],
                          "--out", str(tmp_path / "ref.json")],
                         capture_output=True, text=True, timeout=180,
                         env={**os.environ, "KAFKA_BOOTSTRAP": corpus_run["bootstrap"]})
    assert res.returncode == 0, res.stdout + res.stderr
    main = [c for c in CASES if c.stream == "features"]
    produced, processed = corpus_run["produced"]["features"], corpus_run["goods"]["features"] + sum(
        c.processed for c in main)
    assert (f"reference input: {produced:,} records read, {processed:,} profiled, {produced - processed:,} "
            "excluded") in res.stdout, res.stdout
    for reason, n in Counter(r for c in main for r in c.deadletters).items():
        assert re.search(rf"^  {reason} +{n:,}  ", res.stdout, re.M), (reason, n, res.stdout)


def test_worker_stops_without_leak_reports(corpus_run: dict[str, Any]) -> None:
    """Last (it stops the worker): a SIGTERM shutdown prints no nanobind leak report (issue #14 item 7)."""
    worker = corpus_run["worker"]
    corpus_run["watch"].halt.set()
    worker.stop()
    log = worker.log.read_text(errors="replace")
    assert "Closing event loop" in log
    assert "nanobind" not in log, log[-3000:]
