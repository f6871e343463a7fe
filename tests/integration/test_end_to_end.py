"""The whole path on a real Apache Kafka broker: produce, worker, alerts, dead letters, metrics."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from jsonschema import Draft202012Validator
from prometheus_client.parser import text_string_to_metric_families

from monitor.records import decode_message
from monitor.spec import parse_spec
from monitor.testing.synthetic import Scenario, SyntheticFeatures, bad_messages

from .conftest import consume_all, demo_spec, launch_worker, make_reference, producer

REPO = Path(__file__).resolve().parents[2]
DRIFTED = {"age", "country"}


def _schema(name: str) -> Draft202012Validator:
    schema = json.loads((REPO / "schemas" / name).read_text())
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


def _samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def _value(samples: dict[Any, float], name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


@pytest.fixture(scope="module")
def scenario_run(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Start a worker, send 3,000 clean + 3,000 drifted records, 13 bad ones; wait until all are counted."""
    work = tmp_path_factory.mktemp("e2e")
    # 999 = 333 records of each of the 3 partitions per count window (at most 1,000 values: KS runs)
    spec = demo_spec(uuid.uuid4().hex[:10], make_reference(work / "reference.profile.json"), window=999,
                     partitions=3)
    worker = launch_worker(kafka_bootstrap, spec, work)
    try:
        yield _run_scenario(kafka_bootstrap, spec, worker)
    finally:
        worker.stop()


def _run_scenario(kafka_bootstrap: str, spec: dict[str, Any], worker: Any) -> dict[str, Any]:
    topic = spec["streams"][0]["topic"]
    gen = SyntheticFeatures(seed=7)
    p = producer(kafka_bootstrap)
    bad_sent: list[tuple[bytes, str]] = []
    bad = bad_messages(seed=3)
    good = 0
    for i in range(6000):
        rec = gen.record(now=time.time(), scenario=Scenario(drift=i >= 3000))
        p.produce(topic, orjson.dumps(rec), key=rec["record_id"])
        good += 1
        if i % 500 == 250:
            value, reason = next(bad)
            p.produce(topic, value)
            bad_sent.append((value, reason))
        p.poll(0)
    # One batch message: three good records and one without an id, which must be dead-lettered alone.
    batch = gen.records(3, now=time.time())
    lone_bad = {"age": 50, "country": "US"}
    p.produce(topic, orjson.dumps([batch[0], batch[1], lone_bad, batch[2]]))
    good += 3
    bad_sent.append((orjson.dumps(lone_bad), "missing_id"))
    # One columnar message: four good rows and one with a null id, dead-lettered alone.
    rows = gen.records(5, now=time.time())
    rows[3]["record_id"] = None
    cols = {k: [r[k] for r in rows] for k in rows[0]}
    p.produce(topic, orjson.dumps({"columns": cols}))
    good += 4
    bad_sent.append((orjson.dumps(rows[3]), "missing_id"))
    assert p.flush(30) == 0

    deadline = time.monotonic() + 90
    samples: dict[Any, float] = {}
    while time.monotonic() < deadline:
        samples = _samples(worker.metrics())
        processed = _value(samples, "streamdq_records_total", stream="features", outcome="processed")
        dead = _value(samples, "streamdq_records_total", stream="features", outcome="deadlettered")
        if processed == good and dead == len(bad_sent):
            break
        time.sleep(0.5)
    return {"spec": spec, "worker": worker, "good": good, "bad_sent": bad_sent, "samples": samples,
            "bootstrap": kafka_bootstrap}


def test_every_record_is_processed_or_deadlettered(scenario_run: dict[str, Any]) -> None:
    s = scenario_run["samples"]
    processed = _value(s, "streamdq_records_total", stream="features", outcome="processed")
    dead = _value(s, "streamdq_records_total", stream="features", outcome="deadlettered")
    produced = scenario_run["good"] + len(scenario_run["bad_sent"])
    assert (processed, dead) == (scenario_run["good"], len(scenario_run["bad_sent"])), scenario_run["worker"].log_tail()
    assert processed + dead == produced
    by_reason = Counter(reason for _, reason in scenario_run["bad_sent"])
    for reason, n in by_reason.items():
        assert _value(s, "streamdq_deadletter_records_total", stream="features", reason=reason) == n


