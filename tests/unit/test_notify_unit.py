"""agents.notify without a network: filters, signatures, the Alertmanager form, backoff, queues, secrets,
metric names; and the ``alerts test`` command's behaviour without subscriptions."""

from __future__ import annotations

import asyncio
import json
import random
import shutil
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from jsonschema import Draft202012Validator
from prometheus_client import CollectorRegistry, generate_latest

from agents.cli import alerts as alerts_cli
from agents.notify import (
    Notifier,
    alertmanager_payload,
    backoff_delay,
    matches,
    retry_delay,
    signature,
    verify_signature,
    webhook_request,
)
from monitor.alerts.alert import Alert
from monitor.errors import ConfigError
from monitor.spec import AlertFilter, SubscriptionSpec, parse_spec

REPO = Path(__file__).resolve().parents[2]


def event(*, stream: str = "shop", feature: str | None = "age", check: str = "psi", severity: str = "warning",
          status: str = "firing", created_at: str = "2024-05-01T10:00:00.000Z", index: int = 7,
          reference_version: str | None = "0123456789ab") -> dict[str, Any]:
    return Alert(stream=stream, feature=feature, check=check, severity=severity, value=0.31, threshold=0.25,
                 sample_size=1000, summary=f"{stream}.{feature}: drifted", reference_version=reference_version,
                 window={"name": "w1k", "kind": "count", "index": index, "start": "2024-05-01T09:59:00.000Z",
                         "end": created_at, "partial": False},
                 created_at=created_at, status=status).to_event()


def sub(name: str = "hook", **kw: Any) -> SubscriptionSpec:
    return SubscriptionSpec.model_validate({"name": name, "kind": "webhook", "url": "http://127.0.0.1:9/x", **kw})


# ------------------------------------------------------------------------------------------------ filters


@pytest.mark.parametrize(("flt", "ev", "expected"), [
    ({}, {}, True),
    ({"streams": ["shop"]}, {}, True),
    ({"streams": ["other"]}, {}, False),
    ({"streams": ["other", "shop"]}, {}, True),
    ({"features": ["age"]}, {}, True),
    ({"features": ["income"]}, {}, False),
    ({"features": ["age"]}, {"feature": None, "check": "late_ratio"}, False),  # stream-level alert
    ({"checks": ["psi", "missing_ratio"]}, {}, True),
    ({"checks": ["missing_ratio"]}, {}, False),
    ({"min_severity": "info"}, {"severity": "info"}, True),
    ({"min_severity": "warning"}, {"severity": "info"}, False),
    ({"min_severity": "warning"}, {"severity": "warning"}, True),
    ({"min_severity": "warning"}, {"severity": "critical"}, True),
    ({"min_severity": "critical"}, {"severity": "warning"}, False),
    ({"min_severity": "critical"}, {"severity": "critical"}, True),
    ({"streams": ["shop"], "features": ["age"], "checks": ["psi"], "min_severity": "critical"},
     {"severity": "warning"}, False),
    ({"streams": ["shop"], "features": ["age"], "checks": ["psi"], "min_severity": "critical"},
     {"severity": "critical"}, True),
])
def test_filter(flt: dict[str, Any], ev: dict[str, Any], expected: bool) -> None:
    assert matches(AlertFilter.model_validate(flt), event(**ev)) is expected


def test_filter_treats_an_unknown_severity_as_critical() -> None:
    ev = {**event(), "severity": "bogus"}
    assert matches(AlertFilter(min_severity="critical"), ev)


# ------------------------------------------------------------------------------------------------ signatures


