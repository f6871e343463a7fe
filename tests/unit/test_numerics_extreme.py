"""Numerics that cannot overflow (issue #14): any finite float64, from 5e-324 to 1.8e308, is a value.

Moments keeps River's arithmetic bit for bit on ordinary data (checked against River itself and the
batch formulas it had before), and on extreme data neither raises nor gives NaN; the engine counts a
batch holding a 1.7e308 like any other.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from river import stats

from monitor.drift import ks_test, wasserstein, wasserstein_normed
from monitor.engine import Monitor
from monitor.reference import FeatureProfile, ReferenceProfile, build_profile
from monitor.spec import MonitorSpec
from monitor.stats import Moments, QuantileSummary
from monitor.stats.quantiles import interp, quantiles
from tests.strategies import any_finite_floats, extreme_float_lists

PROPS = settings(max_examples=300, deadline=None)

FLOAT_MAX = 1.7976931348623157e308


# ---------------------------------------------------------------- ordinary data: bit-identical


class _BatchesBefore:
    """``Moments.update_many`` as it was before issue #14: numpy batch moments, then the batch
    merge written into River's ``Var`` fields (here plain floats, as River kept them)."""

    def __init__(self) -> None:
        self.n, self.mean, self.s = 0.0, 0.0, 0.0

    def update_many(self, x: np.ndarray) -> None:
        nb = int(x.size)
        with np.errstate(over="ignore"):
            mb = float(np.add.reduce(x)) / nb
            d = x - mb
            sb = float(np.add.reduce(d * d))
        if self.n == 0:
            self.n, self.mean, self.s = float(nb), mb, sb
            return
        total = self.n + nb
        delta = mb - self.mean
        self.mean += delta * nb / total
        self.s += sb + delta * delta * self.n * nb / total
        self.n = total


def _ordinary_stream(rng: np.random.Generator) -> np.ndarray:
    """Values up to ~1e149 in magnitude, at a random scale and offset, some with few significant bits
    (``d ** 2`` and ``d * d`` round those differently)."""
    scale = 10.0 ** rng.uniform(-300, 148)
    x = rng.normal(rng.normal() * scale * rng.choice([0.0, 1.0, 1e3]), scale, int(rng.integers(1, 300)))
    if rng.random() < 0.5:
        x = np.round(x / scale * 2**20) * (scale / 2**20)
    return x


def _by_updates(xs: list[float]) -> Moments:
    m = Moments()
    for v in xs:
        m.update(v)
    return m


def _river_var(xs: np.ndarray) -> stats.Var:
    var = stats.Var(ddof=1)
    for v in xs.tolist():
        var.update(v)
    return var


def _assert_same(m: Moments, n: float, mean: float, var: float) -> None:
    """Bit-identical to River's state: count, mean and the variance S / (n - 1)."""
    assert m.n == n and m.mean == mean
    if n >= 2:
        assert m.std == math.sqrt(max(var, 0.0))
        assert m.to_state()["m2"] / (n - 1) == var


@pytest.mark.parametrize("seed", range(40))
def test_ordinary_data_bit_identical_to_river_and_the_former_batches(seed: int) -> None:
    rng = np.random.default_rng(seed)
    x, y = _ordinary_stream(rng), _ordinary_stream(rng)
    # One value at a time: River's Var.update.
    a, b = Moments(), Moments()
    for v in x.tolist():
        a.update(v)
    for v in y.tolist():
        b.update(v)
    ra, rb = _river_var(x), _river_var(y)
    _assert_same(a, ra.n, ra.mean.get(), ra.get())
    # Merges: River's Var.__iadd__ (and Mean.__iadd__).
    a += b
    ra += rb
    _assert_same(a, ra.n, ra.mean.get(), ra.get())
    # Batches: the former update_many / add_summary arithmetic.
    cut = int(rng.integers(0, x.size + 1))
    m, before = Moments(), _BatchesBefore()
    for part in (x[:cut], x[cut:], y):
        if part.size:
            m.update_many(part)
            before.update_many(part)
    _assert_same(m, before.n, before.mean, before.s / (before.n - 1) if before.n > 1 else 0.0)
    assert m.to_state()["schema_version"] == 1 and "exp" not in m.to_state()


