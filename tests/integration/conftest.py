"""Fixtures that start real servers: an Apache Kafka broker (once per session) and
streamdq worker processes. Every server started here is stopped here."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from confluent_kafka import Consumer, Producer

from agents.cli.localkafka import LocalKafka, _die_with_parent, free_port
from agents.kafka.security import PLAINTEXT, KafkaSecurity
from agents.kafka.topics import ensure_topics, spec_topics
from monitor.reference import build_profile
from monitor.spec import parse_spec
from monitor.testing.synthetic import SyntheticFeatures

REPO = Path(__file__).resolve().parents[2]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "/integration/" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """A real broker: ``KAFKA_BOOTSTRAP`` if set, else a local Apache Kafka for the session."""
    env = os.environ.get("KAFKA_BOOTSTRAP")
    if env:
        yield env
        return
    kafka = LocalKafka()
    try:
        yield kafka.start()
    finally:
        kafka.stop()


def demo_spec(uid: str, reference: Path | None, *, window: int = 1000, partitions: int = 3) -> dict[str, Any]:
    """deploy/monitor.yaml with topics made unique per test and a count window of ``window``."""
    raw = yaml.safe_load((REPO / "deploy" / "monitor.yaml").read_text())
    raw["name"] = f"it-{uid}"
    raw["streams"] = raw["streams"][:1]  # the features stream only (model tests add their own)
    s = raw["streams"][0]
    s["topic"] = f"features-{uid}"
    s["partitions"] = partitions
    s["reference"] = str(reference) if reference else None
    s["windows"] = [{"name": f"w{window}", "kind": "count", "size": window}]
    # Tests with windows smaller than the spec's min_samples want verdicts in them.
    s["min_samples"] = min(int(s.get("min_samples", 100)), window)
    # Most tests stream records dated at fixed past times (reproducible alert ids) through a live worker, whose
    # freshness is then the time since those dates: not what they test (tests/unit checks the freshness levels).
    s.setdefault("time", {})["expected_lag_seconds"] = 100 * 365 * 86400.0
    raw["outputs"] = {"alerts_topic": f"alerts-{uid}", "deadletter_topic": f"deadletter-{uid}",
                      "profiles_topic": f"profiles-{uid}", "partitions": 1}
    return raw


@dataclass
class WorkerProc:
    proc: subprocess.Popen[bytes]
    port: int
    log: Path
    spec: dict[str, Any]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def metrics(self) -> str:
        with urllib.request.urlopen(self.url + "/metrics", timeout=5) as resp:
            return resp.read().decode()

    def log_tail(self, n: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        return self.proc.returncode


def metric_total(worker: Any, name: str) -> float:
    """The sum of a worker's /metrics samples whose line starts with ``name`` (a metric name, or a name and the
    beginning of its labels)."""
    total = 0.0
    for line in worker.metrics().splitlines():
        if line.startswith(name) and not line.startswith("#"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def wait_for(what: str, cond: Callable[[], Any], *, timeout: float = 90.0, every: float = 0.3,
             log: Callable[[], str] | None = None) -> Any:
    """Poll ``cond`` every ``every`` s until it returns something truthy, and return that; after ``timeout`` s
    fail the test, naming ``what`` and adding ``log()`` (a server's log tail) when given."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = cond()
        if got:
            return got
        time.sleep(every)
    pytest.fail(f"timed out waiting for {what}" + (f"\n{log()}" if log else ""))


def launch_worker(bootstrap: str, spec: dict[str, Any], workdir: Path, *, timeout: float = 90.0,
                  env: dict[str, str] | None = None, security: KafkaSecurity = PLAINTEXT,
                  healthy: bool = True, port: int | None = None) -> WorkerProc:
    """Write ``spec``, create its topics, start ``streamdq worker`` (with ``env`` added to its environment)
    and (with ``healthy``) wait for /health (200). ``security`` is the topic creation's (pass the worker's own
    in ``env``)."""
    workdir.mkdir(parents=True, exist_ok=True)
    tag = uuid.uuid4().hex[:6]
    path = workdir / f"spec-{tag}.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    ensure_topics(bootstrap, spec_topics(parse_spec(spec)), security=security)
    port = port or free_port()
    log = workdir / f"worker-{tag}.log"
    with open(log, "wb") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "agents.cli", "worker", str(path), "--bootstrap", bootstrap,
             "--web-port", str(port)],
            stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
            preexec_fn=_die_with_parent,
            env={**os.environ, **(env or {}), "STREAMDQ_DATA_DIR": str(workdir / f"faust-{tag}")},
        )
    w = WorkerProc(proc, port, log, spec)
    if not healthy:
        return w
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"worker exited while starting (code {proc.returncode}):\n{w.log_tail()}")
        try:
            with urllib.request.urlopen(w.url + "/health", timeout=2) as resp:
                if resp.status == 200:
                    return w
        except OSError:
            pass
        time.sleep(0.3)
    w.stop()
    pytest.fail(f"worker not healthy after {timeout}s:\n{w.log_tail()}")


@pytest.fixture
def start_worker(kafka_bootstrap: str, tmp_path: Path) -> Iterator[Any]:
    """Factory fixture around :func:`launch_worker`; stops every worker it started."""
    started: list[WorkerProc] = []

    def _start(spec: dict[str, Any], *, timeout: float = 90.0) -> WorkerProc:
        w = launch_worker(kafka_bootstrap, spec, tmp_path, timeout=timeout)
        started.append(w)
        return w

    yield _start
    for w in started:
        w.stop()


@pytest.fixture
def uid() -> str:
    return uuid.uuid4().hex[:10]


def make_reference(path: Path) -> Path:
    """A reference profile of 20,000 clean synthetic records (seed 100)."""
    spec = parse_spec(demo_spec("ref", None))
    clean = SyntheticFeatures(seed=100).records(20_000, now=1_700_000_000.0)
    return build_profile(spec.streams[0], lambda: clean, source={"kind": "synthetic"}).save(path)


@pytest.fixture
def reference_file(tmp_path: Path) -> Path:
    return make_reference(tmp_path / "reference.profile.json")


def producer(bootstrap: str) -> Producer:
    # log_level 0: producers outliving the session's broker would log connection errors at exit.
    return Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "enable.idempotence": True, "log_level": 0})


def consume_all(bootstrap: str, topic: str, *, expect: int | None = None, timeout: float = 60.0,
                idle: float = 3.0) -> list[Any]:
    """Every message of ``topic`` from the beginning: until ``expect`` arrived, or no new one for ``idle`` s."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"it-reader-{uuid.uuid4().hex}",
                  "auto.offset.reset": "earliest", "enable.auto.commit": False})
    c.subscribe([topic])
    out: list[Any] = []
    deadline = time.monotonic() + timeout
    last_new = time.monotonic()
    try:
        while time.monotonic() < deadline:
            for m in c.consume(num_messages=1000, timeout=0.5):
                if m.error() is None:
                    out.append(m)
                    last_new = time.monotonic()
            if expect is not None and len(out) >= expect:
                # keep reading briefly to catch any extra (unexpected) messages
                if time.monotonic() - last_new >= idle:
                    break
            elif expect is None and out and time.monotonic() - last_new >= idle:
                break
    finally:
        c.close()
    return out


def load_json(b: bytes) -> Any:
    return orjson.loads(b)