def test_signature_round_trip() -> None:
    secret, body, ts = b"top-secret", b'{"alert_id":"abc"}', "1714557600"
    header = signature(secret, ts, body)
    assert header.startswith("sha256=") and len(header) == len("sha256=") + 64
    assert verify_signature(secret, ts, body, header)
    assert not verify_signature(b"wrong-secret", ts, body, header)
    assert not verify_signature(secret, "1714557601", body, header)
    assert not verify_signature(secret, ts, body + b" ", header)
    assert not verify_signature(secret, ts, body, header[:-1] + ("0" if header[-1] != "0" else "1"))
    assert not verify_signature(secret, ts, body, "")
    assert not verify_signature(secret, ts, body, "sha256=\u00e9")  # non-ASCII header: False, no exception


def test_signature_max_age() -> None:
    secret, body, ts = b"k", b"{}", "1000"
    header = signature(secret, ts, body)
    assert verify_signature(secret, ts, body, header, max_age_seconds=300, now=1200)
    assert not verify_signature(secret, ts, body, header, max_age_seconds=300, now=1400)
    assert not verify_signature(secret, "soon", body, signature(secret, "soon", body), max_age_seconds=300)


def test_webhook_request_headers() -> None:
    ev = event()
    s = sub(secret_env="HOOK_SECRET", headers={"Authorization": "Bearer t", "content-type": "text/plain",
                                               "X-Streamdq-Event": "spoofed"})
    body, headers = webhook_request(s, ev, secret=b"k", timestamp=1714557600)
    assert json.loads(body) == ev
    assert headers["Content-Type"] == "application/json"  # the protocol headers win over the configured ones
    assert headers.get_list("content-type") == ["application/json"]
    assert headers["Idempotency-Key"] == ev["alert_id"]
    assert headers["X-Streamdq-Event"] == "firing"
    assert headers["X-Streamdq-Timestamp"] == "1714557600"
    assert headers["Authorization"] == "Bearer t"
    assert verify_signature(b"k", headers["X-Streamdq-Timestamp"], body, headers["X-Streamdq-Signature"])
    _, unsigned = webhook_request(sub(), event(status="resolved"), secret=None)
    assert "X-Streamdq-Signature" not in unsigned
    assert unsigned["X-Streamdq-Event"] == "resolved"
    assert abs(int(unsigned["X-Streamdq-Timestamp"]) - time.time()) < 60


# ------------------------------------------------------------------------------------------------ Alertmanager


def test_alertmanager_payload_of_a_drift_test_compares_the_p_value_with_alpha() -> None:
    ev = Alert(stream="shop", feature="age", check="ks", severity="warning", value=0.0004, threshold=0.01,
               direction="below", sample_size=800, summary="shop.age: drifted", reference_version=None,
               window={"name": "w1k", "kind": "count", "index": 3, "start": "2024-05-01T09:59:00.000Z",
                       "end": "2024-05-01T10:00:00.000Z"}, created_at="2024-05-01T10:00:00.000Z",
               details={"statistic": 0.0912, "p_value": 0.0001, "correction": "bh", "effect_size": 0.4}).to_event()
    [alert] = alertmanager_payload(ev, resolve_timeout_seconds=3600)
    ann = alert["annotations"]
    assert (ann["value"], ann["threshold"], ann["direction"]) == ("0.0004", "0.01", "below")
    assert (ann["statistic"], ann["p_value"], ann["effect_size"]) == ("0.0912", "0.0001", "0.4")
    assert float(ann["value"]) <= float(ann["threshold"])  # firing: on the bad side of alpha


def test_alertmanager_payload_firing() -> None:
    ev = event(severity="critical")
    [alert] = alertmanager_payload(ev, resolve_timeout_seconds=3600)
    assert alert["labels"] == {"alertname": "streamdq_psi", "stream": "shop", "check": "psi", "severity": "critical",
                               "fingerprint": ev["fingerprint"], "feature": "age"}
    assert alert["annotations"] == {"summary": "shop.age: drifted", "value": "0.31", "threshold": "0.25",
                                    "direction": "above", "window": "w1k#7", "alert_id": ev["alert_id"],
                                    "reference_version": "0123456789ab"}
    assert alert["startsAt"] == "2024-05-01T10:00:00.000Z"
    # last_seen (2024) is long past: the alert must not arrive already expired, so it ends at now + timeout
    ends = datetime.fromisoformat(alert["endsAt"].replace("Z", "+00:00")).timestamp()
    assert abs(ends - (time.time() + 3600)) < 30
    assert "generatorURL" not in alert
    assert all(isinstance(v, str) for part in ("labels", "annotations") for v in alert[part].values())


