"""``streamdq status``: a running worker's streams, windows, features and open alerts, read from its
``/status`` page (:mod:`agents.worker.web`).

:func:`fetch_status` reads the document, :func:`render` turns it into rich tables (pure: the unit
tests render fixed documents), and the command prints it once, as JSON (``--json``), or refreshed
every ``--watch`` seconds.
"""

from __future__ import annotations

import sys
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from typing import Any

import click
import orjson
from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from agents.cli.errors import friendly
from monitor.errors import StreamdqError

__all__ = ["fetch_status", "render", "status"]

DEFAULT_URL = "http://127.0.0.1:6066"

_SEVERITY_STYLE = {"critical": "bold red", "warning": "yellow", "info": "cyan"}
_STATE_STYLE = {"alert": "bold red", "drifted": "yellow", "ok": "green", "no data": "dim"}


def fetch_status(url: str, *, timeout: float = 5.0) -> dict[str, Any]:
    """The worker's ``/status`` document; :class:`~monitor.errors.StreamdqError` with one line saying why not."""
    base = url.rstrip("/")
    where = base + "/status"
    try:
        with urllib.request.urlopen(where, timeout=timeout) as resp:
            body = resp.read()
    except urllib.error.HTTPError as exc:
        hint = " (a streamdq worker older than /status, or not a streamdq worker?)" if exc.code == 404 else ""
        raise StreamdqError(f"worker at {base} answered HTTP {exc.code} for /status{hint}") from None
    except urllib.error.URLError as exc:
        reason = exc.reason.strerror if isinstance(exc.reason, OSError) and exc.reason.strerror else exc.reason
        raise StreamdqError(f"cannot reach the worker at {base} ({reason}); is it running, and is --url its "
                            "web address (streamdq worker --web-port, default 6066)?") from None
    except (TimeoutError, OSError) as exc:
        raise StreamdqError(f"cannot reach the worker at {base} ({exc or type(exc).__name__})") from None
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise StreamdqError(f"{where} did not answer JSON: not a streamdq worker?") from None
    if not isinstance(doc, dict) or "streams" not in doc:
        raise StreamdqError(f"{where} did not answer a streamdq status document")
    return doc


def _ago(ts: float | None, now: float) -> str:
    if ts is None:
        return "-"
    s = max(now - ts, 0.0)
    return f"{s:.0f}s ago" if s < 120 else f"{s / 60:.0f}m ago" if s < 7200 else f"{s / 3600:.1f}h ago"


def _num(x: float | None, digits: int = 3) -> str:
    if x is None:
        return "-"
    return f"{x:.{digits}g}" if abs(x) < 1e4 else f"{x:,.0f}"


def _iso(ts: float | None) -> str:
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _quality(q: dict[str, float]) -> str:
    """The non-zero ratios, worst first; ``clean`` when every one is zero."""
    bad = sorted(((v, k) for k, v in q.items() if v), reverse=True)
    if not q:
        return "-"
    if not bad:
        return "clean"
    return ", ".join(f"{k.removesuffix('_ratio').replace('_', ' ')} {v:.1%}" for v, k in bad[:3]) + (
        f" (+{len(bad) - 3})" if len(bad) > 3 else "")


def _drift(drift: dict[str, dict[str, Any]]) -> Text:
    """Each method on its own scale: a test's p-value against alpha, a distance against its threshold."""
    out = Text()
    for method, d in sorted(drift.items()):
        if out:
            out.append("  ")
        style = "bold yellow" if d.get("drifted") else ""
        if d.get("p_value") is not None:
            out.append(f"{method} p={_num(d['p_value'])} (alpha {_num(d['threshold'])})", style=style)
        elif d.get("statistic") is not None:
            out.append(f"{method} {_num(d['statistic'])} (thr {_num(d['threshold'])})", style=style)
        else:
            out.append(f"{method} n/a", style="dim")
        if d.get("drifted"):
            out.append(" DRIFT", style="bold yellow")
    return out if out else Text("-", style="dim")