def test_merge_squares_the_mean_difference_as_river_does() -> None:
    # libm's pow rounds some exact ties of d ** 2 otherwise than d * d does: River's merge uses **.
    rng = np.random.default_rng(0)
    ties = [d for d in (math.ldexp(float(m), -27) for m in rng.integers(2**26, 2**27, 20_000)) if d**2 != d * d]
    assert len(ties) > 10
    for d in ties[:50]:
        m = _by_updates([d, 0.5]) + _by_updates([0.0, 0.25])
        river = _river_var(np.array([d, 0.5]))
        river += _river_var(np.array([0.0, 0.25]))
        _assert_same(m, river.n, river.mean.get(), river.get())


def test_version_1_state_still_loads() -> None:
    old = {"schema_version": 1, "n": 3, "mean": 2.0, "m2": 2.0, "min": 1.0, "max": 3.0}
    m = Moments.from_state(old)
    assert m.get() == {"count": 3, "mean": 2.0, "std": 1.0, "min": 1.0, "max": 3.0}
    assert m.to_state() == old


# ---------------------------------------------------------------- any finite float


def _exact_mean_std(xs: list[float]) -> tuple[float, float | None]:
    """The mean and sample standard deviation in exact rational arithmetic, rounded once."""
    fx = [Fraction(v) for v in xs]
    mean = sum(fx) / len(fx)
    if len(xs) < 2:
        return float(mean), None
    var = sum((v - mean) ** 2 for v in fx) / (len(fx) - 1)
    k = max(0, math.frexp(max(abs(v) for v in xs))[1] - 500)
    try:
        return float(mean), math.ldexp(math.sqrt(float(var / 4**k)), k)
    except OverflowError:
        return float(mean), math.inf


def _close(a: float, b: float, scale: float, *, floor: float = 1e-321) -> bool:
    """Within 1e-9 relative to the data's scale, or ``floor`` absolute (subnormal values round in
    steps of 5e-324: a few hundred of those); infinite only at the float range's edge."""
    if math.isinf(a) or math.isinf(b):
        return a == b or min(abs(a), abs(b)) > FLOAT_MAX / 2
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9 * scale + floor)


def _check(m: Moments, xs: list[float]) -> None:
    """Count and extremes exact; mean and std finite-or-saturated, close to the exact ones."""
    assert m.n == len(xs)
    assert (m.min, m.max) == (min(xs), max(xs))
    mean, std = _exact_mean_std(xs)
    scale = max(abs(v) for v in xs)
    assert m.mean is not None and math.isfinite(m.mean)
    assert m.min - 1e-12 * scale <= m.mean <= m.max + 1e-12 * scale
    assert _close(m.mean, mean, scale)
    if std is None:
        assert m.std is None
    else:
        assert m.std is not None and not math.isnan(m.std) and m.std >= 0.0
        # Squares of values below ~1e-154 are subnormal (they were before issue #14 too: ordinary
        # data keeps its arithmetic), so the variance is known to ~n * 5e-324 and the std to its root.
        assert _close(m.std, std, scale, floor=math.sqrt(len(xs) * 1e-321))


@PROPS
@given(xs=extreme_float_lists(min_size=1))
def test_update_and_update_many_any_finite_float(xs: list[float]) -> None:
    _check(_by_updates(xs), xs)
    m = Moments()
    m.update_many(np.asarray(xs, dtype=float))
    _check(m, xs)


@PROPS
@given(xs=extreme_float_lists(min_size=1), data=st.data())
def test_merge_equals_concatenation_any_finite_float(xs: list[float], data: st.DataObject) -> None:
    cuts = sorted(data.draw(st.lists(st.integers(0, len(xs)), max_size=3), label="cuts"))
    parts = [xs[i:j] for i, j in zip([0, *cuts], [*cuts, len(xs)], strict=True)]
    # Each part by another path; merged with += and +, left to right and right to left.
    built = []
    for k, part in enumerate(parts):
        m = Moments()
        if k % 2:
            m.update_many(np.asarray(part, dtype=float))
        else:
            for v in part:
                m.update(v)
        built.append(m)
    left = Moments()
    for m in built:
        left += m
    right = Moments()
    for m in reversed(built):
        right = m + right
    _check(left, xs)
    _check(right, xs)


