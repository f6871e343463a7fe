"""``streamdq demo``: the whole system on one machine.

Starts a local Apache Kafka (unless ``KAFKA_BOOTSTRAP`` is set), creates the
topics, builds reference profiles from generated clean data, starts a worker
process, and runs a synthetic producer: clean records, then an injected drift,
then a missing-value spike, with malformed messages sprinkled throughout.

When the spec has a predictions stream (``deploy/monitor.yaml`` does), the
producer also plays a calibrated binary model: one prediction per record and,
a few seconds later, its label (10 % never labelled). In the drift phase the
model goes wrong (30 % of labels disagree with its scores, and its scores move
towards 0.5); in the last phase the labels stop coming. The model windows
(realised performance beside the label-free estimate) are printed as they close.

Alerts and dead letters are printed as they arrive. Everything stops on
Ctrl-C or after ``--duration`` seconds of traffic.

Two parts run alone for a deployment of their own (``docker-compose.yml``): ``write_references`` writes
the demo's reference profiles (what the demo's clean records look like) into a folder and stops;
``producer_only`` runs only the producer (and the printing of alerts) against ``KAFKA_BOOTSTRAP``, for
workers started elsewhere with those profiles.
"""

from __future__ import annotations

import base64
import heapq
import math
import os
import random
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

from agents.cli.localkafka import LocalKafka, _die_with_parent, free_port
from agents.kafka.connect import client_config
from agents.kafka.security import ENV_PREFIX, PLAINTEXT, KafkaSecurity
from agents.kafka.topics import ensure_topics, spec_topics
from agents.settings import Settings
from monitor.errors import StreamdqError
from monitor.performance import reference_metrics
from monitor.reference import build_profile
from monitor.spec import MonitorSpec, StreamSpec, load_spec
from monitor.testing.synthetic import Scenario, SyntheticFeatures, bad_messages
from monitor.times import iso

__all__ = ["run_demo"]

_REPO = Path(__file__).resolve().parents[2]
DEFAULT_SPEC = _REPO / "deploy" / "monitor.yaml"
#: One malformed message per this many records.
BAD_EVERY = 400
#: Seconds the demo waits at most, after producing, for the worker's last dead letters and alerts.
DRAIN_SECONDS = 30.0
_STYLE = {"critical": "bold red", "warning": "yellow", "info": "cyan"}
#: The demo model's label-join TTL (the spec's 10 minutes would outlast the demo).
DEMO_TTL_SECONDS = 8.0


class DemoModel:
    """A calibrated binary model with delayed labels, played live (wall-clock time).

    Clean: the score ``p ~ Beta(0.35, 0.35)`` is the probability the label is 1 (accuracy ~0.85).
    Drift: the scores move towards 0.5 (less confident: the label-free estimate drops at once) and 30 %
    of the labels are flipped (a concept change only labels reveal). Missing-spike phase: no labels.

    >>> m = DemoModel(seed=1)
    >>> p = m.predict("r1", now=100.0, phase="clean")
    >>> sorted(p), 0.0 <= p["score"] <= 1.0
    (['event_time', 'model_version', 'record_id', 'score'], True)
    >>> [lab["record_id"] for lab in m.due(now=200.0)]  # its label, due a few seconds later
    ['r1']
    """

    def __init__(self, *, seed: int, delay_mean: float = 2.0, label_share: float = 0.9) -> None:
        self.rng = random.Random(seed)
        self.delay_mean = delay_mean
        self.label_share = label_share
        self.queue: list[tuple[float, int, dict[str, Any]]] = []
        self._seq = 0

    def predict(self, record_id: str, *, now: float, phase: str) -> dict[str, Any]:
        r = self.rng
        p = r.betavariate(0.35, 0.35)
        if phase == "drift":
            p = 0.5 + (p - 0.5) * 0.5
        y = int(r.random() < p)
        if phase == "drift" and r.random() < 0.3:
            y = 1 - y
        if phase != "missing-spike" and r.random() < self.label_share:
            t = now + r.expovariate(1.0 / self.delay_mean)
            self._seq += 1
            heapq.heappush(self.queue, (t, self._seq, {"record_id": record_id, "event_time": iso(t), "label": y}))
        return {"record_id": record_id, "event_time": iso(now), "model_version": "v1", "score": round(p, 6)}

    def due(self, *, now: float) -> list[dict[str, Any]]:
        """Labels whose time has come, in label-time order."""
        out = []
        while self.queue and self.queue[0][0] <= now:
            out.append(heapq.heappop(self.queue)[2])
        return out

    def reference_rows(self, n: int, *, now: float) -> list[dict[str, Any]]:
        """Labelled clean predictions for the reference profile (performance baseline, CBPE calibration)."""
        rows = []
        for i in range(n):
            rec = self.predict(f"ref{i}", now=now, phase="missing-spike")  # no label queued
            p = rec["score"]
            rows.append({**rec, "label": int(self.rng.random() < p)})
        return rows