def render(doc: dict[str, Any], *, url: str = DEFAULT_URL) -> RenderableType:
    """The status document as a header line and tables (streams and windows, features, models, open alerts)."""
    now = float(doc.get("time") or time.time())
    parts: list[RenderableType] = []
    state = doc.get("status", "?")
    head = Text()
    head.append(f"streamdq worker {doc.get('app', '?')} at {url}: ")
    head.append(str(state), style="green" if state == "ok" else "yellow")
    partitions = doc.get("assigned_partitions") or []
    head.append(f", {len(partitions)} input partition(s)" + (f" ({', '.join(partitions)})" if partitions else ""))
    head.append(f", {len(doc.get('open_alerts', []))} open alert(s), at {_iso(now)}")
    parts.append(head)

    streams = Table(title="streams and windows", title_justify="left", expand=False)
    for col in ("stream", "kind", "records", "watermark", "window", "size", "open", "last closed", "count", "closed"):
        streams.add_column(col, no_wrap=col != "stream", justify="right" if col in ("records", "count") else "left")
    for s in doc["streams"]:
        windows = s.get("windows") or [{"name": "-", "size": "-", "last_closed": None}]
        for i, w in enumerate(windows):
            last = w.get("last_closed")
            closed = "-" if last is None else (f"#{last['index']} {last.get('start') or ''} .. {last.get('end') or ''}"
                                               + (" (partial)" if last.get("partial") else ""))
            streams.add_row(s["name"] if i == 0 else "", s["kind"] if i == 0 else "",
                            f"{s['records_processed']:,}" if i == 0 else "",
                            _iso(s.get("watermark")) if i == 0 else "", w["name"], str(w.get("size", "-")),
                            "-" if w.get("open_fill") is None else f"{w['open_fill']:.0%}", closed,
                            "-" if last is None else f"{last['count']:,}",
                            "never" if last is None else _ago(last.get("closed_at"), now))
    parts.append(streams)

    features = Table(title="features (last closed window)", title_justify="left")
    for col in ("stream", "feature", "state", "window", "quality", "drift"):
        features.add_column(col, no_wrap=col in ("stream", "feature", "state", "window"))
    for s in doc["streams"]:
        for f in s.get("features", []):
            label = f["state"] + (f" ({', '.join(f['alerting'])})" if f.get("alerting") else "")
            features.add_row(s["name"], f["name"], Text(label, style=_STATE_STYLE.get(f["state"], "")),
                             f.get("window") or "-", _quality(f.get("quality") or {}), _drift(f.get("drift") or {}))
    parts.append(features)

    model_rows = [(s["name"], m) for s in doc["streams"] for m in s.get("models", [])]
    if model_rows:
        models = Table(title="model windows (last closed)", title_justify="left")
        for col in ("stream", "model", "basis", "count", "realised", "estimated", "closed"):
            models.add_column(col, justify="right" if col == "count" else "left")
        for name, m in model_rows:
            models.add_row(name, f"{m['model']}:{m['version']}", m["basis"], f"{m['count']:,}",
                           ", ".join(f"{k} {_num(v)}" for k, v in m.get("realised", {}).items()) or "-",
                           ", ".join(f"{k} {_num(v)}" for k, v in m.get("estimated", {}).items()) or "-",
                           _ago(m.get("closed_at"), now))
        parts.append(models)

    alerts = doc.get("open_alerts", [])
    if alerts:
        table = Table(title="open alerts", title_justify="left")
        for col in ("severity", "stream", "feature", "check", "value", "threshold", "since", "summary"):
            table.add_column(col, no_wrap=col != "summary")
        for a in alerts:
            sev = a.get("severity") or "?"
            since = a.get("first_seen")
            table.add_row(Text(sev, style=_SEVERITY_STYLE.get(sev, "")), a.get("stream") or "?",
                          a.get("feature") or ("(record)" if a.get("stream") else "?"), a.get("check") or "?",
                          _num(a.get("value")), _num(a.get("threshold")),
                          str(since) if isinstance(since, str) else _iso(since), a.get("summary") or "")
        parts.append(table)
    else:
        parts.append(Text("no open alerts", style="green"))
    return Group(*parts)


@click.command("status")
@click.option("--url", default=DEFAULT_URL, show_default=True, help="The worker's web address.")
@click.option("--json", "as_json", is_flag=True, help="Print the status document as JSON (with --watch: one line "
              "per refresh).")
@click.option("--watch", type=float, default=None, metavar="SECONDS", help="Refresh every SECONDS until Ctrl-C.")
@friendly
def status(url: str, as_json: bool, watch: float | None) -> None:
    """Show a running worker's streams, windows, features' quality and drift, and open alerts."""
    if watch is not None and watch <= 0:
        raise StreamdqError("--watch takes a positive number of seconds")
    doc = fetch_status(url)  # the first read fails the command: exit 1 with one line
    if as_json:
        _print_json(doc, indent=watch is None)
        if watch is None:
            return
        try:
            while True:
                time.sleep(watch)
                try:
                    _print_json(fetch_status(url), indent=False)
                except StreamdqError as exc:
                    click.secho(f"error: {exc}", fg="red", err=True)
        except KeyboardInterrupt:
            return
    console = Console(width=None if sys.stdout.isatty() else 160)
    if watch is None:
        console.print(render(doc, url=url))
        return
    from rich.live import Live

    try:
        with Live(render(doc, url=url), console=console, auto_refresh=False, screen=False) as live:
            while True:
                time.sleep(watch)
                try:
                    doc = fetch_status(url)
                    live.update(render(doc, url=url), refresh=True)
                except StreamdqError as exc:  # keep trying: the worker may be restarting
                    live.update(Group(Text(f"error: {exc}", style="red"), render(doc, url=url)), refresh=True)
                    continue
    except KeyboardInterrupt:
        return


def _print_json(doc: dict[str, Any], *, indent: bool) -> None:
    option = orjson.OPT_INDENT_2 if indent else 0
    sys.stdout.write(orjson.dumps(doc, option=option).decode() + "\n")
    sys.stdout.flush()
