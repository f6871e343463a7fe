"""The engine: per-feature window semantics, window closing, reports vs numpy, drift and alerts."""

from __future__ import annotations

import copy
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from scipy import stats
from scipy.spatial import distance

from monitor.checks import MISSING, FeatureState
from monitor.drift import psi
from monitor.drift.methods import METHODS
from monitor.engine import Monitor
from monitor.reference import ReferenceProfile, build_profile
from monitor.report import WindowReport
from monitor.spec import DEFAULT_THRESHOLDS, FeatureSpec, MonitorSpec, parse_spec
from monitor.stats import OTHER
from monitor.testing.synthetic import Scenario, SyntheticFeatures

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


# ---------------------------------------------------------------- FeatureState


def test_numeric_feature_window_counting() -> None:
    fw = FeatureState(FeatureSpec(name="x", type="numeric", range={"min": 0, "max": 10}))
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
                        "out_of_domain_ratio": 2 / 13,
                        # no reference (unseen categories) and no pattern (format) apply here
                        "unseen_category_ratio": None, "format_violation_ratio": None}
    assert r.histogram is None  # no reference bins


def test_numeric_open_range() -> None:
    fw = FeatureState(FeatureSpec(name="x", type="numeric", range={"min": 0}))
    for v in [-0.001, 0, 1e300]:
        fw.update(v)
    assert fw.result().out_of_domain == 1


def test_categorical_feature_window_counting() -> None:
    fw = FeatureState(FeatureSpec(name="c", type="categorical", categories=["a", "b", "1"]))
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
    fw = FeatureState(FeatureSpec(name="c", type="categorical"))
    for v in ["x", "y", 3]:
        fw.update(v)
    r = fw.result()
    assert (r.out_of_domain, r.type_violations) == (0, 0)
    # no reference and no configured categories: the categories seen are learnt (bounded)
    assert r.histogram == [1, 1, 1, 0] and r.histogram_labels == ["x", "y", "3", OTHER]


def test_boolean_feature_window_counting() -> None:
    fw = FeatureState(FeatureSpec(name="b", type="boolean"))
    for v in [True, False, True, 1, 0, "true", None]:
        fw.update(v)
    r = fw.result()
    assert (r.count, r.missing, r.type_violations, r.out_of_domain) == (7, 1, 3, 0)
    assert r.histogram_labels == ["false", "true", OTHER]
    assert r.histogram == [1, 2, 0]


def test_empty_feature_window() -> None:
    r = FeatureState(FeatureSpec(name="x", type="numeric")).result()
    assert r.count == 0
    assert r.ratios == {"missing_ratio": None, "type_violation_ratio": None, "out_of_domain_ratio": None,
                        "unseen_category_ratio": None, "format_violation_ratio": None}
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
    engine = Monitor(small_spec({"name": "w7", "kind": "count", "size": 7}), clock=lambda: 100.0)
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
    engine = Monitor(small_spec({"name": "w", "kind": "count", "size": size}), clock=lambda: 0.0)
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
    spec = small_spec({"name": "w", "kind": "count", "size": 40}, min_samples=40)  # 40 records: enough here
    engine = Monitor(spec, clock=lambda: 0.0)
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
    engine = Monitor(small_spec({"name": "w", "kind": "count", "size": 3}), clock=lambda: 0.0)
    with pytest.raises(KeyError):
        engine.process("nope", [{"record_id": 1}])


# ---------------------------------------------------------------- time windows


class FakeClock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


PROCESSING = {"time": {"mode": "processing"}}


def test_time_windows_close_on_tick() -> None:
    # processing time: the worker's clock places records in windows and closes them on tick()
    clock = FakeClock(1000.0)
    engine = Monitor(small_spec({"name": "t10", "kind": "time", "seconds": 10}, **PROCESSING), clock=clock)
    clock.t = 1001.0
    assert engine.process("s", messy_records(5, seed=1)) == []
    clock.t = 1009.999
    assert engine.tick() == []
    assert engine.process("s", messy_records(3, seed=2)) == []
    [report] = engine.tick(1010.0)  # the window [1000, 1010) ends
    assert report.count == 8
    # partial: the first record arrived after the window's start (1001 > 1000)
    assert report.window == {"name": "t10", "kind": "time", "index": 100, "partial": True,
                             "start": "1970-01-01T00:16:40.000Z", "end": "1970-01-01T00:16:50.000Z"}
    assert report.features["x"].count == 8
    # nothing left open: a second tick closes nothing
    assert engine.tick(1010.5) == []
    # an empty window is reported too when it expires (a stalled stream is news), with no alert
    [empty] = engine.tick(1025.0)
    assert (empty.window["index"], empty.count, empty.features["x"].count) == (101, 0, 0)
    assert empty.alerts == () and empty.features["x"].ratios["missing_ratio"] is None


