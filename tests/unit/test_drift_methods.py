"""Drift methods beyond PSI: scipy oracles, Hypothesis properties, power and calibration, input errors."""

from __future__ import annotations

import math
from decimal import Decimal, localcontext

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from scipy.spatial.distance import jensenshannon

from monitor.drift import (
    CHI_SQUARE_FLOOR,
    METHODS,
    adjust,
    adjusted_p_values,
    benjamini_hochberg,
    bonferroni,
    chi_square,
    default_methods,
    hellinger,
    js_distance,
    ks_test,
    linf,
    psi,
    wasserstein,
    wasserstein_normed,
)
from monitor.stats.quantiles import QuantileSummary
from tests.strategies import histogram_pair, histograms

PROPS = settings(max_examples=100, deadline=None)


def draw_values(kind: str, rng: np.random.Generator, size: int, shift: float = 0.0) -> np.ndarray:
    """Seeded data of one shape: normal, lognormal, or Poisson counts (discrete, many ties)."""
    if kind == "normal":
        return rng.normal(shift, 1.0, size)
    if kind == "lognormal":
        return rng.lognormal(shift, 1.0, size)
    return rng.poisson(4.0 * (1.0 + shift), size).astype(float)


# (kind, shift of the window, reference size, window size, seed)
KS_CASES = [
    ("normal", 0.0, 5_000, 200, 1),
    ("normal", 0.0, 50_000, 20_000, 2),
    ("normal", 0.05, 20_000, 5_000, 3),
    ("normal", 0.1, 5_000, 1_000, 4),
    ("normal", 0.2, 50_000, 200, 5),
    ("lognormal", 0.0, 20_000, 1_000, 6),
    ("lognormal", 0.03, 50_000, 5_000, 7),
    ("lognormal", 0.1, 5_000, 20_000, 8),
    ("poisson", 0.0, 5_000, 200, 9),
    ("poisson", 0.02, 20_000, 1_000, 10),
    ("poisson", 0.05, 50_000, 5_000, 11),
    ("poisson", 0.0, 20_000, 20_000, 12),
]