def test_alertmanager_payload_recent_alert_ends_after_last_seen() -> None:
    ev = event(severity="critical")
    future = datetime.now(UTC) + timedelta(minutes=10)
    ev["last_seen"] = future.isoformat()
    [alert] = alertmanager_payload(ev, resolve_timeout_seconds=600)
    ends = datetime.fromisoformat(alert["endsAt"].replace("Z", "+00:00"))
    assert abs((ends - future).total_seconds() - 600) < 1


def test_alertmanager_payload_escalation_ends_the_lower_severities() -> None:
    ev = event(severity="critical")
    ev["details"] = {"notification_reason": "escalated"}
    alerts = alertmanager_payload(ev, resolve_timeout_seconds=3600)
    assert [a["labels"]["severity"] for a in alerts] == ["critical", "info", "warning"]
    now = time.time()
    for lower in alerts[1:]:
        assert datetime.fromisoformat(lower["endsAt"].replace("Z", "+00:00")).timestamp() <= now + 1
        assert {k: v for k, v in lower["labels"].items() if k != "severity"} == \
            {k: v for k, v in alerts[0]["labels"].items() if k != "severity"}


def test_alertmanager_payload_resolved_and_stream_level() -> None:
    ev = event(feature=None, check="late_ratio", status="resolved", reference_version=None,
               created_at="2024-05-01T12:30:00+02:00")
    ev["first_seen"] = "2024-05-01T08:00:00Z"
    [alert] = alertmanager_payload(ev, resolve_timeout_seconds=3600)
    assert "feature" not in alert["labels"] and alert["labels"]["alertname"] == "streamdq_late_ratio"
    assert "reference_version" not in alert["annotations"]
    assert alert["startsAt"] == "2024-05-01T08:00:00.000Z"
    assert alert["endsAt"] == "2024-05-01T10:30:00.000Z"  # the resolve time (last_seen), in UTC


def test_alertmanager_payload_window_without_index_uses_start() -> None:
    ev = event()
    ev["window"] = {"name": "t5m", "kind": "time", "index": None, "start": "2024-05-01T09:55:00.000Z"}
    [alert] = alertmanager_payload(ev, resolve_timeout_seconds=60)
    assert alert["annotations"]["window"] == "2024-05-01T09:55:00.000Z"


def test_alertmanager_payload_needs_iso_times() -> None:
    with pytest.raises(ValueError):
        alertmanager_payload({**event(), "last_seen": "yesterday"}, resolve_timeout_seconds=60)


# ------------------------------------------------------------------------------------------------ backoff


def test_backoff_schedule() -> None:
    assert [backoff_delay(k, 0.5, 30) for k in range(8)] == [0.5, 1, 2, 4, 8, 16, 30, 30]
    assert backoff_delay(50, 0.5, 30) == 30  # no overflow for the largest retry budget
    assert [backoff_delay(k, 0.05, 0.2) for k in range(4)] == [0.05, 0.1, 0.2, 0.2]
    with pytest.raises(ValueError):
        backoff_delay(-1, 1, 1)


@pytest.mark.parametrize("retry", [0, 1, 3, 6, 20])
def test_full_jitter_stays_within_bounds_and_spreads(retry: int) -> None:
    rng = random.Random(42)
    bound = backoff_delay(retry, 0.5, 30)
    delays = [retry_delay(retry, 0.5, 30, rng=rng) for _ in range(2000)]
    assert all(0 <= d <= bound for d in delays)
    assert min(delays) < 0.05 * bound and max(delays) > 0.95 * bound  # full jitter: the whole range is used
    assert 0.4 * bound < sum(delays) / len(delays) < 0.6 * bound


