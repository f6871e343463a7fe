"""Model performance accumulators and CBPE: numpy/scipy oracles, merge/state properties, estimation accuracy.

Run with ``-s`` to see the measured CBPE estimation errors.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import mannwhitneyu

from monitor.performance import (
    DEFAULT_SCORE_BINS,
    LOG_LOSS_EPS,
    BinaryPerformance,
    CBPEstimator,
    IsotonicCalibrator,
    MulticlassPerformance,
    RegressionPerformance,
)
from monitor.stats import OTHER

FAST = settings(max_examples=120, deadline=None)

# ---------------------------------------------------------------- oracles (numpy / scipy only)


def _binary_oracle(y: np.ndarray, s: np.ndarray, threshold: float = 0.5) -> dict[str, float | None]:
    y = y.astype(bool)
    pred = s >= threshold
    tp = int(np.sum(pred & y))
    fp = int(np.sum(pred & ~y))
    fn = int(np.sum(~pred & y))
    tn = int(np.sum(~pred & ~y))
    p = np.clip(s, 1e-15, 1 - 1e-15)
    return {
        "count": y.size,
        "positives": int(y.sum()),
        "predicted_positives": int(pred.sum()),
        "accuracy": float(np.mean(pred == y)),
        "precision": tp / (tp + fp) if tp + fp else None,
        "recall": tp / (tp + fn) if tp + fn else None,
        "f1": 2 * tp / (2 * tp + fp + fn) if 2 * tp + fp + fn else None,
        "log_loss": float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))),
        "brier": float(np.mean((s - y) ** 2)),
        "tn": tn,
    }


def _exact_auc(y: np.ndarray, s: np.ndarray) -> float:
    """Rank-based AUC: Mann-Whitney U of the positives over the negatives, ties counting one half."""
    pos, neg = s[y == 1], s[y == 0]
    return float(mannwhitneyu(pos, neg).statistic) / (pos.size * neg.size)


def _ece_oracle(y: np.ndarray, s: np.ndarray, bins: int = 10) -> float:
    idx = np.minimum(np.floor(s * bins).astype(int), bins - 1)
    total = 0.0
    for b in range(bins):
        m = idx == b
        if m.any():
            total += m.sum() / s.size * abs(y[m].mean() - s[m].mean())
    return total


def _nannyml_expected_auc(raw: np.ndarray, p: np.ndarray) -> float:
    """NannyML's expected ROC AUC: rank by the raw score, cumulate calibrated p as TP and 1-p as FP."""
    q = p[np.argsort(raw, kind="stable")[::-1]]
    tps = np.r_[0.0, np.cumsum(q)]
    fps = np.r_[0.0, np.cumsum(1.0 - q)]
    return float(np.trapezoid(tps / tps[-1], fps / fps[-1]))


