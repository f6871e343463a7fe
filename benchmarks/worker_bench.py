"""Worker benchmark: end-to-end records/s through a real Kafka broker and one streamdq worker.

Starts a local Apache Kafka (or uses ``KAFKA_BOOTSTRAP``), a worker process for a
one-partition copy of ``deploy/monitor.yaml`` (9 features, count window 2,000,
30 s event-time window, every default check), pre-loads the input topic, then
measures how fast the worker drains it, for three message forms: one record
per message, JSON arrays of 100 records, and columnar batches of 100 records.
Writes ``benchmarks/results/worker.json`` and ``worker.md``. Not a test.

Usage: ``python benchmarks/worker_bench.py [--records 200000]``
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import yaml
from confluent_kafka import Producer

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agents.cli.localkafka import LocalKafka, free_port
from agents.kafka.topics import changelog_topics, ensure_topics, spec_topics
from monitor.reference import build_profile
from monitor.spec import parse_spec
from monitor.testing.synthetic import SyntheticFeatures

REPO = Path(__file__).resolve().parents[1]


def processed(port: int) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        for line in resp.read().decode().splitlines():
            if line.startswith('streamdq_records_total{outcome="processed"'):
                return float(line.rsplit(" ", 1)[1])
    return 0.0


def run_form(bootstrap: str, work: Path, form: str, n: int) -> dict[str, Any]:
    uid = uuid.uuid4().hex[:8]
    raw = yaml.safe_load((REPO / "deploy" / "monitor.yaml").read_text())
    raw["name"] = f"bench-{uid}"
    s = raw["streams"][0]
    raw["streams"] = [s]  # the features stream only (the spec's predictions and labels streams have no reference here)
    s.update(topic=f"bench-{uid}", partitions=1, reference=str(work / "ref.json"))
    raw["outputs"] = {k: f"{k}-{uid}" for k in ("alerts_topic", "deadletter_topic", "profiles_topic",
                                                   "alerts_deadletter_topic")}
    spec = parse_spec(raw)
    if not (work / "ref.json").exists():
        clean = SyntheticFeatures(seed=1).records(20_000, now=1_700_000_000.0)
        build_profile(spec.streams[0], lambda: clean, source={"kind": "benchmark"}).save(work / "ref.json")
    ensure_topics(bootstrap, spec_topics(spec))
    ensure_topics(bootstrap, changelog_topics(spec), compacted=True)
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "batch.size": 1_000_000,
                         "compression.type": "lz4", "log_level": 0})
    gen = SyntheticFeatures(seed=2)
    sent = 0
    while sent < n:
        recs = gen.records(100, now=1_700_000_000.0 + sent / 1000)
        if form == "single":
            for r in recs:
                producer.produce(s["topic"], orjson.dumps(r))
        elif form == "array":
            producer.produce(s["topic"], orjson.dumps(recs))
        else:
            producer.produce(s["topic"], orjson.dumps({"columns": {k: [r[k] for r in recs] for k in recs[0]}}))
        sent += len(recs)
        producer.poll(0)
    producer.flush(60)
    path = work / f"spec-{uid}.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    port = free_port()
    log = open(work / f"worker-{uid}.log", "wb")  # noqa: SIM115 - closed below
    t0 = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "agents.cli", "worker", str(path), "--bootstrap", bootstrap,
                             "--web-port", str(port)], stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                            env={**os.environ, "STREAMDQ_DATA_DIR": str(work / f"faust-{uid}")})
    try:
        first = None
        while True:
            if proc.poll() is not None:
                log.flush()
                text = [ln for ln in Path(log.name).read_text(errors="replace").splitlines() if "leaked" not in ln]
                crash = [i for i, ln in enumerate(text) if "Traceback" in ln or "Crashed" in ln]
                tail = "\n".join(text[max(crash[0] - 5, 0):crash[0] + 30] if crash else text[-25:])
                raise RuntimeError(f"worker exited:\n{tail}")
            try:
                done = processed(port)
            except OSError:
                done = 0.0
            if done > 0 and first is None:
                first = (time.monotonic(), done)
            if done >= n:
                end = time.monotonic()
                break
            time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        log.close()
    assert first is not None
    rate = (n - first[1]) / max(end - first[0], 1e-9)
    return {"form": form, "records": n, "startup_seconds": first[0] - t0, "records_per_second": rate}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=200_000)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "worker.json")
    args = ap.parse_args()
    kafka = None
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP")
    if not bootstrap:
        kafka = LocalKafka()
        bootstrap = kafka.start()
    try:
        with tempfile.TemporaryDirectory(prefix="streamdq-bench-") as tmp:
            work = Path(tmp)
            forms = [run_form(bootstrap, work, "single", min(args.records, 100_000)),
                     run_form(bootstrap, work, "array", args.records),
                     run_form(bootstrap, work, "columnar", args.records)]
    finally:
        if kafka is not None:
            kafka.stop()
    result = {"when": datetime.now(UTC).isoformat(timespec="seconds"), "cpus": os.cpu_count(), "forms": forms}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    lines = [f"# Worker benchmark ({result['when']}, {result['cpus']} CPUs)", "",
             "One worker, one partition, `deploy/monitor.yaml` (9 features, two windows, every default check),",
             "a local Apache Kafka on the same machine; the topic is pre-loaded and the worker drains it.",
             "Produced by `python benchmarks/worker_bench.py`.", "",
             "| message form | records | records/s (steady) |", "|---|---|---|"]
    lines += [f"| {f['form']} | {f['records']:,} | {f['records_per_second']:,.0f} |" for f in forms]
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