def _model_streams(spec: MonitorSpec) -> tuple[StreamSpec, StreamSpec] | None:
    for s in spec.streams:
        if s.model is not None:
            return s, spec.stream(s.model.labels)
    return None


def _phase(elapsed: float, duration: float) -> tuple[str, Scenario]:
    f = elapsed / duration
    if f < 0.35:
        return "clean", Scenario()
    if f < 0.70:
        return "drift", Scenario(drift=True)
    return "missing-spike", Scenario(missing_spike=True)


def run_demo(*, duration: float | None, spec_path: str | None, rate: float, web_port: int | None,
             seed: int, console: Console | None = None, producer_only: bool = False,
             write_references: str | None = None) -> int:
    """Run the demo; return the process exit code (0 on a clean stop).

    ``write_references``: only write the reference profiles into that folder (named as the spec's
    ``reference:`` keys name them), then return. ``producer_only``: no broker, worker or profiles of
    its own; produce to ``KAFKA_BOOTSTRAP`` and print what the workers there publish."""
    from agents.cli.progress import out_console

    console = console or out_console()
    work = Path(tempfile.mkdtemp(prefix="streamdq-demo-"))
    kafka: LocalKafka | None = None
    worker: subprocess.Popen[bytes] | None = None
    code = 0
    try:
        settings = Settings.from_env()
        security, worker_env = settings.kafka, dict(os.environ)
        if write_references is not None:
            _write_references(load_spec(Path(spec_path) if spec_path else DEFAULT_SPEC), Path(write_references),
                              seed=seed, console=console)
            return 0
        if producer_only and not settings.bootstrap:
            raise StreamdqError("--producer-only needs a cluster: set KAFKA_BOOTSTRAP")
        if settings.bootstrap:
            bootstrap = settings.bootstrap
            console.print(f"[bold]Kafka[/]: using KAFKA_BOOTSTRAP={bootstrap} ({security.describe()})")
        else:  # the local broker is plaintext: the worker must not use security settings meant for another cluster
            kafka = LocalKafka(log=lambda m: console.print(f"[dim]{m}[/]"))
            bootstrap = kafka.start()
            security = PLAINTEXT
            worker_env = {k: v for k, v in worker_env.items() if not k.startswith(ENV_PREFIX)}
        spec_file = Path(spec_path) if spec_path else DEFAULT_SPEC
        spec = load_spec(spec_file)
        stream = next(s for s in spec.streams if s.kind == "features")
        model_streams = _model_streams(spec)
        if producer_only:
            ensure_topics(bootstrap, spec_topics(spec), log=lambda m: console.print(f"[dim]{m}[/]"), security=security)
            console.print("[bold]Producer only[/]: the workers are elsewhere")
            summary = _produce_and_watch(console, bootstrap, spec, stream.topic or stream.name, duration=duration,
                                         rate=rate, seed=seed, worker=None, metrics_url=None,
                                         model_streams=model_streams, security=security)
            _print_summary(console, summary, None)
            return 0

        console.print("[bold]Reference[/]: profiling 20,000 generated clean records ...")
        clean = SyntheticFeatures(seed=seed + 1000).records(20_000, now=time.time())
        profile = build_profile(stream, lambda: clean, source={"kind": "synthetic", "seed": seed + 1000})
        ref_path = profile.save(work / "reference.profile.json")
        console.print(f"  profile_version {profile.profile_version} -> {ref_path}")

        raw = yaml.safe_load(spec_file.read_text())
        by_name = {s["name"]: s for s in raw["streams"]}
        by_name[stream.name]["reference"] = str(ref_path)
        if model_streams is not None:
            preds_stream = model_streams[0]
            rows = DemoModel(seed=seed + 2000).reference_rows(20_000, now=time.time())
            mprofile = build_profile(preds_stream, lambda: rows, source={"kind": "synthetic", "seed": seed + 2000})
            mref = mprofile.save(work / "predictions.profile.json")
            ref_metrics = reference_metrics(mprofile.model)
            by_name[preds_stream.name]["reference"] = str(mref)
            join = by_name[preds_stream.name]["model"].setdefault("join", {})
            join["ttl_seconds"] = DEMO_TTL_SECONDS
            join["label_lag_seconds"] = 2.0  # both topics come from one producer: they stay within 2 s
            console.print(f"[bold]Model reference[/]: 20,000 labelled predictions -> {mref}"
                          + (f" (accuracy {ref_metrics['accuracy']:.3f})" if ref_metrics else ""))
            console.print(f"  label-join TTL shortened to {DEMO_TTL_SECONDS:g} s (allowed lag 2 s) for the demo")
        run_spec = work / "monitor.yaml"
        run_spec.write_text(yaml.safe_dump(raw, sort_keys=False))
        ensure_topics(bootstrap, spec_topics(spec), log=lambda m: console.print(f"[dim]{m}[/]"), security=security)

        port = web_port or free_port()
        worker_log = work / "worker.log"
        console.print(f"[bold]Worker[/]: starting (log: {worker_log})")
        with open(worker_log, "wb") as logfh:
            worker = subprocess.Popen(
                [sys.executable, "-m", "agents.cli", "worker", str(run_spec), "--bootstrap", bootstrap,
                 "--web-port", str(port)],
                stdout=logfh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True, preexec_fn=_die_with_parent,
                env={**worker_env, "STREAMDQ_DATA_DIR": str(work / "faust")},
            )
        _wait_healthy(port, worker, worker_log)
        metrics_url = f"http://127.0.0.1:{port}/metrics"
        console.print(f"[bold green]Worker ready.[/] Metrics: {metrics_url}   Health: http://127.0.0.1:{port}/health")
        summary = _produce_and_watch(console, bootstrap, spec, stream.topic or stream.name,
                                     duration=duration, rate=rate,
                                     seed=seed, worker=worker, metrics_url=metrics_url, model_streams=model_streams,
                                     security=security)
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
                       rate: float, seed: int, worker: subprocess.Popen[bytes] | None, metrics_url: str | None,
                       model_streams: tuple[StreamSpec, StreamSpec] | None = None,
                       security: KafkaSecurity = PLAINTEXT) -> dict[str, Any]:
    from confluent_kafka import Consumer, Producer

    # log_level 3: librdkafka's retry notices while a fresh broker loads its coordinators are noise here.
    producer = Producer(client_config(bootstrap, security, {"linger.ms": 20, "enable.idempotence": True,
                                                            "log_level": 3}))
    consumer = Consumer(client_config(bootstrap, security, {"group.id": f"streamdq-demo-{os.getpid()}-{seed}",
                                                            "enable.auto.commit": False}))
    topics = [spec.outputs.alerts_topic, spec.outputs.deadletter_topic]
    if model_streams is not None:
        topics.append(spec.outputs.profiles_topic)  # the model windows
    # Read from where the output topics end now, assigned explicitly: a group subscription starting at
    # "latest" would miss what the worker writes before the group has joined (seconds on a busy broker).
    consumer.assign(_ends(consumer, topics))
    gen = SyntheticFeatures(seed=seed)
    model = DemoModel(seed=seed + 3000) if model_streams is not None else None
    bad = bad_messages(seed=seed)
    total = duration if duration is not None else 90.0  # phase length when running until Ctrl-C
    stats: dict[str, Any] = {"produced": 0, "malformed_sent": 0, "alerts": Counter(), "deadletters": Counter(),
                             "phases": Counter(), "predictions": 0, "labels": 0, "model_windows": []}
    shown: Counter[str] = Counter()
    start = time.monotonic()
    phase_name = ""
    last_status = start
    try:
        while True:
            elapsed = time.monotonic() - start
            if duration is not None and elapsed >= duration:
                break
            if worker is not None and worker.poll() is not None:
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
                if model is not None and model_streams is not None:
                    pred = model.predict(rec["record_id"], now=now, phase=name)
                    producer.produce(model_streams[0].topic or model_streams[0].name,
                                     orjson.dumps(pred), key=pred["record_id"])
                    stats["predictions"] += 1
            if model is not None and model_streams is not None:
                for label in model.due(now=time.time()):  # keyed by record id: the prediction's partition
                    producer.produce(model_streams[1].topic or model_streams[1].name,
                                     orjson.dumps(label), key=label["record_id"])
                    stats["labels"] += 1
            producer.poll(0)
            _drain(console, consumer, spec, stats, shown, timeout=0.05)
            if time.monotonic() - last_status >= 10:
                last_status = time.monotonic()
                console.print(f"[dim]  {elapsed:5.0f}s  sent {stats['produced']:,} records + "
                              f"{stats['malformed_sent']} malformed; alerts {sum(stats['alerts'].values())}, "
                              f"dead letters {sum(stats['deadletters'].values())}[/]")
        producer.flush(15)
        # Let the worker finish what is in flight, then collect the last events: until every malformed
        # message sent has come back as a dead letter and nothing new came for 2 s (at most DRAIN_SECONDS).
        drain_until = time.monotonic() + DRAIN_SECONDS
        quiet_since = time.monotonic()
        while time.monotonic() < drain_until:
            before = sum(stats["deadletters"].values()) + sum(stats["alerts"].values()) + len(stats["model_windows"])
            _drain(console, consumer, spec, stats, shown, timeout=0.2)
            after = sum(stats["deadletters"].values()) + sum(stats["alerts"].values()) + len(stats["model_windows"])
            if after != before:
                quiet_since = time.monotonic()
            elif (sum(stats["deadletters"].values()) >= stats["malformed_sent"]
                  and time.monotonic() - quiet_since >= 2.0):
                break
    finally:
        consumer.close()
    return stats