def test_time_window_closed_by_process_when_clock_passed() -> None:
    clock = FakeClock(0.0)
    engine = Monitor(small_spec({"name": "t10", "kind": "time", "seconds": 10}, **PROCESSING), clock=clock)
    engine.process("s", messy_records(4, seed=3))
    clock.t = 12.0
    # the next batch first closes the expired window, then goes into [10, 20)
    [report] = engine.process("s", messy_records(6, seed=4))
    assert report.count == 4 and report.window["index"] == 0
    clock.t = 20.0
    [report] = engine.tick()  # uses the injected clock
    assert report.count == 6 and report.window["index"] == 1
    assert report.window["start"] == "1970-01-01T00:00:10.000Z"


def test_event_time_windows_close_on_watermark_minus_lateness() -> None:
    # event time (the default): the records' event_time places them; a window closes once the latest
    # event time seen minus allowed_lateness_seconds (30 by default) passes its end; tick() does not
    clock = FakeClock(0.0)
    engine = Monitor(small_spec({"name": "t10", "kind": "time", "seconds": 10}), clock=clock)
    recs = messy_records(8, seed=5)
    for rec, t in zip(recs, [1.0, 2.0, 9.5, 15.0, 39.9, 12.0, 9.95, 40.0], strict=True):
        rec["event_time"] = t
    assert engine.process("s", recs[:5]) == []          # watermark 39.9: horizon 9.9 < 10
    clock.t = 1e6
    assert engine.tick() == []                          # the clock does not close event-time windows
    reports = engine.process("s", recs[5:])             # watermark 40: [0, 10) closes; 9.95 was not late
    assert [(r.window["index"], r.count) for r in reports] == [(0, 4)]
    assert reports[0].features["x"].count == 4 and reports[0].records["late"] == 0
    assert reports[0].window["start"] == "1970-01-01T00:00:00.000Z"


def test_count_and_time_windows_together() -> None:
    spec = parse_spec({
        "version": 1, "name": "t",
        "streams": [{"name": "s", "time": {"mode": "processing"},
                     "windows": [{"name": "c5", "kind": "count", "size": 5},
                                 {"name": "t60", "kind": "time", "seconds": 60}],
                     "features": [{"name": "x", "type": "numeric"}]}],
    })
    clock = FakeClock(0.0)
    engine = Monitor(spec, clock=clock)
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
    engine = Monitor(spec, references={"features": ref}, clock=lambda: 0.0)
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
        assert report.alerts == ()
        for name in ("age", "income", "tenure_months", "basket_value", "session_seconds", "country",
                     "device"):
            d = report.drift[name]["psi"]
            assert d.drifted is False, (name, d)
            assert 0.0 <= d.statistic < 0.05
            assert d.sample_size >= 200
            for method, other in report.drift[name].items():  # PSI and the method chosen for the size
                assert other.drifted is False, (name, method, other)
        # coupon_code is present in ~5% of records: below min_samples (200), so no verdict
        assert report.drift["coupon_code"]
        assert all(d.drifted is None for d in report.drift["coupon_code"].values())


def test_drifted_windows_alert_on_age_and_country(drifted) -> None:
    _, reports = drifted
    assert len(reports) == 3
    for report in reports:
        assert {"age", "country"} <= psi_alerts(report)
        for name in ("age", "country"):
            d = report.drift[name]["psi"]
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
        assert report.drift
        for name, methods in report.drift.items():
            assert methods, name
            for method, d in methods.items():
                assert d.drifted is None and d.statistic is None and d.p_value is None, (name, method)
                assert d.sample_size <= 150
        assert report.drift["age"]["psi"].sample_size == 150
        assert report.drift["age"].keys() == {"psi", "ks"}  # what would run, had there been enough data
        assert not psi_alerts(report)
        assert not [a for a in report.alerts if a.check in METHODS]  # "insufficient data" never alerts


