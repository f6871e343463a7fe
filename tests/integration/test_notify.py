"""agents.notify and ``streamdq alerts`` against real components: HTTP receivers started here (failing,
hanging, recovering), a real Prometheus Alertmanager subprocess, and a real Kafka broker for ``alerts tail``."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import yaml
from aiohttp import web
from click.testing import CliRunner
from prometheus_client import CollectorRegistry

from agents.cli import alerts as alerts_cli
from agents.cli.localkafka import _die_with_parent, free_port
from agents.kafka.topics import ensure_topics
from agents.notify import Notifier, verify_signature
from monitor.alerts.alert import Alert
from monitor.spec import SubscriptionSpec

from .conftest import producer

REPO = Path(__file__).resolve().parents[2]
ALERTMANAGER = Path("/usr/bin/prometheus-alertmanager")


# ------------------------------------------------------------------------------------------------ helpers


class Receiver:
    """A real HTTP server on 127.0.0.1 (aiohttp, in its own thread and event loop).

    Request number n (from 1) is answered ``fail_status`` while n <= ``fail_first``, then hangs for
    ``hang_seconds`` (longer than the client's timeout) while n <= ``fail_first + hang``, then is
    accepted: the signature is checked when ``secret`` is given (401 if wrong) and bodies are
    deduplicated by their ``Idempotency-Key``.
    """

    def __init__(self, *, fail_first: int = 0, fail_status: int = 500, hang: int = 0, hang_seconds: float = 5.0,
                 secret: bytes | None = None) -> None:
        self.fail_first, self.fail_status, self.hang, self.hang_seconds = fail_first, fail_status, hang, hang_seconds
        self.secret = secret
        self.requests = 0
        self.hanging = 0
        self.verified = 0
        self.bad_signatures = 0
        self.duplicates = 0
        self.accepted: dict[str, Any] = {}  # Idempotency-Key -> parsed body, in arrival order
        self.bodies: list[Any] = []  # every accepted body (with or without an Idempotency-Key)
        self.headers: list[dict[str, str]] = []
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._serve, name="test-receiver", daemon=True)
        self._ready = threading.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Receiver:
        self._thread.start()
        if not self._ready.wait(15):
            raise RuntimeError("test receiver did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(20)

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._handle)
        runner = web.AppRunner(app, shutdown_timeout=1.0, access_log=None)
        self._loop.run_until_complete(runner.setup())
        self._loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", 0).start())
        self.port = runner.addresses[0][1]
        self._ready.set()
        try:
            self._loop.run_forever()
        finally:
            self._loop.run_until_complete(runner.cleanup())
            self._loop.close()

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.requests += 1  # only this thread's loop touches the counters it writes
        n = self.requests
        self.headers.append(dict(request.headers))
        if n <= self.fail_first:
            return web.Response(status=self.fail_status, text=f"failing on purpose (request {n})")
        if n <= self.fail_first + self.hang:
            self.hanging += 1
            try:
                await asyncio.sleep(self.hang_seconds)
            finally:
                self.hanging -= 1
            return web.Response(status=503, text="too late")
        if self.secret is not None:
            ok = verify_signature(self.secret, request.headers.get("X-Streamdq-Timestamp", ""), body,
                                  request.headers.get("X-Streamdq-Signature", ""), max_age_seconds=300)
            if not ok:
                self.bad_signatures += 1
                return web.Response(status=401, text="bad signature")
            self.verified += 1
        doc = orjson.loads(body)
        key = request.headers.get("Idempotency-Key")
        if key is not None:
            if key in self.accepted:
                self.duplicates += 1
                return web.Response(status=200, text="duplicate")
            self.accepted[key] = doc
        self.bodies.append(doc)
        return web.Response(status=200, text="ok")


class Sink:
    """The dead_letter callback: records every call."""

    def __init__(self) -> None:
        self.calls: list[tuple[dict[str, Any], str, str]] = []

    async def __call__(self, event: dict[str, Any], subscription: str, reason: str) -> None:
        self.calls.append((event, subscription, reason))


async def wait_until(cond: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = cond()
        if value:
            return value
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def make_event(i: int, *, status: str = "firing", severity: str = "warning", feature: str | None = "age",
               check: str = "psi", stream: str = "shop", created_at: str | None = None) -> dict[str, Any]:
    t = created_at or now_iso()
    return Alert(stream=stream, feature=feature, check=check, severity=severity, value=0.31, threshold=0.25,
                 sample_size=1000, summary=f"{stream}.{feature}: test event {i}", reference_version="0123456789ab",
                 window={"name": "w1k", "kind": "count", "index": i, "start": t, "end": t, "partial": False},
                 created_at=t, status=status).to_event()


def webhook(url: str, **kw: Any) -> SubscriptionSpec:
    return SubscriptionSpec.model_validate({"name": "hook", "kind": "webhook", "url": url, **kw})


def metric(registry: CollectorRegistry, name: str, **labels: str) -> float:
    value = registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


# ------------------------------------------------------------------------------------------------ webhooks


@pytest.mark.timeout(90)
def test_webhook_recovers_and_delivers_every_event_exactly_once() -> None:
    secret = f"secret-{uuid.uuid4().hex}"
    events = [make_event(i) for i in range(20)]
    ids = [e["alert_id"] for e in events]
    registry, sink = CollectorRegistry(), Sink()
    with Receiver(fail_first=3, hang=2, hang_seconds=3.0, secret=secret.encode()) as rx:
        sub = webhook(rx.url + "/hook", secret_env="HOOK_SECRET", headers={"X-Team": "ml"}, timeout_seconds=0.5,
                      max_retries=10, backoff_seconds=0.05, max_backoff_seconds=0.2, queue_size=100)
        notifier = Notifier([sub], registry=registry, dead_letter=sink, environ={"HOOK_SECRET": secret})

        async def main() -> None:
            await notifier.start()
            try:
                for ev in events[:10]:
                    assert notifier.submit(ev) is None
                # the delivery task is now stuck in a request the receiver does not answer in time ...
                await wait_until(lambda: rx.hanging > 0, 20, "the receiver to hang on a request")
                assert rx.requests > rx.fail_first  # ... after it answered 500 to the first ones
                # ... and submit still returns at once: every remaining submit returned while the receiver
                # was failing (hanging, nothing accepted yet)
                for ev in events[10:]:
                    assert notifier.submit(ev) is None
                    assert rx.accepted == {} and rx.hanging > 0
                await wait_until(lambda: len(rx.accepted) == len(events), 60, "every event to be accepted")
                await wait_until(lambda: metric(registry, "streamdq_notifications_total", subscription="hook",
                                                outcome="delivered") == len(events), 10, "the delivered count")
            finally:
                await notifier.stop(timeout=5)

        asyncio.run(main())
    assert list(rx.accepted) == ids  # each exactly once, in submission order
    assert list(rx.accepted.values()) == events  # the body is the alert event itself
    assert rx.duplicates == 0 and rx.bad_signatures == 0 and rx.verified == len(events)
    assert rx.requests == len(events) + 3 + 2
    accepted_headers = rx.headers[5:]
    assert all(h["X-Team"] == "ml" and h["X-Streamdq-Event"] == "firing" and
               h["Content-Type"] == "application/json" for h in accepted_headers)
    assert [h["Idempotency-Key"] for h in accepted_headers] == ids
    assert sink.calls == []
    labels = {"subscription": "hook"}
    assert metric(registry, "streamdq_notifications_total", **labels, outcome="delivered") == 20
    assert metric(registry, "streamdq_notifications_total", **labels, outcome="failed") == 0
    assert metric(registry, "streamdq_notifications_total", **labels, outcome="dropped") == 0
    assert metric(registry, "streamdq_notification_attempts_total", **labels) == rx.requests
    assert metric(registry, "streamdq_notification_delivery_seconds_count", **labels) == 20
    # the first event waited through three 500s and two 0.5 s timeouts
    assert metric(registry, "streamdq_notification_delivery_seconds_sum", **labels) > 1.0
    assert metric(registry, "streamdq_notification_queue_depth", **labels) == 0


@pytest.mark.timeout(60)
def test_webhook_that_always_fails_dead_letters_after_the_retry_budget() -> None:
    events = [make_event(i, severity="critical") for i in range(5)]
    registry, sink = CollectorRegistry(), Sink()
    with Receiver(fail_first=10**9) as rx:
        sub = webhook(rx.url, name="down", max_retries=2, backoff_seconds=0.05, max_backoff_seconds=1,
                      timeout_seconds=2)
        notifier = Notifier([sub], registry=registry, dead_letter=sink)

        async def main() -> None:
            await notifier.start()
            try:
                for ev in events:
                    notifier.submit(ev)
                await wait_until(lambda: len(sink.calls) == len(events), 30, "every event to be dead-lettered")
            finally:
                await notifier.stop(timeout=5)

        asyncio.run(main())
    assert [(ev["alert_id"], name) for ev, name, _ in sink.calls] == [(e["alert_id"], "down") for e in events]
    assert [ev for ev, _, _ in sink.calls] == events
    assert all(reason.startswith("HTTP 500") and "failing on purpose" in reason for _, _, reason in sink.calls)
    assert rx.requests == 3 * len(events)  # first attempt + 2 retries each
    assert metric(registry, "streamdq_notifications_total", subscription="down", outcome="failed") == len(events)
    assert metric(registry, "streamdq_notifications_total", subscription="down", outcome="delivered") == 0
    assert metric(registry, "streamdq_notification_attempts_total", subscription="down") == 3 * len(events)


@pytest.mark.timeout(60)
@pytest.mark.parametrize(("status", "retried"), [(400, False), (404, False), (408, True), (429, True), (502, True)])
def test_which_statuses_are_retried(status: int, retried: bool) -> None:
    registry, sink = CollectorRegistry(), Sink()
    ev = make_event(1)
    with Receiver(fail_first=2, fail_status=status) as rx:
        notifier = Notifier([webhook(rx.url, max_retries=4, backoff_seconds=0.01)], registry=registry,
                            dead_letter=sink)

        async def main() -> None:
            await notifier.start()
            try:
                notifier.submit(ev)
                await wait_until(lambda: rx.accepted or sink.calls, 20, "delivery or dead letter")
            finally:
                await notifier.stop(timeout=5)

        asyncio.run(main())
    if retried:
        assert list(rx.accepted) == [ev["alert_id"]] and sink.calls == [] and rx.requests == 3
    else:  # any other 4xx fails at once
        assert rx.accepted == {} and rx.requests == 1
        assert sink.calls == [(ev, "hook", f"HTTP {status}: failing on purpose (request 1)")]
    assert metric(registry, "streamdq_notification_attempts_total", subscription="hook") == rx.requests


@pytest.mark.timeout(60)
def test_connection_refused_is_retried_then_dead_lettered() -> None:
    registry, sink = CollectorRegistry(), Sink()
    ev = make_event(1)
    notifier = Notifier([webhook(f"http://127.0.0.1:{free_port()}/", max_retries=2, backoff_seconds=0.01)],
                        registry=registry, dead_letter=sink)

    async def main() -> None:
        await notifier.start()
        try:
            notifier.submit(ev)
            await wait_until(lambda: sink.calls, 20, "the dead letter")
        finally:
            await notifier.stop(timeout=5)

    asyncio.run(main())
    [(event, name, reason)] = sink.calls
    assert event == ev and name == "hook" and reason.startswith("ConnectError")
    assert metric(registry, "streamdq_notification_attempts_total", subscription="hook") == 3


@pytest.mark.timeout(60)
def test_stop_is_bounded_by_its_timeout_and_dead_letters_the_rest() -> None:
    registry, sink = CollectorRegistry(), Sink()
    events = [make_event(i) for i in range(3)]
    with Receiver(hang=10**9, hang_seconds=30) as rx:
        notifier = Notifier([webhook(rx.url, timeout_seconds=20)], registry=registry, dead_letter=sink)

        async def main() -> float:
            await notifier.start()
            for ev in events:
                notifier.submit(ev)
            await wait_until(lambda: rx.hanging == 1, 10, "the first request to hang")
            started = time.monotonic()
            await notifier.stop(timeout=0.3)
            return time.monotonic() - started

        elapsed = asyncio.run(main())
    assert elapsed < 5
    assert [ev for ev, _, _ in sink.calls] == events  # the one in flight first, then the queued ones
    assert all(name == "hook" and reason.startswith("shutdown") for _, name, reason in sink.calls)
    assert metric(registry, "streamdq_notifications_total", subscription="hook", outcome="dropped") == 3
    assert rx.accepted == {}


# ------------------------------------------------------------------------------------------------ Alertmanager


@dataclass
class AlertmanagerProc:
    proc: subprocess.Popen[bytes]
    url: str
    receiver: Receiver
    log: Path

    def log_tail(self, n: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])

    def alerts(self) -> list[dict[str, Any]]:
        resp = httpx.get(self.url + "/api/v2/alerts", timeout=5)
        resp.raise_for_status()
        return list(resp.json())


@pytest.fixture
def alertmanager(tmp_path: Path) -> Iterator[AlertmanagerProc]:
    """A real Alertmanager whose only route sends to a webhook receiver started here; always stopped."""
    assert ALERTMANAGER.is_file(), "needs Debian's prometheus-alertmanager"
    with Receiver() as receiver:
        config = {
            "route": {"receiver": "hook", "group_by": ["alertname", "fingerprint"], "group_wait": "1s",
                      "group_interval": "1s", "repeat_interval": "1h"},
            "receivers": [{"name": "hook", "webhook_configs": [{"url": receiver.url + "/am", "send_resolved": True}]}],
        }
        (tmp_path / "am.yml").write_text(yaml.safe_dump(config))
        port = free_port()
        log = tmp_path / "alertmanager.log"
        with open(log, "wb") as fh:
            proc = subprocess.Popen(
                [str(ALERTMANAGER), f"--config.file={tmp_path / 'am.yml'}", f"--storage.path={tmp_path / 'data'}",
                 f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address=", "--log.level=debug"],
                stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
                preexec_fn=_die_with_parent)
        am = AlertmanagerProc(proc, f"http://127.0.0.1:{port}", receiver, log)
        try:
            deadline = time.monotonic() + 30
            while True:
                if proc.poll() is not None:
                    pytest.fail(f"alertmanager exited (code {proc.returncode}):\n{am.log_tail()}")
                try:
                    if httpx.get(am.url + "/-/ready", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    pytest.fail(f"alertmanager not ready after 30 s:\n{am.log_tail()}")
                time.sleep(0.1)
            yield am
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=10)


def notifications(receiver: Receiver, fingerprint: str, status: str) -> list[dict[str, Any]]:
    """Alertmanager's webhook notifications of ``status`` that carry the alert ``fingerprint``."""
    return [doc for doc in receiver.bodies if doc.get("status") == status
            and any(a["labels"].get("fingerprint") == fingerprint and a["status"] == status for a in doc["alerts"])]


@pytest.mark.timeout(120)
def test_alertmanager_fires_and_resolves(alertmanager: AlertmanagerProc) -> None:
    am = alertmanager
    firing = make_event(1, severity="critical")
    fp = firing["fingerprint"]
    registry, sink = CollectorRegistry(), Sink()
    sub = SubscriptionSpec(name="am", kind="alertmanager", url=am.url + "/", max_retries=3, backoff_seconds=0.1,
                           resolve_timeout_seconds=600)
    notifier = Notifier([sub], registry=registry, dead_letter=sink)

    def listed() -> list[dict[str, Any]]:
        return [a for a in am.alerts() if a["labels"].get("fingerprint") == fp]

    async def main() -> None:
        await notifier.start()
        try:
            notifier.submit(firing)
            [alert] = await wait_until(listed, 30, "Alertmanager to list the alert")
            assert alert["status"]["state"] == "active"
            assert alert["labels"] == {"alertname": "streamdq_psi", "stream": "shop", "check": "psi",
                                       "severity": "critical", "fingerprint": fp, "feature": "age"}
            assert alert["annotations"] == {"summary": "shop.age: test event 1", "value": "0.31",
                                            "threshold": "0.25", "direction": "above", "window": "w1k#1",
                                            "alert_id": firing["alert_id"], "reference_version": "0123456789ab"}
            starts = datetime.fromisoformat(alert["startsAt"])
            ends = datetime.fromisoformat(alert["endsAt"])
            assert starts == datetime.fromisoformat(firing["first_seen"])
            assert abs((ends - starts).total_seconds() - 600) < 1
            [note] = await wait_until(lambda: notifications(am.receiver, fp, "firing"), 30,
                                      "Alertmanager's firing notification")
            assert note["receiver"] == "hook" and note["commonLabels"]["alertname"] == "streamdq_psi"
            assert note["alerts"][0]["annotations"]["alert_id"] == firing["alert_id"]

            resolved = make_event(2, status="resolved", severity="critical")
            assert resolved["fingerprint"] == fp
            notifier.submit(resolved)
            await wait_until(lambda: not listed(), 30, "Alertmanager to stop listing the alert as active")
            [done] = await wait_until(lambda: notifications(am.receiver, fp, "resolved"), 30,
                                      "Alertmanager's resolved notification")
            assert done["alerts"][0]["labels"]["severity"] == "critical"
        finally:
            await notifier.stop(timeout=5)

    try:
        asyncio.run(main())
    except AssertionError as exc:
        raise AssertionError(f"{exc}\nalertmanager log:\n{am.log_tail()}") from None
    assert sink.calls == []
    assert metric(registry, "streamdq_notifications_total", subscription="am", outcome="delivered") == 2
    assert metric(registry, "streamdq_notification_attempts_total", subscription="am") == 2


# ------------------------------------------------------------------------------------------------ streamdq alerts


def spec_file(path: Path, subscriptions: list[dict[str, Any]], **outputs: str) -> Path:
    raw = yaml.safe_load((REPO / "deploy" / "monitor.yaml").read_text())
    raw.setdefault("alerting", {})["subscriptions"] = subscriptions
    if outputs:
        raw["outputs"] = {**raw.get("outputs", {}), **outputs}
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


@pytest.mark.timeout(120)
def test_alerts_test_command(alertmanager: AlertmanagerProc, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = uuid.uuid4().hex
    monkeypatch.setenv("STREAMDQ_IT_HOOK_SECRET", secret)
    with Receiver(secret=secret.encode()) as rx:
        good = [
            # filters are ignored by `alerts test`: this one would never receive a warning otherwise
            {"name": "hook", "kind": "webhook", "url": rx.url + "/hook", "secret_env": "STREAMDQ_IT_HOOK_SECRET",
             "filter": {"min_severity": "critical", "checks": ["psi"]}},
            {"name": "am", "kind": "alertmanager", "url": alertmanager.url},
        ]
        bad = {"name": "nowhere", "kind": "webhook", "url": f"http://127.0.0.1:{free_port()}/", "max_retries": 5}
        ok = CliRunner().invoke(alerts_cli.send_test, [str(spec_file(tmp_path / "good.yaml", good))])
        assert ok.exit_code == 0, ok.output
        assert rx.verified == 1 and len(rx.accepted) == 1
        [event] = rx.accepted.values()
        assert (event["check"], event["severity"], event["status"], event["feature"], event["summary"]) == \
            ("test", "warning", "firing", None, "streamdq test alert")
        listed = [a for a in alertmanager.alerts() if a["labels"].get("fingerprint") == event["fingerprint"]]
        assert len(listed) == 1 and listed[0]["labels"]["alertname"] == "streamdq_test"
        for name in ("hook", "am", "delivered", "200"):
            assert name in ok.stdout

        mixed = CliRunner().invoke(alerts_cli.send_test, [str(spec_file(tmp_path / "mixed.yaml", [good[0], bad])),
                                                          "--severity", "critical"])
        assert mixed.exit_code == 1, mixed.output
        assert "nowhere" in mixed.stdout and "failed" in mixed.stdout and "ConnectError" in mixed.stdout
        assert "1 of 2 subscription(s) failed" in mixed.output
        assert len(rx.accepted) == 2  # a new alert id per test; no retries of the failed one either

        cleared = CliRunner().invoke(alerts_cli.send_test, [str(tmp_path / "good.yaml"), "--status", "resolved",
                                                            "--subscription", "am"])
        assert cleared.exit_code == 0, cleared.output
    assert not [a for a in alertmanager.alerts() if a["labels"].get("fingerprint") == event["fingerprint"]]


@pytest.mark.timeout(300)
def test_alerts_tail(kafka_bootstrap: str, tmp_path: Path) -> None:
    topic = f"alerts-tail-{uuid.uuid4().hex[:10]}"
    ensure_topics(kafka_bootstrap, {topic: 1})
    events = [
        make_event(1, severity="critical"),
        make_event(2, severity="info", feature="income", check="missing_ratio"),
        make_event(3, status="resolved", severity="warning", feature=None, check="late_ratio"),
        make_event(4, severity="warning", stream="other"),
    ]
    p = producer(kafka_bootstrap)
    p.produce(topic, value=orjson.dumps(events[0]))
    p.produce(topic, value=b"not json at all")
    for ev in events[1:]:
        p.produce(topic, value=orjson.dumps(ev))
    assert p.flush(30) == 0

    def tail(*args: str) -> Any:
        res = CliRunner().invoke(alerts_cli.tail, ["--bootstrap", kafka_bootstrap, "--from-beginning", *args])
        assert res.exit_code == 0, res.output
        return res

    res = tail("--topic", topic, "--min-severity", "warning", "--json", "--max-events", "3", "--timeout", "60")
    assert [orjson.loads(line) for line in res.stdout.splitlines()] == [events[0], events[2], events[3]]
    assert "not an alert event" in res.stderr

    spec = spec_file(tmp_path / "spec.yaml", [], alerts_topic=topic)
    res = tail("--spec", str(spec), "--status", "resolved", "--max-events", "1", "--timeout", "60")
    [line] = res.stdout.splitlines()
    assert "RESOLVED" in line and "WARNING" in line and "shop" in line and "late_ratio" in line and "w1k#3" in line

    res = tail("--topic", topic, "--stream", "shop", "--feature", "age", "--check", "psi", "--timeout", "8")
    [line] = res.stdout.splitlines()  # stopped by --timeout after the one match
    assert "FIRING" in line and "CRITICAL" in line and "shop.age" in line and "value=0.31 threshold=0.25" in line