_PHASE_TEXT = {
    "clean": "records like the reference",
    "drift": "age shifted +8 years, country mix moved to IN; the model's scores flatten, 30% of labels disagree",
    "missing-spike": "income missing in 30% of records; the model's labels stop coming",
}


def _ends(consumer: Any, topics: list[str]) -> list[Any]:
    """Every partition of ``topics`` at its current end offset."""
    from confluent_kafka import TopicPartition

    metadata = consumer.list_topics(timeout=10)
    out = []
    for topic in topics:
        for p in sorted(metadata.topics[topic].partitions):
            _, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            out.append(TopicPartition(topic, p, high))
    return out


def _drain(console: Console, consumer: Any, spec: Any, stats: dict[str, Any], shown: Counter[str],
           *, timeout: float) -> None:
    for msg in consumer.consume(num_messages=500, timeout=timeout):
        if msg.error():
            continue
        doc = orjson.loads(msg.value())
        if msg.topic() == spec.outputs.profiles_topic:
            if "basis" in doc:
                _show_model_window(console, doc, stats)
            continue
        if msg.topic() == spec.outputs.alerts_topic:
            subject = doc["feature"] or (f"model {doc['model']}" if doc.get("model") else None)
            stats["alerts"][(subject, doc["check"], doc["severity"], doc["status"])] += 1
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


