"""Alert lifecycle through a real worker: webhooks that fail and recover, and alert state that
survives a worker restart (no duplicate firing, no forgotten open alert)."""

from __future__ import annotations

import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest

from monitor.alerts import fingerprint
from monitor.testing.synthetic import Scenario, SyntheticFeatures

from .conftest import consume_all, demo_spec, launch_worker, make_reference, producer, wait_for
from .test_notify import (
    AlertmanagerProc,
    Receiver,
    alertmanager,  # noqa: F401 - the fixture, used through request.getfixturevalue
    notifications,
)

BASE = 1_760_000_000.0


def _send(bootstrap: str, topic: str, gen: SyntheticFeatures, n: int, start: int, scenario: Scenario) -> int:
    p = producer(bootstrap)
    for i in range(n):
        rec = gen.record(now=BASE + (start + i) * 0.01, scenario=scenario)
        p.produce(topic, orjson.dumps(rec), key=rec["record_id"])
        p.poll(0)
    assert p.flush(30) == 0
    return start + n


def _processed(worker: Any) -> float:
    for line in worker.metrics().splitlines():
        if line.startswith('streamdq_records_total{outcome="processed"'):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def _wait_processed(worker: Any, n: int) -> None:
    wait_for(f"the worker to process {n} records", lambda: _processed(worker) >= n,
             log=lambda: f"it processed {_processed(worker):.0f}:\n{worker.log_tail()}")


def _spec(tmp_path: Path, **alerting: Any) -> dict[str, Any]:
    spec = demo_spec(uuid.uuid4().hex[:10], make_reference(tmp_path / "ref.json"), window=1000, partitions=1)
    spec["alerting"] = {"for_windows": 1, "clear_windows": 1, "renotify_seconds": 0, **alerting}
    return spec


