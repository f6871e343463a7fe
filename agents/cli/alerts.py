"""``streamdq alerts tail`` and ``streamdq alerts test``: watch the alerts topic, check the subscriptions.

Both are plain click commands (:data:`tail` and :data:`send_test`, named ``tail`` and ``test``);
``agents.cli`` attaches them to its ``alerts`` group. The Python name of ``test`` is ``send_test`` so
that pytest never mistakes it for a test when a test module imports it.
"""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import click
import orjson

from agents.cli.errors import friendly, kafka_error_line
from monitor.errors import ConfigError, KafkaUnavailableError

__all__ = ["format_event", "make_test_event", "send_test", "tail"]


#: monitor.alerts.SEVERITIES, spelled out: importing monitor.alerts here would slow down every `streamdq` call.
SEVERITIES = ("info", "warning", "critical")
_SEVERITY_STYLE = {"critical": "bold red", "warning": "yellow", "info": "cyan"}




def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# ---------------------------------------------------------------------------------------------- tail


def format_event(event: dict[str, Any]) -> str:
    """One event as one line of rich markup (user text escaped).

    >>> from rich.text import Text
    >>> Text.from_markup(format_event({"status": "firing", "severity": "critical", "stream": "s",
    ...     "feature": "age", "check": "psi", "value": 0.3, "threshold": 0.25, "last_seen": "t",
    ...     "window": {"name": "w", "index": 4}, "summary": "[x] drifted"})).plain
    't  FIRING    CRITICAL  s.age  psi  value=0.3 threshold=0.25  w#4  [x] drifted'

    A value that is bad below its threshold (a drift test's p-value against alpha) says so:

    >>> Text.from_markup(format_event({"status": "firing", "severity": "warning", "stream": "s",
    ...     "feature": "age", "check": "ks", "value": 0.0003, "threshold": 0.01, "direction": "below",
    ...     "last_seen": "t", "window": {"name": "w", "index": 4}, "summary": "drifted"})).plain
    't  FIRING    WARNING   s.age  ks  value=0.0003 threshold=0.01 (below)  w#4  drifted'
    """
    from rich.markup import escape

    status = str(event.get("status", "?"))
    severity = str(event.get("severity", "?"))
    where = str(event.get("stream", "?")) + (f".{event['feature']}" if event.get("feature") else "")
    window = event.get("window") or {}
    win = f"{window.get('name', '?')}#{window.get('index', '?')}"
    status_style = "green" if status == "resolved" else "bold red" if severity == "critical" else "red"
    sev_style = "green" if status == "resolved" else _SEVERITY_STYLE.get(severity, "magenta")
    return (f"[dim]{escape(str(event.get('last_seen', '')))}[/]  "
            f"[{status_style}]{escape(status.upper()):<8}[/]  [{sev_style}]{escape(severity.upper()):<8}[/]  "
            f"[bold]{escape(where)}[/]  {escape(str(event.get('check', '?')))}  "
            f"value={_fmt(event.get('value'))} threshold={_fmt(event.get('threshold'))}"
            f"{' (below)' if event.get('direction') == 'below' else ''}  "
            f"{escape(win)}  {escape(str(event.get('summary', '')))}")


def _fmt(value: Any) -> str:
    return format(value, ".4g") if isinstance(value, float) else str(value)


@click.command("tail")
@click.option("--spec", "spec_path", type=click.Path(dir_okay=False), default=None,
              help="Monitor spec whose outputs.alerts_topic to read.")