def _show_model_window(console: Console, doc: dict[str, Any], stats: dict[str, Any]) -> None:
    """One line per closed labels window: realised performance beside the label-free estimate."""
    stats["model_windows"].append(doc)
    if doc["basis"] != "labels" or doc["realised"] is None:
        return
    if time.monotonic() - stats.get("model_shown_at", -math.inf) < 5.0:  # one line per 5 s is plenty
        return
    stats["model_shown_at"] = time.monotonic()
    real, est, ref = doc["realised"], doc["estimated"] or {}, doc["reference"] or {}
    lat = (doc["join"].get("latency") or {}).get("p50")
    console.print(
        f"[blue]MODEL[/] {doc['model']}:{doc['model_version']} {doc['window']['name']}#{doc['window']['index']} "
        f"labelled {doc['count']}: accuracy {real['accuracy']:.3f} (estimated without labels "
        f"{_fmt(est.get('accuracy'))}, reference {_fmt(ref.get('accuracy'))}), ROC AUC {_fmt(real.get('roc_auc'))}"
        + (f", label latency p50 {lat:.1f}s" if lat is not None else ""))


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"


def _write_references(spec: MonitorSpec, folder: Path, *, seed: int, console: Console) -> None:
    """The profiles the demo builds (same seeds), saved under the names of the spec's ``reference:`` keys."""
    folder.mkdir(parents=True, exist_ok=True)
    stream = next(s for s in spec.streams if s.kind == "features")
    clean = SyntheticFeatures(seed=seed + 1000).records(20_000, now=time.time())
    profiles = [(stream, build_profile(stream, lambda: clean, source={"kind": "synthetic", "seed": seed + 1000}))]
    model_streams = _model_streams(spec)
    if model_streams is not None:
        rows = DemoModel(seed=seed + 2000).reference_rows(20_000, now=time.time())
        profiles.append((model_streams[0], build_profile(model_streams[0], lambda: rows,
                                                         source={"kind": "synthetic", "seed": seed + 2000})))
    for s, profile in profiles:
        path = profile.save(folder / Path(s.reference or f"{s.name}.profile.json").name)
        console.print(f"[bold]Reference[/] of {s.name}: profile_version {profile.profile_version} -> {path}")


