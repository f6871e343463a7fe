"""The roles docker-compose.yml gives the streamdq image, run as processes on the real broker: the
``references`` service (``demo --write-references``), a worker reading those profiles, and the ``producer``
service (``demo --producer-only``) feeding it; ``streamdq status`` then shows the worker's windows."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
import yaml

from monitor.reference import ReferenceProfile

from .conftest import demo_spec, launch_worker


def test_references_then_worker_then_producer(kafka_bootstrap: str, tmp_path: Path, uid: str) -> None:
    raw = demo_spec(uid, None, window=1000, partitions=2)
    raw["streams"][0]["reference"] = "reference/features.profile.json"  # as in deploy/monitor.yaml
    spec = tmp_path / "monitor.yaml"
    spec.write_text(yaml.safe_dump(raw, sort_keys=False))
    env = {**os.environ, "KAFKA_BOOTSTRAP": kafka_bootstrap}

    refs = subprocess.run([sys.executable, "-m", "agents.cli", "demo", "--write-references",
                           str(tmp_path / "reference"), "--spec", str(spec)],
                          capture_output=True, text=True, timeout=180, env=env)
    assert refs.returncode == 0, refs.stdout + refs.stderr
    profile = ReferenceProfile.load(tmp_path / "reference" / "features.profile.json")
    assert profile.rows == 20_000

    raw["streams"][0]["reference"] = str(tmp_path / "reference" / "features.profile.json")
    worker = launch_worker(kafka_bootstrap, raw, tmp_path / "worker")
    try:
        producer = subprocess.run([sys.executable, "-m", "agents.cli", "demo", "--producer-only", "--spec", str(spec),
                                   "--duration", "6", "--rate", "1000"], capture_output=True, text=True, timeout=180,
                                  env=env)
        assert producer.returncode == 0, producer.stdout + producer.stderr
        assert "Producer only" in producer.stdout and "records sent:" in producer.stdout
        assert "metrics were served" not in producer.stdout  # no worker of its own
        status = subprocess.run([sys.executable, "-m", "agents.cli", "status", "--url", worker.url, "--json"],
                                capture_output=True, text=True, timeout=60)
        assert status.returncode == 0, status.stderr
        [stream] = orjson.loads(status.stdout)["streams"]
        assert stream["records_processed"] >= 5000
        assert stream["windows"][0]["last_closed"]["count"] == 1000
        assert any(f["drift"] for f in stream["features"])  # the profiles were read: drift is measured
    finally:
        worker.stop()


def test_producer_only_needs_a_cluster(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "KAFKA_BOOTSTRAP"}
    got = subprocess.run([sys.executable, "-m", "agents.cli", "demo", "--producer-only", "--duration", "1"],
                         capture_output=True, text=True, timeout=60, env=env)
    assert got.returncode == 1 and "--producer-only needs a cluster: set KAFKA_BOOTSTRAP" in got.stdout + got.stderr
