"""Mergeable streaming statistics: oracle tests against numpy and merge/state properties."""

from __future__ import annotations

import math

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.stats import OTHER, BinnedCounts, CategoryCounts, Moments
from tests.strategies import bin_edges, category_values, finite_floats, float_lists, vocabulary

FAST = settings(max_examples=150, deadline=None)


def _moments(xs) -> Moments:
    m = Moments()
    for x in xs:
        m.update(x)
    return m


def _np_hist(edges: list[float], xs) -> list[int]:
    """The oracle: bin ``i`` holds ``edges[i-1] <= x < edges[i]`` (outer bins open)."""
    idx = np.searchsorted(np.asarray(edges, dtype=float), np.asarray(xs, dtype=float), side="right")
    return np.bincount(idx, minlength=len(edges) + 1).tolist()


# ---------------------------------------------------------------- Moments vs numpy


@pytest.mark.parametrize(
    ("seed", "offset", "scale", "n", "std_rtol"),
    [(0, 0.0, 1.0, 1000, 1e-12), (1, 50.0, 10.0, 5000, 1e-12), (2, -3e3, 0.01, 2000, 1e-9),
     # a 1e9 offset: one-pass Welford loses ~eps * offset/scale of the spread's digits
     (3, 1e9, 1.0, 20000, 1e-7), (5, -1e9, 5.0, 3000, 1e-7),
     # offset/scale = 1e12: the inputs themselves only carry ~4 digits of the spread
     (4, 1e9, 1e-3, 5000, 1e-4)],
)
def test_moments_match_numpy(seed: int, offset: float, scale: float, n: int, std_rtol: float) -> None:
    x = offset + np.random.default_rng(seed).normal(0.0, scale, n)
    m = _moments(x.tolist())
    assert m.n == n
    assert math.isclose(m.mean, float(np.mean(x)), rel_tol=1e-12, abs_tol=1e-12 * scale)
    assert math.isclose(m.std, float(np.std(x, ddof=1)), rel_tol=std_rtol)
    assert m.min == float(np.min(x))
    assert m.max == float(np.max(x))
    assert m.get() == {"count": n, "mean": m.mean, "std": m.std, "min": m.min, "max": m.max}


def test_moments_exact_small_example() -> None:
    m = _moments([2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0])
    assert m.mean == 5.0
    # sum of squared deviations = 32, ddof=1 -> var 32/7
    assert math.isclose(m.std, math.sqrt(32 / 7), rel_tol=1e-15)
    assert (m.min, m.max) == (2.0, 9.0)


def test_empty_moments_get_none() -> None:
    m = Moments()
    assert m.get() is None
    assert m.n == 0
    assert m.mean is None
    assert m.std is None


def test_std_none_below_two_values() -> None:
    m = _moments([3.5])
    assert m.n == 1
    assert m.mean == 3.5
    assert m.std is None
    assert m.get() == {"count": 1, "mean": 3.5, "std": None, "min": 3.5, "max": 3.5}
    m.update(5.5)
    assert m.std == pytest.approx(math.sqrt(2.0))


def _assert_moments_close(a: Moments, b: Moments, xs: list[float]) -> None:
    scale = max([1.0, *(abs(x) for x in xs)])
    assert a.n == b.n
    assert a.min == b.min and a.max == b.max
    if a.n == 0:
        assert a.mean is None and b.mean is None
        return
    assert math.isclose(a.mean, b.mean, rel_tol=1e-9, abs_tol=1e-9 * scale)
    if a.n < 2:
        assert a.std is None and b.std is None
    else:
        assert math.isclose(a.std, b.std, rel_tol=1e-9, abs_tol=1e-9 * scale)


@FAST
@given(xs=float_lists(min_size=1), data=st.data())
def test_moments_merge_equals_concatenation(xs: list[float], data: st.DataObject) -> None:
    cut = data.draw(st.integers(0, len(xs)), label="cut")
    whole = _moments(xs)
    left, right = _moments(xs[:cut]), _moments(xs[cut:])
    left += right
    _assert_moments_close(left, whole, xs)


@FAST
@given(xs=float_lists(min_size=1), data=st.data())
def test_moments_add_does_not_mutate_operands(xs: list[float], data: st.DataObject) -> None:
    cut = data.draw(st.integers(0, len(xs)), label="cut")
    left, right = _moments(xs[:cut]), _moments(xs[cut:])
    before_l, before_r = left.to_state(), right.to_state()
    total = left + right
    assert left.to_state() == before_l and right.to_state() == before_r
    _assert_moments_close(total, _moments(xs), xs)


def test_merge_two_empty_moments() -> None:
    a = Moments()
    a += Moments()
    assert a.n == 0 and a.get() is None


@FAST
@given(xs=float_lists(), more=st.lists(finite_floats, max_size=20))
def test_moments_state_round_trip(xs: list[float], more: list[float]) -> None:
    m = _moments(xs)
    state = orjson.loads(orjson.dumps(m.to_state()))  # the state must survive JSON
    restored = Moments.from_state(state)
    assert restored == m
    assert restored.get() == m.get()
    # the restored statistic keeps behaving like the original
    for x in more:
        m.update(x)
        restored.update(x)
    assert restored.get() == m.get()


def test_moments_equality_is_not_vacuous() -> None:
    assert _moments([1.0, 2.0]) != _moments([1.0, 3.0])
    assert _moments([1.0]) != Moments()


