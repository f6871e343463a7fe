"""/health tells the truth, on a broker of its own that the test stops and starts again: ready (200) while
consuming, 503 naming the reason while no broker is reachable, ready again once it is back; /health/live
stays 200 throughout (an outage is no reason to restart a worker)."""

from __future__ import annotations

import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest

from agents.cli.localkafka import LocalKafka

from .conftest import demo_spec, launch_worker, wait_for


def _get(url: str) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, orjson.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, orjson.loads(err.read())


@pytest.mark.timeout(300)
def test_health_reports_a_broker_outage_and_recovers(tmp_path: Path) -> None:
    kafka = LocalKafka(work_dir=tmp_path / "kafka")
    bootstrap = kafka.start()
    worker = None
    try:
        uid = uuid.uuid4().hex[:10]
        worker = launch_worker(bootstrap, demo_spec(uid, None, partitions=1), tmp_path / "w")
        code, body = _get(worker.url + "/health")
        assert code == 200 and body["status"] == "ok" and body["reasons"] == [], body
        kafka.stop(keep_data=True)
        seen: list[Any] = []

        def outage() -> Any:
            got = _get(worker.url + "/health")
            seen.append(got)
            return got[0] == 503 and any("no Kafka broker reachable" in r for r in got[1]["reasons"]) and got

        code, body = wait_for("/health to report the outage", outage, timeout=60,
                              log=lambda: f"{seen[-3:]}\n{worker.log_tail()}")
        assert body["status"] == "unavailable"
        assert all(code == 503 for code, _ in seen[1:]) or seen[0][0] == 200  # never ok again once it went 503
        assert _get(worker.url + "/health/live")[0] == 200
        kafka.start()  # the same broker, ports and data
        wait_for("/health to recover", lambda: _get(worker.url + "/health")[0] == 200, timeout=90,
                 log=worker.log_tail)
        assert _get(worker.url + "/health/ready")[0] == 200
    finally:
        if worker is not None:
            worker.stop()
        kafka.stop()
