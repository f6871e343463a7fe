"""Issue 16, items 3, 5 and 6: minimum samples for every ratio check and drift method, one alert per
incident across window specs, and default freshness and out-of-order levels."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from jsonschema import Draft202012Validator

from monitor import Monitor
from monitor.alerts import Alert
from monitor.replay import replay
from monitor.report import WindowReport
from monitor.spec import parse_spec

ALERT_SCHEMA = json.loads((Path(__file__).resolve().parents[2] / "schemas" / "alert.schema.json").read_text())
VALIDATOR = Draft202012Validator(ALERT_SCHEMA, format_checker=Draft202012Validator.FORMAT_CHECKER)

T0 = 1_699_999_980.0  # a multiple of 60: time windows start on it


def spec_of(*, windows: list[dict[str, Any]], stream: dict[str, Any] | None = None,
            alerting: dict[str, Any] | None = None, thresholds: dict[str, Any] | None = None) -> Any:
    return parse_spec({"version": 1, "name": "t", "alerting": alerting or {}, "thresholds": thresholds or {},
                       "streams": [{"name": "f", "windows": windows, "detectors": [],
                                    "time": {"allowed_lateness_seconds": 30}, **(stream or {}),
                                    "features": [{"name": "x", "type": "numeric"}]}]})


def run(spec: Any, records: list[dict[str, Any]], **kw: Any) -> list[WindowReport]:
    monitor = Monitor.from_spec(spec, **kw)
    reports = monitor.process("f", records)
    assert all(isinstance(r, WindowReport) for r in reports)
    return reports  # type: ignore[return-value]


def events(reports: list[WindowReport]) -> list[Alert]:
    out = [e for r in reports for e in r.events]
    for e in out:
        VALIDATOR.validate(e.to_event())
    return out


# -- 1. minimum samples -------------------------------------------------------------------------------------

def lone_missing_record() -> list[dict[str, Any]]:
    """A 60 s time window holding one record whose value is missing, then records that close it."""
    records: list[dict[str, Any]] = [{"record_id": "lone", "event_time": T0 + 10.0, "x": None}]
    records += [{"record_id": i, "event_time": T0 + 200.0 + i * 0.1, "x": 1.0} for i in range(5)]
    return records


def test_a_time_window_of_one_missing_value_raises_nothing() -> None:
    spec = spec_of(windows=[{"name": "t60", "kind": "time", "seconds": 60}])
    reports = run(spec, lone_missing_record())
    first = reports[0]
    assert first.count == 1 and first.features["x"].ratios["missing_ratio"] == 1.0
    assert not first.alerts and not events(reports)
    row = next(r for r in first.rows() if r["feature"] == "x")
    assert {"check": "missing_ratio", "sample_size": 1, "min_samples": 100} in row["insufficient_data"]
    assert row["alerts"] == []
    stream_row = next(r for r in first.rows() if r["feature"] is None)
    assert {c["check"] for c in stream_row["insufficient_data"]} >= {"duplicate_ratio", "late_ratio",
                                                                       "unexpected_field_ratio"}
    assert first.to_dict()["insufficient_data"]


@pytest.mark.parametrize("where", ["stream", "check"])
def test_at_the_minimum_the_same_window_alerts(where: str) -> None:
    if where == "stream":
        spec = spec_of(windows=[{"name": "t60", "kind": "time", "seconds": 60}], stream={"min_samples": 1})
    else:  # a check's own min_samples wins over the stream's
        spec = spec_of(windows=[{"name": "t60", "kind": "time", "seconds": 60}],
                       thresholds={"missing_ratio": {"warning": 0.05, "critical": 0.20, "min_samples": 1}})
    reports = run(spec, lone_missing_record())
    fired = [(e.check, e.severity, e.status, e.sample_size) for e in events(reports)]
    assert fired[0] == ("missing_ratio", "critical", "firing", 1)
    row = next(r for r in reports[0].rows() if r["feature"] == "x")
    assert not any(c["check"] == "missing_ratio" for c in row["insufficient_data"])


def test_below_the_minimum_by_one_is_insufficient_and_at_it_alerts() -> None:
    def window_of(n: int) -> list[dict[str, Any]]:
        recs: list[dict[str, Any]] = [{"record_id": f"m{i}", "event_time": T0 + 1 + i * 0.01, "x": None}
                                      for i in range(n)]
        return [*recs, {"record_id": "close", "event_time": T0 + 200.0, "x": 1.0}]

    spec = spec_of(windows=[{"name": "t60", "kind": "time", "seconds": 60}], stream={"min_samples": 20})
    assert not events(run(spec, window_of(19)))
    assert [e.check for e in events(run(spec, window_of(20)))] == ["missing_ratio"]


def test_drift_below_the_minimum_is_insufficient_data_in_the_window_line() -> None:
    rng = np.random.default_rng(3)
    train = [{"record_id": i, "x": float(v)} for i, v in enumerate(rng.normal(0, 1, 2000))]
    spec = spec_of(windows=[{"name": "w50", "kind": "count", "size": 50}])
    records = [{"record_id": i, "x": float(v)} for i, v in enumerate(rng.normal(5, 1, 50))]  # far off
    import pandas as pd
    [report] = run(spec, records, reference=pd.DataFrame(train))
    assert all(d.drifted is None for d in report.drift["x"].values())
    assert not report.alerts
    row = next(r for r in report.rows() if r["feature"] == "x")
    checks = {c["check"]: c for c in row["insufficient_data"]}
    assert checks["psi"] == {"check": "psi", "sample_size": 50, "min_samples": 100}
    assert checks["missing_ratio"]["sample_size"] == 50


# -- 2. one alert per incident ------------------------------------------------------------------------------

def spike_stream() -> list[dict[str, Any]]:
    """100 records/s for 300 s; 60% of them miss ``x`` from T0+100 to T0+125 (a 25 s spike)."""
    rng = np.random.default_rng(16)
    out: list[dict[str, Any]] = []
    for i in range(30_000):
        t = T0 + i * 0.01
        missing = 100.0 <= t - T0 < 125.0 and rng.random() < 0.6
        out.append({"record_id": i, "event_time": t, "x": None if missing else float(rng.normal())})
    return out


SPIKE_WINDOWS = [{"name": "c500", "kind": "count", "size": 500}, {"name": "t60", "kind": "time", "seconds": 60}]


def test_one_incident_seen_by_two_window_specs_is_one_firing_and_one_resolved() -> None:
    reports = run(spec_of(windows=SPIKE_WINDOWS), spike_stream())
    missing = [e for e in events(reports) if e.check == "missing_ratio"]
    assert [e.status for e in missing] == ["firing", "resolved"]
    firing, resolved = missing
    # both window specs raised it: the same incident
    raised_by = {r.window["name"] for r in reports for a in r.alerts if a.check == "missing_ratio"}
    assert raised_by == {"c500", "t60"}
    assert firing.to_event()["incident_id"] == firing.alert_id == resolved.to_event()["incident_id"]
    # it resolved only after the time window judged the spike's period, from a window ending after it
    assert resolved.window["name"] == "t60" and resolved.created_at >= "2023-11-14T22:15:25"
    # every window line that raised it names the check and references the firing event's alert_id
    lines = [a for r in reports for row in r.rows() for a in row["alerts"]]
    assert lines and all(a["check"] == "missing_ratio" and a["alert_id"] == firing.alert_id for a in lines)


def test_without_waiting_the_same_spike_fires_twice() -> None:
    """The failure this fixes (incident_wait_seconds: 0 is the old behaviour): the count window clears
    before the time window, which closes after its allowed lateness, sees the spike."""
    reports = run(spec_of(windows=SPIKE_WINDOWS, alerting={"incident_wait_seconds": 0}), spike_stream())
    missing = [e.status for e in events(reports) if e.check == "missing_ratio"]
    assert missing == ["firing", "resolved", "firing", "resolved"]


@pytest.mark.parametrize(("wait", "expected"), [
    (3600.0, [("firing", 105), ("resolved", 300)]),  # waits for c10k's window 100-200, which raises too
    (20.0, [("firing", 105), ("resolved", 145), ("firing", 200), ("resolved", 300)]),  # gives up 20 s after
])
def test_a_lagging_window_spec_is_waited_for_at_most_incident_wait_seconds(
        wait: float, expected: list[tuple[str, int]]) -> None:
    windows = [{"name": "c500", "kind": "count", "size": 500}, {"name": "c10k", "kind": "count", "size": 10_000}]
    reports = run(spec_of(windows=windows, alerting={"incident_wait_seconds": wait}), spike_stream())
    got = [(e.status, round(r.end_time - T0)) for r in reports for e in r.events if e.check == "missing_ratio"]
    assert got == expected


def test_replay_windows_jsonl_references_alerts_jsonl(tmp_path: Path) -> None:
    spec = spec_of(windows=SPIKE_WINDOWS)
    replay(spec, {"f": iter(spike_stream())}, tmp_path)
    alerts = [json.loads(line) for line in (tmp_path / "alerts.jsonl").read_text().splitlines()]
    windows = [json.loads(line) for line in (tmp_path / "windows.jsonl").read_text().splitlines()]
    ids = {a["alert_id"] for a in alerts}
    incidents = {a["incident_id"] for a in alerts}
    referenced = [v for w in windows for v in w.get("alerts", [])]
    assert referenced and all(v["alert_id"] in ids and v["alert_id"] in incidents for v in referenced)
    assert {v["check"] for v in referenced} == {"missing_ratio"}


# -- 3. freshness and out-of-order defaults -----------------------------------------------------------------

def stale(lag: float) -> tuple[Any, list[dict[str, Any]]]:
    """A live monitor whose clock runs ``lag`` seconds ahead of the records' event times."""
    recs = [{"record_id": i, "event_time": T0 + i * 0.001, "x": 1.0} for i in range(1_000)]
    return (lambda: T0 + 1.0 + lag), recs


