"""Worker benchmark: a streamdq worker's records/s next to two baselines, measured side by side in one run.

Everything runs on one broker (a local Apache Kafka, or ``KAFKA_BOOTSTRAP`` when set: then no broker is
started) and one machine, which may be shared and noisy: the figures to read are the ratios to the
baselines measured in the same run, in interleaved rounds, not any absolute records/s.

Configurations, each run ``--repeats`` times, rounds interleaved (raw, no-op, single, array, columnar,
raw, no-op, ...), every run with a new consumer group reading its pre-loaded topic from the start:

* ``raw_consumer``: the ceiling. confluent-kafka ``Consumer.consume(1000)`` + ``orjson.loads`` of each
  value, in this process, draining the single-record topic;
* ``faust_noop``: ``benchmarks/faust_noop.py``, a minimal Faust app whose agent does nothing but count
  (a subprocess; the bench polls the count it serves at ``/count``), draining the same topic;
* ``streamdq_single`` / ``streamdq_array`` / ``streamdq_columnar``: ``python -m agents.cli worker`` for the
  features stream of ``deploy/monitor.yaml`` (9 features, count window 2,000, 30 s event-time window, every
  default check, one partition) draining single-record JSON messages (the topic the baselines drain), JSON
  arrays of 100 records, and columnar messages (``{"columns": ...}``) of 100 records. The worker is
  measured only through its CLI and ``/metrics`` (``streamdq_records_total{outcome="processed"}``).

Records/s is the steady rate: from the first time a run is seen to have processed something (its counter
polled every 0.1 s; for the in-process raw consumer, its first non-empty batch) to the moment the counter
reaches the records loaded, so start-up and group join are left out (reported apart as
``first_progress_seconds``). A counter moves in steps (the worker hands up to 1,000 messages to its engine
at once: 100,000 records in arrays), so each run also says over how many steps it was measured
(``counter_moves``); a run that finished within one step has no steady interval and its rate includes
start-up (``steady: false``: with ``--quick`` or small ``--records``). Baselines count messages, which are
records on the single-record topic; an array or columnar message carries 100 records, so those ratios can
exceed 1.

Also, unless turned off: resident memory of each worker (VmRSS of the process and its children, from
/proc) at 1/5 of its records and at the end; ``--workers-scaling``: one against two workers of one group
on a two-partition topic of arrays (records produced once every worker has been assigned a partition and
processed a warm-up record); ``--recovery``: a worker fed 2,000 records/s is SIGKILLed and started again
with the same arguments and environment (``STREAMDQ_INSTANCE_ID=bench-0`` both times), and the seconds
until its processed counter moves again are reported.

Writes ``benchmarks/results/worker.json`` and ``worker.md`` (or ``--out``). Not a test: nothing here
asserts a time. ``--quick`` is a smoke run (5,000 records, one round, no scaling or recovery unless asked).

Usage: ``python benchmarks/worker_bench.py [--records 200000] [--repeats 3] [--quick]
[--[no-]workers-scaling] [--[no-]recovery] [--out benchmarks/results/worker.json]``
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import yaml
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agents.cli.localkafka import LocalKafka, _die_with_parent, free_port
from agents.kafka.topics import changelog_topics, ensure_topics, spec_topics
from monitor.reference import build_profile
from monitor.spec import parse_spec
from monitor.testing.synthetic import SyntheticFeatures

REPO = Path(__file__).resolve().parents[1]
#: The single-record form is this long at most (it is the slowest form; the baselines drain it too).
SINGLE_CAP = 100_000
#: Records per array or columnar message.
BATCH = 100
#: Seconds between two reads of a subprocess's counter.
POLL = 0.1
#: Seconds a subprocess may take from launch to its first processed record.
START_TIMEOUT = 120.0
#: Seconds a worker may take to come back after a SIGKILL (Faust's default session timeout is 60 s).
RECOVERY_TIMEOUT = 180.0
#: Baselines first, then the worker's message forms: the order of every round.
CONFIGURATIONS = ("raw_consumer", "faust_noop", "streamdq_single", "streamdq_single_checkpoints", "streamdq_array",
                  "streamdq_columnar")
FORM_OF = {"raw_consumer": "single", "faust_noop": "single", "streamdq_single": "single",
           "streamdq_single_checkpoints": "single", "streamdq_array": "array", "streamdq_columnar": "columnar"}
#: The checkpoint overhead run: a checkpoint every CHECKPOINT_SECONDS (the default is 5 s: 25 times fewer).
CHECKPOINT_SECONDS = 0.2
DESCRIPTION = {
    "raw_consumer": "confluent-kafka consume(1000) + orjson.loads (ceiling)",
    "faust_noop": "Faust no-op agent",
    "streamdq_single": "streamdq worker, single-record messages",
    "streamdq_single_checkpoints": f"the same, checkpointing every {CHECKPOINT_SECONDS} s",
    "streamdq_array": f"streamdq worker, JSON arrays of {BATCH}",
    "streamdq_columnar": f"streamdq worker, columnar messages of {BATCH}",
}
_PROCESSED = re.compile(r'^streamdq_records_total\{[^}]*outcome="processed"[^}]*\}\s+(\S+)', re.MULTILINE)


def say(msg: str) -> None:
    print(f"[worker_bench] {msg}", file=sys.stderr, flush=True)


def rss_bytes(pid: int) -> int:
    """VmRSS of ``pid`` plus its descendants' (bytes, from /proc); 0 once it is gone."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        with suppress(OSError, ValueError):
            status = Path(f"/proc/{p}/status").read_text()
            total += next((int(ln.split()[1]) * 1024 for ln in status.splitlines() if ln.startswith("VmRSS:")), 0)
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
    return total