@PROPS
@given(xs=extreme_float_lists(min_size=1), more=st.lists(any_finite_floats, max_size=5))
def test_state_round_trip_any_finite_float(xs: list[float], more: list[float]) -> None:
    m = _by_updates(xs)
    encoded = orjson.dumps(m.to_state())
    assert b"null" not in encoded  # orjson writes inf and NaN as null, which would not load
    restored = Moments.from_state(orjson.loads(encoded))
    assert restored == m and restored.get() == m.get()
    for v in more:
        m.update(v)
        restored.update(v)
    assert restored.get() == m.get()


@pytest.mark.parametrize("huge", [1.7e308, -1.7e308, FLOAT_MAX, 1e155])
def test_one_huge_value_among_ordinary_ones(huge: float) -> None:
    xs = [float(v % 13) for v in range(500)] + [huge] + [float(v % 7) for v in range(499)]
    for m in (_by_updates(xs), _by_updates(xs[:500]) + _by_updates(xs[500:])):
        _check(m, xs)
        assert m.mean == pytest.approx(huge / 1000, rel=1e-12)


def test_opposite_extremes() -> None:
    m = _by_updates([1e308, -1e308, 1.0])
    assert m.mean == pytest.approx(1 / 3)
    assert m.std == pytest.approx(1e308)
    assert _by_updates([1e308, -1e308]).std == pytest.approx(1e308 * math.sqrt(2))
    assert _by_updates([FLOAT_MAX, -FLOAT_MAX]).std == math.inf  # the true std, 1.4 * FLOAT_MAX, is past it


# ---------------------------------------------------------------- the engine


def _engine(windows: list[dict[str, object]]) -> Monitor:
    spec = MonitorSpec.model_validate({"version": 1, "name": "t", "streams": [{
        "name": "f", "windows": windows,
        "features": [{"name": "x", "type": "numeric"}, {"name": "y", "type": "numeric"}]}]})
    return Monitor(spec, clock=lambda: 0.0)


@pytest.mark.parametrize("batches", [[1000], [400, 600], [501, 499]])
def test_engine_counts_a_batch_with_a_huge_value(batches: list[int]) -> None:
    good = [{"record_id": i, "x": float(i % 10), "y": float(i % 3), "event_time": 1.7e9 + i / 100}
            for i in range(1000)]
    records = [*good[:500], {**good[500], "x": 1.7e308}, *good[501:]]
    # Several windows, so panes are summarised once and merged (the path that raised).
    engine = _engine([{"name": "w1000", "kind": "count", "size": 1000}, {"name": "w300", "kind": "count", "size": 300},
                      {"name": "t2", "kind": "time", "seconds": 2}])
    reports, at = [], 0
    for size in batches:
        reports += engine.process("f", records[at:at + size])
        at += size
    reports += engine.close()
    assert engine.records_processed == {"f": 1000}
    by_window: dict[str, int] = {}
    for r in reports:
        by_window[r.window["name"]] = by_window.get(r.window["name"], 0) + r.count
        for name in ("x", "y"):
            fr = r.features[name]
            assert fr.count == r.count and fr.moments is not None and fr.moments["count"] == r.count
            assert all(v is None or not math.isnan(v) for v in fr.moments.values())
    assert by_window == {"w1000": 1000, "w300": 1000, "t2": 1000}
    [whole] = [r for r in reports if r.window["name"] == "w1000"]
    x = whole.features["x"].moments
    assert x["max"] == 1.7e308 and x["mean"] == pytest.approx((1.7e308 + 4500.0) / 1000)
    assert x["std"] == pytest.approx(1.7e308 / math.sqrt(1000), rel=1e-6)


# ---------------------------------------------------------------- quantiles, interpolation, drift


def test_quantiles_and_interp_are_numpy_on_ordinary_data() -> None:
    rng = np.random.default_rng(3)
    for _ in range(50):
        x = rng.normal(rng.normal() * 1e6, 10.0 ** rng.uniform(-5, 100), int(rng.integers(1, 500)))
        levels = np.linspace(0.0, 1.0, int(rng.integers(2, 1002)))
        assert np.array_equal(quantiles(x, levels), np.quantile(x, levels))
        xp, fp = np.sort(x), np.sort(rng.normal(size=x.size))
        at = rng.normal(np.mean(x), np.std(x) * 2 + 1, 300)
        assert np.array_equal(interp(at, xp, fp, left=0.0, right=1.0), np.interp(at, xp, fp, left=0.0, right=1.0))
        assert np.array_equal(interp(at, xp, fp), np.interp(at, xp, fp))