# ------------------------------------------------------------------------------------------------ queues, secrets


class Sink:
    def __init__(self) -> None:
        self.calls: list[tuple[dict[str, Any], str, str]] = []

    async def __call__(self, ev: dict[str, Any], name: str, reason: str) -> None:
        self.calls.append((ev, name, reason))


async def settle(cond: Any, rounds: int = 200) -> None:
    for _ in range(rounds):
        if cond():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition not reached")


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    value = registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


def test_queue_full_dead_letters_at_once_and_counts() -> None:
    registry, sink = CollectorRegistry(), Sink()
    n = Notifier([sub(queue_size=2), sub("other", filter={"min_severity": "critical"})], registry=registry,
                 dead_letter=sink)
    events = [event(index=i) for i in range(3)]

    async def main() -> None:
        # not started: nothing consumes the queues
        for ev in events:
            assert n.submit(ev) is None
        await settle(lambda: len(sink.calls) == 1)

    asyncio.run(main())
    assert sink.calls == [(events[2], "hook", "queue_full")]
    assert sample(registry, "streamdq_notifications_total", subscription="hook", outcome="dropped") == 1
    assert sample(registry, "streamdq_notification_queue_depth", subscription="hook") == 2
    # the other subscription's filter (critical only) kept every event out: nothing queued, nothing dropped
    assert sample(registry, "streamdq_notification_queue_depth", subscription="other") == 0
    assert sample(registry, "streamdq_notifications_total", subscription="other", outcome="dropped") == 0


def test_stop_dead_letters_what_was_never_delivered_and_later_submits() -> None:
    registry, sink = CollectorRegistry(), Sink()
    n = Notifier([sub()], registry=registry, dead_letter=sink)
    events = [event(index=i) for i in range(3)]

    async def main() -> None:
        n.submit(events[0])
        n.submit(events[1])
        await n.stop(timeout=0)  # never started: nothing could be delivered
        n.submit(events[2])
        await settle(lambda: len(sink.calls) == 3)

    asyncio.run(main())
    assert [(c[0]["alert_id"], c[1]) for c in sink.calls] == [(e["alert_id"], "hook") for e in events]
    assert [c[2].split(":")[0] for c in sink.calls] == ["shutdown", "shutdown", "notifier_stopped"]
    assert sample(registry, "streamdq_notifications_total", subscription="hook", outcome="dropped") == 3
    assert sample(registry, "streamdq_notification_queue_depth", subscription="hook") == 0


def test_a_failing_dead_letter_sink_does_not_escape() -> None:
    async def broken(ev: dict[str, Any], name: str, reason: str) -> None:
        raise RuntimeError("kafka is down")

    n = Notifier([sub(queue_size=1)], registry=CollectorRegistry(), dead_letter=broken)

    async def main() -> None:
        n.submit(event(index=1))
        n.submit(event(index=2))  # queue full -> the broken sink raises in a background task
        await n.stop(timeout=0)

    asyncio.run(main())  # no exception, no "Task exception was never retrieved"


@pytest.mark.parametrize("environ", [{}, {"HOOK_SECRET": ""}])
def test_unset_secret_is_a_config_error_at_start(environ: dict[str, str]) -> None:
    n = Notifier([sub(), sub("signed", secret_env="HOOK_SECRET")], registry=CollectorRegistry(), environ=environ)
    with pytest.raises(ConfigError) as exc:
        asyncio.run(n.start())
    assert "HOOK_SECRET" in str(exc.value) and "signed" in str(exc.value)
    assert not n.started


