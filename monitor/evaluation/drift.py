"""Drift evaluation of a closed window: method choice, statistics, multiple-testing control."""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from monitor.checks import FeatureState
from monitor.drift import (
    DriftResult,
    adjust,
    adjusted_p_values,
    chi_square,
    default_methods,
    hellinger,
    js_distance,
    ks_test,
    linf,
    psi,
    wasserstein_normed,
)
from monitor.drift.methods import METHODS
from monitor.names import drift_key
from monitor.reference import FeatureProfile, ReferenceProfile
from monitor.spec import MonitorSpec, StreamSpec
from monitor.stats import OTHER

__all__ = ["evaluate_drift"]


def evaluate_drift(spec: MonitorSpec, stream: StreamSpec, states: Mapping[str, FeatureState],
                   reference: ReferenceProfile, *, rolling: bool = False) -> dict[str, dict[str, DriftResult]]:
    """Every configured drift method for every feature of one window, with the stream's
    multiple-testing correction applied across the tests of the window.

    Distances drift when ``statistic >= threshold`` (the warning level); tests
    when the corrected decision rejects at ``drift.alpha``. Fewer than
    ``min_samples`` valid values (the method's threshold's, else the stream's) gives
    ``drifted=None`` and ``statistic=None`` (insufficient data).
    With ``rolling`` (the reference is the recent windows') the results are keyed
    :func:`~monitor.names.drift_key` ``(method, rolling=True)`` (``"psi@rolling"``); each
    result's ``method`` and thresholds are the plain method's.
    """
    out: dict[str, dict[str, DriftResult]] = {}
    tests: list[tuple[str, str, DriftResult]] = []
    for f in stream.features:
        if f.type == "string":
            continue
        state, ref = states[f.name], reference.features.get(f.name)
        if ref is None:
            continue
        n = state.count - state.missing - state.type_violations
        kind = "numeric" if f.type == "numeric" else "categorical"
        chosen = f.drift_methods or (stream.drift.methods if stream.drift.methods != "auto"
                                     else default_methods(kind, n))
        allowed = {m for m, info in METHODS.items() if kind in info.applies_to}
        results: dict[str, DriftResult] = {}
        hists = _Histograms(state, ref)  # computed at most once, for every method that needs them
        effect = _effect_size(state, ref, kind, hists)
        for method in chosen:
            if method not in allowed:
                continue
            info = METHODS[method]
            thr = None
            if info.kind == "test":
                threshold = stream.drift.alpha
            else:
                thr = spec.threshold_for(stream, f, method)  # every distance has a default in the spec
                assert thr is not None, method
                threshold = thr.raise_level
            least = thr.min_samples if info.kind != "test" and thr is not None and thr.min_samples is not None \
                else stream.min_samples
            if n < least:
                results[method] = DriftResult(method=method, statistic=None, threshold=threshold, sample_size=n,
                                              drifted=None, effect_size=effect)
                continue
            statistic, p_value = _compute(method, state, ref, hists)
            if not math.isfinite(statistic):  # nothing to compare (e.g. no valid reference value)
                results[method] = DriftResult(method=method, statistic=None, threshold=threshold, sample_size=n,
                                              drifted=None, effect_size=effect)
                continue
            if info.kind == "test":
                r = DriftResult(method=method, statistic=statistic, threshold=threshold, sample_size=n,
                                drifted=False, p_value=p_value, effect_size=effect)
                tests.append((f.name, method, r))
            else:
                r = DriftResult(method=method, statistic=statistic, threshold=threshold, sample_size=n,
                                drifted=statistic >= threshold, effect_size=effect)
            results[method] = r
        out[f.name] = results

    if tests:
        ps = [r.p_value for _, _, r in tests]
        decisions = adjust(ps, stream.drift.alpha, stream.drift.correction)
        adjusted = adjusted_p_values(ps, stream.drift.correction)
        for (fname, method, r), drifted, p_adj in zip(tests, decisions, adjusted, strict=True):
            out[fname][method] = DriftResult(method=r.method, statistic=r.statistic, threshold=r.threshold,
                                             sample_size=r.sample_size, drifted=drifted, p_value=r.p_value,
                                             effect_size=r.effect_size, p_value_adjusted=p_adj)
    if rolling:
        out = {f: {drift_key(m, rolling=True): r for m, r in ms.items()} for f, ms in out.items()}
    return out


class _Histograms:
    """:func:`_histograms` of one feature, computed on first use."""

    __slots__ = ("_pair", "ref", "state")

    def __init__(self, state: FeatureState, ref: FeatureProfile) -> None:
        self.state, self.ref = state, ref
        self._pair: tuple[list[int] | None, list[int] | None] | None = None

    def get(self) -> tuple[list[int] | None, list[int] | None]:
        if self._pair is None:
            self._pair = _histograms(self.state, self.ref)
        return self._pair


def _compute(method: str, state: FeatureState, ref: FeatureProfile,
             hists: _Histograms | None = None) -> tuple[float, float | None]:
    if method in ("ks", "wasserstein"):
        summary = ref.quantile_summary()
        sample = state.sample.get() if state.sample is not None else None
        if summary is None or sample is None:
            return math.nan, None
        if method == "ks":
            d, p = ks_test(summary, sample, n=state.sample.n if state.sample is not None else None)
            return d, p
        return wasserstein_normed(summary, sample, scale=ref.std or 0.0), None
    expected, actual = (hists or _Histograms(state, ref)).get()
    if expected is None or actual is None or sum(expected) == 0 or sum(actual) == 0:
        return math.nan, None
    if method == "psi":
        return psi(expected, actual), None
    if method == "jensen_shannon":
        return js_distance(expected, actual), None
    if method == "hellinger":
        return hellinger(expected, actual), None
    if method == "linf":
        return linf(expected, actual), None
    if method == "chi_square":
        stat, p, _ = chi_square(expected, actual)
        return stat, p
    raise ValueError(f"unknown drift method {method!r}")


def _histograms(state: FeatureState, ref: FeatureProfile) -> tuple[list[int] | None, list[int] | None]:
    """Reference and window counts over the same bins (aligned by label for categories)."""
    expected = ref.expected_histogram()
    if state.cats is not None:
        labels = [*ref.category_names(), OTHER]
        window = dict(zip([*state.cats.categories, OTHER], state.cats.counts, strict=True))
        known = set(labels)
        actual = [window.get(label, 0) for label in labels]
        actual[-1] += sum(c for label, c in window.items() if label not in known)
        return expected, actual
    if state.hist is not None and ref.bin_edges == state.hist.edges:
        return expected, list(state.hist.counts)
    sample = state.sample.get() if state.sample is not None else None
    if sample is None or ref.bin_edges is None:
        return expected, None
    counts = np.bincount(np.searchsorted(np.asarray(ref.bin_edges), sample, side="right"),
                         minlength=len(ref.bin_edges) + 1)
    return expected, [int(c) for c in counts]


def _effect_size(state: FeatureState, ref: FeatureProfile, kind: str,
                 hists: _Histograms | None = None) -> float | None:
    """Standardised mean difference (numeric) or Cramér's V (categorical)."""
    if kind == "numeric":
        if state.moments is None or not state.moments.n or ref.mean is None or not ref.std:
            return None
        return (float(state.moments.mean or 0.0) - ref.mean) / ref.std
    expected, actual = (hists or _Histograms(state, ref)).get()
    if state.cats is None or not state.cats.n or not expected or not actual or sum(expected) == 0:
        return None
    return float(chi_square(np.asarray(expected, dtype=float), np.asarray(actual, dtype=float))[2])
