"""The worker's metrics from real reports of :class:`monitor.Monitor`: drift score, p-values, thresholds
and sample sizes per method, quality thresholds, the fill of the open windows, one series per open
alert, bounded labels, and a page ``promtool check metrics`` accepts."""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from agents.worker.metrics import Metrics
from monitor.drift import METHODS
from monitor.engine import Monitor
from monitor.names import CHANGE_CHECKS, FEATURE_CHECKS, MODEL_CHECKS, RECORD_CHECKS, drift_key
from monitor.reference import ReferenceProfile, build_profile
from monitor.report import Report, WindowReport
from monitor.spec import MonitorSpec, parse_spec
from monitor.testing.synthetic import Scenario, SyntheticFeatures

REPO = Path(__file__).resolve().parents[2]
STEP = 0.1  # seconds of event time between records


def _spec() -> MonitorSpec:
    data = yaml.safe_load((REPO / "deploy" / "monitor.yaml").read_text())
    data["streams"] = [s for s in data["streams"] if s["name"] == "features"]
    stream = data["streams"][0]
    stream.pop("reference")
    stream["windows"] = [{"name": "c500", "kind": "count", "size": 500},
                         {"name": "t60", "kind": "time", "seconds": 60}]
    stream["rolling_reference"] = 2
    return parse_spec(data)


@pytest.fixture(scope="module")
def spec() -> MonitorSpec:
    return _spec()


@pytest.fixture(scope="module")
def reference(spec: MonitorSpec) -> ReferenceProfile:
    rows = SyntheticFeatures(seed=31).records(20_000)
    return build_profile(spec.streams[0], lambda: iter(rows), source={"kind": "test"})


def _records(gen: SyntheticFeatures, start: int, n: int, *, drift: bool) -> list[dict[str, Any]]:
    out = []
    for i in range(start, start + n):
        rec = gen.record(now=0.0, scenario=Scenario(drift=drift))
        rec["event_time"] = i * STEP
        out.append(rec)
    return out


class Run:
    """A monitor fed in batches, every report observed by one Metrics, as the worker does."""

    def __init__(self, spec: MonitorSpec, reference: ReferenceProfile) -> None:
        self.spec = spec
        self.registry = CollectorRegistry()
        self.metrics = Metrics(spec, registry=self.registry)
        self.monitor = Monitor(spec, references={"features": reference}, clock=lambda: 0.0)
        self.metrics.watch(self.monitor)
        self.gen = SyntheticFeatures(seed=32)
        self.sent = 0
        self.reports: list[Report] = []

    def feed(self, n: int, *, drift: bool, batch: int = 250) -> list[Report]:
        new: list[Report] = []
        for k in range(0, n, batch):
            recs = _records(self.gen, self.sent, min(batch, n - k), drift=drift)
            self.sent += len(recs)
            for report in self.monitor.process("features", recs):
                self.metrics.observe(report)
                new.append(report)
        self.reports += new
        return new

    def page(self) -> str:
        return generate_latest(self.registry).decode()

    def samples(self, name: str) -> dict[frozenset[tuple[str, str]], float]:
        out = {}
        for fam in text_string_to_metric_families(self.page()):
            for s in fam.samples:
                if s.name == name:
                    out[frozenset(s.labels.items())] = s.value
        return out


def _labels(**kw: str) -> frozenset[tuple[str, str]]:
    return frozenset(kw.items())


@pytest.fixture(scope="module")
def drifted_run(spec: MonitorSpec, reference: ReferenceProfile) -> Run:
    run = Run(spec, reference)
    run.feed(1000, drift=False)
    run.feed(1250, drift=True)  # 2250 records: 4 count windows closed, 250 records in the open one
    return run