def test_drift_alerts_arrive_on_the_alerts_topic(scenario_run: dict[str, Any]) -> None:
    topic = scenario_run["spec"]["outputs"]["alerts_topic"]
    messages = consume_all(scenario_run["bootstrap"], topic, expect=1, idle=3.0)
    events = [orjson.loads(m.value()) for m in messages]
    assert events, "no alert arrived"
    validator = _schema("alert.schema.json")
    for m, e in zip(messages, events, strict=True):
        validator.validate(e)
        assert m.key().decode() == e["fingerprint"]
    psi_features = {e["feature"] for e in events if e["check"] == "psi"}
    assert psi_features >= DRIFTED, events
    # Nothing else drifted or went missing: no alert on any other feature.
    others = [e for e in events if e["feature"] not in DRIFTED]
    assert not others, others
    for e in events:
        assert e["status"] == "firing" and e["sample_size"] >= 200
        # one scale: a test's corrected p-value is below alpha, a distance at or above its level
        if e["check"] in ("ks", "chi_square"):
            assert e["direction"] == "below" and e["value"] <= e["threshold"] == 0.01, e
            assert e["details"]["statistic"] > 0 and e["details"]["p_value"] <= e["value"], e
        else:
            assert e["direction"] == "above" and e["value"] >= e["threshold"], e
    assert any(e["check"] == "ks" and e["feature"] == "age" for e in events), events


def test_deadletter_topic_holds_exactly_the_bad_records(scenario_run: dict[str, Any]) -> None:
    topic = scenario_run["spec"]["outputs"]["deadletter_topic"]
    expected = scenario_run["bad_sent"]
    messages = consume_all(scenario_run["bootstrap"], topic, expect=len(expected), idle=2.0)
    envelopes = [orjson.loads(m.value()) for m in messages]
    validator = _schema("deadletter.schema.json")
    for env in envelopes:
        validator.validate(env)
        assert env["source"]["topic"] == scenario_run["spec"]["streams"][0]["topic"]
        assert env["source"]["offset"] >= 0
    got = Counter((base64.b64decode(e["original_b64"]), e["reason"]) for e in envelopes)
    assert got == Counter(expected)
    batch_env = [e for e in envelopes if e["array_index"] is not None]
    assert sorted(e["array_index"] for e in batch_env) == [2, 3]  # the array's element, the columnar row


def test_deadletter_topic_read_by_kcat(scenario_run: dict[str, Any]) -> None:
    """An independent Kafka client (kcat) sees the same dead letters."""
    kcat = shutil.which("kcat")
    assert kcat, "kcat is required (Debian package kcat; the README test command installs it)"
    topic = scenario_run["spec"]["outputs"]["deadletter_topic"]
    consume_all(scenario_run["bootstrap"], topic, expect=len(scenario_run["bad_sent"]), idle=1.0)
    out = subprocess.run([kcat, "-b", scenario_run["bootstrap"], "-C", "-t", topic, "-o", "beginning", "-e",
                          "-q", "-f", "%s\n"], capture_output=True, timeout=60, check=True)
    lines = [json.loads(line) for line in out.stdout.decode().splitlines() if line.strip()]
    assert sorted(e["reason"] for e in lines) == sorted(r for _, r in scenario_run["bad_sent"])


def test_metrics_page_carries_the_expected_series(scenario_run: dict[str, Any]) -> None:
    s = scenario_run["samples"]
    names = {name for name, _ in s}
    for required in ("streamdq_records_total", "streamdq_deadletter_records_total", "streamdq_windows_closed_total",
                     "streamdq_alerts_total", "streamdq_feature_missing_ratio", "streamdq_feature_drift_score",
                     "streamdq_ingest_messages_total", "streamdq_ingest_batches_total",
                     "streamdq_consumer_lag_records", "streamdq_assigned_partitions"):
        assert required in names, f"{required} missing from /metrics"
    feats = [f["name"] for f in scenario_run["spec"]["streams"][0]["features"]]
    for f in feats:
        assert _value(s, "streamdq_feature_missing_ratio", stream="features", feature=f, window="w999") is not None
    age_psi = _value(s, "streamdq_feature_drift_score", stream="features", feature="age", window="w999", method="psi")
    assert age_psi is not None and age_psi >= 0.1
    # A count window closes once every partition filled its 333 records: as many as the slowest partition filled.
    closed = _value(s, "streamdq_windows_closed_total", stream="features", window="w999")
    assert closed == min(_good_per_partition(scenario_run).values()) // 333
    profiles = [orjson.loads(m.value()) for m in consume_all(
        scenario_run["bootstrap"], scenario_run["spec"]["outputs"]["profiles_topic"], idle=1.0)]
    indices = [p["window"]["index"] for p in profiles if p["window"]["name"] == "w999"]
    assert sorted(indices) == list(range(int(closed)))  # each closed once (one worker)
    assert all(p["count"] == 999 for p in profiles if p["window"]["name"] == "w999")
    assert s[("streamdq_ingest_messages_total", frozenset())] >= scenario_run["good"] // 4