def test_at_min_samples_drift_is_decided(deploy_spec, reference) -> None:
    spec = with_window(deploy_spec, size=300, min_samples=300)
    records = SyntheticFeatures(seed=5).records(300, scenario=Scenario(drift=True))
    [report] = run_windows(spec, reference, records)
    assert report.drift["age"]["psi"].sample_size == 300
    assert report.drift["age"]["psi"].drifted is True
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
            assert report.drift[name]["psi"].statistic == pytest.approx(value, rel=1e-9, abs=1e-12)
            assert report.drift[name]["psi"].sample_size == sum(hist)
            assert value == pytest.approx(psi(reference.features[name].bin_counts, hist), rel=1e-9)
        for name in ("country", "device"):
            hist, value = independent_categorical_psi(reference, name, window)
            assert report.features[name].histogram == hist
            assert report.drift[name]["psi"].statistic == pytest.approx(value, rel=1e-9, abs=1e-12)
    if which == "drifted":  # the comparison above is not between two zeros
        assert reports[0].drift["age"]["psi"].statistic > 0.25


# ---------------------------------------------------------------- boolean drift (bugs)


def boolean_setup(rows: list[dict[str, Any]]):
    spec = parse_spec({"version": 1, "name": "t", "streams": [{
        "name": "s", "min_samples": 10, "windows": [{"name": "w", "kind": "count", "size": 100}],
        "features": [{"name": "b", "type": "boolean"}]}]})
    ref = build_profile(spec.streams[0], lambda: iter(rows), source={"kind": "test"})
    return Monitor(spec, references={"s": ref}, clock=lambda: 0.0), ref


def test_boolean_drift_false_majority_identical_distribution() -> None:
    # 'false' is the majority: reference order ['false', 'true'] matches the window's by luck
    engine, _ = boolean_setup([{"b": i % 10 < 3} for i in range(1000)])
    [report] = engine.process("s", [{"record_id": i, "b": i % 10 < 3} for i in range(100)])
    assert report.drift["b"]["psi"].statistic == pytest.approx(0.0, abs=1e-12)
    assert report.alerts == ()


def test_boolean_drift_true_majority_identical_distribution() -> None:
    rows = [{"b": i % 10 < 7} for i in range(1000)]
    engine, ref = boolean_setup(rows)
    [report] = engine.process("s", [{"record_id": i, "b": i % 10 < 7} for i in range(100)])
    counts = ref.features["b"].category_counts
    window = report.features["b"]
    by_label = dict(zip(window.histogram_labels, window.histogram, strict=True))
    expected = psi_oracle([counts["false"], counts["true"]], [by_label["false"], by_label["true"]])
    assert expected == pytest.approx(0.0, abs=1e-12)
    assert report.drift["b"]["psi"].statistic == pytest.approx(expected, abs=1e-9)
    assert report.alerts == ()


def test_boolean_single_valued_reference_does_not_crash() -> None:
    engine, _ = boolean_setup([{"b": True}] * 100)
    [report] = engine.process("s", [{"record_id": i, "b": True} for i in range(100)])
    assert report.drift["b"]["psi"].statistic == pytest.approx(0.0, abs=1e-12)


# ---------------------------------------------------------------- record-level checks


def plain_records(ids: list[Any], **extra: Any) -> list[dict[str, Any]]:
    return [{"record_id": i, "x": 5.0, "c": "a", "flag": True, **extra} for i in ids]