@click.option("--topic", default=None, help="Alerts topic (default: the spec's, else streamdq.alerts).")
@click.option("--bootstrap", default=None, help="Kafka bootstrap servers (default: $KAFKA_BOOTSTRAP).")
@click.option("--from-beginning", is_flag=True, help="Start at the oldest alert (default: only new ones).")
@click.option("--stream", "streams", multiple=True, help="Only these streams (repeatable).")
@click.option("--feature", "features", multiple=True, help="Only these features (repeatable).")
@click.option("--check", "checks", multiple=True, help="Only these checks (repeatable).")
@click.option("--min-severity", type=click.Choice(SEVERITIES), default="info", show_default=True)
@click.option("--status", type=click.Choice(["firing", "resolved"]), default=None, help="Only this status.")
@click.option("--json", "as_json", is_flag=True, help="Print each event as its raw JSON line.")
@click.option("--max-events", type=click.IntRange(min=1), default=None, help="Stop after printing this many.")
@click.option("--timeout", type=click.FloatRange(min=0), default=None, help="Stop after this many seconds.")
@friendly
def tail(spec_path: str | None, topic: str | None, bootstrap: str | None, from_beginning: bool,
         streams: tuple[str, ...], features: tuple[str, ...], checks: tuple[str, ...], min_severity: str,
         status: str | None, as_json: bool, max_events: int | None, timeout: float | None) -> None:
    """Print the alerts topic live, one line per alert event (Ctrl-C to stop)."""
    from confluent_kafka import Consumer, KafkaError, KafkaException
    from rich.console import Console

    from agents.kafka.connect import check_connection, client_config
    from agents.notify import matches
    from agents.settings import Settings
    from monitor.spec import AlertFilter, load_spec

    if topic is None:
        topic = load_spec(spec_path).outputs.alerts_topic if spec_path else "streamdq.alerts"
    settings = Settings.from_env(bootstrap=bootstrap)
    boot = settings.bootstrap
    if not boot:
        raise ConfigError("no Kafka cluster: set KAFKA_BOOTSTRAP or pass --bootstrap")
    flt = AlertFilter(streams=list(streams) or None, features=list(features) or None, checks=list(checks) or None,
                      min_severity=min_severity)  # type: ignore[arg-type]  # click.Choice checked it
    out = Console(highlight=False, soft_wrap=True)
    err = Console(stderr=True, highlight=False)
    # Client errors (an unreachable broker: librdkafka retries on its own) come to error_cb and are
    # printed once each, in words; librdkafka's own log lines (one per reconnect attempt) are off.
    client_errors: list[Any] = []
    try:  # fail at once on what no retry fixes (authentication, TLS); an absent broker may come back
        check_connection(boot, settings.kafka, timeout=3.0)
    except KafkaUnavailableError as exc:
        if not str(exc).startswith("cannot reach"):
            raise
    try:
        consumer = Consumer(client_config(boot, settings.kafka, {
            "group.id": f"streamdq-tail-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest" if from_beginning else "latest", "enable.auto.commit": False,
            "log_level": 0, "error_cb": client_errors.append}))
    except KafkaException as exc:
        raise ConfigError(f"cannot create a Kafka consumer: {kafka_error_line(exc)}") from None
    consumer.subscribe([topic])
    err.print(f"[dim]tailing {_escape(topic)} at {_escape(boot)}{' from the beginning' if from_beginning else ''} "
              "(Ctrl-C to stop)[/]")
    deadline = None if timeout is None else time.monotonic() + timeout
    printed = 0
    reported: set[str] = set()

    def report(error: Any) -> None:
        line = kafka_error_line(error, boot)
        unreachable = line.startswith("cannot reach")
        key = "unreachable" if unreachable else line  # librdkafka reports it several ways: say it once
        if key not in reported:
            reported.add(key)
            err.print(f"[yellow]{_escape(line)}{' (still trying)' if unreachable else ''}[/]", soft_wrap=True)

    try:
        while (max_events is None or printed < max_events) and (deadline is None or time.monotonic() < deadline):
            wait = 0.5 if deadline is None else max(0.0, min(0.5, deadline - time.monotonic()))
            msg = consumer.poll(wait)
            while client_errors:
                report(client_errors.pop(0))
            if msg is None:
                continue
            error = msg.error()
            if error is not None:
                if error.code() != KafkaError._PARTITION_EOF:
                    report(error)
                continue
            raw = msg.value() or b""
            try:
                event = orjson.loads(raw)
                if not isinstance(event, dict):
                    raise TypeError("not a JSON object")
            except (orjson.JSONDecodeError, TypeError) as exc:
                where = f"{msg.topic()}[{msg.partition()}]@{msg.offset()}"
                err.print(f"[yellow]skipped a message that is not an alert event ({_escape(f'{where}: {exc}')})[/]")
                continue
            if not matches(flt, event) or (status is not None and event.get("status") != status):
                continue
            if as_json:
                click.echo(raw.decode("utf-8", "replace"))
            else:
                out.print(format_event(event))
            printed += 1
    except KeyboardInterrupt:
        pass
    finally:
        consumer.close()


