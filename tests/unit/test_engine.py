"""The engine: per-feature window semantics, window closing, reports vs numpy, drift and alerts."""

from __future__ import annotations

import copy
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from monitor.checks import MISSING, FeatureWindow
from monitor.drift import psi
from monitor.engine import Engine, WindowReport
from monitor.reference import ReferenceProfile, build_profile
from monitor.spec import FeatureSpec, MonitorSpec, parse_spec
from monitor.stats import OTHER
from monitor.synthetic import Scenario, SyntheticFeatures

REPO = Path(__file__).resolve().parents[2]
DEPLOY_SPEC = REPO / "deploy" / "monitor.yaml"


def psi_oracle(expected, actual, epsilon: float = 1e-4) -> float:
    e = np.asarray(expected, dtype=float)
    a = np.asarray(actual, dtype=float)
    pe = np.maximum(e / e.sum(), epsilon)
    pa = np.maximum(a / a.sum(), epsilon)
    return float(np.sum((pa - pe) * np.log(pa / pe)))


def is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


# ---------------------------------------------------------------- FeatureWindow


def test_numeric_feature_window_counting() -> None:
    fw = FeatureWindow(FeatureSpec(name="x", type="numeric", range={"min": 0, "max": 10}))
    values = [1, None, MISSING, "3", True, False, -1, 11, 5.5, 10, 0, [1], {"a": 1}]
    for v in values:
        fw.update(v)
    r = fw.result()
    assert r.count == 13
    assert r.missing == 2                     # None and absent
    assert r.type_violations == 5             # "3", True, False (bool is not a number), [1], {}
    assert r.out_of_domain == 2               # -1 and 11; the bounds 0 and 10 are inside
    assert r.valid == 6
    valid = np.array([1, -1, 11, 5.5, 10, 0], dtype=float)  # out-of-domain values still count
    assert r.moments["count"] == 6
    assert r.moments["mean"] == pytest.approx(valid.mean())
    assert r.moments["std"] == pytest.approx(valid.std(ddof=1))
    assert (r.moments["min"], r.moments["max"]) == (-1.0, 11.0)
    assert r.ratios == {"missing_ratio": 2 / 13, "type_violation_ratio": 5 / 13,
                        "out_of_domain_ratio": 2 / 13}
    assert r.histogram is None  # no reference bins


def test_numeric_open_range() -> None:
    fw = FeatureWindow(FeatureSpec(name="x", type="numeric", range={"min": 0}))
    for v in [-0.001, 0, 1e300]:
        fw.update(v)
    assert fw.result().out_of_domain == 1


def test_categorical_feature_window_counting() -> None:
    fw = FeatureWindow(FeatureSpec(name="c", type="categorical", categories=["a", "b", "1"]))
    for v in ["a", 1, "z", True, 2.5, None, "b", 2, MISSING, [], "a"]:
        fw.update(v)
    r = fw.result()
    assert r.count == 11
    assert r.missing == 2
    assert r.type_violations == 3            # True, 2.5, []
    assert r.out_of_domain == 2              # "z" and 2 ("2"); the int 1 is the category "1"
    assert r.histogram_labels == ["a", "b", "1", OTHER]
    assert r.histogram == [2, 1, 1, 2]
    assert r.moments is None


def test_categorical_without_categories_has_no_domain() -> None:
    fw = FeatureWindow(FeatureSpec(name="c", type="categorical"))
    for v in ["x", "y", 3]:
        fw.update(v)
    r = fw.result()
    assert (r.out_of_domain, r.type_violations) == (0, 0)
    assert r.histogram == [3] and r.histogram_labels == [OTHER]


def test_boolean_feature_window_counting() -> None:
    fw = FeatureWindow(FeatureSpec(name="b", type="boolean"))
    for v in [True, False, True, 1, 0, "true", None]:
        fw.update(v)
    r = fw.result()
    assert (r.count, r.missing, r.type_violations, r.out_of_domain) == (7, 1, 3, 0)
    assert r.histogram_labels == ["false", "true", OTHER]
    assert r.histogram == [1, 2, 0]


def test_empty_feature_window() -> None:
    r = FeatureWindow(FeatureSpec(name="x", type="numeric")).result()
    assert r.count == 0
    assert r.ratios == {"missing_ratio": None, "type_violation_ratio": None, "out_of_domain_ratio": None}
    assert r.moments is None and r.histogram is None