def _non_decreasing(v: np.ndarray, tol: float = 0.0) -> bool:
    with np.errstate(over="ignore"):
        return bool(np.all(v[1:] >= v[:-1] - tol))


@PROPS
@given(xs=extreme_float_lists(min_size=1), ys=extreme_float_lists(min_size=1), levels=st.integers(2, 101))
def test_quantile_summary_any_finite_float(xs: list[float], ys: list[float], levels: int) -> None:
    a = QuantileSummary.from_values(xs, n_levels=levels)
    lo, hi = min(xs), max(xs)
    assert np.isfinite(a.values).all() and _non_decreasing(a.values)
    assert (a.values[0], a.values[-1]) == (lo, hi)
    probe = np.asarray([*xs, *ys, 0.0], dtype=float)
    cdf = a.cdf(np.sort(probe))
    # numpy's slope 1 / 1.7e308 is subnormal: the CDF may be off by an ulp or two.
    assert np.isfinite(cdf).all() and _non_decreasing(cdf, 1e-12) and cdf.min() >= 0.0 and cdf.max() <= 1.0 + 1e-12
    q = a.quantile(np.linspace(0.0, 1.0, 37))
    assert np.isfinite(q).all() and q.min() >= lo and q.max() <= hi
    assert _non_decreasing(q, 1e-12 * max(abs(lo), abs(hi)))
    merged = a.merge(QuantileSummary.from_values(ys, n_levels=levels))
    assert np.isfinite(merged.values).all()
    assert merged.values[0] == min(lo, *ys) and merged.values[-1] == max(hi, *ys)


def _scaled(xs: list[float], k: int) -> list[float]:
    return [math.ldexp(v, -k) for v in xs]


@PROPS
@given(xs=extreme_float_lists(min_size=2), ys=extreme_float_lists(min_size=1))
def test_ks_and_wasserstein_any_finite_float(xs: list[float], ys: list[float]) -> None:
    ref = QuantileSummary.from_values(xs, n_levels=51)
    d, p = ks_test(ref, ys)
    assert 0.0 <= d <= 1.0 and 0.0 <= p <= 1.0
    w = wasserstein(ref, ys, grid=64)
    assert w >= 0.0 and not math.isnan(w)
    normed = wasserstein_normed(ref, ys, scale=1e300, grid=64)
    assert normed >= 0.0 and not math.isnan(normed)
    # Both are scale-free (KS) or scale with the data (Wasserstein): dividing every value by 2**8
    # (exact unless the values are tiny) changes neither path's answer but by rounding.
    if all(v == 0.0 or abs(v) > 1e-290 for v in [*xs, *ys]):
        small = QuantileSummary.from_values(_scaled(xs, 8), n_levels=51)
        assert ks_test(small, _scaled(ys, 8))[0] == pytest.approx(d, abs=1e-9)
        w_small = wasserstein(small, _scaled(ys, 8), grid=64)
        assert _close(w_small * 2.0**8, w, max(abs(v) for v in [*xs, *ys]))
        assert wasserstein_normed(small, _scaled(ys, 8), scale=math.ldexp(1e300, -8), grid=64) == pytest.approx(
            normed, rel=1e-9, abs=1e-300)


def test_wasserstein_past_the_float_range_still_normalises() -> None:
    ref = QuantileSummary.from_values(np.full(100, -1.7e308))
    window = np.full(100, 1.7e308)
    assert wasserstein(ref, window) == math.inf  # 3.4e308 apart
    assert wasserstein_normed(ref, window, scale=1.7e308) == pytest.approx(2.0)