def _print_summary(console: Console, stats: dict[str, Any], metrics_url: str | None) -> None:
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
    windows = stats["model_windows"]
    if windows or stats["predictions"]:
        console.print(f"model: {stats['predictions']:,} predictions and {stats['labels']:,} labels sent")
        labelled = [d for d in windows if d["basis"] == "labels" and d["realised"]]
        step = max(1, math.ceil(len(labelled) / 12))
        mt = Table(title="model windows over labelled examples, spread over the run: realised accuracy beside "
                         "the label-free estimate on the same examples")
        for col in ("window", "labelled", "accuracy", "estimated", "|error|", "reference", "ROC AUC"):
            mt.add_column(col)
        for d in labelled[::step]:
            real, est = d["realised"], d["estimated"] or {}
            err = (d.get("estimation_error") or {}).get("accuracy")
            mt.add_row(f"{d['window']['name']}#{d['window']['index']}", str(d["count"]), _fmt(real.get("accuracy")),
                       _fmt(est.get("accuracy")), _fmt(err), _fmt((d["reference"] or {}).get("accuracy")),
                       _fmt(real.get("roc_auc")))
        console.print(mt)
        expired = [d["join"].get("label_expired_ratio") for d in windows if d["basis"] == "predictions"]
        expired = [x for x in expired if x is not None]
        if expired:
            console.print(f"share of predictions whose label never came (last predictions window): {expired[-1]:.0%}")
    dlq = ", ".join(f"{k} {v}" for k, v in sorted(stats["deadletters"].items())) or "none"
    console.print(f"dead letters received: {sum(stats['deadletters'].values())} ({dlq})")
    if metrics_url is not None:
        console.print(f"metrics were served at {metrics_url}")