# ---------------------------------------------------------------- count windows


def small_spec(window: dict[str, Any], **stream: Any) -> MonitorSpec:
    return parse_spec({
        "version": 1, "name": "t",
        "streams": [{
            "name": "s", "windows": [window], **stream,
            "features": [
                {"name": "x", "type": "numeric", "range": {"min": 0, "max": 10}},
                {"name": "c", "type": "categorical", "categories": ["a", "b"]},
                {"name": "flag", "type": "boolean"},
            ],
        }],
    })


def messy_records(n: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        rec: dict[str, Any] = {"record_id": i}
        for name, choices in (
            ("x", [None, "absent", 3.5, 7, -2.0, 12, "nine", True, 5.25, 0.0]),
            ("c", [None, "absent", "a", "b", "zz", 3, 1.5, False, "a"]),
            ("flag", [None, "absent", True, False, 1, "yes", True]),
        ):
            v = rng.choice(choices)
            if isinstance(v, float) and name == "x":
                v = v + rng.random()
            if v != "absent":
                rec[name] = v
        out.append(rec)
    return out


def numpy_quality(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The same figures, computed directly with numpy over the records."""
    out = {}
    n = len(records)
    x = [r.get("x") for r in records]
    missing = np.array([v is None for v in x])
    numeric = np.array([is_number(v) for v in x])
    vals = np.array([float(v) for v in x if is_number(v)])
    out["x"] = {
        "missing_ratio": missing.sum() / n,
        "type_violation_ratio": (~missing & ~numeric).sum() / n,
        "out_of_domain_ratio": ((vals < 0) | (vals > 10)).sum() / n,
        "moments": (vals.mean(), vals.std(ddof=1), vals.min(), vals.max(), vals.size),
    }
    c = [r.get("c") for r in records]
    cmiss = np.array([v is None for v in c])
    ctype = np.array([isinstance(v, str) or (isinstance(v, int) and not isinstance(v, bool)) for v in c])
    cood = np.array([(isinstance(v, str) or is_number(v)) and str(v) not in {"a", "b"} for v in c]) & ctype
    out["c"] = {"missing_ratio": cmiss.sum() / n, "type_violation_ratio": (~cmiss & ~ctype).sum() / n,
                "out_of_domain_ratio": cood.sum() / n}
    f = [r.get("flag") for r in records]
    fmiss = np.array([v is None for v in f])
    fbool = np.array([isinstance(v, bool) for v in f])
    out["flag"] = {"missing_ratio": fmiss.sum() / n, "type_violation_ratio": (~fmiss & ~fbool).sum() / n,
                   "out_of_domain_ratio": 0.0,
                   "hist": [sum(v is False for v in f), sum(v is True for v in f), 0]}
    return out


def test_count_window_closes_exactly_every_size_records() -> None:
    engine = Engine(small_spec({"name": "w7", "kind": "count", "size": 7}), clock=lambda: 100.0)
    closed_at = []
    for i, rec in enumerate(messy_records(50, seed=1), 1):
        reports = engine.process("s", [rec])
        assert len(reports) <= 1
        if reports:
            closed_at.append(i)
            assert reports[0].count == 7
            assert reports[0].window["index"] == len(closed_at) - 1
    assert closed_at == [7, 14, 21, 28, 35, 42, 49]
    assert engine.records_processed["s"] == 50


@pytest.mark.parametrize("seed", range(3))
def test_count_window_reports_match_numpy(seed: int) -> None:
    size = 40
    records = messy_records(333, seed=seed)
    engine = Engine(small_spec({"name": "w", "kind": "count", "size": size}), clock=lambda: 0.0)
    rng = random.Random(seed)
    reports: list[WindowReport] = []
    i = 0
    while i < len(records):  # batches of random size, some spanning several windows
        step = rng.randint(1, 100)
        reports += engine.process("s", records[i:i + step])
        i += step
    assert len(reports) == len(records) // size == 8
    for k, report in enumerate(reports):
        assert report.count == size
        assert report.window["index"] == k and report.window["kind"] == "count"
        assert report.drift == {} and report.reference_version is None
        want = numpy_quality(records[k * size:(k + 1) * size])
        for name in ("x", "c", "flag"):
            fr = report.features[name]
            assert fr.count == size
            for check in ("missing_ratio", "type_violation_ratio", "out_of_domain_ratio"):
                assert fr.ratios[check] == pytest.approx(want[name][check], abs=1e-12), (k, name, check)
        mean, std, lo, hi, n = want["x"]["moments"]
        m = report.features["x"].moments
        assert m["count"] == n
        assert m["mean"] == pytest.approx(mean, rel=1e-12)
        assert m["std"] == pytest.approx(std, rel=1e-9)
        assert (m["min"], m["max"]) == (lo, hi)
        assert report.features["flag"].histogram == want["flag"]["hist"]


def test_count_window_quality_alerts_match_ratios() -> None:
    spec = small_spec({"name": "w", "kind": "count", "size": 40})
    engine = Engine(spec, clock=lambda: 0.0)
    [report] = engine.process("s", messy_records(40, seed=9))
    stream = spec.streams[0]
    want = set()
    for f in stream.features:
        for check in ("missing_ratio", "type_violation_ratio", "out_of_domain_ratio"):
            thr = spec.threshold_for(stream, f, check)
            sev = thr.severity(report.features[f.name].ratios[check])
            if sev is not None:
                want.add((f.name, check, sev))
    assert want  # messy data must raise something, or this test proves nothing
    assert {(a.feature, a.check, a.severity) for a in report.alerts} == want
    for a in report.alerts:
        assert a.value == report.features[a.feature].ratios[a.check]
        assert a.sample_size == 40


def test_engine_rejects_unknown_stream() -> None:
    engine = Engine(small_spec({"name": "w", "kind": "count", "size": 3}), clock=lambda: 0.0)
    with pytest.raises(KeyError):
        engine.process("nope", [{"record_id": 1}])


# ---------------------------------------------------------------- time windows


class FakeClock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def test_time_windows_close_on_tick() -> None:
    clock = FakeClock(1000.0)
    engine = Engine(small_spec({"name": "t10", "kind": "time", "seconds": 10}), clock=clock)
    clock.t = 1001.0
    assert engine.process("s", messy_records(5, seed=1)) == []
    clock.t = 1009.999
    assert engine.tick() == []
    assert engine.process("s", messy_records(3, seed=2)) == []
    [report] = engine.tick(1010.0)  # the window [1000, 1010) ends
    assert report.count == 8
    assert report.window == {"name": "t10", "kind": "time", "index": 100,
                             "start": "1970-01-01T00:16:40.000Z", "end": "1970-01-01T00:16:50.000Z"}
    assert report.features["x"].count == 8
    # nothing left open: a second tick closes nothing
    assert engine.tick(1010.5) == []
    # an empty window produces no report when it expires
    assert engine.tick(1025.0) == []


def test_time_window_closed_by_process_when_clock_passed() -> None:
    clock = FakeClock(0.0)
    engine = Engine(small_spec({"name": "t10", "kind": "time", "seconds": 10}), clock=clock)
    engine.process("s", messy_records(4, seed=3))
    clock.t = 12.0
    # the next batch first closes the expired window, then goes into [10, 20)
    [report] = engine.process("s", messy_records(6, seed=4))
    assert report.count == 4 and report.window["index"] == 0
    clock.t = 20.0
    [report] = engine.tick()  # uses the injected clock
    assert report.count == 6 and report.window["index"] == 1
    assert report.window["start"] == "1970-01-01T00:00:10.000Z"


def test_count_and_time_windows_together() -> None:
    spec = parse_spec({
        "version": 1, "name": "t",
        "streams": [{"name": "s",
                     "windows": [{"name": "c5", "kind": "count", "size": 5},
                                 {"name": "t60", "kind": "time", "seconds": 60}],
                     "features": [{"name": "x", "type": "numeric"}]}],
    })
    clock = FakeClock(0.0)
    engine = Engine(spec, clock=clock)
    reports = engine.process("s", [{"record_id": i, "x": float(i)} for i in range(12)])
    assert [(r.window["name"], r.count) for r in reports] == [("c5", 5), ("c5", 5)]
    assert [r.features["x"].moments["mean"] for r in reports] == [2.0, 7.0]
    [t] = engine.tick(60.0)
    assert (t.window["name"], t.count, t.features["x"].moments["mean"]) == ("t60", 12, 5.5)


# ---------------------------------------------------------------- drift on synthetic data

WINDOW = 2000


@pytest.fixture(scope="module")
def deploy_spec() -> MonitorSpec:
    data = yaml.safe_load(DEPLOY_SPEC.read_text())
    data["streams"][0].pop("reference")
    return parse_spec(data)


@pytest.fixture(scope="module")
def reference(deploy_spec: MonitorSpec) -> ReferenceProfile:
    rows = SyntheticFeatures(seed=1).records(30_000)
    return build_profile(deploy_spec.streams[0], lambda: iter(rows), source={"kind": "test"})


def run_windows(spec: MonitorSpec, ref: ReferenceProfile, records: list[dict[str, Any]]) -> list[WindowReport]:
    engine = Engine(spec, references={"features": ref}, clock=lambda: 0.0)
    reports = engine.process("features", records)
    assert all(r.window["name"] == "w2000" for r in reports)
    return reports


def psi_alerts(report: WindowReport) -> set[str]:
    return {a.feature for a in report.alerts if a.check == "psi"}


@pytest.fixture(scope="module")
def clean(deploy_spec, reference):
    records = SyntheticFeatures(seed=2).records(5 * WINDOW)
    return records, run_windows(deploy_spec, reference, records)


@pytest.fixture(scope="module")
def drifted(deploy_spec, reference):
    records = SyntheticFeatures(seed=3).records(3 * WINDOW, scenario=Scenario(drift=True))
    return records, run_windows(deploy_spec, reference, records)


def test_clean_windows_raise_no_alert(clean, reference) -> None:
    _, reports = clean
    assert len(reports) == 5
    for report in reports:
        assert report.count == WINDOW
        assert report.reference_version == reference.profile_version
        assert report.alerts == []
        for name in ("age", "income", "tenure_months", "basket_value", "session_seconds", "country",
                     "device"):
            d = report.drift[name]
            assert d.drifted is False, (name, d)
            assert 0.0 <= d.statistic < 0.05
            assert d.sample_size >= 200
        # coupon_code is present in ~5% of records: below min_samples (200), so no verdict
        assert report.drift["coupon_code"].drifted is None


def test_drifted_windows_alert_on_age_and_country(drifted) -> None:
    _, reports = drifted
    assert len(reports) == 3
    for report in reports:
        assert {"age", "country"} <= psi_alerts(report)
        for name in ("age", "country"):
            d = report.drift[name]
            assert d.drifted is True and d.statistic >= 0.25
            [alert] = [a for a in report.alerts if a.check == "psi" and a.feature == name]
            assert alert.severity == "critical" and alert.value == d.statistic
            assert alert.threshold == 0.25 and alert.sample_size == d.sample_size
        # features the scenario leaves alone do not drift
        assert not {"income", "tenure_months", "basket_value", "device"} & psi_alerts(report)


def test_missing_spike_alerts_missing_ratio_on_income(deploy_spec, reference) -> None:
    records = SyntheticFeatures(seed=4).records(2 * WINDOW, scenario=Scenario(missing_spike=True))
    reports = run_windows(deploy_spec, reference, records)
    assert len(reports) == 2
    for k, report in enumerate(reports):
        window = records[k * WINDOW:(k + 1) * WINDOW]
        ratio = sum(r["income"] is None for r in window) / WINDOW
        assert 0.25 < ratio < 0.35
        [alert] = [a for a in report.alerts if a.check == "missing_ratio"]
        assert alert.feature == "income" and alert.severity == "critical"
        assert alert.value == pytest.approx(ratio, abs=1e-12)
        assert report.features["income"].ratios["missing_ratio"] == pytest.approx(ratio, abs=1e-12)
        assert not psi_alerts(report)


def with_window(spec: MonitorSpec, size: int, min_samples: int) -> MonitorSpec:
    data = copy.deepcopy(spec.model_dump(exclude_none=True))
    data["streams"][0]["windows"] = [{"name": "w2000", "kind": "count", "size": size}]
    data["streams"][0]["min_samples"] = min_samples
    return parse_spec(data)


def test_below_min_samples_no_drift_verdict(deploy_spec, reference) -> None:
    spec = with_window(deploy_spec, size=150, min_samples=200)
    records = SyntheticFeatures(seed=5).records(300, scenario=Scenario(drift=True))
    reports = run_windows(spec, reference, records)
    assert len(reports) == 2
    for report in reports:
        for name, d in report.drift.items():
            assert d.drifted is None and d.statistic is None, name
            assert d.sample_size <= 150
        assert report.drift["age"].sample_size == 150
        assert not psi_alerts(report)


def test_at_min_samples_drift_is_decided(deploy_spec, reference) -> None:
    spec = with_window(deploy_spec, size=300, min_samples=300)
    records = SyntheticFeatures(seed=5).records(300, scenario=Scenario(drift=True))
    [report] = run_windows(spec, reference, records)
    assert report.drift["age"].sample_size == 300
    assert report.drift["age"].drifted is True
    assert "age" in psi_alerts(report)


def independent_numeric_psi(ref: ReferenceProfile, name: str, window: list[dict[str, Any]]):
    fp = ref.features[name]
    values = np.array([float(r[name]) for r in window if is_number(r.get(name))])
    idx = np.searchsorted(np.asarray(fp.bin_edges), values, side="right")
    hist = np.bincount(idx, minlength=len(fp.bin_edges) + 1)
    return hist.tolist(), psi_oracle(fp.bin_counts, hist)


def independent_categorical_psi(ref: ReferenceProfile, name: str, window: list[dict[str, Any]]):
    counts = ref.features[name].category_counts
    vocab = sorted(counts, key=lambda c: (-counts[c], c))
    values = [r[name] for r in window if isinstance(r.get(name), str)]
    hist = [values.count(c) for c in vocab]
    hist.append(len(values) - sum(hist))
    return hist, psi_oracle([counts[c] for c in vocab] + [0], hist)


@pytest.mark.parametrize("which", ["clean", "drifted"])
def test_engine_psi_equals_independent_computation(which, request, reference) -> None:
    records, reports = request.getfixturevalue(which)
    for k, report in enumerate(reports):
        window = records[k * WINDOW:(k + 1) * WINDOW]
        for name in ("age", "income", "tenure_months", "basket_value", "session_seconds"):
            hist, value = independent_numeric_psi(reference, name, window)
            assert report.features[name].histogram == hist
            assert report.drift[name].statistic == pytest.approx(value, rel=1e-9, abs=1e-12)
            assert report.drift[name].sample_size == sum(hist)
            assert value == pytest.approx(psi(reference.features[name].bin_counts, hist), rel=1e-9)
        for name in ("country", "device"):
            hist, value = independent_categorical_psi(reference, name, window)
            assert report.features[name].histogram == hist
            assert report.drift[name].statistic == pytest.approx(value, rel=1e-9, abs=1e-12)
    if which == "drifted":  # the comparison above is not between two zeros
        assert reports[0].drift["age"].statistic > 0.25


# ---------------------------------------------------------------- boolean drift (bugs)


def boolean_setup(rows: list[dict[str, Any]]):
    spec = parse_spec({"version": 1, "name": "t", "streams": [{
        "name": "s", "min_samples": 10, "windows": [{"name": "w", "kind": "count", "size": 100}],
        "features": [{"name": "b", "type": "boolean"}]}]})
    ref = build_profile(spec.streams[0], lambda: iter(rows), source={"kind": "test"})
    return Engine(spec, references={"s": ref}, clock=lambda: 0.0), ref


def test_boolean_drift_false_majority_identical_distribution() -> None:
    # 'false' is the majority: reference order ['false', 'true'] matches the window's by luck
    engine, _ = boolean_setup([{"b": i % 10 < 3} for i in range(1000)])
    [report] = engine.process("s", [{"record_id": i, "b": i % 10 < 3} for i in range(100)])
    assert report.drift["b"].statistic == pytest.approx(0.0, abs=1e-12)
    assert report.alerts == []


def test_boolean_drift_true_majority_identical_distribution() -> None:
    rows = [{"b": i % 10 < 7} for i in range(1000)]
    engine, ref = boolean_setup(rows)
    [report] = engine.process("s", [{"record_id": i, "b": i % 10 < 7} for i in range(100)])
    counts = ref.features["b"].category_counts
    window = report.features["b"]
    by_label = dict(zip(window.histogram_labels, window.histogram, strict=True))
    expected = psi_oracle([counts["false"], counts["true"]], [by_label["false"], by_label["true"]])
    assert expected == pytest.approx(0.0, abs=1e-12)
    assert report.drift["b"].statistic == pytest.approx(expected, abs=1e-9)
    assert report.alerts == []


def test_boolean_single_valued_reference_does_not_crash() -> None:
    engine, _ = boolean_setup([{"b": True}] * 100)
    [report] = engine.process("s", [{"record_id": i, "b": True} for i in range(100)])
    assert report.drift["b"].statistic == pytest.approx(0.0, abs=1e-12)