def test_duplicates_alert_and_are_remembered_across_batches() -> None:
    engine = Monitor(small_spec({"name": "w100", "kind": "count", "size": 100}), clock=lambda: 0.0)
    assert engine.process("s", plain_records(list(range(60)))) == []
    # 3 ids of the previous batch again, and one repeated inside this batch: 4 duplicates in 100
    [r] = engine.process("s", plain_records([5, 17, 59, *range(100, 136), 100]))
    assert r.count == 100
    assert r.records["duplicates"] == 4 and r.records["duplicate_ratio"] == 0.04
    [a] = [a for a in r.alerts if a.check == "duplicate_ratio"]
    assert (a.feature, a.severity, a.value, a.threshold, a.sample_size) == (None, "warning", 0.04, 0.01, 100)
    # ids of the window before are still remembered: 6 in 100 is critical (>= 0.05)
    [r] = engine.process("s", plain_records([*range(200, 294), 0, 1, 2, 100, 101, 135]))
    [a] = [a for a in r.alerts if a.check == "duplicate_ratio"]
    assert (a.severity, a.value, a.threshold) == ("critical", 0.06, 0.05)
    # an integer id and its string spelling are different ids
    [r] = engine.process("s", plain_records([str(i) for i in range(100)]))
    assert r.records["duplicates"] == 0 and not [a for a in r.alerts if a.check == "duplicate_ratio"]


def test_duplicates_off_when_disabled() -> None:
    engine = Monitor(small_spec({"name": "w10", "kind": "count", "size": 10}, duplicates={"enabled": False}),
                    clock=lambda: 0.0)
    [r] = engine.process("s", plain_records([1] * 10))
    assert r.records["duplicates"] == 0 and r.records["duplicate_ratio"] == 0.0 and r.alerts == ()


def test_unexpected_fields_alert_with_their_names() -> None:
    spec = small_spec({"name": "w100", "kind": "count", "size": 100})
    records = plain_records(list(range(100)), schema_version=1, event_time=0)  # known fields
    for i in (3, 40, 77):
        records[i]["extra_a"] = 1
    records[50]["extra_b"] = "x"
    records[50]["extra_a"] = 2
    [r] = Monitor(spec, clock=lambda: 0.0).process("s", records)
    assert r.records["unexpected_field_ratio"] == 0.04
    assert r.records["unexpected_fields"] == {"extra_a": 4, "extra_b": 1}
    [a] = [a for a in r.alerts if a.check == "unexpected_field_ratio"]
    assert (a.feature, a.severity, a.value, a.threshold) == (None, "warning", 0.04, 0.01)
    assert a.details["unexpected_fields"] == {"extra_a": 4, "extra_b": 1}
    # allowed: not counted, no alert
    allowed = small_spec({"name": "w100", "kind": "count", "size": 100}, allow_extra_fields=True)
    [r] = Monitor(allowed, clock=lambda: 0.0).process("s", records)
    assert r.records["unexpected_field_ratio"] == 0.0 and r.records["unexpected_fields"] == {}
    assert not [a for a in r.alerts if a.check == "unexpected_field_ratio"]


def volume_reports(per_second: float, expected: float) -> list[WindowReport]:
    spec = small_spec({"name": "t10", "kind": "time", "seconds": 10}, volume={"expected_per_second": expected},
                      time={"allowed_lateness_seconds": 0})
    engine = Monitor(spec, clock=lambda: 0.0)
    n = int(30 * per_second)
    records = plain_records(list(range(n + 1)))
    for i, rec in enumerate(records):
        rec["event_time"] = i / per_second  # the last one, at 30 s, closes windows 0..2
    return engine.process("s", records)


@pytest.mark.parametrize(("per_second", "deviation", "severity"), [
    (1.0, 2.0, "critical"),   # a quarter of the expected 4/s: |log2(10 / 40)| = 2
    (2.0, 1.0, "warning"),    # half: 1
    (4.0, 0.0, None),         # as expected
    (16.0, 2.0, "critical"),  # four times too many
])
def test_volume_deviation_of_time_windows(per_second: float, deviation: float, severity: str | None) -> None:
    reports = volume_reports(per_second, expected=4.0)
    assert [r.window["index"] for r in reports] == [0, 1, 2]
    for r in reports:
        assert r.count == 10 * per_second
        assert r.records["expected_records"] == 40.0
        assert r.records["volume_deviation"] == pytest.approx(deviation, abs=1e-12)
        got = [(a.severity, a.threshold) for a in r.alerts if a.check == "volume_deviation"]
        assert got == ([] if severity is None else [(severity, 2.0 if severity == "critical" else 1.0)])


