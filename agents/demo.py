"""``streamdq demo``: the whole system on one machine.

Starts a local Apache Kafka (unless ``KAFKA_BOOTSTRAP`` is set), creates the
topics, builds a reference profile from generated clean data, starts a worker
process, and runs a synthetic producer: clean records, then an injected drift,
then a missing-value spike, with malformed messages sprinkled throughout.
Alerts and dead letters are printed as they arrive. Everything stops on
Ctrl-C or after ``--duration`` seconds of traffic.
"""

from __future__ import annotations

import base64
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import yaml
from rich.console import Console
from rich.table import Table

from agents.localkafka import LocalKafka, _die_with_parent, free_port
from agents.topics import ensure_topics, spec_topics
from monitor.errors import StreamdqError
from monitor.reference import build_profile
from monitor.spec import load_spec
from monitor.synthetic import Scenario, SyntheticFeatures, bad_messages

__all__ = ["run_demo"]

_REPO = Path(__file__).resolve().parents[1]
DEFAULT_SPEC = _REPO / "deploy" / "monitor.yaml"
#: One malformed message per this many records.
BAD_EVERY = 400
_STYLE = {"critical": "bold red", "warning": "yellow", "info": "cyan"}


def _phase(elapsed: float, duration: float) -> tuple[str, Scenario]:
    f = elapsed / duration
    if f < 0.35:
        return "clean", Scenario()
    if f < 0.70:
        return "drift", Scenario(drift=True)
    return "missing-spike", Scenario(missing_spike=True)


def run_demo(*, duration: float | None, spec_path: str | None, rate: float, web_port: int | None,
             seed: int, console: Console | None = None) -> int:
    """Run the demo; return the process exit code (0 on a clean stop)."""
    console = console or Console()
    work = Path(tempfile.mkdtemp(prefix="streamdq-demo-"))
    kafka: LocalKafka | None = None
    worker: subprocess.Popen[bytes] | None = None
    code = 0
    try:
        bootstrap = os.environ.get("KAFKA_BOOTSTRAP")
        if bootstrap:
            console.print(f"[bold]Kafka[/]: using KAFKA_BOOTSTRAP={bootstrap}")
        else:
            kafka = LocalKafka(log=lambda m: console.print(f"[dim]{m}[/]"))
            bootstrap = kafka.start()
        spec_file = Path(spec_path) if spec_path else DEFAULT_SPEC
        spec = load_spec(spec_file)
        stream = spec.streams[0]

        console.print("[bold]Reference[/]: profiling 20,000 generated clean records ...")
        clean = SyntheticFeatures(seed=seed + 1000).records(20_000, now=time.time())
        profile = build_profile(stream, lambda: clean, source={"kind": "synthetic", "seed": seed + 1000})
        ref_path = profile.save(work / "reference.profile.json")
        console.print(f"  profile_version {profile.profile_version} -> {ref_path}")

        raw = yaml.safe_load(spec_file.read_text())
        raw["streams"][0]["reference"] = str(ref_path)
        run_spec = work / "monitor.yaml"
        run_spec.write_text(yaml.safe_dump(raw, sort_keys=False))
        ensure_topics(bootstrap, spec_topics(spec), log=lambda m: console.print(f"[dim]{m}[/]"))

        port = web_port or free_port()
        worker_log = work / "worker.log"
        console.print(f"[bold]Worker[/]: starting (log: {worker_log})")
        with open(worker_log, "wb") as logfh:
            worker = subprocess.Popen(
                [sys.executable, "-m", "agents.cli", "worker", str(run_spec), "--bootstrap", bootstrap,
                 "--web-port", str(port)],
                stdout=logfh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True, preexec_fn=_die_with_parent,
                env={**os.environ, "STREAMDQ_DATA_DIR": str(work / "faust")},
            )
        _wait_healthy(port, worker, worker_log)
        metrics_url = f"http://127.0.0.1:{port}/metrics"
        console.print(f"[bold green]Worker ready.[/] Metrics: {metrics_url}   Health: http://127.0.0.1:{port}/health")
        summary = _produce_and_watch(console, bootstrap, spec, stream.topic, duration=duration, rate=rate,
                                     seed=seed, worker=worker, metrics_url=metrics_url)
        _print_summary(console, summary, metrics_url)
        if worker.poll() is not None:
            console.print(f"[red]the worker exited early (code {worker.returncode}); see {worker_log}[/]")
            code = 1
    except KeyboardInterrupt:
        console.print("\n[bold]Interrupted[/]: stopping ...")
    except StreamdqError as exc:
        console.print(f"[red]error:[/] {exc}")
        code = 1
    finally:
        if worker is not None:
            _stop_process(worker)
            console.print("[dim]worker stopped[/]")
        if kafka is not None:
            kafka.stop()
            console.print("[dim]Kafka stopped[/]")
        shutil.rmtree(work, ignore_errors=True)
    return code