@pytest.mark.parametrize(("kind", "shift", "n_ref", "n", "seed"), KS_CASES)
def test_ks_matches_scipy_ks_2samp_asymp(kind: str, shift: float, n_ref: int, n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    ref = draw_values(kind, rng, n_ref)
    sample = draw_values(kind, rng, n, shift)
    d, p = ks_test(QuantileSummary.from_values(ref), sample)
    oracle = stats.ks_2samp(sample, ref, method="asymp")
    assert abs(d - oracle.statistic) <= 0.003
    # D is known to about one grid step (0.001): p lies between the oracle's p at D +- 0.001.
    en = round(n_ref * n / (n_ref + n))
    assert stats.kstwo.sf(oracle.statistic + 0.001, en) <= p <= stats.kstwo.sf(oracle.statistic - 0.001, en)
    if kind != "poisson" or en <= 1000:
        # Continuous data (or a small en) follow the oracle closely. With ties and a large en, the
        # half-step uncertainty of an atom's CDF jump moves p by more than 10 % (the bracket above holds).
        assert math.isclose(p, oracle.pvalue, rel_tol=0.1) or abs(p - oracle.pvalue) <= 0.01


def test_ks_compares_the_left_limit_of_the_window_cdf() -> None:
    # All window values at 0.9: F_window jumps 0 -> 1 there while F_ref(0.9) = 0.9. Just below 0.9
    # the gap is 0.9; at 0.9 itself only 0.1. Only the left limit sees the supremum exactly.
    ref = QuantileSummary.from_values(np.linspace(0.0, 1.0, 100_001))
    d, _ = ks_test(ref, np.full(50, 0.9))
    assert d == pytest.approx(0.9, abs=1e-9)
    d, _ = ks_test(ref, np.full(50, 0.1))  # the right limit: 1 - 0.1
    assert d == pytest.approx(0.9, abs=1e-9)


def test_ks_discrete_identical_distributions_have_small_d() -> None:
    # Reference atoms: the CDF jumps at each integer; an identical window must not see the jumps as gaps.
    values = np.repeat(np.arange(5.0), [100, 300, 400, 150, 50])
    d, p = ks_test(QuantileSummary.from_values(values), values)
    assert d <= 0.001
    assert p > 0.99


def test_ks_true_count_sharpens_the_p_value() -> None:
    rng = np.random.default_rng(21)
    ref = QuantileSummary.from_values(rng.normal(size=20_000))
    thinned = rng.normal(0.1, 1.0, 500)  # a 1-in-10 sample of a 5000-value window
    d_small, p_small = ks_test(ref, thinned)
    d_true, p_true = ks_test(ref, thinned, n=5_000)
    assert d_true == d_small
    assert p_true < p_small / 10
    en = 20_000 * 5_000 / 25_000
    assert p_true == pytest.approx(stats.kstwo.sf(d_true, en), rel=1e-12)


def test_ks_power_half_sd_shift() -> None:
    rng = np.random.default_rng(31)
    ref = QuantileSummary.from_values(rng.normal(size=20_000))
    d, p = ks_test(ref, rng.normal(0.5, 1.0, 2_000))
    assert p < 0.01
    assert d > 0.15  # Phi(0.25) - Phi(-0.25) ~ 0.197 for a 0.5 sd shift


def test_ks_size_is_calibrated() -> None:
    # 200 independent stationary windows (each with its own reference draw): ~5 % reject at 0.05.
    rng = np.random.default_rng(41)
    rejected = 0
    for _ in range(200):
        ref = QuantileSummary.from_values(rng.normal(size=10_000))
        _, p = ks_test(ref, rng.normal(size=1_000))
        rejected += p <= 0.05
    assert 0.01 <= rejected / 200 <= 0.10


@given(st.lists(st.floats(-1e3, 1e3), min_size=1, max_size=300), st.lists(st.floats(-1e3, 1e3), min_size=1,
                                                                           max_size=300))
@PROPS
def test_ks_properties(ref_values: list[float], sample: list[float]) -> None:
    ref = QuantileSummary.from_values(ref_values)
    d, p = ks_test(ref, np.array(sample))
    assert 0.0 <= d <= 1.0
    assert 0.0 <= p <= 1.0
    d_same, _ = ks_test(ref, np.array(ref_values))
    assert d_same <= 0.0015 + 1.0 / len(ref_values)  # grid step plus one ECDF step


# ---------------------------------------------------------------- Wasserstein

# (kind, shift, reference size, window size, seed, heavy tail)
W_CASES = [
    ("normal", 0.0, 5_000, 200, 1),
    ("normal", 0.0, 50_000, 20_000, 2),
    ("normal", 0.3, 20_000, 1_000, 3),
    ("normal", 1.0, 5_000, 5_000, 4),
    ("lognormal", 0.0, 20_000, 5_000, 5),
    ("lognormal", 0.2, 50_000, 1_000, 6),
    ("poisson", 0.1, 20_000, 5_000, 7),
    ("poisson", 0.0, 5_000, 20_000, 8),
]


@pytest.mark.parametrize(("kind", "shift", "n_ref", "n", "seed"), W_CASES)
def test_wasserstein_matches_scipy(kind: str, shift: float, n_ref: int, n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    ref = draw_values(kind, rng, n_ref)
    sample = draw_values(kind, rng, n, shift)
    summary = QuantileSummary.from_values(ref)
    oracle = stats.wasserstein_distance(sample, ref)
    tolerance = 0.01 * oracle + 1e-3
    if kind == "lognormal":
        # The summary interpolates linearly inside its end cells (levels < 0.001 and > 0.999); a heavy
        # tail makes that the dominant error, bounded by 0.001 x the width of each end cell.
        v = summary.values
        tolerance += 0.001 * ((v[-1] - v[-2]) + (v[1] - v[0]))
    assert abs(wasserstein(summary, sample) - oracle) <= tolerance


def test_wasserstein_of_a_shift_is_the_shift() -> None:
    rng = np.random.default_rng(51)
    x = rng.normal(size=5_000)
    summary = QuantileSummary.from_values(x)
    assert wasserstein(summary, x + 0.7) == pytest.approx(0.7, abs=2e-3)
    assert wasserstein_normed(summary, x + 0.7, scale=float(np.std(x))) == pytest.approx(
        0.7 / float(np.std(x)), abs=2e-3)


def test_wasserstein_normed_fallbacks() -> None:
    summary = QuantileSummary.from_values(np.arange(101.0))  # IQR = 75 - 25 = 50
    sample = np.arange(101.0) + 10.0
    w = wasserstein(summary, sample)
    assert w == pytest.approx(10.0, abs=0.1)
    assert wasserstein_normed(summary, sample, scale=4.0) == pytest.approx(w / 4.0, rel=1e-12)
    for bad_scale in (0.0, math.nan, math.inf):
        assert wasserstein_normed(summary, sample, scale=bad_scale) == pytest.approx(w / 50.0, rel=1e-12)
    constant = QuantileSummary.from_values(np.full(20, 2.0))  # IQR 0 too: divide by 1.0
    assert wasserstein_normed(constant, np.full(20, 5.0), scale=0.0) == pytest.approx(3.0, rel=1e-12)


@given(st.lists(st.floats(-1e3, 1e3), min_size=1, max_size=300), st.lists(st.floats(-1e3, 1e3), min_size=1,
                                                                           max_size=300))
@PROPS
def test_wasserstein_properties(ref_values: list[float], sample: list[float]) -> None:
    ref = QuantileSummary.from_values(ref_values)
    assert wasserstein(ref, np.array(sample)) >= 0.0
    # Against its own values only the summary's interpolation between them remains (at most one
    # data gap per 1/n of levels), and a shift by c moves the distance by c.
    spread = max(ref_values) - min(ref_values)
    own = wasserstein(ref, np.array(ref_values))
    assert own <= spread / len(ref_values) + 1e-9
    shift = 2 * spread + 1.0
    assert wasserstein(ref, np.array(ref_values) + shift) == pytest.approx(shift, abs=own + 1e-9 * shift)


# ---------------------------------------------------------------- histogram distances

@given(histogram_pair)
@PROPS
def test_js_matches_scipy(pair: tuple[list[int], list[int]]) -> None:
    e, a = pair
    ours, theirs = js_distance(e, a), float(jensenshannon(e, a, base=2))
    # scipy sums p ln(p/m) directly, so its divergence carries ~1e-16 of rounding that its square root
    # magnifies near 0 (e.g. 2e-12 off for [1, 1] vs [9997, 9998]): there compare the divergences.
    assert abs(ours - theirs) <= 1e-12 or abs(ours**2 - theirs**2) <= 1e-15


def js_exact(expected: list[int], actual: list[int]) -> float:
    """The Jensen-Shannon distance in 50-digit decimal arithmetic."""
    with localcontext() as ctx:
        ctx.prec = 50
        te, ta = sum(expected), sum(actual)
        total = Decimal(0)
        for x, y in zip(expected, actual, strict=True):
            p, q = Decimal(x) / te, Decimal(y) / ta
            m = (p + q) / 2
            total += (p * (p / m).ln() if p else 0) + (q * (q / m).ln() if q else 0)
        return float((max(total, Decimal(0)) / (2 * Decimal(2).ln())).sqrt())


@given(histogram_pair)
@PROPS
def test_js_matches_high_precision(pair: tuple[list[int], list[int]]) -> None:
    e, a = pair
    assert js_distance(e, a) == pytest.approx(js_exact(e, a), rel=1e-12, abs=1e-300)


def test_js_by_hand() -> None:
    # p = [0.5, 0.5], q = [1, 0], m = [0.75, 0.25]:
    #   KL(p||m) = 0.5 log2(2/3) + 0.5 log2(2) = 1 - 0.5 log2 3;  KL(q||m) = log2(4/3) = 2 - log2 3
    #   JSD = (3 - 1.5 log2 3) / 2
    jsd = (3 - 1.5 * math.log2(3)) / 2
    assert js_distance([0.5, 0.5], [1.0, 0.0]) == pytest.approx(math.sqrt(jsd), rel=1e-12)
    assert js_distance([1, 0, 0], [0, 0, 1]) == 1.0


def hellinger_by_hand(expected: list[int], actual: list[int]) -> float:
    te, ta = sum(expected), sum(actual)
    return math.sqrt(sum((math.sqrt(e / te) - math.sqrt(a / ta)) ** 2 for e, a in zip(expected, actual,
                                                                                        strict=True)) / 2)


@given(histogram_pair)
@PROPS
def test_hellinger_matches_hand_formula(pair: tuple[list[int], list[int]]) -> None:
    e, a = pair
    assert hellinger(e, a) == pytest.approx(hellinger_by_hand(e, a), abs=1e-12)


def test_hellinger_and_linf_by_hand() -> None:
    # p = [0.5, 0.5], q = [1, 0]: H^2 = ((sqrt .5 - 1)^2 + .5) / 2 = 1 - sqrt .5
    assert hellinger([1, 1], [1, 0]) == pytest.approx(math.sqrt(1 - math.sqrt(0.5)), rel=1e-12)
    assert hellinger([1, 0], [0, 1]) == 1.0
    # [0.2, 0.3, 0.5] vs [0.1, 0.6, 0.3]: changes 0.1, 0.3, 0.2
    assert linf([2, 3, 5], [10, 60, 30]) == pytest.approx(0.3, abs=1e-12)


SYMMETRIC = [js_distance, hellinger, linf]


@pytest.mark.parametrize("distance", [*SYMMETRIC, psi])
@given(pair=histogram_pair, factor=st.sampled_from([1e-3, 0.5, 7.0, 1e6]))
@PROPS
def test_histogram_distance_properties(distance, pair: tuple[list[int], list[int]], factor: float) -> None:
    e, a = pair
    value = distance(e, a)
    assert value >= 0.0
    assert distance(e, e) == pytest.approx(0.0, abs=1e-12)
    # counts or proportions (or any scale) give the same value
    assert distance([x * factor for x in e], a) == pytest.approx(value, rel=1e-9, abs=1e-12)
    assert distance(e, [x / sum(a) for x in a]) == pytest.approx(value, rel=1e-9, abs=1e-12)
    if distance in SYMMETRIC:
        assert distance(a, e) == pytest.approx(value, rel=1e-12, abs=1e-15)
        assert value <= 1.0


def test_distances_grow_with_the_shift() -> None:
    base = [25, 25, 25, 25]
    shifts = [[25, 25, 25, 25], [30, 25, 25, 20], [40, 25, 25, 10], [70, 20, 10, 0]]
    for distance in (*SYMMETRIC, psi):
        values = [distance(base, s) for s in shifts]
        assert values == sorted(values)
        assert values[0] == pytest.approx(0.0, abs=1e-12)
        assert values[1] > 1e-3


# ---------------------------------------------------------------- chi-square

@given(st.integers(2, 15).flatmap(lambda k: st.tuples(
    st.lists(st.integers(1, 10_000), min_size=k, max_size=k), histograms(k))))
@PROPS
def test_chi_square_matches_scipy(pair: tuple[list[int], list[int]]) -> None:
    reference, window = pair  # the reference has no empty bin (no floor applied)
    n = sum(window)
    f_exp = np.array(reference, dtype=float) / sum(reference) * n
    oracle = stats.chisquare(window, f_exp)
    stat, p, v = chi_square(reference, window)
    assert stat == pytest.approx(float(oracle.statistic), rel=1e-9, abs=1e-9)
    assert p == pytest.approx(float(oracle.pvalue), rel=1e-7, abs=1e-300)
    assert v == pytest.approx(min(1.0, math.sqrt(stat / (n * (len(window) - 1)))), rel=1e-12)
    assert 0.0 <= v <= 1.0


def test_chi_square_unseen_category_is_large_but_finite() -> None:
    # Reference never saw bin 3: its proportion becomes 1e-4, renormalised.
    stat, p, v = chi_square([500, 500, 0], [45, 45, 10])
    pe = np.array([0.5, 0.5, CHI_SQUARE_FLOOR]) / (1 + CHI_SQUARE_FLOOR)
    f_exp = 100 * pe
    expected_stat = float(np.sum((np.array([45, 45, 10]) - f_exp) ** 2 / f_exp))
    assert stat == pytest.approx(expected_stat, rel=1e-12)
    assert math.isfinite(stat) and stat > 900
    assert p < 1e-100
    assert v == 1.0  # sqrt(stat / (100 * 2)) > 1, capped


def test_chi_square_by_hand_and_power() -> None:
    stat, p, v = chi_square([0.5, 0.5], [60, 40])  # (10^2 + 10^2) / 50 on 1 df
    assert stat == pytest.approx(4.0, rel=1e-12)
    assert p == pytest.approx(float(stats.chi2.sf(4.0, 1)), rel=1e-10)
    assert v == pytest.approx(0.2, rel=1e-12)
    assert chi_square([1], [10]) == (0.0, 1.0, 0.0)
    rng = np.random.default_rng(61)
    ref = np.array([0.4, 0.3, 0.2, 0.1])
    _, p_same, _ = chi_square(ref, rng.multinomial(1_000, ref))
    _, p_shift, _ = chi_square(ref, rng.multinomial(1_000, [0.3, 0.3, 0.2, 0.2]))
    assert p_same > 0.01
    assert p_shift < 1e-6


# ---------------------------------------------------------------- multiple testing

p_lists = st.lists(st.one_of(st.none(), st.floats(0.0, 1.0), st.sampled_from([0.0, 0.01, 0.05, 1.0])),
                   max_size=30)
alphas = st.one_of(st.sampled_from([0.01, 0.05, 0.1]), st.floats(1e-6, 0.999))


@given(p_lists, alphas)
@settings(max_examples=300, deadline=None)
def test_bh_matches_scipy_false_discovery_control(ps: list[float | None], alpha: float) -> None:
    got = benjamini_hochberg(ps, alpha)
    assert len(got) == len(ps)
    ran = [p for p in ps if p is not None]
    expected = iter(stats.false_discovery_control(ran) <= alpha) if ran else iter([])
    for p, rejected in zip(ps, got, strict=True):
        assert rejected is (False if p is None else bool(next(expected)))


@given(p_lists, alphas)
@settings(max_examples=300, deadline=None)
def test_bh_rejects_a_superset_of_bonferroni(ps: list[float | None], alpha: float) -> None:
    bh, bonf = benjamini_hochberg(ps, alpha), bonferroni(ps, alpha)
    assert all(b for b, f in zip(bh, bonf, strict=True) if f)
    m = sum(p is not None for p in ps)
    assert bonf == [p is not None and min(1.0, p * m) <= alpha for p in ps]
    assert adjust(ps, alpha, "bh") == bh
    assert adjust(ps, alpha, "bonferroni") == bonf
    assert adjust(ps, alpha, "none") == [p is not None and p <= alpha for p in ps]


@given(p_lists, alphas)
@settings(max_examples=300, deadline=None)
def test_adjusted_p_values_are_the_scale_of_the_decision(ps: list[float | None], alpha: float) -> None:
    """An alert compares the adjusted p-value with alpha: that comparison is exactly the decision."""
    for method in ("bh", "bonferroni", "none"):
        adj = adjusted_p_values(ps, method)
        assert [a is not None for a in adj] == [p is not None for p in ps]
        assert [a is not None and a <= alpha for a in adj] == adjust(ps, alpha, method), method
        assert all(a is None or p is None or p <= a <= 1.0 for a, p in zip(adj, ps, strict=True))
    ran = [p for p in ps if p is not None]
    if ran:
        got = [a for a in adjusted_p_values(ps, "bh") if a is not None]
        np.testing.assert_allclose(got, stats.false_discovery_control(ran), rtol=1e-12, atol=0)


def test_multitest_none_does_not_count_toward_m() -> None:
    # m = 1 (the Nones did not run): 0.03 <= 0.05. Counting the Nones (m = 3) would not reject.
    assert bonferroni([0.03, None, None], 0.05) == [True, False, False]
    assert benjamini_hochberg([None, 0.03, None], 0.05) == [False, True, False]
    assert benjamini_hochberg([0.01, 0.04, 0.03, 0.5], 0.05) == [True, False, False, False]
    assert benjamini_hochberg([0.01, 0.02, 0.03, 0.5], 0.05) == [True, True, True, False]
    assert benjamini_hochberg([], 0.05) == bonferroni([], 0.05) == adjust([], 0.05, "none") == []
    assert benjamini_hochberg([None, None], 0.05) == [False, False]


# ---------------------------------------------------------------- registry

def test_methods_registry() -> None:
    assert set(METHODS) == {"psi", "ks", "wasserstein", "jensen_shannon", "hellinger", "chi_square", "linf"}
    expected = {
        "psi": ("distance", {"numeric", "categorical"}),
        "ks": ("test", {"numeric"}),
        "wasserstein": ("distance", {"numeric"}),
        "jensen_shannon": ("distance", {"numeric", "categorical"}),
        "hellinger": ("distance", {"numeric", "categorical"}),
        "chi_square": ("test", {"categorical"}),
        "linf": ("distance", {"categorical"}),
    }
    from monitor.spec import DEFAULT_THRESHOLDS

    for name, info in METHODS.items():
        assert info.name == name
        assert (info.kind, set(info.applies_to)) == expected[name]
        assert info.description
        # distances take their levels from the spec's defaults (one place); tests use drift.alpha
        assert (name in DEFAULT_THRESHOLDS) == (info.kind == "distance"), name


def test_registry_agrees_with_the_spec_method_lists() -> None:
    from monitor.spec import CATEGORICAL_METHODS, NUMERIC_METHODS

    assert {n for n, m in METHODS.items() if "numeric" in m.applies_to} == set(NUMERIC_METHODS)
    assert {n for n, m in METHODS.items() if "categorical" in m.applies_to} == set(CATEGORICAL_METHODS)


def test_default_methods_by_sample_size() -> None:
    assert default_methods("numeric", 0) == ["psi", "ks"]
    assert default_methods("numeric", 1000) == ["psi", "ks"]
    assert default_methods("numeric", 1001) == ["psi", "wasserstein"]
    assert default_methods("categorical", 1000) == ["psi", "chi_square"]
    assert default_methods("categorical", 1001) == ["psi", "jensen_shannon"]
    assert default_methods("boolean", 10) == ["psi", "chi_square"]
    assert default_methods("boolean", 10**6) == ["psi", "jensen_shannon"]
    for kind in ("numeric", "categorical"):
        for n in (5, 5_000):
            assert all(kind in METHODS[m].applies_to for m in default_methods(kind, n))


# ---------------------------------------------------------------- errors

REF = QuantileSummary.from_values(np.arange(100.0))


@pytest.mark.parametrize("call", [
    lambda: ks_test(REF, np.array([])),
    lambda: ks_test(REF, np.array([1.0, math.nan])),
    lambda: ks_test(REF, np.array([1.0, 2.0, 3.0]), n=2),
    lambda: wasserstein(REF, np.array([])),
    lambda: wasserstein(REF, np.array([math.inf])),
    lambda: wasserstein(REF, np.array([1.0]), grid=0),
    lambda: wasserstein_normed(REF, np.array([1.0]), scale=-1.0),
    lambda: js_distance([1, 2], [1, 2, 3]),
    lambda: js_distance([], []),
    lambda: hellinger([0, 0], [1, 1]),
    lambda: hellinger([[1, 2]], [[1, 2]]),
    lambda: linf([1, -1, 2], [1, 1, 1]),
    lambda: linf([1, math.nan], [1, 1]),
    lambda: chi_square([1, 1], [0, 0]),
    lambda: chi_square([1, 2, 3], [1, 2]),
    lambda: benjamini_hochberg([0.5, 1.5], 0.05),
    lambda: benjamini_hochberg([math.nan], 0.05),
    lambda: bonferroni([0.5], 0.0),
    lambda: bonferroni([0.5], 1.0),
    lambda: adjust([0.5], 0.05, "holm"),  # type: ignore[arg-type]
    lambda: default_methods("string", 10),
    lambda: default_methods("numeric", -1),
])
def test_bad_inputs_raise_value_error(call) -> None:
    with pytest.raises(ValueError):
        call()