def test_count_windows_have_no_volume_check() -> None:
    spec = small_spec({"name": "w10", "kind": "count", "size": 10}, volume={"expected_per_second": 1000.0})
    [r] = Monitor(spec, clock=lambda: 0.0).process("s", plain_records(list(range(10))))
    assert r.records["volume_deviation"] is None and r.alerts == ()


# ---------------------------------------------------------------- drift methods

NUMERIC = ("age", "income", "tenure_months", "basket_value", "session_seconds")
CATEGORICAL = ("country", "device", "is_returning")


@pytest.fixture(scope="module")
def ref_rows() -> list[dict[str, Any]]:
    return SyntheticFeatures(seed=21).records(20_000)


@pytest.fixture(scope="module")
def reference20k(deploy_spec: MonitorSpec, ref_rows: list[dict[str, Any]]) -> ReferenceProfile:
    return build_profile(deploy_spec.streams[0], lambda: iter(ref_rows), source={"kind": "test"})


def numbers(rows: list[dict[str, Any]], name: str) -> np.ndarray:
    return np.array([float(r[name]) for r in rows if is_number(r.get(name))])


def test_auto_methods_for_large_windows_are_psi_and_distances(deploy_spec, reference20k, ref_rows) -> None:
    records = SyntheticFeatures(seed=22).records(WINDOW)
    [report] = run_windows(deploy_spec, reference20k, records)
    for name in NUMERIC:
        assert report.drift[name].keys() == {"psi", "wasserstein"}, name
        d = report.drift[name]["wasserstein"]
        ref, win = numbers(ref_rows, name), numbers(records, name)
        want = stats.wasserstein_distance(ref, win) / ref.std(ddof=1)
        # the reference is a 1001-level quantile summary: close to the raw-data distance, not equal
        assert d.statistic == pytest.approx(want, abs=2e-3), name
        assert d.p_value is None and d.threshold == DEFAULT_THRESHOLDS["wasserstein"].warning
        assert d.drifted is False and d.sample_size == win.size
        assert d.effect_size == pytest.approx((win.mean() - ref.mean()) / ref.std(ddof=1), rel=1e-6)
    for name in CATEGORICAL:
        assert report.drift[name].keys() == {"psi", "jensen_shannon"}, name
        d = report.drift[name]["jensen_shannon"]
        expected = reference20k.features[name].expected_histogram()
        actual = report.features[name].histogram
        assert expected is not None and actual is not None
        assert d.statistic == pytest.approx(distance.jensenshannon(expected, actual, base=2), rel=1e-9, abs=1e-12)
        assert d.drifted is False and d.threshold == 0.10
    # coupon_code: ~100 values, too few for a distance's default, and below min_samples
    assert report.drift["coupon_code"].keys() == {"psi", "chi_square"}


def small_window_spec(spec: MonitorSpec, size: int, **drift: Any) -> MonitorSpec:
    data = copy.deepcopy(spec.model_dump(exclude_none=True))
    data["streams"][0]["windows"] = [{"name": "w2000", "kind": "count", "size": size}]
    data["streams"][0]["drift"] = {**data["streams"][0].get("drift", {}), **drift}
    return parse_spec(data)


def floored_proportions(expected: list[int]) -> np.ndarray:
    p = np.asarray(expected, dtype=float) / sum(expected)
    p = np.where(p == 0, 1e-4, p)
    return p / p.sum()


