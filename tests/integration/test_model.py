"""Model monitoring through a real worker and a real Kafka: predictions and delayed labels joined in the
stream, performance windows on the profiles topic, model alerts, join metrics, and the join state
surviving a crash of the worker in the middle of a join."""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from monitor.reference import build_profile
from monitor.spec import parse_spec
from tests.integration.conftest import consume_all, launch_worker, producer, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

T0 = 1_700_000_000.0


def model_spec(uid: str, reference: Path | None, *, partitions: int = 2, checkpoint: float = 1.0,
               ttl: float = 600.0, window: int = 500) -> dict[str, Any]:
    return {
        "version": 1, "name": f"itm-{uid}",
        "streams": [
            {"name": "predictions", "kind": "predictions", "topic": f"predictions-{uid}", "partitions": partitions,
             "reference": str(reference) if reference else None,
             "windows": [{"name": "w1000", "kind": "count", "size": 1000}],
             "features": [{"name": "score", "type": "numeric", "range": {"min": 0, "max": 1}}],
             "model": {"name": "churn", "task": "binary", "labels": "labels", "score_field": "score",
                       "join": {"ttl_seconds": ttl, "checkpoint_seconds": checkpoint},
                       "windows": [{"name": f"perf{window}", "kind": "count", "size": window}],
                       "min_samples": 100,
                       "thresholds": {"accuracy_drop": {"warning": 0.05, "critical": 0.10}}}},
            {"name": "labels", "kind": "labels", "topic": f"labels-{uid}", "partitions": partitions,
             "windows": [{"name": "w1000", "kind": "count", "size": 1000}],
             "features": [{"name": "label", "type": "categorical", "categories": ["0", "1"]}]},
        ],
        "outputs": {"alerts_topic": f"alerts-{uid}", "deadletter_topic": f"deadletter-{uid}",
                    "profiles_topic": f"profiles-{uid}", "partitions": 1},
    }


def synthetic(n: int, seed: int, *, start: int = 0, flip: float = 0.0) -> tuple[list[dict[str, Any]],
                                                                              list[dict[str, Any]]]:
    """A calibrated binary model (P(y=1 | score) = score); with ``flip`` that share of labels is flipped."""
    rng = np.random.default_rng(seed)
    p = rng.beta(0.6, 0.6, n)
    y = (rng.random(n) < p).astype(int)
    if flip:
        y = np.where(rng.random(n) < flip, 1 - y, y)
    delay = rng.exponential(20.0, n)
    preds = [{"record_id": f"r{start + i:08d}", "event_time": T0 + (start + i) * 0.01, "model_version": "v1",
              "score": float(p[i])} for i in range(n)]
    labels = [{"record_id": f"r{start + i:08d}", "event_time": T0 + (start + i) * 0.01 + float(delay[i]),
               "label": int(y[i])} for i in range(n)]
    labels.sort(key=lambda r: r["event_time"])  # labels come in the order they became known
    return preds, labels


def send(bootstrap: str, topic: str, records: list[dict[str, Any]]) -> None:
    prod = producer(bootstrap)
    for r in records:
        prod.produce(topic, orjson.dumps(r), key=r["record_id"])  # keyed by id: co-partitioned
        prod.poll(0)
    prod.flush(30)


def metric(text: str, name: str, **labels: str) -> float | None:
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return None


def model_windows(bootstrap: str, topic: str, expect: int) -> list[dict[str, Any]]:
    docs = [orjson.loads(m.value()) for m in consume_all(bootstrap, topic, expect=expect, idle=2.0)]
    return [d for d in docs if "basis" in d]


def labelled_reference(path: Path, spec: dict[str, Any]) -> Path:
    preds, labels = synthetic(20_000, seed=7)
    by_id = {r["record_id"]: r["label"] for r in labels}
    rows = [{**p, "label": by_id[p["record_id"]]} for p in preds]
    stream = parse_spec(spec).stream("predictions")
    return build_profile(stream, lambda: rows, source={"kind": "synthetic"}).save(path)