@pytest.mark.timeout(300)
def test_webhook_down_then_up_every_alert_delivered_once_and_the_stream_keeps_flowing(
        kafka_bootstrap: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = b"webhook-secret-for-tests"
    monkeypatch.setenv("STREAMDQ_TEST_WEBHOOK_SECRET", secret.decode())
    with Receiver(fail_first=10**9, secret=secret) as receiver:  # down until told otherwise
        spec = _spec(tmp_path, subscriptions=[{
            "name": "hook", "kind": "webhook", "url": receiver.url + "/streamdq",
            "secret_env": "STREAMDQ_TEST_WEBHOOK_SECRET", "timeout_seconds": 1.0, "max_retries": 40,
            "backoff_seconds": 0.2, "max_backoff_seconds": 1.0}])
        worker = launch_worker(kafka_bootstrap, spec, tmp_path)
        try:
            topic = spec["streams"][0]["topic"]
            gen = SyntheticFeatures(seed=31)
            n = _send(kafka_bootstrap, topic, gen, 2000, 0, Scenario())
            n = _send(kafka_bootstrap, topic, gen, 3000, n, Scenario(drift=True))
            n = _send(kafka_bootstrap, topic, gen, 3000, n, Scenario())
            # The receiver is still refusing everything, yet every record is processed.
            _wait_processed(worker, n)
            assert receiver.requests > 0 and not receiver.accepted, "the webhook was not failing as set up"
            events = [orjson.loads(m.value()) for m in consume_all(kafka_bootstrap, spec["outputs"]["alerts_topic"],
                                                                  expect=1, idle=3.0)]
            assert {e["status"] for e in events} == {"firing", "resolved"}
            receiver.fail_first = receiver.requests  # the receiver recovers
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and len(receiver.accepted) < len(events):
                time.sleep(0.2)
            assert set(receiver.accepted) == {e["alert_id"] for e in events}, worker.log_tail()
            assert receiver.bad_signatures == 0 and receiver.verified == len(receiver.accepted)
            assert [receiver.accepted[e["alert_id"]] for e in events] == events  # the same documents
            page = worker.metrics()
            assert f'streamdq_notifications_total{{outcome="delivered",subscription="hook"}} {float(len(events))}' \
                in page, page
        finally:
            worker.stop()


@pytest.mark.timeout(300)
def test_alert_state_survives_a_worker_restart(kafka_bootstrap: str, tmp_path: Path) -> None:
    spec = _spec(tmp_path)
    topic = spec["streams"][0]["topic"]
    gen = SyntheticFeatures(seed=41)
    first = launch_worker(kafka_bootstrap, spec, tmp_path / "first")
    try:
        n = _send(kafka_bootstrap, topic, gen, 2000, 0, Scenario())
        n = _send(kafka_bootstrap, topic, gen, 2000, n, Scenario(drift=True))
        _wait_processed(first, n)
        before = [orjson.loads(m.value()) for m in consume_all(kafka_bootstrap, spec["outputs"]["alerts_topic"],
                                                               expect=1, idle=3.0)]
    finally:
        assert first.stop() == 0
    firing = {e["fingerprint"] for e in before if e["status"] == "firing"}
    assert firing and all(e["status"] == "firing" for e in before)

    second = launch_worker(kafka_bootstrap, spec, tmp_path / "second")
    try:
        m = _send(kafka_bootstrap, topic, gen, 3000, n, Scenario(drift=True))  # still drifted: no new firing
        m = _send(kafka_bootstrap, topic, gen, 3000, m, Scenario())            # clean again: must resolve
        _wait_processed(second, m - n)
        every = [orjson.loads(m.value()) for m in consume_all(kafka_bootstrap, spec["outputs"]["alerts_topic"],
                                                              expect=len(before) + 1, idle=3.0)]
    finally:
        second.stop()
    after = every[len(before):]
    fired = Counter(e["fingerprint"] for e in every if e["status"] == "firing")
    assert all(fired[fp] == 1 for fp in firing), fired  # no duplicate firing across the restart
    resolved = {e["fingerprint"] for e in after if e["status"] == "resolved"}
    assert firing <= resolved, (firing - resolved)      # no open alert forgotten by the restart
    for e in after:
        if e["status"] == "resolved" and e["fingerprint"] in firing:
            original = next(b for b in before if b["fingerprint"] == e["fingerprint"])
            assert e["first_seen"] == original["first_seen"]  # the same alert, carried over


@pytest.mark.timeout(300)
def test_alertmanager_receives_firing_then_resolved_from_the_worker(
        kafka_bootstrap: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    am: AlertmanagerProc = request.getfixturevalue("alertmanager")  # a real Alertmanager (test_notify's fixture)
    spec = _spec(tmp_path, subscriptions=[{
        "name": "am", "kind": "alertmanager", "url": am.url, "filter": {"checks": ["psi"], "min_severity": "warning"},
        "max_retries": 5, "backoff_seconds": 0.2}])
    topic = spec["streams"][0]["topic"]
    fp = fingerprint("features", "age", "psi")

    def listed() -> list[dict[str, Any]]:
        return [a for a in am.alerts() if a["labels"].get("fingerprint") == fp]

    def am_log() -> str:
        return f"alertmanager log:\n{am.log_tail()}"

    worker = launch_worker(kafka_bootstrap, spec, tmp_path)
    try:
        gen = SyntheticFeatures(seed=51)
        n = _send(kafka_bootstrap, topic, gen, 2000, 0, Scenario())
        n = _send(kafka_bootstrap, topic, gen, 2000, n, Scenario(drift=True))
        [alert] = wait_for("Alertmanager to list the age PSI alert", listed, timeout=60, log=am_log)
        assert alert["status"]["state"] == "active"
        assert alert["labels"]["alertname"] == "streamdq_psi" and alert["labels"]["feature"] == "age"
        assert alert["labels"]["severity"] == "critical"
        wait_for("Alertmanager's firing notification", lambda: notifications(am.receiver, fp, "firing"),
                 timeout=60, log=am_log)
        # only PSI passes the subscription's filter
        assert {a["labels"]["check"] for a in am.alerts()} == {"psi"}
        n = _send(kafka_bootstrap, topic, gen, 3000, n, Scenario())
        wait_for("Alertmanager to stop listing the alert once it resolved", lambda: not listed(), timeout=60,
                 log=am_log)
        wait_for("Alertmanager's resolved notification", lambda: notifications(am.receiver, fp, "resolved"),
                 timeout=60, log=am_log)
    finally:
        worker.stop()