def _wait_healthy(port: int, worker: subprocess.Popen[bytes], log: Path, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if worker.poll() is not None:
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
            raise StreamdqError(f"the worker exited while starting (code {worker.returncode}):\n{tail}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.5)
    raise StreamdqError(f"the worker was not healthy after {timeout:.0f}s; see {log}")


def _stop_process(proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def _produce_and_watch(console: Console, bootstrap: str, spec: Any, topic: str, *, duration: float | None,
                       rate: float, seed: int, worker: subprocess.Popen[bytes], metrics_url: str) -> dict[str, Any]:
    from confluent_kafka import Consumer, Producer

    # log_level 3: librdkafka's retry notices while a fresh broker loads its coordinators are noise here.
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "enable.idempotence": True,
                         "log_level": 3})
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"streamdq-demo-{os.getpid()}-{seed}",
                         "auto.offset.reset": "latest", "enable.auto.commit": False})
    consumer.subscribe([spec.outputs.alerts_topic, spec.outputs.deadletter_topic])
    gen = SyntheticFeatures(seed=seed)
    bad = bad_messages(seed=seed)
    total = duration if duration is not None else 90.0  # phase length when running until Ctrl-C
    stats: dict[str, Any] = {"produced": 0, "malformed_sent": 0, "alerts": Counter(), "deadletters": Counter(),
                             "phases": Counter()}
    shown: Counter[str] = Counter()
    start = time.monotonic()
    phase_name = ""
    last_status = start
    try:
        while True:
            elapsed = time.monotonic() - start
            if duration is not None and elapsed >= duration:
                break
            if worker.poll() is not None:
                break
            name, scenario = _phase(elapsed % total if duration is None else elapsed, total)
            if name != phase_name:
                phase_name = name
                console.rule(f"[bold]phase: {name}[/] ({_PHASE_TEXT[name]})")
            target = int(elapsed * rate)
            now = time.time()
            while stats["produced"] + stats["malformed_sent"] < target:
                if (stats["produced"] + 1) % BAD_EVERY == 0:
                    value, _ = next(bad)
                    producer.produce(topic, value)
                    stats["malformed_sent"] += 1
                rec = gen.record(now=now, scenario=scenario)
                producer.produce(topic, orjson.dumps(rec), key=rec["record_id"])
                stats["produced"] += 1
                stats["phases"][name] += 1
            producer.poll(0)
            _drain(console, consumer, spec, stats, shown, timeout=0.05)
            if time.monotonic() - last_status >= 10:
                last_status = time.monotonic()
                console.print(f"[dim]  {elapsed:5.0f}s  sent {stats['produced']:,} records + "
                              f"{stats['malformed_sent']} malformed; alerts {sum(stats['alerts'].values())}, "
                              f"dead letters {sum(stats['deadletters'].values())}[/]")
        producer.flush(15)
        # Let the worker finish what is in flight, then collect the last events.
        drain_until = time.monotonic() + 5
        while time.monotonic() < drain_until:
            _drain(console, consumer, spec, stats, shown, timeout=0.2)
    finally:
        consumer.close()
    return stats


_PHASE_TEXT = {
    "clean": "records like the reference",
    "drift": "age shifted +8 years, country mix moved to IN",
    "missing-spike": "income missing in 30% of records",
}


def _drain(console: Console, consumer: Any, spec: Any, stats: dict[str, Any], shown: Counter[str],
           *, timeout: float) -> None:
    for msg in consumer.consume(num_messages=500, timeout=timeout):
        if msg.error():
            continue
        doc = orjson.loads(msg.value())
        if msg.topic() == spec.outputs.alerts_topic:
            stats["alerts"][(doc["feature"], doc["check"], doc["severity"], doc["status"])] += 1
            if doc["status"] == "resolved":
                console.print(f"[green]RESOLVED {doc['severity'].upper():8}[/] {doc['summary']}")
            else:
                style = _STYLE.get(doc["severity"], "")
                console.print(f"[{style}]ALERT {doc['severity'].upper():8}[/] {doc['summary']}")
        else:
            stats["deadletters"][doc["reason"]] += 1
            shown["dlq:" + doc["reason"]] += 1
            if shown["dlq:" + doc["reason"]] <= 2:
                original = base64.b64decode(doc["original_b64"])[:60]
                console.print(f"[magenta]DEAD LETTER[/] {doc['reason']:<26} {doc['source']['topic']}:"
                              f"{doc['source']['partition']}@{doc['source']['offset']}  original={original!r}")


def _print_summary(console: Console, stats: dict[str, Any], metrics_url: str) -> None:
    console.rule("[bold]summary[/]")
    console.print(f"records sent: {stats['produced']:,} "
                  f"({', '.join(f'{k} {v:,}' for k, v in stats['phases'].items())}); "
                  f"malformed messages sent: {stats['malformed_sent']}")
    table = Table(title="alert events received (firing and resolved, after the alert policy)")
    for col in ("feature", "check", "severity", "status", "events"):
        table.add_column(col)
    for (feature, check, severity, status), n in sorted(stats["alerts"].items(),
                                                         key=lambda kv: (str(kv[0][0]), kv[0][1], kv[0][3])):
        table.add_row(str(feature or "(record)"), check, severity, status, str(n))
    console.print(table)
    dlq = ", ".join(f"{k} {v}" for k, v in sorted(stats["deadletters"].items())) or "none"
    console.print(f"dead letters received: {sum(stats['deadletters'].values())} ({dlq})")
    console.print(f"metrics were served at {metrics_url}")