def _good_per_partition(run: dict[str, Any]) -> dict[int, int]:
    """The good records of each input partition (its messages decoded as the worker decodes them)."""
    stream = parse_spec(run["spec"]).streams[0]
    counts: dict[int, int] = {}
    for m in consume_all(run["bootstrap"], stream.topic or stream.name, idle=1.0):
        ok, _ = decode_message(m.value(), stream)
        counts[m.partition()] = counts.get(m.partition(), 0) + len(ok)
    return counts


def test_metrics_page_carries_what_a_drift_panel_needs(scenario_run: dict[str, Any]) -> None:
    """Score, p-values, thresholds and sample size per method; quality levels; the open window's fill;
    one series per open alert; consumer lag per input partition; the checkpoint's time."""
    s = _samples(scenario_run["worker"].metrics())
    age = {"stream": "features", "feature": "age", "window": "w999"}
    # windows of 999 values: KS (a test) and PSI (a distance)
    assert _value(s, "streamdq_feature_drift_sample_size", **age, method="ks") == 999
    p_adj = _value(s, "streamdq_feature_drift_p_value_adjusted", **age, method="ks")
    p_raw = _value(s, "streamdq_feature_drift_p_value", **age, method="ks")
    alpha = _value(s, "streamdq_feature_drift_threshold", **age, method="ks")
    assert p_adj is not None and p_raw is not None and alpha == 0.01 and p_raw <= p_adj <= 1.0
    assert _value(s, "streamdq_feature_drifted", **age, method="ks") == float(p_adj <= alpha)
    assert _value(s, "streamdq_feature_drift_threshold", **age, method="psi") == 0.1
    assert _value(s, "streamdq_feature_drift_p_value", **age, method="psi") is None
    assert _value(s, "streamdq_check_threshold", stream="features", feature="age", check="psi",
                  severity="critical") == 0.25
    assert _value(s, "streamdq_check_threshold", stream="features", feature="income", check="missing_ratio",
                  severity="warning") == 0.05
    # The open window holds each partition's records beyond the closed windows, at most its 333.
    per_partition = _good_per_partition(scenario_run)
    closed = min(per_partition.values()) // 333
    held = sum(min(n - closed * 333, 333) for n in per_partition.values())
    assert _value(s, "streamdq_window_fill_ratio", stream="features", window="w999") == pytest.approx(held / 999)
    active = {(dict(labels)["feature"], dict(labels)["check"]): v for (name, labels), v in s.items()
              if name == "streamdq_alert_active"}
    assert {("age", "psi"), ("country", "psi")} <= active.keys(), active  # the stream ends drifted
    assert set(active.values()) == {1.0}
    assert sum(active.values()) == s[("streamdq_open_alerts", frozenset())]
    topic = scenario_run["spec"]["streams"][0]["topic"]
    lags = {dict(labels)["partition"]: v for (name, labels), v in s.items()
            if name == "streamdq_consumer_lag_records" and dict(labels)["topic"] == topic}
    assert sorted(lags) == ["0", "1", "2"] and all(v >= 0 for v in lags.values())
    assert ("streamdq_checkpoint_timestamp_seconds", frozenset()) in s  # age: time() - it (0 before the first)


def test_promtool_accepts_the_metrics_page(scenario_run: dict[str, Any]) -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool is required (Debian package prometheus; the README test command installs it)"
    page = scenario_run["worker"].metrics()
    for name in ("streamdq_feature_drift_p_value", "streamdq_feature_drift_p_value_adjusted",
                 "streamdq_feature_drift_threshold", "streamdq_feature_drift_sample_size", "streamdq_check_threshold",
                 "streamdq_window_fill_ratio", "streamdq_alert_active", "streamdq_consumer_lag_records"):
        assert f"\n{name}{{" in page, f"{name} is not on the page promtool checks"
    res = subprocess.run([promtool, "check", "metrics"], input=page.encode(), capture_output=True, timeout=60)
    assert res.returncode == 0, res.stdout.decode() + res.stderr.decode()


def test_health_reports_assigned_partitions(scenario_run: dict[str, Any]) -> None:
    import urllib.request

    with urllib.request.urlopen(scenario_run["worker"].url + "/health", timeout=5) as resp:
        body = orjson.loads(resp.read())
    topic = scenario_run["spec"]["streams"][0]["topic"]
    assert body["status"] == "ok"
    # the input topic's partitions (the ingest service's), and the alert-state table's changelog (Faust's)
    assert body["assigned_partitions"] == [f"{topic}:{i}" for i in range(3)]
    assert any(p.endswith("alert-state-changelog:0") for p in body["table_partitions"])
    assert body["records_processed"]["features"] == scenario_run["good"]
