"""The worker reads compressed topics (producers often compress with lz4, zstd, snappy or gzip)."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import orjson
import pytest
from confluent_kafka import Producer

from monitor.testing.synthetic import SyntheticFeatures

from .conftest import demo_spec, launch_worker, make_reference

CODECS = ("lz4", "zstd", "snappy", "gzip")


@pytest.mark.timeout(180)
def test_compressed_messages_are_processed(kafka_bootstrap: str, tmp_path: Path) -> None:
    spec = demo_spec(uuid.uuid4().hex[:10], make_reference(tmp_path / "ref.json"), window=1000, partitions=1)
    worker = launch_worker(kafka_bootstrap, spec, tmp_path)
    try:
        gen = SyntheticFeatures(seed=61)
        sent = 0
        for codec in CODECS:
            p = Producer({"bootstrap.servers": kafka_bootstrap, "compression.type": codec,
                          "linger.ms": 50, "log_level": 0})
            for rec in gen.records(500, now=1_750_000_000.0 + sent):
                p.produce(spec["streams"][0]["topic"], orjson.dumps(rec))
                sent += 1
            assert p.flush(30) == 0
        deadline = time.monotonic() + 60
        line = f'streamdq_records_total{{outcome="processed",stream="features"}} {float(sent)}'
        while time.monotonic() < deadline and line not in worker.metrics():
            assert worker.proc.poll() is None, worker.log_tail()
            time.sleep(0.3)
        assert line in worker.metrics(), worker.log_tail()
    finally:
        worker.stop()