@pytest.mark.parametrize("scenario", [Scenario(), Scenario(drift=True)], ids=["clean", "drifted"])
def test_auto_methods_for_small_windows_are_tests_corrected_across_features(
        deploy_spec, reference20k, ref_rows, scenario: Scenario) -> None:
    spec = small_window_spec(deploy_spec, 500)
    records = SyntheticFeatures(seed=23).records(1000, scenario=scenario)
    reports = run_windows(spec, reference20k, records)
    assert len(reports) == 2
    for k, report in enumerate(reports):
        window = records[k * 500:(k + 1) * 500]
        tests = []
        for name in NUMERIC:
            assert report.drift[name].keys() == {"psi", "ks"}, name
            d = report.drift[name]["ks"]
            ref, win = numbers(ref_rows, name), numbers(window, name)
            oracle = stats.ks_2samp(ref, win, method="asymp")
            assert d.statistic == pytest.approx(oracle.statistic, abs=2e-3), name  # one grid step of the summary
            assert d.sample_size == win.size and d.threshold == 0.01
            tests.append(d)
        for name in CATEGORICAL:
            assert report.drift[name].keys() == {"psi", "chi_square"}, name
            d = report.drift[name]["chi_square"]
            expected = reference20k.features[name].expected_histogram()
            actual = report.features[name].histogram
            assert expected is not None and actual is not None
            oracle = stats.chisquare(actual, sum(actual) * floored_proportions(expected))
            assert d.statistic == pytest.approx(oracle.statistic, rel=1e-9)
            assert d.p_value == pytest.approx(oracle.pvalue, rel=1e-6, abs=1e-300)
            tests.append(d)
        assert report.drift["coupon_code"]["chi_square"].p_value is None  # did not run: not in the family
        # Benjamini-Hochberg over the window's tests, as scipy computes it
        ps = np.array([d.p_value for d in tests], dtype=float)
        adjusted = stats.false_discovery_control(ps)
        assert [d.drifted for d in tests] == (adjusted <= 0.01).tolist()
        np.testing.assert_allclose([d.p_value_adjusted for d in tests], adjusted, rtol=1e-12)
        alerted = {a.feature for a in report.alerts if a.check in ("ks", "chi_square")}
        assert alerted == {name for name, d in zip(NUMERIC + CATEGORICAL, tests, strict=True) if d.drifted}
        if scenario.drift:
            assert {"age", "country"} <= alerted
            for a in report.alerts:
                if a.check in ("ks", "chi_square"):
                    # one scale: the corrected p-value against alpha, bad below; the statistic in the details
                    d = report.drift[a.feature][a.check]
                    assert a.severity == "warning" and a.direction == "below"
                    assert (a.value, a.threshold) == (d.p_value_adjusted, 0.01) and a.value <= a.threshold
                    assert (a.details["statistic"], a.details["p_value"]) == (d.statistic, d.p_value)
                    assert a.details["effect_size"] == d.effect_size and a.details["correction"] == "bh"
                elif a.check == "psi":
                    assert a.direction == "above" and a.value >= a.threshold
        else:
            assert alerted == set()


def shifted_spec(correction: str) -> MonitorSpec:
    return parse_spec({"version": 1, "name": "t", "streams": [{
        "name": "s", "min_samples": 100, "drift": {"correction": correction},
        "windows": [{"name": "w", "kind": "count", "size": 500}],
        "features": [{"name": n, "type": "numeric"} for n in "abcd"]}]})


def test_multiple_testing_correction_changes_the_rejections() -> None:
    rng = np.random.default_rng(0)
    ref_values = {n: rng.normal(size=20_000) for n in "abcd"}
    rows = [{n: float(ref_values[n][i]) for n in "abcd"} for i in range(20_000)]
    ref = build_profile(shifted_spec("none").streams[0], lambda: iter(rows), source={"kind": "t"})
    base = stats.norm.ppf((np.arange(500) + 0.5) / 500)
    # a: no shift; b, c: p-values between alpha / 4 and alpha; d: an obvious shift
    shifts = {"a": 0.0, "b": 0.19, "c": 0.20, "d": 1.0}
    window = [{"record_id": i, **{n: float(base[i] + s) for n, s in shifts.items()}} for i in range(500)]
    decided: dict[str, dict[str, bool | None]] = {}
    p_values: dict[str, dict[str, float | None]] = {}
    for correction in ("none", "bonferroni", "bh"):
        [r] = Monitor(shifted_spec(correction), references={"s": ref}, clock=lambda: 0.0).process("s", window)
        decided[correction] = {n: r.drift[n]["ks"].drifted for n in "abcd"}
        p_values[correction] = {n: r.drift[n]["ks"].p_value for n in "abcd"}
        assert {a.feature for a in r.alerts if a.check == "ks"} == {n for n, d in decided[correction].items() if d}
        # every ks verdict, raised or not, compares the corrected p-value with alpha: value <= 0.01 iff drifted
        verdicts = {o.feature: o for o in r.observations if o.check == "ks"}
        assert verdicts.keys() == set("abcd")
        for n, o in verdicts.items():
            d = r.drift[n]["ks"]
            assert (o.value, o.threshold, o.direction) == (d.p_value_adjusted, 0.01, "below"), (correction, n)
            assert (o.value <= o.threshold) is d.drifted is (o.severity is not None), (correction, n)
    assert p_values["none"] == p_values["bonferroni"] == p_values["bh"]
    ps = p_values["none"]
    assert all(p is not None for p in ps.values())
    assert 0.01 / 4 < ps["b"] <= 0.01 and 0.01 / 4 < ps["c"] <= 0.01 and ps["d"] < 1e-9 and ps["a"] > 0.5
    assert decided["none"] == {"a": False, "b": True, "c": True, "d": True}
    assert decided["bonferroni"] == {"a": False, "b": False, "c": False, "d": True}
    assert decided["bh"] == {"a": False, "b": True, "c": True, "d": True}  # 0.0061 <= 3/4 alpha


