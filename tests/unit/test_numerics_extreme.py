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

from monitor.engine import Engine
from monitor.spec import MonitorSpec
from monitor.stats import Moments
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


def _engine(windows: list[dict[str, object]]) -> Engine:
    spec = MonitorSpec.model_validate({"version": 1, "name": "t", "streams": [{
        "name": "f", "windows": windows,
        "features": [{"name": "x", "type": "numeric"}, {"name": "y", "type": "numeric"}]}]})
    return Engine(spec, clock=lambda: 0.0)


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