def test_worker_joins_labels_and_reports_performance(kafka_bootstrap: str, tmp_path: Path, uid: str) -> None:
    ref = labelled_reference(tmp_path / "predictions.profile.json", model_spec(uid, None))
    spec = model_spec(uid, ref)
    worker = launch_worker(kafka_bootstrap, spec, tmp_path)
    try:
        clean_p, clean_l = synthetic(3000, seed=1)
        drift_p, drift_l = synthetic(2000, seed=2, start=3000, flip=0.35)  # concept drift: labels disagree
        send(kafka_bootstrap, spec["streams"][0]["topic"], clean_p + drift_p)
        send(kafka_bootstrap, spec["streams"][1]["topic"], clean_l + drift_l)
        text = wait_for("every label joined", lambda: (lambda t: t if metric(
            t, "streamdq_label_join_events_total", outcome="joined") == 5000 else None)(worker.metrics()),
            log=worker.log_tail)
        windows = model_windows(kafka_bootstrap, spec["outputs"]["profiles_topic"], expect=20)
        alerts = [orjson.loads(m.value()) for m in consume_all(kafka_bootstrap, spec["outputs"]["alerts_topic"],
                                                               expect=1, idle=2.0)]
    finally:
        assert worker.stop() == 0, worker.log_tail()
    assert metric(text, "streamdq_label_pending_predictions") == 0
    assert metric(text, "streamdq_label_coverage_ratio") == 1.0  # every decided prediction got its label
    promtool = shutil.which("promtool")
    assert promtool, "promtool is required (Debian package prometheus; the README test command installs it)"
    res = subprocess.run([promtool, "check", "metrics"], input=text.encode(), capture_output=True, timeout=60)
    assert res.returncode == 0, res.stdout.decode() + res.stderr.decode()  # the model series pass the linter too
    assert metric(text, "streamdq_label_latency_seconds", quantile="0.5") is not None
    assert metric(text, "streamdq_model_performance", basis="labels", source="realised", metric="accuracy") \
        is not None
    labelled = [w for w in windows if w["basis"] == "labels"]
    assert sum(w["count"] for w in labelled) == 5000  # 10 windows of 500, in two partitions' join order
    # Before the drift the realised accuracy matches the calibrated model's (~0.80) and the label-free
    # estimate on the same examples is close to it; after it, accuracy falls by ~0.35 * (2 * 0.8 - 1).
    first = labelled[0]
    assert abs(first["realised"]["accuracy"] - first["reference"]["accuracy"]) < 0.08
    assert first["estimation_error"]["accuracy"] < 0.06
    fired = [a for a in alerts if a["check"] == "accuracy_drop" and a["status"] == "firing"]
    assert fired and fired[0]["model"] == "churn:v1", alerts
    # one series per open alert (model checks have feature ""), as the events left it (no window closed since)
    last = {}
    for a in alerts:
        last[a["fingerprint"]] = a
    still = [a for a in last.values() if a["status"] == "firing" and a["check"] == "accuracy_drop"]
    assert metric(text, "streamdq_alert_active", check="accuracy_drop", feature="",
                  severity=still[0]["severity"] if still else "warning") == (1.0 if still else None)
    predictions_windows = [w for w in windows if w["basis"] == "predictions"]
    assert predictions_windows and all(w["estimated"] is not None for w in predictions_windows)


@pytest.mark.parametrize("crash", [False, True], ids=["stop-restart", "crash-restart"])
def test_pending_predictions_survive_a_restart_mid_join(kafka_bootstrap: str, tmp_path: Path, uid: str,
                                                       crash: bool) -> None:
    # stop-restart: SIGTERM, the final checkpoint holds everything, the restart reloads it from the table.
    # crash-restart: SIGKILL with checkpoints far apart (none was written): the restart replays the records
    # the consumer group had committed, so the join state is rebuilt from the topics alone.
    spec = model_spec(uid, None, checkpoint=3600.0 if crash else 1.0)
    ptopic, ltopic = spec["streams"][0]["topic"], spec["streams"][1]["topic"]
    preds, labels = synthetic(3000, seed=3)
    first = launch_worker(kafka_bootstrap, spec, tmp_path / "first")
    try:
        send(kafka_bootstrap, ptopic, preds[:2000])
        send(kafka_bootstrap, ltopic, labels[:500])  # some join before the restart, some labels come early
        wait_for("the first batch joined", lambda: metric(first.metrics(), "streamdq_label_join_events_total",
                                                          outcome="labels") == 500, log=first.log_tail)
        send(kafka_bootstrap, ptopic, preds[2000:])
        wait_for("every prediction read", lambda: metric(first.metrics(), "streamdq_label_join_events_total",
                                                         outcome="predictions") == 3000, log=first.log_tail)
        before = first.metrics()
        time.sleep(4.0)  # Faust commits offsets every ~3 s
    finally:
        if crash:
            first.proc.send_signal(signal.SIGKILL)  # no final checkpoint
            first.proc.wait(timeout=10)
        else:
            assert first.stop() == 0, first.log_tail()
    pending = metric(before, "streamdq_label_pending_predictions")
    assert pending is not None and 2000 < pending < 3000
    second = launch_worker(kafka_bootstrap, spec, tmp_path / "second", timeout=150)
    try:
        wait_for("the restored pending predictions", lambda: metric(
            second.metrics(), "streamdq_label_pending_predictions") == pending, timeout=150, log=second.log_tail)
        send(kafka_bootstrap, ltopic, labels[500:])
        text = wait_for("every label joined", lambda: (lambda t: t if metric(
            t, "streamdq_label_join_events_total", outcome="joined") == 3000 else None)(second.metrics()),
            log=second.log_tail)
        log = second.log.read_text(errors="replace")
    finally:
        assert second.stop() == 0, second.log_tail()
    assert metric(text, "streamdq_label_pending_predictions") == 0
    assert metric(text, "streamdq_label_orphan_labels") == 0
    assert metric(text, "streamdq_label_join_events_total", outcome="predictions") == 3000  # none counted twice
    assert metric(text, "streamdq_label_join_events_total", outcome="labels") == 3000
    assert metric(text, "streamdq_label_join_events_total", outcome="duplicate_predictions") == 0
    if crash:
        assert "replayed 3000 predictions record(s)" in log, log[-3000:]
    else:
        assert re.search(r"restored the join state of 2 partition", log), log[-3000:]
