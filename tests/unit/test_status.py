"""The /status document (StatusBoard over a real Monitor), its rendering by ``streamdq status``, and the
command's one-line failures (against real local HTTP servers)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import orjson
import pytest
from jsonschema import Draft202012Validator
from rich.console import Console

from agents.cli.localkafka import free_port
from agents.cli.status import fetch_status, render
from agents.worker.status import StatusBoard
from monitor.engine import Monitor
from monitor.errors import StreamdqError
from monitor.spec import MonitorSpec

ROOT = Path(__file__).resolve().parents[2]
VALIDATOR = Draft202012Validator(json.loads((ROOT / "schemas" / "status.schema.json").read_text()))

SPEC = MonitorSpec.model_validate({"version": 1, "name": "t", "alerting": {"for_windows": 1, "clear_windows": 1},
                                   "streams": [{
    "name": "f", "windows": [{"name": "w4", "kind": "count", "size": 4}, {"name": "w8", "kind": "count", "size": 8}],
    "min_samples": 1,  # windows of 4 records judge their checks (the default minimum is 100)
    "features": [{"name": "x", "type": "numeric", "range": {"min": 0, "max": 10}},
                 {"name": "colour", "type": "categorical", "categories": ["red", "blue"]}]}]})


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


def _render(doc: dict[str, Any], width: int = 200) -> str:
    console = Console(width=width, record=True, file=open("/dev/null", "w"))  # noqa: SIM115 - closed with the console
    console.print(render(doc, url="http://127.0.0.1:6066"))
    console.file.close()
    return console.export_text()


def _feed(monitor: Monitor, board: StatusBoard, records: list[dict[str, Any]]) -> None:
    for report in monitor.process("f", records):
        board.observe(report)


def test_board_follows_windows_and_alerts() -> None:
    clock = Clock()
    monitor, board = Monitor(SPEC, clock=clock), StatusBoard(clock=clock)
    doc = board.status(monitor, spec="t", status="starting", app="streamdq-t", assigned_partitions=[],
                       table_partitions=[])
    VALIDATOR.validate(doc)
    assert [w["last_closed"] for w in doc["streams"][0]["windows"]] == [None, None]
    assert {f["state"] for f in doc["streams"][0]["features"]} == {"no data"}
    assert doc["open_alerts"] == []

    clock.now += 5
    _feed(monitor, board, [{"record_id": i, "x": 1.0, "colour": "red"} for i in range(4)])
    doc = board.status(monitor, spec="t", status="ok", app="streamdq-t", assigned_partitions=["f:0"],
                       table_partitions=[])
    VALIDATOR.validate(doc)
    s = doc["streams"][0]
    assert s["records_processed"] == 4
    w4, w8 = s["windows"]
    assert (w4["last_closed"]["index"], w4["last_closed"]["count"], w4["last_closed"]["closed_at"]) == (0, 4, clock.now)
    assert w8["last_closed"] is None and w8["size"] == "8 records"
    assert [(f["name"], f["state"], f["quality"]["missing_ratio"]) for f in s["features"]] == [
        ("x", "ok", 0.0), ("colour", "ok", 0.0)]

    # x out of range in every record of the next window: an alert opens, on x only.
    _feed(monitor, board, [{"record_id": 10 + i, "x": 50.0, "colour": "blue"} for i in range(4)])
    doc = board.status(monitor, spec="t", status="ok", app="a", assigned_partitions=[], table_partitions=[])
    VALIDATOR.validate(doc)
    x, colour = doc["streams"][0]["features"]
    assert x["state"] == "alert" and "out_of_domain_ratio" in x["alerting"] and x["window"] == "w8"
    assert colour["state"] == "ok" and colour["alerting"] == []
    fps = set(monitor.policy.open_alerts())
    assert {a["fingerprint"] for a in doc["open_alerts"]} == fps and fps
    assert {(a["stream"], a["feature"]) for a in doc["open_alerts"]} == {("f", "x")}

    # Clean again: every alert resolves and leaves the board.
    _feed(monitor, board, [{"record_id": 20 + i, "x": 1.0, "colour": "red"} for i in range(16)])
    doc = board.status(monitor, spec="t", status="ok", app="a", assigned_partitions=[], table_partitions=[])
    assert doc["open_alerts"] == [] and monitor.policy.open_alerts() == []
    assert {f["state"] for f in doc["streams"][0]["features"]} == {"ok"}


def test_alert_open_before_the_worker_started_is_listed_from_the_policy_state() -> None:
    clock = Clock()
    first = Monitor(SPEC, clock=clock)
    _feed(first, StatusBoard(clock=clock), [{"record_id": i, "x": 50.0, "colour": "red"} for i in range(4)])
    [fp, *_] = first.policy.open_alerts()
    again, board = Monitor(SPEC, clock=clock), StatusBoard(clock=clock)  # a restarted worker: the table restores it
    again.policy.load(fp, first.policy.state_of(fp))
    doc = board.status(again, spec="t", status="ok", app="a", assigned_partitions=[], table_partitions=[])
    VALIDATOR.validate(doc)
    [a] = doc["open_alerts"]
    assert a["fingerprint"] == fp and a["stream"] is None and a["severity"] in ("warning", "critical")
    assert a["value"] == 1.0 and "x" in a["summary"]
    assert "?" in _render(doc)


def _doc() -> dict[str, Any]:
    clock = Clock()
    monitor, board = Monitor(SPEC, clock=clock), StatusBoard(clock=clock)
    _feed(monitor, board, [{"record_id": i, "x": 50.0 if i % 2 else None, "colour": "red"} for i in range(8)])
    clock.now += 90
    return board.status(monitor, spec="t", status="ok", app="streamdq-t", assigned_partitions=["f:0", "f:1"],
                        table_partitions=[])


def test_render_shows_streams_features_and_alerts() -> None:
    doc = _doc()
    text = _render(doc)
    assert "streamdq worker streamdq-t at http://127.0.0.1:6066: ok, 2 input partition(s) (f:0, f:1)" in text
    lines = text.splitlines()
    [w4] = [line for line in lines if " w4 " in line]
    assert "#1" in w4 and "90s ago" in w4 and "4 records" in w4
    [x] = [line for line in lines if "│ x " in line and "alert (" in line]
    assert "alert (" in x and "missing 50.0%" in x and "out of domain 50.0%" in x
    [colour] = [line for line in lines if "│ colour " in line]
    assert "clean" in colour
    assert "open alerts" in text
    for a in doc["open_alerts"]:
        assert any(a["check"] in line and a["severity"] in line and "│ x " in line for line in lines)


def test_render_drift_on_each_methods_scale() -> None:
    doc = _doc()
    f = doc["streams"][0]["features"][0]
    f["drift"] = {"ks": {"statistic": 0.31, "p_value": 0.0004, "threshold": 0.01, "drifted": True, "sample_size": 8},
                  "psi": {"statistic": 0.05, "p_value": None, "threshold": 0.2, "drifted": False, "sample_size": 8},
                  "wasserstein": {"statistic": None, "p_value": None, "threshold": 0.1, "drifted": None,
                                  "sample_size": 0}}
    VALIDATOR.validate(doc)
    text = _render(doc, width=250)
    assert "ks p=0.0004 (alpha 0.01) DRIFT" in text
    assert "psi 0.05 (thr 0.2)" in text and "psi 0.05 (thr 0.2) DRIFT" not in text
    assert "wasserstein n/a" in text


def test_render_with_no_alert_and_narrow_terminal() -> None:
    clock = Clock()
    monitor, board = Monitor(SPEC, clock=clock), StatusBoard(clock=clock)
    doc = board.status(monitor, spec="t", status="starting", app="a", assigned_partitions=[], table_partitions=[])
    text = _render(doc, width=80)
    assert "no open alerts" in text and "starting" in text and "never" in text
    assert max(map(len, text.splitlines())) <= 80


# ----------------------------------------------------------------- fetching, against real HTTP servers


@pytest.fixture
def server() -> Iterator[dict[str, Any]]:
    """A local HTTP server answering what the test sets: (status, body) for every path."""
    answer: dict[str, Any] = {"status": 200, "body": b"{}", "paths": []}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            answer["paths"].append(self.path)
            self.send_response(answer["status"])
            self.end_headers()
            self.wfile.write(answer["body"])

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    answer["url"] = f"http://127.0.0.1:{httpd.server_address[1]}"
    try:
        yield answer
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_fetch_reads_status(server: dict[str, Any]) -> None:
    doc = _doc()
    server["body"] = orjson.dumps(doc)
    assert fetch_status(server["url"] + "/") == doc
    assert server["paths"] == ["/status"]


@pytest.mark.parametrize(("status", "body", "message"), [
    (404, b"not found", "answered HTTP 404 for /status (a streamdq worker older than /status"),
    (500, b"boom", "answered HTTP 500 for /status"),
    (200, b"<html>", "did not answer JSON: not a streamdq worker?"),
    (200, b"[1, 2]", "did not answer a streamdq status document"),
])
def test_fetch_failures_are_one_line(server: dict[str, Any], status: int, body: bytes, message: str) -> None:
    server["status"], server["body"] = status, body
    with pytest.raises(StreamdqError) as info:
        fetch_status(server["url"])
    assert message in str(info.value) and "\n" not in str(info.value)


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "agents.cli", "status", *args], capture_output=True, text=True,
                          timeout=60, stdin=subprocess.DEVNULL, cwd=ROOT)


def test_cli_nothing_listening_is_one_line_and_exit_1() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    got = _cli("--url", url, "--json")
    assert got.returncode == 1 and got.stdout == ""
    [line] = got.stderr.strip().splitlines()
    assert line.startswith(f"error: cannot reach the worker at {url} (Connection refused)"), line


def test_cli_piped_table_and_json(server: dict[str, Any]) -> None:
    doc = _doc()
    server["body"] = orjson.dumps(doc)
    got = _cli("--url", server["url"], "--json")
    assert got.returncode == 0 and orjson.loads(got.stdout) == doc
    table = _cli("--url", server["url"])
    assert table.returncode == 0, table.stderr
    assert "\x1b[" not in table.stdout and "open alerts" in table.stdout
    assert all(len(line) <= 160 for line in table.stdout.splitlines())


@pytest.mark.parametrize("watch", ["0", "-1"])
def test_cli_watch_must_be_positive(watch: str) -> None:
    got = _cli("--watch", watch)
    assert got.returncode == 1 and "--watch takes a positive number" in got.stderr


def test_open_window_fill_when_the_monitor_tells_it() -> None:
    """A monitor with ``window_fill`` (issue 15's metrics work) fills ``open_fill``; without it the field is null."""

    class FillingMonitor(Monitor):
        def window_fill(self, stream: str) -> dict[str, float | None]:
            return {"w4": 0.25, "w8": None}

    clock = Clock()
    plain = StatusBoard(clock=clock).status(Monitor(SPEC, clock=clock), spec="t", status="ok", app="a",
                                            assigned_partitions=[], table_partitions=[])
    assert [w["open_fill"] for w in plain["streams"][0]["windows"]] == [None, None]
    doc = StatusBoard(clock=clock).status(FillingMonitor(SPEC, clock=clock), spec="t", status="ok", app="a",
                                          assigned_partitions=[], table_partitions=[])
    VALIDATOR.validate(doc)
    assert [w["open_fill"] for w in doc["streams"][0]["windows"]] == [0.25, None]
    [w4] = [line for line in _render(doc).splitlines() if " w4 " in line]
    assert " 25% " in w4