def test_drift_series_are_the_reports_results(drifted_run: Run) -> None:
    last = [r for r in drifted_run.reports if isinstance(r, WindowReport) and r.window["name"] == "c500"][-1]
    assert last.window["index"] == 3
    score = drifted_run.samples("streamdq_feature_drift_score")
    p_raw = drifted_run.samples("streamdq_feature_drift_p_value")
    p_adj = drifted_run.samples("streamdq_feature_drift_p_value_adjusted")
    threshold = drifted_run.samples("streamdq_feature_drift_threshold")
    size = drifted_run.samples("streamdq_feature_drift_sample_size")
    drifted = drifted_run.samples("streamdq_feature_drifted")
    tests = distances = 0
    for feature, methods in last.drift.items():
        for method, d in methods.items():
            key = _labels(stream="features", feature=feature, window="c500", method=method)
            assert threshold[key] == d.threshold and size[key] == d.sample_size, (feature, method)
            if d.statistic is None:  # insufficient data (coupon_code: mostly null): no score, no decision
                assert key not in score and key not in drifted and key not in p_adj
                continue
            assert score[key] == d.statistic and drifted[key] == float(bool(d.drifted))
            if METHODS[d.method].kind == "test":
                tests += 1
                assert (p_raw[key], p_adj[key]) == (d.p_value, d.p_value_adjusted)
                assert (p_adj[key] <= threshold[key]) is d.drifted  # one scale: the decision
            else:
                distances += 1
                assert key not in p_raw and key not in p_adj
    assert tests >= 5 and distances >= 8  # 500 values: ks / chi_square with psi (and psi@rolling)
    age_ks = _labels(stream="features", feature="age", window="c500", method="ks")
    assert p_adj[age_ks] <= 0.01 == threshold[age_ks]  # the injected shift is found
    assert any(m.endswith("@rolling") for ms in last.drift.values() for m in ms)


def test_quality_ratios_have_their_levels_beside_them(drifted_run: Run, spec: MonitorSpec) -> None:
    thr = drifted_run.samples("streamdq_check_threshold")
    missing = drifted_run.samples("streamdq_feature_missing_ratio")
    stream = spec.streams[0]
    for f in stream.features:
        key = _labels(stream="features", feature=f.name, window="c500")
        assert key in missing
        t = spec.threshold_for(stream, f, "missing_ratio")
        for severity in ("warning", "critical"):
            got = thr.get(_labels(stream="features", feature=f.name, check="missing_ratio", severity=severity))
            assert got == (None if t is None else getattr(t, severity)), (f.name, severity)
    # the nullable coupon_code has no missing_ratio check, but its own psi levels (0.2 / 0.5)
    assert _labels(stream="features", feature="coupon_code", check="missing_ratio", severity="warning") not in thr
    assert thr[_labels(stream="features", feature="age", check="psi", severity="critical")] == 0.25
    # stream-level checks: feature=""
    assert thr[_labels(stream="features", feature="", check="duplicate_ratio", severity="warning")] == 0.01
    assert thr[_labels(stream="features", feature="", check="late_ratio", severity="critical")] == 0.05
    # a drift test's level is alpha, on the p-value scale: not among the ">=" levels
    assert not [k for k in thr if ("check", "ks") in k or ("check", "chi_square") in k]


def test_window_fill_of_the_open_windows(drifted_run: Run) -> None:
    fill = drifted_run.samples("streamdq_window_fill_ratio")
    # 2250 records: 250 of the open 500-record window
    assert fill[_labels(stream="features", window="c500")] == 0.5
    # event time 224.9 s, lateness 30 s: the horizon 194.9 s is 14.9 s into the window [180, 240)
    assert fill[_labels(stream="features", window="t60")] == pytest.approx(14.9 / 60)
    assert drifted_run.monitor.window_fill("features") == {"c500": 0.5, "t60": pytest.approx(14.9 / 60)}


def _open_from_events(reports: list[Report]) -> set[tuple[str, str, str, str]]:
    open_: dict[tuple[str, str | None, str], str] = {}
    for r in reports:
        for e in r.events:
            key = (e.stream, e.feature, e.check)
            if e.status == "firing":
                open_[key] = str(e.severity)
            else:
                open_.pop(key, None)
    return {(s, f or "", c, sev) for (s, f, c), sev in open_.items()}


def _active(run: Run) -> set[tuple[str, str, str, str]]:
    out = set()
    for labels, value in run.samples("streamdq_alert_active").items():
        d = dict(labels)
        assert value == 1.0
        out.add((d["stream"], d["feature"], d["check"], d["severity"]))
    return out


def test_one_series_per_open_alert_removed_when_resolved(spec: MonitorSpec, reference: ReferenceProfile) -> None:
    run = Run(spec, reference)
    run.feed(1000, drift=False)
    assert _active(run) == set()
    run.feed(1500, drift=True)
    active = _active(run)
    assert ("features", "age", "psi", "critical") in active or ("features", "age", "psi", "warning") in active
    assert ("features", "age", "ks", "warning") in active
    assert active == _open_from_events(run.reports)
    # a restarted worker (its policy loaded from the alert-state table, as the worker does) shows the same
    restarted = Run(spec, reference)
    for fp, state in json.loads(json.dumps(run.monitor.policy.to_state()))["fingerprints"].items():
        restarted.monitor.policy.load(fp, state)
    assert _active(restarted) == active
    # clean data again: the drift alerts resolve (clear_windows: 2) and their series go
    new = run.feed(3000, drift=False)
    resolved = {(e.feature, e.check) for r in new for e in r.events if e.status == "resolved"}
    assert {("age", "psi"), ("age", "ks")} <= resolved
    after = _active(run)
    assert after == _open_from_events(run.reports)
    assert not {k for k in after if k[1] == "age" and k[2] in ("psi", "ks")}
    assert 'feature="age",severity="warning"' not in [
        line for line in run.page().splitlines() if line.startswith('streamdq_alert_active{check="ks"')]