def test_stationary_stream_raises_no_alert(deploy_spec, reference20k) -> None:
    windows = 0
    for seed in range(100, 110):
        records = SyntheticFeatures(seed=seed).records(10 * WINDOW)
        engine = Monitor(deploy_spec, references={"features": reference20k}, clock=lambda: 0.0)
        reports = engine.process("features", records)
        assert [r.window["index"] for r in reports] == list(range(10))
        for r in reports:
            windows += 1
            assert r.alerts == (), (seed, r.window["index"], [a.summary for a in r.alerts])
            assert r.drift["age"].keys() == {"psi", "wasserstein"}
    assert windows == 100


def test_drifted_windows_alert_on_age_and_country_with_every_auto_method(deploy_spec, reference20k) -> None:
    records = SyntheticFeatures(seed=24).records(2 * WINDOW, scenario=Scenario(drift=True))
    reports = run_windows(deploy_spec, reference20k, records)
    assert len(reports) == 2
    for report in reports:
        got = {(a.feature, a.check, a.severity) for a in report.alerts if a.check in METHODS}
        assert got == {("age", "psi", "critical"), ("age", "wasserstein", "critical"),
                       ("country", "psi", "critical"), ("country", "jensen_shannon", "critical")}
        assert report.drift["age"]["wasserstein"].effect_size == pytest.approx(8 / 12, abs=0.15)
        assert report.drift["country"]["jensen_shannon"].effect_size > 0.2  # Cramér's V


def test_format_and_unseen_category_alerts() -> None:
    spec = parse_spec({"version": 1, "name": "t", "streams": [{
        "name": "s", "windows": [{"name": "w100", "kind": "count", "size": 100}],
        "features": [{"name": "code", "type": "categorical", "pattern": "[A-Z]{2}"},
                     {"name": "note", "type": "string", "pattern": "[a-z ]*"}]}]})
    ref = build_profile(spec.streams[0], lambda: iter([{"code": "US", "note": "x"}, {"code": "DE", "note": "y"}]),
                        source={"kind": "test"})
    records = [{"record_id": i, "code": "US" if i % 2 else "DE", "note": "fine"} for i in range(100)]
    for i in range(6):
        records[i]["code"] = "usa"      # 6 format violations, also unseen in the reference
    records[10]["code"] = "FR"          # well formed but unseen: 7 unseen in all
    records[20]["note"] = "Not Fine!"   # 1 format violation of the string feature
    [r] = Monitor(spec, references={"s": ref}, clock=lambda: 0.0).process("s", records)
    code, note = r.features["code"], r.features["note"]
    assert (code.format_violations, code.unseen, note.format_violations) == (6, 7, 1)
    got = {(a.feature, a.check): (a.severity, a.value) for a in r.alerts if a.check not in METHODS}
    assert got == {("code", "format_violation_ratio"): ("critical", 0.06),
                   ("code", "unseen_category_ratio"): ("critical", 0.07),
                   ("note", "format_violation_ratio"): ("warning", 0.01)}
    assert "note" not in r.drift  # free text has no drift
    assert {a.check for a in r.alerts if a.feature == "code" and a.check in METHODS} == {"psi", "chi_square"}