# ---------------------------------------------------------------------------------------------- test


def make_test_event(stream: Any, *, severity: str = "warning", status: str = "firing") -> dict[str, Any]:
    """A synthetic alert event about ``stream`` (a :class:`~monitor.spec.StreamSpec`): check ``test``.

    The window index is the current time in milliseconds, so every test has its own ``alert_id``
    and receivers that drop duplicates still show it.
    """
    from monitor.alerts.alert import Alert
    from monitor.names import Severity, Status

    now = _now_iso()
    win = stream.windows[0]
    window = {"name": win.name, "kind": win.kind, "index": time.time_ns() // 1_000_000, "start": now, "end": now,
              "partial": False}
    return Alert(stream=stream.name, feature=None, check="test", severity=Severity(severity), value=0.0, threshold=0.0,
                 sample_size=0, summary="streamdq test alert", window=window, reference_version=None,
                 created_at=now, status=Status(status), details={"test": True}).to_event()


@click.command("test")
@click.argument("spec", type=click.Path(dir_okay=False))
@click.option("--severity", type=click.Choice(SEVERITIES), default="warning", show_default=True)
@click.option("--status", type=click.Choice(["firing", "resolved"]), default="firing", show_default=True,
              help="resolved clears a test alert sent before (Alertmanager).")
@click.option("--subscription", "only", multiple=True, help="Only these subscriptions (default: all).")
@friendly
def send_test(spec: str, severity: str, status: str, only: tuple[str, ...]) -> None:
    """Send one test alert to every subscription of SPEC (filters ignored, no retries); exit 1 if any fails."""
    from prometheus_client import CollectorRegistry
    from rich.console import Console
    from rich.table import Table

    from agents.notify import Notifier
    from monitor.spec import load_spec

    s = load_spec(spec)
    subs = list(s.alerting.subscriptions)
    if only:
        unknown = sorted(set(only) - {x.name for x in subs})
        if unknown:
            raise ConfigError(f"no subscription named {', '.join(unknown)} in {spec} "
                              f"(subscriptions: {', '.join(x.name for x in subs) or 'none'})")
        subs = [x for x in subs if x.name in only]
    if not subs:
        click.secho(f"{spec}: no alerting.subscriptions configured; nothing to test", fg="yellow")
        return
    event = make_test_event(s.streams[0], severity=severity, status=status)

    async def run() -> list[Any]:
        notifier = Notifier(subs, registry=CollectorRegistry())
        await notifier.start()
        try:
            return [await notifier.deliver_once(sub.name, event) for sub in subs]
        finally:
            await notifier.stop(timeout=0)

    results = asyncio.run(run())
    table = Table(title=f"test alert {event['alert_id']} ({status}, {severity}, stream {event['stream']})")
    for col in ("subscription", "kind", "result", "HTTP status", "latency"):
        table.add_column(col)
    for r in results:
        outcome = "[green]delivered[/]" if r.ok else f"[red]failed[/]: {_escape(r.error or '')}"
        table.add_row(r.subscription, r.kind, outcome, "-" if r.status is None else str(r.status),
                      f"{r.latency_seconds * 1000:.0f} ms")
    Console(highlight=False).print(table)
    failed = sum(not r.ok for r in results)
    if failed:
        click.secho(f"{failed} of {len(results)} subscription(s) failed", fg="red", err=True)
        sys.exit(1)
    click.secho(f"all {len(results)} subscription(s) accepted the test alert", fg="green")


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)