# -- data --------------------------------------------------------------------------------------------


def encode(form: str, records: list[dict[str, Any]]) -> list[bytes]:
    """``records`` as the messages of one form (single: one per record; array, columnar: ``BATCH`` per message)."""
    if form == "single":
        return [orjson.dumps(r) for r in records]
    out = []
    for i in range(0, len(records), BATCH):
        chunk = records[i:i + BATCH]
        out.append(orjson.dumps(chunk) if form == "array"
                   else orjson.dumps({"columns": {k: [r[k] for r in chunk] for k in chunk[0]}}))
    return out


def synthetic(n: int, seed: int) -> list[dict[str, Any]]:
    """``n`` clean feature records, event time advancing 1 ms per record (100 records share a time)."""
    gen = SyntheticFeatures(seed=seed)
    return [r for i in range(0, n, BATCH) for r in gen.records(min(BATCH, n - i), now=1_700_000_000.0 + i / 1000)]


def produce(bootstrap: str, topic: str, messages: list[bytes], *, partitions: int = 1) -> None:
    """Write ``messages`` (spread round-robin over ``partitions``) and wait until the broker has them all."""
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "batch.size": 1_000_000,
                         "compression.type": "lz4", "log_level": 0})
    for i, value in enumerate(messages):
        while True:
            try:
                producer.produce(topic, value, partition=i % partitions)
                break
            except BufferError:  # the local queue is full: let it drain
                producer.poll(0.1)
        producer.poll(0)
    left = producer.flush(120)
    if left:
        raise RuntimeError(f"{left} messages to {topic} not acknowledged after 120 s")


# -- processes ---------------------------------------------------------------------------------------


@dataclass
class Child:
    """A server process this bench started (a worker or the no-op app), with the counter it serves."""

    proc: subprocess.Popen[bytes]
    port: int
    log: Path
    counter: Callable[[int], float]
    launched: float = field(default_factory=time.monotonic)

    def count(self) -> float:
        """Records processed so far (0 until its web server answers)."""
        try:
            return self.counter(self.port)
        except (OSError, http.client.HTTPException, ValueError):  # not up yet, or going down
            return 0.0

    def check(self) -> None:
        if self.proc.poll() is not None:
            text = [ln for ln in self.log.read_text(errors="replace").splitlines() if "leaked" not in ln]
            crash = [i for i, ln in enumerate(text) if "Traceback" in ln or "Crashed" in ln]
            tail = "\n".join(text[max(crash[0] - 5, 0):crash[0] + 30] if crash else text[-25:])
            raise RuntimeError(f"{self.proc.args} exited with {self.proc.returncode}:\n{tail}")

    def rss(self) -> int:
        return rss_bytes(self.proc.pid)

    def kill(self) -> None:
        """SIGKILL the process group (the process was started in its own session) and reap it."""
        if self.proc.poll() is None:
            with suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 30 s."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()