def test_labels_take_configured_names_only(drifted_run: Run, spec: MonitorSpec) -> None:
    stream = spec.streams[0]
    allowed = {
        "stream": {s.name for s in spec.streams},
        "feature": {f.name for f in stream.features} | {""},
        "window": {w.name for w in stream.windows},
        "method": {drift_key(m, rolling=r) for m in METHODS for r in (False, True)},
        "check": ({str(c) for c in (*FEATURE_CHECKS, *RECORD_CHECKS, *CHANGE_CHECKS, *MODEL_CHECKS)}
                  | {drift_key(m, rolling=r) for m in METHODS for r in (False, True)}),
        "severity": {"info", "warning", "critical"},
    }
    seen: dict[str, set[str]] = {}
    for fam in text_string_to_metric_families(drifted_run.page()):
        for s in fam.samples:
            for label, value in s.labels.items():
                seen.setdefault(label, set()).add(value)
    for label, values in allowed.items():
        assert seen.get(label, set()) <= values, (label, seen.get(label, set()) - values)
    assert {"stream", "feature", "window", "method", "check", "severity"} <= seen.keys()


def test_the_page_passes_promtool(drifted_run: Run) -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool is required (Debian package prometheus; ./dev test installs it)"
    page = drifted_run.page()
    for name in ("streamdq_feature_drift_p_value_adjusted", "streamdq_window_fill_ratio", "streamdq_alert_active",
                 "streamdq_check_threshold", "streamdq_feature_drift_sample_size"):
        assert f"\n{name}{{" in page, name
    res = subprocess.run([promtool, "check", "metrics"], input=page.encode(), capture_output=True, timeout=60)
    assert res.returncode == 0, res.stdout.decode() + res.stderr.decode()


def test_observe_rejects_what_is_not_a_window_report(spec: MonitorSpec) -> None:
    metrics = Metrics(spec, registry=CollectorRegistry())
    with pytest.raises(TypeError):
        metrics.observe("not a report")  # type: ignore[arg-type]


def test_a_method_the_window_did_not_run_leaves_no_series(spec: MonitorSpec, reference: ReferenceProfile) -> None:
    """drift.methods auto picks by the window's valid values: 1,200 clean incomes (Wasserstein), then a
    missing-value spike leaves ~840 (KS). The Wasserstein series must go, not linger beside the KS ones."""
    data = copy.deepcopy(spec.model_dump(exclude_none=True))
    data["streams"][0]["windows"] = [{"name": "c1200", "kind": "count", "size": 1200}]
    data["streams"][0].pop("rolling_reference", None)
    one = parse_spec(data)
    registry = CollectorRegistry()
    metrics = Metrics(one, registry=registry)
    monitor = Monitor(one, references={"features": reference}, clock=lambda: 0.0)
    gen = SyntheticFeatures(seed=33)
    income = {"stream": "features", "feature": "income", "window": "c1200"}

    def methods() -> dict[str, set[str]]:
        out: dict[str, set[str]] = {}
        for fam in text_string_to_metric_families(generate_latest(registry).decode()):
            for s in fam.samples:
                if s.name.startswith("streamdq_feature_drift") and income.items() <= s.labels.items():
                    out.setdefault(s.name, set()).add(s.labels["method"])
        return out

    for scenario in (Scenario(), Scenario(missing_spike=True)):
        recs = [gen.record(now=0.0, scenario=scenario) for _ in range(1200)]
        [report] = monitor.process("features", [{**r, "event_time": 0.0} for r in recs])
        metrics.observe(report)
        ran = set(report.drift["income"])
        got = methods()
        assert got["streamdq_feature_drift_score"] == got["streamdq_feature_drift_threshold"] == ran
        if scenario.missing_spike:
            assert ran == {"psi", "ks"} and got["streamdq_feature_drift_p_value_adjusted"] == {"ks"}
        else:
            assert ran == {"psi", "wasserstein"} and "streamdq_feature_drift_p_value_adjusted" not in got