def test_moments_from_state_rejects_unknown_version() -> None:
    state = _moments([1.0]).to_state()
    state["schema_version"] = 3
    with pytest.raises(ValueError, match="version"):
        Moments.from_state(state)


# ---------------------------------------------------------------- BinnedCounts


def test_binned_counts_boundaries() -> None:
    h = BinnedCounts([0.0, 1.0])
    for x in [-5, 0.0, 0.5, 1.0, 7]:
        h.update(x)
    # a value equal to an edge goes to the bin on its right
    assert h.counts == [1, 2, 2] == _np_hist([0.0, 1.0], [-5, 0.0, 0.5, 1.0, 7])
    assert h.n == 5
    assert BinnedCounts([0.0]).get() is None


@pytest.mark.parametrize("seed", range(5))
def test_binned_counts_match_numpy(seed: int) -> None:
    rng = np.random.default_rng(seed)
    x = rng.normal(0.0, 1.0, 5000)
    edges = sorted(np.quantile(x, np.linspace(0, 1, 11)[1:-1]).tolist())
    # include values exactly on the edges
    values = [*x.tolist(), *edges]
    h = BinnedCounts(edges)
    for v in values:
        h.update(v)
    assert h.counts == _np_hist(edges, values)
    assert h.n == len(values)
    assert h.get() == h.counts


@FAST
@given(edges=bin_edges, xs=st.lists(st.floats(-2e3, 2e3), max_size=200))
def test_binned_counts_property_vs_numpy(edges: list[float], xs: list[float]) -> None:
    h = BinnedCounts(edges)
    for x in xs:
        h.update(x)
    assert h.counts == _np_hist(edges, xs)


@FAST
@given(edges=bin_edges, xs=st.lists(st.floats(-2e3, 2e3), max_size=200), data=st.data())
def test_binned_counts_merge_equals_concatenation(edges, xs, data) -> None:
    cut = data.draw(st.integers(0, len(xs)), label="cut")
    a, b, whole = BinnedCounts(edges), BinnedCounts(edges), BinnedCounts(edges)
    for x in xs[:cut]:
        a.update(x)
    for x in xs[cut:]:
        b.update(x)
    for x in xs:
        whole.update(x)
    a += b
    assert a.counts == whole.counts
    assert a.n == len(xs)


@FAST
@given(edges=bin_edges, xs=st.lists(st.floats(-2e3, 2e3), max_size=100))
def test_binned_counts_state_round_trip(edges, xs) -> None:
    h = BinnedCounts(edges)
    for x in xs:
        h.update(x)
    restored = BinnedCounts.from_state(orjson.loads(orjson.dumps(h.to_state())))
    assert restored.edges == h.edges
    assert restored.counts == h.counts


def test_binned_counts_merge_different_edges_raises() -> None:
    a = BinnedCounts([0.0, 1.0])
    with pytest.raises(ValueError, match="edges"):
        a += BinnedCounts([0.0, 2.0])
    with pytest.raises(ValueError):
        a += BinnedCounts([0.0])
    assert a.counts == [0, 0, 0]


# ---------------------------------------------------------------- CategoryCounts


def test_category_counts_other_bucket() -> None:
    c = CategoryCounts(["a", "b"])
    for v in ["a", "a", "z", "b", "never-seen", ""]:
        c.update(v)
    assert c.vector() == [2, 1, 3]
    assert c.get() == {"a": 2, "b": 1, OTHER: 3}
    assert c.n == 6
    assert CategoryCounts(["a"]).get() is None


@FAST
@given(vocab=vocabulary, values=category_values)
def test_category_counts_oracle(vocab: list[str], values: list[str]) -> None:
    c = CategoryCounts(vocab)
    for v in values:
        c.update(v)
    expected = [values.count(cat) for cat in vocab]
    expected.append(len(values) - sum(expected))
    assert c.vector() == expected
    assert c.n == len(values)


@FAST
@given(vocab=vocabulary, values=category_values, data=st.data())
def test_category_counts_merge_equals_concatenation(vocab, values, data) -> None:
    cut = data.draw(st.integers(0, len(values)), label="cut")
    a, b, whole = CategoryCounts(vocab), CategoryCounts(vocab), CategoryCounts(vocab)
    for v in values[:cut]:
        a.update(v)
    for v in values[cut:]:
        b.update(v)
    for v in values:
        whole.update(v)
    a += b
    assert a.vector() == whole.vector()
    assert a.get() == whole.get()


@FAST
@given(vocab=vocabulary, values=category_values)
def test_category_counts_state_round_trip(vocab, values) -> None:
    c = CategoryCounts(vocab)
    for v in values:
        c.update(v)
    restored = CategoryCounts.from_state(orjson.loads(orjson.dumps(c.to_state())))
    assert restored.categories == c.categories
    assert restored.vector() == c.vector()
    restored.update(vocab[0])
    c.update(vocab[0])
    assert restored.vector() == c.vector()


def test_category_counts_vocabulary_mismatch_raises() -> None:
    a = CategoryCounts(["a", "b"])
    a.update("a")
    with pytest.raises(ValueError, match="vocabular"):
        a += CategoryCounts(["a", "c"])
    with pytest.raises(ValueError):
        a += CategoryCounts(["b", "a"])  # same set, different order: bins would misalign
    assert a.vector() == [1, 0, 0]