def worker_processed(port: int) -> float:
    """``streamdq_records_total{outcome="processed"}`` summed over streams, from the worker's /metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        return sum(float(v) for v in _PROCESSED.findall(resp.read().decode()))


def worker_checkpoints(port: int) -> float:
    """Checkpoints the worker has written (``streamdq_checkpoints_total``)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
            text = resp.read().decode()
    except (OSError, ValueError):
        return 0.0
    found = re.search(r"^streamdq_checkpoints_total\s+(\S+)", text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def noop_count(port: int) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/count", timeout=5) as resp:
        return float(orjson.loads(resp.read())["count"])


def spawn(argv: list[str], log: Path, env: dict[str, str], counter: Callable[[int], float], port: int) -> Child:
    with open(log, "ab") as fh:
        proc = subprocess.Popen(argv, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=REPO,
                                env={**os.environ, **env}, start_new_session=True, preexec_fn=_die_with_parent)
    return Child(proc, port, log, counter)


@contextmanager
def children() -> Iterator[list[Child]]:
    """A list to add started processes to; every one still running is stopped on the way out."""
    started: list[Child] = []
    try:
        yield started
    finally:
        for c in started:
            c.stop()


def drain(procs: list[Child], n: int, *, baseline: float = 0.0, since: float | None = None) -> dict[str, Any]:
    """Poll ``procs``' counters until together they processed ``n`` records past ``baseline``.

    Returns the steady rate (records from the first poll that saw progress to the poll that saw the last
    one, over that time), the seconds from ``since`` (default: the launch) to that first progress, how many
    polls saw the counters move, and the processes' resident memory at 1/5 of ``n`` and at the end."""
    since = procs[0].launched if since is None else since
    deadline_first = time.monotonic() + START_TIMEOUT
    deadline = deadline_first + 60 + n / 500
    first: tuple[float, float] | None = None
    rss_fifth = None
    last, moves = 0.0, 0
    while True:
        for c in procs:
            c.check()
        done = sum(c.count() for c in procs) - baseline
        now = time.monotonic()
        moves += done > last
        last = max(last, done)
        if first is None and done > 0:
            first = (now, done)
        if rss_fifth is None and done >= n / 5:
            rss_fifth = sum(c.rss() for c in procs)
        if done >= n:
            break
        if now > (deadline if first else deadline_first):
            raise TimeoutError(f"{done:.0f} of {n} records processed after {now - since:.0f}s "
                               f"(log: {procs[0].log})")
        time.sleep(POLL)
    assert first is not None
    steady = first[1] < n and now > first[0]
    rate = (n - first[1]) / (now - first[0]) if steady else n / (now - since)
    return {"records": n, "records_per_second": rate, "steady": steady, "first_progress_seconds": first[0] - since,
            "seconds": now - since, "counter_moves": moves, "rss_bytes_at_fifth": rss_fifth,
            "rss_bytes_at_end": sum(c.rss() for c in procs)}


# -- the bench ---------------------------------------------------------------------------------------


@dataclass
class Bench:
    """One broker, the pre-loaded topics and the files the runs share."""

    bootstrap: str
    work: Path
    uid: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    topics: dict[str, str] = field(default_factory=dict)
    loaded: dict[str, tuple[int, int]] = field(default_factory=dict)  # form -> (records, messages)
    created: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.outputs = {k: f"bench-{k.removesuffix('_topic')}-{self.uid}"
                        for k in ("alerts_topic", "deadletter_topic", "profiles_topic", "alerts_deadletter_topic")}
        self.reference = self.work / "features.profile.json"
        clean = SyntheticFeatures(seed=1).records(20_000, now=1_700_000_000.0)
        build_profile(parse_spec(self.spec("reference", "unused")).streams[0], lambda: clean,
                      source={"kind": "benchmark"}).save(self.reference)

    def spec(self, name: str, topic: str, partitions: int = 1) -> dict[str, Any]:
        """The features stream of deploy/monitor.yaml reading ``topic``, as app (and group) ``name``."""
        raw = yaml.safe_load((REPO / "deploy" / "monitor.yaml").read_text())
        raw["name"] = name
        raw["streams"] = raw["streams"][:1]  # predictions and labels have no reference here
        raw["streams"][0].update(topic=topic, partitions=partitions, reference=str(self.reference))
        raw["outputs"] = {**self.outputs, "partitions": 1}
        return raw

    def create(self, topics: dict[str, int]) -> None:
        ensure_topics(self.bootstrap, topics)
        self.created |= set(topics)

    def load(self, form: str, n: int) -> None:
        topic = self.topics[form] = f"bench-{form}-{self.uid}"
        self.create({topic: 1})
        messages = encode(form, synthetic(n, seed=2))
        produce(self.bootstrap, topic, messages)
        self.loaded[form] = (n, len(messages))

    def worker(self, started: list[Child], name: str, topic: str, *, partitions: int = 1,
               env: dict[str, str] | None = None, port: int | None = None) -> Child:
        """Start ``streamdq worker`` (app and group ``name``) on ``topic``; ``env`` joins its environment."""
        raw = self.spec(name, topic, partitions)
        path = self.work / f"{name}.yaml"
        path.write_text(yaml.safe_dump(raw, sort_keys=False))
        self.created |= set(spec_topics(parse_spec(raw))) | set(changelog_topics(parse_spec(raw)))
        port = port or free_port()
        child = spawn([sys.executable, "-m", "agents.cli", "worker", str(path), "--bootstrap", self.bootstrap,
                       "--web-port", str(port)], self.work / f"{name}.log",
                      {"STREAMDQ_DATA_DIR": str(self.work / f"data-{name}"), **(env or {})}, worker_processed, port)
        started.append(child)
        return child

    def run(self, config: str, rnd: int) -> dict[str, Any]:
        form = FORM_OF[config]
        n, messages = self.loaded[form]
        name = f"bench-{config.replace('_', '-')}-{self.uid}-{rnd}"
        if config == "raw_consumer":
            return raw_consumer(self.bootstrap, self.topics[form], messages, group=name)
        with children() as started:
            if config == "faust_noop":
                port = free_port()
                child = spawn([sys.executable, str(REPO / "benchmarks" / "faust_noop.py"), "--bootstrap",
                               self.bootstrap, "--topic", self.topics[form], "--app-id", name, "--web-port", str(port),
                               "--data-dir", str(self.work / f"data-{name}")], self.work / f"{name}.log", {},
                              noop_count, port)
                started.append(child)
            else:
                env = {"STREAMDQ_CHECKPOINT_SECONDS": str(CHECKPOINT_SECONDS)} if config.endswith("checkpoints") else {}
                child = self.worker(started, name, self.topics[form], env=env)
            result = drain([child], n if config != "faust_noop" else messages)
            if config.startswith("streamdq"):
                result["checkpoints"] = worker_checkpoints(child.port)
            return result

    def scaling(self, workers: int, records: int, rnd: int) -> dict[str, Any]:
        """``workers`` workers of one group on a new two-partition topic; the records are produced once each
        worker has been assigned a partition (it processed a warm-up record)."""
        name = f"bench-scale{workers}-{self.uid}-{rnd}"
        topic = f"{name}-in"
        self.create({topic: 2})
        messages = encode("array", synthetic(records, seed=3))
        warm = SyntheticFeatures(seed=4)
        with children() as started:
            procs = [self.worker(started, name, topic, partitions=2) for _ in range(workers)]
            sent, deadline = 0, time.monotonic() + START_TIMEOUT
            while not all(c.count() > 0 for c in procs):
                for c in procs:
                    c.check()
                if time.monotonic() > deadline:
                    raise TimeoutError(f"not every one of {workers} workers processed a warm-up record")
                produce(self.bootstrap, topic, [orjson.dumps(warm.record(now=1_699_999_000.0 + sent))
                                                for _ in range(2)], partitions=2)
                sent += 2
                time.sleep(1.0)
            while sum(c.count() for c in procs) < sent:
                if time.monotonic() > deadline:
                    raise TimeoutError("the warm-up records were not all processed")
                time.sleep(POLL)
            t0 = time.monotonic()
            produce(self.bootstrap, topic, messages, partitions=2)
            result = drain(procs, records, baseline=sent, since=t0)
            result["per_worker_records"] = [c.count() for c in procs]
            return result

    def recovery(self, rate: int) -> dict[str, Any]:
        """Seconds from restarting a SIGKILLed worker until its processed counter moves, under steady input."""
        name = f"bench-recovery-{self.uid}"
        topic = f"{name}-in"
        self.create({topic: 1})
        stop = threading.Event()
        feeder = threading.Thread(target=feed, args=(self.bootstrap, topic, rate, stop), daemon=True)
        feeder.start()
        env = {"STREAMDQ_INSTANCE_ID": "bench-0"}
        try:
            with children() as started:
                first = self.worker(started, name, topic, env=env)
                cold = wait_moving(first, 0.0)
                time.sleep(5.0)  # past Faust's 2.8 s commit interval: the restart resumes, not replays it all
                before = first.count()
                first.kill()
                restarted = self.worker(started, name, topic, env=env, port=first.port)
                back = wait_moving(restarted, 0.0, timeout=RECOVERY_TIMEOUT)
                return {"input_records_per_second": rate, "cold_start_seconds": cold,
                        "processed_before_kill": before, "restart_to_processing_seconds": back}
        finally:
            stop.set()
            feeder.join(timeout=30)

    def cleanup(self) -> None:
        """Delete the topics this run created (only used on a broker the bench did not start)."""
        admin = AdminClient({"bootstrap.servers": self.bootstrap, "log_level": 0})
        for fut in admin.delete_topics(sorted(self.created), operation_timeout=30).values():
            with suppress(Exception):
                fut.result(timeout=30)


def wait_moving(child: Child, above: float, *, timeout: float = START_TIMEOUT) -> float:
    """Seconds from ``child``'s launch until its counter exceeds ``above``."""
    deadline = child.launched + timeout
    while child.count() <= above:
        child.check()
        if time.monotonic() > deadline:
            raise TimeoutError(f"no record processed {timeout:.0f}s after launch (log: {child.log})")
        time.sleep(POLL)
    return time.monotonic() - child.launched


def feed(bootstrap: str, topic: str, rate: int, stop: threading.Event, *, limit: float = 300.0) -> None:
    """Produce single-record messages at ``rate`` records/s until ``stop`` is set (at most ``limit`` s)."""
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "log_level": 0})
    gen = SyntheticFeatures(seed=5)
    t0 = time.monotonic()
    sent = 0
    while not stop.is_set() and time.monotonic() - t0 < limit:
        due = int((time.monotonic() - t0) * rate)
        now = time.time()
        for _ in range(due - sent):
            producer.produce(topic, orjson.dumps(gen.record(now=now)))
        sent = max(sent, due)
        producer.poll(0)
        time.sleep(0.05)
    producer.flush(30)