def test_start_and_stop_with_the_secret_set() -> None:
    n = Notifier([sub("signed", secret_env="HOOK_SECRET")], registry=CollectorRegistry(),
                 environ={"HOOK_SECRET": "k"})

    async def main() -> None:
        await n.start()
        assert n.started
        with pytest.raises(ConfigError):
            await n.deliver_once("nope", event())
        await n.stop(timeout=1)
        assert not n.started

    asyncio.run(main())


def test_metric_names_pass_promtool() -> None:
    registry = CollectorRegistry()
    Notifier([sub(), sub("am", kind="alertmanager", url="http://127.0.0.1:9")], registry=registry)
    page = generate_latest(registry).decode()
    for name in ("streamdq_notifications_total", "streamdq_notification_attempts_total",
                 "streamdq_notification_queue_depth", "streamdq_notification_delivery_seconds_bucket"):
        assert f"{name}{{" in page, name
    assert 'streamdq_notifications_total{outcome="failed",subscription="am"} 0.0' in page
    promtool = shutil.which("promtool")
    assert promtool, "promtool is required (Debian package prometheus)"
    res = subprocess.run([promtool, "check", "metrics"], input=page.encode(), capture_output=True, timeout=60)
    assert res.returncode == 0 and not res.stdout.strip() and not res.stderr.strip(), res.stdout + res.stderr


# ------------------------------------------------------------------------------------------------ alerts test


def write_spec(path: Path, subscriptions: list[dict[str, Any]]) -> Path:
    raw = yaml.safe_load((REPO / "deploy" / "monitor.yaml").read_text())
    raw.setdefault("alerting", {})["subscriptions"] = subscriptions
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def test_cli_severities_match_the_engine() -> None:
    from agents.notify import SEVERITY_RANK
    from monitor.alerts import SEVERITIES

    assert alerts_cli.SEVERITIES == SEVERITIES == tuple(sorted(SEVERITY_RANK, key=SEVERITY_RANK.__getitem__))


def test_test_event_is_a_valid_alert_event() -> None:
    spec = parse_spec(yaml.safe_load((REPO / "deploy" / "monitor.yaml").read_text()))
    schema = json.loads((REPO / "schemas" / "alert.schema.json").read_text())
    validator = Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)
    a = alerts_cli.make_test_event(spec.streams[0], severity="critical")
    b = alerts_cli.make_test_event(spec.streams[0], status="resolved")
    for ev in (a, b):
        assert list(validator.iter_errors(ev)) == []
    assert (a["status"], a["severity"], a["check"], a["feature"], a["summary"]) == \
        ("firing", "critical", "test", None, "streamdq test alert")
    assert a["stream"] == spec.streams[0].name
    assert b["status"] == "resolved" and b["alert_id"] != a["alert_id"]


def test_alerts_test_without_subscriptions(tmp_path: Path) -> None:
    path = write_spec(tmp_path / "spec.yaml", [])
    res = CliRunner().invoke(alerts_cli.send_test, [str(path)])
    assert res.exit_code == 0, res.output
    assert "no alerting.subscriptions" in res.output


def test_alerts_test_with_an_unset_secret(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STREAMDQ_UNIT_UNSET_SECRET", raising=False)
    path = write_spec(tmp_path / "spec.yaml", [{"name": "hook", "kind": "webhook", "url": "http://127.0.0.1:9/",
                                                "secret_env": "STREAMDQ_UNIT_UNSET_SECRET"}])
    res = CliRunner().invoke(alerts_cli.send_test, [str(path)])
    assert res.exit_code == 2, res.output
    assert "STREAMDQ_UNIT_UNSET_SECRET" in res.output


def test_alerts_test_unknown_subscription(tmp_path: Path) -> None:
    path = write_spec(tmp_path / "spec.yaml", [{"name": "hook", "kind": "webhook", "url": "http://127.0.0.1:9/"}])
    res = CliRunner().invoke(alerts_cli.send_test, [str(path), "--subscription", "nope"])
    assert res.exit_code == 2 and "nope" in res.output