@pytest.mark.parametrize(("lag", "expected"), [(897.0, "critical"), (90.0, "warning"), (5.0, None)])
def test_freshness_alerts_relative_to_the_expected_lag(lag: float, expected: str | None) -> None:
    spec = spec_of(windows=[{"name": "c500", "kind": "count", "size": 500}])  # expected lag 30 s: 60 / 300
    clock, records = stale(lag)
    monitor = Monitor(spec, clock=clock)
    reports = monitor.process("f", records)
    fresh = [e for e in events(reports) if e.check == "freshness_p95_seconds"]  # type: ignore[arg-type]
    if expected is None:
        assert not fresh
    else:
        assert fresh[0].severity == expected and fresh[0].value == pytest.approx(lag, abs=1)


def test_freshness_levels_follow_expected_lag_seconds() -> None:
    spec = spec_of(windows=[{"name": "c500", "kind": "count", "size": 500}],
                   stream={"time": {"allowed_lateness_seconds": 30, "expected_lag_seconds": 600}})
    clock, records = stale(897.0)  # within 2 x 600: fine for this stream
    assert not [e for e in events(Monitor(spec, clock=clock).process("f", records))  # type: ignore[arg-type]
                if e.check == "freshness_p95_seconds"]


def shuffled(share: float) -> list[dict[str, Any]]:
    """Records 1 s apart where ``share`` of them arrive 5 s late (out of order, within the lateness)."""
    rng = np.random.default_rng(6)
    out = []
    for i in range(1_000):
        late = rng.random() < share
        out.append({"record_id": i, "event_time": T0 + i - (5.0 if late else 0.0), "x": 1.0})
    return out