def _pav(y: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Textbook pool-adjacent-violators (non-decreasing, weighted)."""
    blocks: list[list[float]] = []  # [value, weight, size]
    for yi, wi in zip(y.tolist(), w.tolist(), strict=True):
        blocks.append([yi, wi, 1])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            v2, w2, n2 = blocks.pop()
            v1, w1, n1 = blocks.pop()
            blocks.append([(v1 * w1 + v2 * w2) / (w1 + w2), w1 + w2, n1 + n2])
    return np.concatenate([np.full(int(n), v) for v, _, n in blocks])


def _assert_close(a: Any, b: Any, rel: float = 1e-9, abs_: float = 1e-9) -> None:
    """Recursive comparison: exact for ints/None/str, approximate for floats."""
    if isinstance(a, dict):
        assert isinstance(b, dict)
        assert a.keys() == b.keys()
        for k in a:
            _assert_close(a[k], b[k], rel, abs_)
    elif isinstance(a, list):
        assert isinstance(b, list)
        assert len(a) == len(b)
        for x, z in zip(a, b, strict=True):
            _assert_close(x, z, rel, abs_)
    elif isinstance(a, float) or isinstance(b, float):
        assert a is not None and b is not None, (a, b)
        assert math.isclose(a, b, rel_tol=rel, abs_tol=abs_), (a, b)
    else:
        assert a == b, (a, b)


def _json_round_trip(state: dict[str, Any]) -> dict[str, Any]:
    return orjson.loads(orjson.dumps(state))


# ---------------------------------------------------------------- BinaryPerformance vs numpy


@pytest.mark.parametrize(("seed", "n", "threshold", "a", "b"),
                         [(0, 5000, 0.5, 2.0, 2.0), (1, 3000, 0.3, 0.5, 0.5), (2, 800, 0.7, 1.0, 3.0),
                          (3, 20000, 0.5, 5.0, 1.0)])
def test_binary_matches_numpy(seed: int, n: int, threshold: float, a: float, b: float) -> None:
    rng = np.random.default_rng(seed)
    s = rng.beta(a, b, n)
    y = (rng.random(n) < s).astype(int)
    bp = BinaryPerformance(threshold)
    bp.update_many(y, s)
    got = bp.get()
    want = _binary_oracle(y, s, threshold)
    assert got is not None
    for key in ("count", "positives", "predicted_positives"):
        assert got[key] == want[key]
    for key in ("accuracy", "precision", "recall", "f1"):
        assert got[key] == pytest.approx(want[key], rel=1e-15, abs=0)
    for key in ("log_loss", "brier"):
        assert got[key] == pytest.approx(want[key], rel=1e-12)
    assert bp.tn == want["tn"]
    assert got["ece"] == pytest.approx(_ece_oracle(y, s), rel=1e-12, abs=1e-15)
    # histogram AUC vs the exact rank AUC: within the documented same-bin bound
    exact = _exact_auc(y, s)
    bound = bp.auc_resolution_bound
    assert bound is not None
    assert abs(got["roc_auc"] - exact) <= bound + 1e-12
    assert bound < 1.0 / DEFAULT_SCORE_BINS  # smooth scores: about 1/(2 n_bins) at most
    # one update per pair gives the same accumulator (up to float summation order)
    one = BinaryPerformance(threshold)
    for yi, si in zip(y[:500].tolist(), s[:500].tolist(), strict=True):
        one.update(yi, si)
    batch = BinaryPerformance(threshold)
    batch.update_many(y[:500], s[:500])
    _assert_close(one.to_state(), batch.to_state(), rel=1e-12, abs_=1e-12)


def test_binary_auc_exact_when_no_bin_is_shared() -> None:
    rng = np.random.default_rng(5)
    # distinct bin centres: no positive shares a bin with a negative, so the histogram AUC is exact
    s = (rng.permutation(DEFAULT_SCORE_BINS)[:400] + 0.5) / DEFAULT_SCORE_BINS
    y = (rng.random(400) < s).astype(int)
    bp = BinaryPerformance()
    bp.update_many(y, s)
    assert bp.auc_resolution_bound == 0.0
    assert bp.roc_auc == pytest.approx(_exact_auc(y, s), abs=1e-12)
    # equal scores are ties for both
    bp2 = BinaryPerformance()
    bp2.update_many([1, 0, 1, 0], [0.3, 0.3, 0.9, 0.1])
    assert bp2.roc_auc == pytest.approx(_exact_auc(np.array([1, 0, 1, 0]), np.array([0.3, 0.3, 0.9, 0.1])))
    assert bp2.roc_auc == pytest.approx(0.875)
    assert orjson.loads(orjson.dumps(bp2.get())) == bp2.get()


def test_binary_auc_resolution_error_is_the_documented_worst_case() -> None:
    # perfectly separated scores inside one bin: exact AUC 1, the histogram sees only ties
    y = np.array([1, 1, 0, 0])
    s = np.array([0.50040, 0.50030, 0.50020, 0.50010])
    bp = BinaryPerformance()
    bp.update_many(y, s)
    assert _exact_auc(y, s) == 1.0
    assert bp.roc_auc == 0.5
    assert bp.auc_resolution_bound == 0.5
    # a finer histogram separates them
    fine = BinaryPerformance(n_bins=100_000)
    fine.update_many(y, s)
    assert fine.roc_auc == 1.0
    assert fine.auc_resolution_bound == 0.0


def test_ece_by_hand() -> None:
    # bins: [0,.1): (0.05, 0) | [.1,.2): (0.15, 0), (0.15, 1) | [.8,.9): (0.85, 1) | [.9,1]: (0.95, 1), (0.95, 0)
    # ECE = (|0 - 0.05| + |1 - 0.30| + |1 - 0.85| + |1 - 1.90|) / 6 = 1.8 / 6
    bp = BinaryPerformance()
    for y, s in [(0, 0.05), (0, 0.15), (1, 0.15), (1, 0.85), (1, 0.95), (0, 0.95)]:
        bp.update(y, s)
    assert bp.get()["ece"] == pytest.approx(0.3, abs=1e-12)
    # a perfectly calibrated bin-wise example has ECE 0; score 1.0 falls in the last bin
    cal = BinaryPerformance()
    cal.update_many([0, 1, 1, 1], [0.5, 0.5, 1.0, 1.0])
    assert cal.get()["ece"] == pytest.approx(0.0, abs=1e-15)


def test_binary_small_example_and_merge() -> None:
    bp = BinaryPerformance()
    for y, s in [(0, 0.1), (0, 0.4), (1, 0.35), (1, 0.8)]:
        bp.update(y, s)
    r = bp.get()
    assert r is not None
    assert (r["accuracy"], r["precision"], r["recall"], r["f1"], r["roc_auc"]) == (0.75, 1.0, 0.5, 2 / 3, 0.75)
    assert r["brier"] == pytest.approx((0.01 + 0.16 + 0.65**2 + 0.04) / 4)


def test_binary_undefined_metrics_are_none() -> None:
    assert BinaryPerformance().get() is None
    only_neg = BinaryPerformance()
    only_neg.update_many([0, 0, 0], [0.1, 0.2, 0.3])
    r = only_neg.get()
    assert r is not None
    assert r["accuracy"] == 1.0
    assert r["precision"] is None  # nothing predicted positive
    assert r["recall"] is None  # no positive label
    assert r["f1"] is None
    assert r["roc_auc"] is None
    assert only_neg.auc_resolution_bound is None
    missed = BinaryPerformance()
    missed.update_many([1, 0], [0.2, 0.1])
    r = missed.get()
    assert r["precision"] is None
    assert r["recall"] == 0.0
    assert r["f1"] == 0.0
    assert r["roc_auc"] == 1.0


def test_log_loss_is_clipped() -> None:
    bp = BinaryPerformance()
    bp.update(1, 0.0)
    bp.update(0, 1.0)
    # clipped to [eps, 1 - eps]: -(log(eps) + log(1 - (1 - eps))) / 2 (1 - eps rounds in float)
    want = -(math.log(LOG_LOSS_EPS) + math.log(1.0 - (1.0 - LOG_LOSS_EPS))) / 2
    assert bp.get()["log_loss"] == pytest.approx(want, rel=1e-12)
    assert want == pytest.approx(-math.log(LOG_LOSS_EPS), rel=1e-2)
    assert math.isfinite(bp.get()["log_loss"])
    batch = BinaryPerformance()
    batch.update_many([1, 0], [0.0, 1.0])
    assert batch.get()["log_loss"] == pytest.approx(bp.get()["log_loss"], rel=1e-12)


@pytest.mark.parametrize(("y", "s"), [(1, 1.5), (0, -0.1), (1, float("nan")), (2, 0.5), (-1, 0.5), ("1", 0.5)])
def test_binary_rejects_bad_input(y: Any, s: float) -> None:
    bp = BinaryPerformance()
    with pytest.raises(ValueError):
        bp.update(y, s)
    with pytest.raises(ValueError):
        bp.update_many(np.array([0, y], dtype=object), np.array([0.5, s]))
    assert bp.n == 0


def test_binary_config_errors() -> None:
    with pytest.raises(ValueError, match="multiple"):
        BinaryPerformance(n_bins=1000, ece_bins=7)
    with pytest.raises(ValueError):
        BinaryPerformance(threshold=1.5)
    with pytest.raises(ValueError, match="length"):
        BinaryPerformance().update_many([0, 1], [0.5])
    a, b = BinaryPerformance(0.5), BinaryPerformance(0.6)
    with pytest.raises(ValueError, match="merge"):
        a += b
    with pytest.raises(ValueError, match="version"):
        BinaryPerformance.from_state({**a.to_state(), "schema_version": 2})


# ---------------------------------------------------------------- MulticlassPerformance vs numpy


def _multiclass_oracle(classes: list[Any], yt: list[Any], yp: list[Any]) -> dict[str, Any]:
    k = len(classes)
    index = {c: i for i, c in enumerate(classes)}
    ti = np.array([index.get(v, k) for v in yt])
    pi = np.array([index.get(v, k) for v in yp])
    cm = np.zeros((k + 1, k + 1), dtype=int)
    np.add.at(cm, (ti, pi), 1)
    prec, rec, f1 = [], [], []
    for i in range(k):
        tp, npred, sup = cm[i, i], cm[:, i].sum(), cm[i, :].sum()
        if npred + sup == 0:
            continue
        prec.append(tp / npred if npred else 0.0)
        rec.append(tp / sup if sup else 0.0)
        f1.append(2 * tp / (npred + sup))
    return {"cm": cm, "accuracy": float(np.mean([a == b for a, b in zip(yt, yp, strict=True)])),
            "macro_precision": float(np.mean(prec)) if prec else None,
            "macro_recall": float(np.mean(rec)) if rec else None,
            "macro_f1": float(np.mean(f1)) if f1 else None}


def test_multiclass_hand_example() -> None:
    mp = MulticlassPerformance(["cat", "dog"])
    mp.update_many(["cat", "cat", "dog", "bird"], ["cat", "dog", "dog", "bird"])
    r = mp.get()
    assert r is not None
    assert r["accuracy"] == 0.75  # bird/bird is right although both land in OTHER
    # cat: P = 1/1, R = 1/2; dog: P = 1/2, R = 1/1
    assert (r["macro_precision"], r["macro_recall"]) == (0.75, 0.75)
    assert r["macro_f1"] == pytest.approx((2 / 3 + 2 / 3) / 2)
    assert (r["other_true"], r["other_pred"]) == (1, 1)
    assert r["per_class"]["cat"] == {"precision": 1.0, "recall": 0.5, "f1": 2 / 3, "support": 2}
    assert orjson.loads(orjson.dumps(r)) == r  # plain JSON types, ready for a results topic
    mp.update("fish", "eel")  # two different unknown labels: a miss, counted in OTHER/OTHER
    assert mp.get()["accuracy"] == 0.6
    assert mp.confusion[2, 2] == 2


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_multiclass_matches_numpy(seed: int) -> None:
    rng = np.random.default_rng(seed)
    classes: list[Any] = ["a", "b", "c", 7]
    pool = np.array(["a", "b", "c", 7, "x", "y"], dtype=object)
    yt = rng.choice(pool, 3000, p=[0.3, 0.25, 0.2, 0.15, 0.05, 0.05]).tolist()
    yp = [t if rng.random() < 0.6 else pool[rng.integers(0, 6)] for t in yt]
    mp = MulticlassPerformance(classes)
    mp.update_many(yt, yp)
    want = _multiclass_oracle(classes, yt, yp)
    got = mp.get()
    assert got is not None
    assert np.array_equal(mp.confusion, want["cm"])
    for key in ("accuracy", "macro_precision", "macro_recall", "macro_f1"):
        assert got[key] == pytest.approx(want[key], rel=1e-12)
    one = MulticlassPerformance(classes)
    for t, p in zip(yt, yp, strict=True):
        one.update(t, p)
    assert one == mp


def test_multiclass_absent_classes_and_errors() -> None:
    mp = MulticlassPerformance(["a", "b", "c"])
    assert mp.get() is None
    mp.update_many(["a", "a"], ["a", "a"])  # b and c never occur: left out of the macro averages
    r = mp.get()
    assert (r["macro_precision"], r["macro_recall"], r["macro_f1"]) == (1.0, 1.0, 1.0)
    assert r["per_class"]["b"] == {"precision": None, "recall": None, "f1": None, "support": 0}
    only_other = MulticlassPerformance(["a"])
    only_other.update("z", "z")
    assert only_other.get()["macro_f1"] is None
    with pytest.raises(ValueError):
        MulticlassPerformance(["a", "a"])
    with pytest.raises(ValueError):
        MulticlassPerformance(["a", OTHER])
    other = MulticlassPerformance(["b", "a"])
    with pytest.raises(ValueError):
        mp += other
    with pytest.raises(ValueError):
        mp.update_many(["a"], [])


# ---------------------------------------------------------------- RegressionPerformance vs numpy


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_regression_matches_numpy(seed: int) -> None:
    rng = np.random.default_rng(seed)
    t = rng.normal(10.0, 5.0, 4000)
    t[rng.random(4000) < 0.05] = 0.0
    p = t + rng.normal(0.3, 2.0, 4000)
    rp = RegressionPerformance()
    rp.update_many(t, p)
    got = rp.get()
    e = p - t
    nz = t != 0
    assert got is not None
    assert got["count"] == 4000
    assert got["mae"] == pytest.approx(float(np.mean(np.abs(e))), rel=1e-12)
    assert got["rmse"] == pytest.approx(float(np.sqrt(np.mean(e**2))), rel=1e-12)
    assert got["mean_error"] == pytest.approx(float(np.mean(e)), rel=1e-10)
    assert got["mape"] == pytest.approx(float(np.mean(np.abs(e[nz]) / np.abs(t[nz]))), rel=1e-12)
    assert got["mape_skipped"] == int((~nz).sum()) > 0
    one = RegressionPerformance()
    for a, b in zip(t.tolist(), p.tolist(), strict=True):
        one.update(a, b)
    _assert_close(one.get(), got, rel=1e-10)


def test_regression_edge_cases() -> None:
    assert RegressionPerformance().get() is None
    rp = RegressionPerformance()
    rp.update_many([0.0, 0.0], [1.0, -3.0])
    r = rp.get()
    assert r == {"count": 2, "mae": 2.0, "rmse": math.sqrt(5.0), "mape": None, "mape_skipped": 2, "mean_error": -1.0}
    tiny = RegressionPerformance()  # a subnormal y_true: the denominator is floored, the state stays finite
    tiny.update(5e-324, 1.0)
    tiny.update_many([5e-324], [1.0])
    assert tiny.get()["mape"] == pytest.approx(1.0 / np.finfo(np.float64).eps)
    assert RegressionPerformance.from_state(_json_round_trip(tiny.to_state())) == tiny
    with pytest.raises(ValueError):
        rp.update(float("nan"), 1.0)
    with pytest.raises(ValueError):
        rp.update_many([1.0, 2.0], [1.0, float("inf")])
    with pytest.raises(ValueError):
        rp.update_many([1.0], [1.0, 2.0])
    assert rp.n == 2


# ---------------------------------------------------------------- merge = concatenation, state round trips

_scores = st.one_of(st.floats(0.0, 1.0), st.sampled_from([0.0, 0.5, 1.0, 0.0005, 0.9995, 0.1, 0.3]))
_pairs = st.lists(st.tuples(st.integers(0, 1), _scores), max_size=60)
_labels = st.sampled_from(["a", "b", "c", 1, "zz", 2])
_label_pairs = st.lists(st.tuples(_labels, _labels), max_size=60)
_reg_values = st.one_of(st.floats(-1e4, 1e4, allow_nan=False), st.sampled_from([0.0, 5e-324, -1e-300]))
_reg_pairs = st.lists(st.tuples(_reg_values, _reg_values), max_size=60)


def _binary(pairs: list[tuple[int, float]], *, batch: bool = True) -> BinaryPerformance:
    bp = BinaryPerformance()
    if batch:
        bp.update_many(np.array([y for y, _ in pairs], dtype=int), np.array([s for _, s in pairs], dtype=float))
    else:
        for y, s in pairs:
            bp.update(y, s)
    return bp


@FAST
@given(_pairs, _pairs)
def test_binary_merge_equals_concatenation(xs: list[tuple[int, float]], ys: list[tuple[int, float]]) -> None:
    merged = _binary(xs, batch=False)
    merged += _binary(ys)
    whole = _binary(xs + ys)
    a, b = merged.to_state(), whole.to_state()
    for key in ("tp", "fp", "fn", "tn", "pos_counts", "neg_counts"):
        assert a[key] == b[key]
    _assert_close(a, b)
    _assert_close(merged.get(), whole.get())
    assert (merged + BinaryPerformance()) == merged


@FAST
@given(_pairs)
def test_binary_state_round_trip(xs: list[tuple[int, float]]) -> None:
    bp = _binary(xs)
    back = BinaryPerformance.from_state(_json_round_trip(bp.to_state()))
    assert back == bp
    assert back.get() == bp.get()
    back.update(1, 0.25)  # the restored accumulator keeps working
    assert back.n == bp.n + 1


def _multiclass(pairs: list[tuple[Any, Any]]) -> MulticlassPerformance:
    mp = MulticlassPerformance(["a", "b", "c", 1])
    mp.update_many([t for t, _ in pairs], [p for _, p in pairs])
    return mp


@FAST
@given(_label_pairs, _label_pairs)
def test_multiclass_merge_and_state(xs: list[tuple[Any, Any]], ys: list[tuple[Any, Any]]) -> None:
    merged = _multiclass(xs)
    merged += _multiclass(ys)
    whole = _multiclass(xs + ys)
    assert merged == whole
    assert merged.get() == whole.get()
    back = MulticlassPerformance.from_state(_json_round_trip(whole.to_state()))
    assert back == whole
    assert back.get() == whole.get()


def _regression(pairs: list[tuple[float, float]]) -> RegressionPerformance:
    rp = RegressionPerformance()
    rp.update_many([t for t, _ in pairs], [p for _, p in pairs])
    return rp


@FAST
@given(_reg_pairs, _reg_pairs)
def test_regression_merge_and_state(xs: list[tuple[float, float]], ys: list[tuple[float, float]]) -> None:
    merged = _regression(xs)
    merged += _regression(ys)
    whole = _regression(xs + ys)
    assert (merged.n, merged.n_ape) == (whole.n, whole.n_ape)
    # sums of up to 120 terms of size <= 2e4 (APE terms up to ~1e9): summation order moves the last digits
    _assert_close(merged.get(), whole.get(), rel=1e-9, abs_=1e-6)
    back = RegressionPerformance.from_state(_json_round_trip(whole.to_state()))
    assert back == whole
    assert back.get() == whole.get()


def _cbpe(scores: list[float], cal: IsotonicCalibrator | None = None) -> CBPEstimator:
    est = CBPEstimator(calibrator=cal)
    est.update_many(np.array(scores, dtype=float))
    return est


_CAL = IsotonicCalibrator.fit(np.linspace(0, 1, 50) ** 2, (np.arange(50) % 3 != 0).astype(int))


@FAST
@given(st.lists(_scores, max_size=60), st.lists(_scores, max_size=60), st.booleans())
def test_cbpe_merge_and_state(xs: list[float], ys: list[float], calibrated: bool) -> None:
    cal = _CAL if calibrated else None
    merged = CBPEstimator(calibrator=cal)
    for s in xs:
        merged.update(s)
    merged += _cbpe(ys, cal)
    whole = _cbpe(xs + ys, cal)
    a, b = merged.to_state(), whole.to_state()
    for key in ("n_pred_pos", "n_pred_neg", "counts", "calibrator"):
        assert a[key] == b[key]
    _assert_close(a, b)
    _assert_close(merged.estimate(), whole.estimate())
    back = CBPEstimator.from_state(_json_round_trip(whole.to_state()))
    assert back == whole
    assert back.estimate() == whole.estimate()


@FAST
@given(st.lists(st.tuples(st.integers(0, 1), _scores), min_size=1, max_size=80))
def test_calibrator_state_round_trip_and_monotone(pairs: list[tuple[int, float]]) -> None:
    cal = IsotonicCalibrator.fit([s for _, s in pairs], [y for y, _ in pairs])
    back = IsotonicCalibrator.from_state(_json_round_trip(cal.to_state()))
    assert back == cal
    grid = np.linspace(0, 1, 101)
    out = back.transform(grid)
    assert np.array_equal(out, cal.transform(grid))
    assert np.all(np.diff(out) >= 0)
    assert np.all((out >= 0) & (out <= 1))


# ---------------------------------------------------------------- CBPE: expected confusion matrix and AUC


def test_cbpe_expected_confusion_matches_numpy() -> None:
    rng = np.random.default_rng(11)
    s = rng.beta(2, 3, 5000)
    est = CBPEstimator(0.4)
    est.update_many(s)
    r = est.estimate()
    pred = s >= 0.4
    etp, efp = s[pred].sum(), (1 - s[pred]).sum()
    efn, etn = s[~pred].sum(), (1 - s[~pred]).sum()
    assert r is not None
    assert r["count"] == 5000
    assert r["predicted_positives"] == int(pred.sum())
    for key, want in [("expected_tp", etp), ("expected_fp", efp), ("expected_fn", efn), ("expected_tn", etn),
                      ("accuracy", (etp + etn) / 5000), ("precision", etp / (etp + efp)),
                      ("recall", etp / (etp + efn)), ("f1", 2 * etp / (2 * etp + efp + efn)),
                      ("accuracy_std", math.sqrt(float(np.sum(s * (1 - s)))) / 5000)]:
        assert r[key] == pytest.approx(float(want), rel=1e-10), key
    # expected AUC: NannyML's trapezoid over the sorted scores, within the binning bound
    bound = est.auc_resolution_bound
    assert bound is not None
    assert bound < 1.0 / DEFAULT_SCORE_BINS
    assert abs(r["roc_auc"] - _nannyml_expected_auc(s, s)) <= bound + 1e-12
    # one update per score gives the same estimate
    one = CBPEstimator(0.4)
    for x in s[:300].tolist():
        one.update(x)
    batch = CBPEstimator(0.4)
    batch.update_many(s[:300])
    assert one.to_state()["counts"] == batch.to_state()["counts"]
    _assert_close(one.to_state(), batch.to_state(), rel=1e-12, abs_=1e-12)


def test_cbpe_auc_equals_nannyml_when_bins_are_distinct() -> None:
    rng = np.random.default_rng(3)
    s = (rng.permutation(DEFAULT_SCORE_BINS)[:300] + 0.5) / DEFAULT_SCORE_BINS
    est = CBPEstimator()
    est.update_many(s)
    # the only same-bin pairs are each prediction's own positive/negative halves (a tie, as in NannyML)
    assert est.estimate()["roc_auc"] == pytest.approx(_nannyml_expected_auc(s, s), abs=1e-12)
    cal = IsotonicCalibrator.fit(s, (rng.random(300) < s).astype(int))
    est_cal = CBPEstimator(calibrator=cal)
    est_cal.update_many(s)
    assert est_cal.estimate()["roc_auc"] == pytest.approx(_nannyml_expected_auc(s, cal.transform(s)), abs=1e-12)


def test_cbpe_undefined_and_errors() -> None:
    assert CBPEstimator().estimate() is None
    certain = CBPEstimator()
    certain.update_many([0.0, 0.1, 0.2])  # no positive prediction, p = 0 gives no expected positive weight
    r = certain.estimate()
    assert r["precision"] is None
    assert certain.get() == r
    zero = CBPEstimator()
    zero.update_many([0.0, 0.0])
    assert zero.estimate()["recall"] is None
    assert zero.estimate()["roc_auc"] is None
    assert zero.estimate()["f1"] is None
    with pytest.raises(ValueError, match="before the first update"):
        certain.calibrate([0.1, 0.9], [0, 1])
    with pytest.raises(ValueError):
        CBPEstimator().update(1.2)
    with pytest.raises(ValueError):
        CBPEstimator().update_many([0.2, float("nan")])
    plain, calibrated = CBPEstimator(), CBPEstimator(calibrator=_CAL)
    with pytest.raises(ValueError, match="calibrator"):
        plain += calibrated
    with pytest.raises(ValueError):
        IsotonicCalibrator([0.2, 0.1], [0.0, 1.0])
    with pytest.raises(ValueError):
        IsotonicCalibrator.fit([], [])


def test_calibrator_matches_textbook_pav() -> None:
    rng = np.random.default_rng(8)
    s = (rng.permutation(DEFAULT_SCORE_BINS)[:200] + 0.5) / DEFAULT_SCORE_BINS  # one score per bin
    y = (rng.random(200) < s**0.5).astype(int)
    cal = IsotonicCalibrator.fit(s, y)
    order = np.argsort(s)
    want = _pav(y[order].astype(float), np.ones(200))
    assert np.allclose(cal.transform(s[order]), want, atol=1e-12)


def test_calibrator_is_bounded() -> None:
    rng = np.random.default_rng(9)
    s = rng.random(200_000)
    y = (rng.random(200_000) < np.sin(6 * s) ** 2).astype(int)  # non-monotone truth: many pooled runs
    cal = IsotonicCalibrator.fit(s, y, n_bins=100)
    assert len(cal.x) <= 200
    assert len(orjson.dumps(cal.to_state())) < 10_000


# ---------------------------------------------------------------- CBPE estimation accuracy on synthetic models

WINDOWS, WINDOW = 50, 2000


def _beta22(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.beta(2.0, 2.0, n)


def _mixture(rng: np.random.Generator, n: int) -> np.ndarray:
    hi = rng.random(n) < 0.3
    return np.where(hi, rng.beta(5.0, 1.5, n), rng.beta(1.0, 4.0, n))


def _estimation_errors(draw: Any, transform: Any = None, calibrator: IsotonicCalibrator | None = None,
                       seed0: int = 1000) -> dict[str, np.ndarray]:
    """Per window: estimated minus realised metric (50 seeded windows of 2,000 predictions)."""
    errs: dict[str, list[float]] = {k: [] for k in ("accuracy", "roc_auc", "precision", "recall", "f1", "z")}
    for w in range(WINDOWS):
        rng = np.random.default_rng(seed0 + w)
        p_true = draw(rng, WINDOW)
        y = (rng.random(WINDOW) < p_true).astype(int)  # labels drawn from the true probabilities
        score = p_true if transform is None else transform(p_true)
        est = CBPEstimator(calibrator=calibrator)
        est.update_many(score)
        e = est.estimate()
        real = BinaryPerformance()
        real.update_many(y, score)
        r = real.get()
        assert e is not None and r is not None
        errs["accuracy"].append(e["accuracy"] - r["accuracy"])
        errs["roc_auc"].append(e["roc_auc"] - _exact_auc(y, score))
        for k in ("precision", "recall", "f1"):
            errs[k].append(e[k] - r[k])
        errs["z"].append((e["accuracy"] - r["accuracy"]) / e["accuracy_std"])
    return {k: np.asarray(v) for k, v in errs.items()}


def _report(name: str, errs: dict[str, np.ndarray]) -> dict[str, float]:
    mae = {k: float(np.mean(np.abs(v))) for k, v in errs.items() if k != "z"}
    bias = {k: float(np.mean(v)) for k, v in errs.items() if k != "z"}
    within = float(np.mean(np.abs(errs["z"]) <= 2.0))
    print(f"\nCBPE {name}: mean |estimated - realised| over {WINDOWS} windows of {WINDOW}: "
          + ", ".join(f"{k} {v:.4f}" for k, v in mae.items())
          + " | mean signed error: " + ", ".join(f"{k} {v:+.4f}" for k, v in bias.items())
          + f" | realised accuracy within 2 accuracy_std: {within:.0%}")
    return mae


@pytest.mark.parametrize(("name", "draw"), [("Beta(2,2)", _beta22), ("mixture", _mixture)])
def test_cbpe_calibrated_model_estimates_realised_performance(name: str, draw: Any) -> None:
    errs = _estimation_errors(draw)
    mae = _report(f"calibrated {name}", errs)
    assert mae["accuracy"] < 0.02
    assert mae["roc_auc"] < 0.03
    for k in ("precision", "recall", "f1"):
        assert mae[k] < 0.03, k
    assert abs(float(np.mean(errs["accuracy"]))) < 0.01  # unbiased, not just small
    assert np.mean(np.abs(errs["z"]) <= 2.0) >= 0.8  # accuracy_std is the right noise scale


def test_cbpe_miscalibrated_model_needs_calibration() -> None:
    def cube(p: np.ndarray) -> np.ndarray:
        return p**3  # same ranking (same realised AUC), badly overconfident towards 0

    raw = _report("miscalibrated s**3, no calibration", _estimation_errors(_beta22, cube))
    assert raw["accuracy"] > 0.1
    assert raw["roc_auc"] > 0.05
    # calibrate on labelled reference data from the same model (independent seed)
    rng = np.random.default_rng(7)
    ref_p = _beta22(rng, 20_000)
    ref_y = (rng.random(20_000) < ref_p).astype(int)
    est = CBPEstimator()
    cal = est.calibrate(cube(ref_p), ref_y)
    assert est.calibrator is cal
    fixed = _report("miscalibrated s**3, isotonic calibration", _estimation_errors(_beta22, cube, cal))
    assert fixed["accuracy"] < 0.02
    assert fixed["roc_auc"] < 0.03
    assert fixed["accuracy"] < raw["accuracy"] / 5