def raw_consumer(bootstrap: str, topic: str, n: int, *, group: str) -> dict[str, Any]:
    """confluent-kafka ``consume(1000)`` + ``orjson.loads`` of every value until ``n`` messages were read."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "auto.offset.reset": "earliest",
                         "enable.auto.commit": False, "log_level": 0})
    t0 = time.monotonic()
    first: tuple[float, int] | None = None
    done = moves = 0
    try:
        consumer.subscribe([topic])
        deadline = t0 + START_TIMEOUT + n / 1000
        while done < n:
            if time.monotonic() > deadline:
                raise TimeoutError(f"raw consumer read {done} of {n} messages")
            batch = consumer.consume(1000, timeout=1.0)
            moves += bool(batch)
            for m in batch:
                if m.error() is None:
                    orjson.loads(m.value())
                    done += 1
            if first is None and done:
                first = (time.monotonic(), done)
        end = time.monotonic()
    finally:
        consumer.close()
    assert first is not None
    steady = first[1] < n and end > first[0]
    rate = (n - first[1]) / (end - first[0]) if steady else n / (end - t0)
    return {"records": n, "records_per_second": rate, "steady": steady, "first_progress_seconds": first[0] - t0,
            "seconds": end - t0, "counter_moves": moves, "rss_bytes_at_fifth": None, "rss_bytes_at_end": None}


def summarize(runs: dict[str, list[dict[str, Any]]], loaded: dict[str, tuple[int, int]]) -> dict[str, Any]:
    medians = {c: statistics.median(r["records_per_second"] for r in runs[c]) for c in CONFIGURATIONS}
    out = {}
    for c in CONFIGURATIONS:
        form = FORM_OF[c]
        out[c] = {
            "description": DESCRIPTION[c], "form": form, "records": loaded[form][0], "messages": loaded[form][1],
            "records_per_second": medians[c],
            "ratio_to_faust_noop": medians[c] / medians["faust_noop"],
            "ratio_to_raw_consumer": medians[c] / medians["raw_consumer"],
            "runs": runs[c],
        }
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    kafka = None
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP")
    if not bootstrap:
        kafka = LocalKafka(log=say)
        bootstrap = kafka.start()
    load_start = os.getloadavg()
    t_start = time.monotonic()
    try:
        with tempfile.TemporaryDirectory(prefix="streamdq-worker-bench-") as tmp:
            bench = Bench(bootstrap, Path(tmp))
            try:
                single = min(args.records, SINGLE_CAP)
                for form, n in (("single", single), ("array", args.records), ("columnar", args.records)):
                    bench.load(form, n)
                say(f"loaded {single:,} single-record messages and {args.records:,} records as arrays and columns")
                runs: dict[str, list[dict[str, Any]]] = {c: [] for c in CONFIGURATIONS}
                for rnd in range(args.repeats):
                    for config in CONFIGURATIONS:
                        r = bench.run(config, rnd)
                        runs[config].append(r)
                        say(f"round {rnd + 1}/{args.repeats} {config}: {r['records_per_second']:,.0f} records/s")
                result: dict[str, Any] = {"configurations": summarize(runs, bench.loaded)}
                if args.workers_scaling:
                    scale: dict[int, list[dict[str, Any]]] = {1: [], 2: []}
                    for rnd in range(args.repeats):
                        for workers in (1, 2):
                            r = bench.scaling(workers, args.records, rnd)
                            scale[workers].append(r)
                            say(f"round {rnd + 1}/{args.repeats} scaling, {workers} worker(s): "
                                f"{r['records_per_second']:,.0f} records/s")
                    med = {w: statistics.median(r["records_per_second"] for r in rs) for w, rs in scale.items()}
                    result["workers_scaling"] = {
                        "partitions": 2, "form": "array", "records": args.records, "cpus": os.cpu_count(),
                        "one_worker": {"records_per_second": med[1], "runs": scale[1]},
                        "two_workers": {"records_per_second": med[2], "runs": scale[2]},
                        "ratio": med[2] / med[1],
                    }
                if args.recovery:
                    result["recovery"] = bench.recovery(args.recovery_rate)
                    say(f"recovery after SIGKILL: {result['recovery']['restart_to_processing_seconds']:.1f}s")
            finally:
                if kafka is None:
                    with suppress(Exception):
                        bench.cleanup()
    finally:
        if kafka is not None:
            kafka.stop()
    return {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform(),
                    "load_average_before": load_start, "load_average_after": os.getloadavg()},
        "broker": f"KAFKA_BOOTSTRAP ({bootstrap})" if kafka is None else "a local Apache Kafka on this machine",
        "repeats": args.repeats, "quick": args.quick, "bench_seconds": time.monotonic() - t_start,
        **result,
    }


def mib(b: int | None) -> str:
    return "n/a" if b is None else f"{b / 2**20:,.0f} MiB"


def markdown(r: dict[str, Any]) -> str:
    confs = r["configurations"]
    lines = [
        f"# Worker benchmark ({r['when']}, Python {r['machine']['python']}, {r['machine']['cpus']} CPUs)", "",
        "The features stream of `deploy/monitor.yaml` (9 features, count window 2,000 + 30 s event-time window,",
        "every default check), one partition. Each configuration drains a pre-loaded topic with a new consumer",
        f"group; {r['repeats']} interleaved round(s), medians shown. Broker: {r['broker']}. The broker, the bench",
        "and the processes measured share the machine's cores, and the machine may be shared: read the ratios,",
        "which compare runs made side by side; absolute records/s move with the load (load average "
        f"{r['machine']['load_average_before'][0]:.2f} before, {r['machine']['load_average_after'][0]:.2f} after).",
        "Baselines count messages (= records on the single-record topic); an array or columnar message carries",
        f"{BATCH} records. Produced by `python benchmarks/worker_bench.py"
        + (" --quick` (a smoke run: not figures to quote)." if r["quick"] else "`."),
        "",
        "| configuration | records | records/s (median) | runs | counter steps | vs Faust no-op | vs raw consumer |",
        "|---|---|---|---|---|---|---|",
    ]
    for c in confs.values():
        runs = ", ".join(f"{x['records_per_second']:,.0f}" + ("" if x["steady"] else "*") for x in c["runs"])
        steps = statistics.median(x["counter_moves"] for x in c["runs"])
        lines.append(f"| {c['description']} | {c['records']:,} | {c['records_per_second']:,.0f} | {runs} | "
                     f"{steps:.0f} | {c['ratio_to_faust_noop']:.2f}x | {c['ratio_to_raw_consumer']:.3f}x |")
    lines.append("\nCounter steps: polls (0.1 s apart; batches for the raw consumer) that saw the count move; "
                 "the rate is measured from the first to the last, so few steps mean a coarse figure.")
    if any(not x["steady"] for c in confs.values() for x in c["runs"]):
        lines.append("\n\\* finished within one step of the counter: the rate includes start-up.")
    plain, cp = confs["streamdq_single"], confs["streamdq_single_checkpoints"]
    written = statistics.median(x.get("checkpoints", 0) for x in cp["runs"])
    ratio = cp["records_per_second"] / plain["records_per_second"]
    lines += ["", f"Checkpoint overhead: checkpointing every {CHECKPOINT_SECONDS} s ({written:.0f} checkpoint(s) per "
              f"drain, median; the default interval is 5 s) ran at {ratio:.2f}x the worker with the default "
              "interval on the same messages."]
    lines += ["", "Resident memory (VmRSS of the process and its children; median over rounds):", "",
              "| configuration | records | at 1/5 | at the end |", "|---|---|---|---|"]
    for name, c in confs.items():
        if name == "raw_consumer":
            continue
        fifth = statistics.median(x["rss_bytes_at_fifth"] for x in c["runs"])
        end = statistics.median(x["rss_bytes_at_end"] for x in c["runs"])
        lines.append(f"| {c['description']} | {c['records']:,} | {mib(int(fifth))} | {mib(int(end))} |")
    s = r.get("workers_scaling")
    if s:
        lines += ["", f"Workers scaling: one group on a two-partition topic of {s['records']:,} records in arrays, "
                  f"produced once every worker was assigned a partition. {s['cpus']} CPUs, shared by the workers, "
                  "the broker and the bench.", "",
                  "| workers | records/s (median) | runs |", "|---|---|---|",
                  f"| 1 | {s['one_worker']['records_per_second']:,.0f} | "
                  + ", ".join(f"{x['records_per_second']:,.0f}" for x in s["one_worker"]["runs"]) + " |",
                  f"| 2 | {s['two_workers']['records_per_second']:,.0f} | "
                  + ", ".join(f"{x['records_per_second']:,.0f}" for x in s["two_workers"]["runs"]) + " |",
                  "", f"Two workers / one worker: {s['ratio']:.2f}x."]
    rec = r.get("recovery")
    if rec:
        lines += ["", f"Recovery: a worker fed {rec['input_records_per_second']:,} records/s (single-record "
                  f"messages) processed {rec['processed_before_kill']:,.0f} records, was SIGKILLed and started "
                  "again with the same arguments and environment (`STREAMDQ_INSTANCE_ID=bench-0`); its processed "
                  f"counter moved again **{rec['restart_to_processing_seconds']:.1f} s** after the restart "
                  f"(a cold start took {rec['cold_start_seconds']:.1f} s)."]
    lines.append("")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, help=f"records per form (single-record form: at most {SINGLE_CAP:,}); "
                                                "default 200,000 (--quick: 5,000)")
    ap.add_argument("--repeats", type=int, help="interleaved rounds; default 3 (--quick: 1)")
    ap.add_argument("--quick", action="store_true", help="smoke run: 5,000 records, one round, no scaling or "
                                                         "recovery unless asked")
    ap.add_argument("--workers-scaling", action=argparse.BooleanOptionalAction,
                    help="1 vs 2 workers on a two-partition topic (default: on, off with --quick)")
    ap.add_argument("--recovery", action=argparse.BooleanOptionalAction,
                    help="restart time after a SIGKILL (default: on, off with --quick)")
    ap.add_argument("--recovery-rate", type=int, default=2000, help="records/s produced during the recovery run")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "worker.json")
    args = ap.parse_args()
    args.records = args.records or (5_000 if args.quick else 200_000)
    args.repeats = args.repeats or (1 if args.quick else 3)
    for flag in ("workers_scaling", "recovery"):
        if getattr(args, flag) is None:
            setattr(args, flag, not args.quick)
    if args.records < BATCH or args.repeats < 1:
        ap.error(f"--records must be at least {BATCH} and --repeats at least 1")
    result = run(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    args.out.with_suffix(".md").write_text(markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()