@pytest.mark.parametrize(("stream", "share", "expected"), [
    ({}, 0.30, "critical"), ({}, 0.08, "warning"), ({}, 0.01, None),
    ({"partitions": 3}, 0.30, None),  # interleaved partitions: no default
    ({"partitions": 3, "time": {"expected_out_of_order_ratio": 0.05}}, 0.15, "warning"),
])
def test_out_of_order_default_levels(stream: dict[str, Any], share: float, expected: str | None) -> None:
    spec = spec_of(windows=[{"name": "c500", "kind": "count", "size": 500}], stream=stream)
    fired = [e.severity for e in events(run(spec, shuffled(share))) if e.check == "out_of_order_ratio"]
    assert fired[:1] == ([expected] if expected else [])


def test_in_processing_time_nothing_waits() -> None:
    """Processing-time windows close on the worker's clock, count windows end at event times: their ends
    do not compare, so a cleared alert resolves at once (as before incidents)."""
    from monitor.alerts import AlertPolicy, Observation
    from monitor.spec import AlertingSpec

    def seen(value: float, severity: str | None, name: str, end: float, mode: str) -> Observation:
        return Observation(stream="s", feature="x", check="missing_ratio", value=value, severity=severity,  # type: ignore[arg-type]
                           clear=severity is None, threshold=0.05, sample_size=500, reference_version=None,
                           summary="x", window={"name": name, "kind": "count", "index": 0, "start": "a", "end": "b"},
                           time_mode=mode)

    for mode, expected in (("event", []), ("processing", ["resolved"])):
        policy = AlertPolicy(AlertingSpec())
        policy.observe([seen(0.0, None, "t", 60.0, mode)], now=60.0)
        assert [a.status for a in policy.observe([seen(0.3, "critical", "w", 105.0, mode)], now=105.0)] == ["firing"]
        assert [a.status for a in policy.observe([seen(0.0, None, "w", 130.0, mode)], now=130.0)] == expected