def _profile_merge_before(na: int, a: FeatureProfile, nb: int, b: FeatureProfile) -> tuple[float, float | None]:
    """``ReferenceProfile.merge``'s pooled mean and std as it computed them before issue #14."""
    n = na + nb
    mean = (na * a.mean + nb * b.mean) / n
    m2 = ((a.std or 0.0) ** 2) * max(na - 1, 0) + ((b.std or 0.0) ** 2) * max(nb - 1, 0) \
        + (b.mean - a.mean) ** 2 * na * nb / n
    return mean, (math.sqrt(m2 / (n - 1)) if n > 1 else None)


def _stream(**extra: object) -> MonitorSpec:
    return MonitorSpec.model_validate({"version": 1, "name": "t", "streams": [{
        "name": "f", "windows": [{"name": "w500", "kind": "count", "size": 500},
                                 {"name": "w200", "kind": "count", "size": 200}],
        "features": [{"name": "x", "type": "numeric"}], **extra}]})


def _records(values: np.ndarray, start: int = 0) -> list[dict[str, object]]:
    return [{"record_id": start + i, "x": float(v)} for i, v in enumerate(values.tolist())]


@pytest.mark.parametrize("seed", range(10))
def test_profile_merge_pools_moments_as_before_and_never_raises(seed: int) -> None:
    rng = np.random.default_rng(seed)
    stream = _stream().streams[0]
    ordinary = [build_profile(stream, lambda s=s: iter(_records(rng.normal(s, 1 + s, 300))), source={"kind": "t"})
                for s in range(2)]
    merged = ordinary[0].merge(ordinary[1]).features["x"]
    fa, fb = ordinary[0].features["x"], ordinary[1].features["x"]
    assert (merged.mean, merged.std) == _profile_merge_before(sum(fa.bin_counts), fa, sum(fb.bin_counts), fb)
    huge = [build_profile(stream, lambda v=v: iter(_records(np.r_[rng.normal(size=200), v])), source={"kind": "t"})
            for v in (1.7e308, -1.7e308)]
    with pytest.raises(OverflowError):  # what the former arithmetic did
        _profile_merge_before(201, huge[0].features["x"], 201, huge[1].features["x"])
    pooled = huge[0].merge(huge[1]).features["x"]
    # 402 values, two of them +-1.7e308: the sum of squared deviations is 2 * 1.7e308 ** 2.
    assert pooled.mean == pytest.approx(0.0, abs=1e300)
    assert pooled.std == pytest.approx(1.7e308 * math.sqrt(2 / 401), rel=1e-6)


def test_engine_drift_with_extreme_values_in_reference_and_window() -> None:
    rng = np.random.default_rng(0)
    spec = _stream(rolling_reference=2, detectors=["adwin", "page_hinkley"],
                   drift={"methods": ["psi", "ks", "wasserstein", "jensen_shannon", "hellinger"]})
    stream = spec.streams[0]
    reference = build_profile(stream, lambda: iter(_records(np.r_[rng.normal(size=2000), [1.7e308, -1.7e308] * 5])),
                              source={"kind": "t"})
    encoded = orjson.dumps(reference.to_dict())
    restored = ReferenceProfile.from_dict(orjson.loads(encoded))  # every statistic survived JSON (no null)
    assert restored.features["x"] == reference.features["x"]
    windows = {
        "one_huge": np.r_[rng.normal(size=500), 1.7e308, rng.normal(size=499)],
        "both_signs": np.r_[rng.normal(size=300), 1.7e308, -1.7e308, rng.normal(size=698)],
        "all_extreme": rng.choice([1.7e308, -1.7e308, 1e308, 5e-324], 1000),
    }
    for name, values in windows.items():
        engine = Monitor(spec, references={"f": restored}, clock=lambda: 0.0)
        reports = engine.process("f", _records(values)) + engine.process("f", _records(values, 1000)) + engine.close()
        assert sum(r.count for r in reports if r.window["name"] == "w500") == 2000, name
        assert {m for r in reports for m in r.drift.get("x", {})} >= {"psi", "ks", "wasserstein", "ks@rolling",
                                                                       "wasserstein@rolling"}
        drift = [d for r in reports for d in r.drift.get("x", {}).values()]
        for d in drift:
            assert d.statistic is None or (math.isfinite(d.statistic) and d.statistic >= 0.0), (name, d)
            assert d.p_value is None or 0.0 <= d.p_value <= 1.0, (name, d)
            assert d.effect_size is None or not math.isnan(d.effect_size), (name, d)
