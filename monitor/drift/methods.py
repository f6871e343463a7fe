"""The registry of drift methods: what each measures, where it applies, its default threshold."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["METHODS", "SMALL_SAMPLE", "MethodInfo", "default_methods"]

#: Sample size up to which a statistical test is the default, beyond which a distance is
#: (Evidently's cut-off: with more data a test flags differences too small to matter).
SMALL_SAMPLE = 1000


@dataclass(frozen=True, slots=True)
class MethodInfo:
    """One drift method.

    ``kind`` fixes how a threshold is read, one meaning each: a ``"distance"``
    drifts when its statistic ``>= threshold``; a ``"test"`` drifts when its
    p-value ``<= threshold`` (the test's alpha). The levels themselves live in
    the monitor spec (``thresholds:`` with ``monitor.spec.DEFAULT_THRESHOLDS``
    for distances, ``drift.alpha`` for tests), in one place. ``applies_to`` is
    the feature kinds it accepts.

    Examples
    --------
    >>> METHODS["ks"].kind
    'test'
    >>> sorted(METHODS["psi"].applies_to)
    ['categorical', 'numeric']
    """

    name: str
    kind: Literal["distance", "test"]
    applies_to: frozenset[Literal["numeric", "categorical"]]
    description: str


_BOTH: frozenset[Literal["numeric", "categorical"]] = frozenset({"numeric", "categorical"})
_NUMERIC: frozenset[Literal["numeric", "categorical"]] = frozenset({"numeric"})
_CATEGORICAL: frozenset[Literal["numeric", "categorical"]] = frozenset({"categorical"})

#: Every drift method streamdq computes, by name.
METHODS: dict[str, MethodInfo] = {
    m.name: m for m in (
        MethodInfo("psi", "distance", _BOTH,
                   "Population Stability Index over the reference bins or categories; 0.1 warns, 0.25 is critical."),
        MethodInfo("ks", "test", _NUMERIC,
                   "Two-sample Kolmogorov-Smirnov test against the reference quantiles (asymptotic p-value)."),
        MethodInfo("wasserstein", "distance", _NUMERIC,
                   "Wasserstein-1 distance divided by the reference standard deviation (normed, unit-free)."),
        MethodInfo("jensen_shannon", "distance", _BOTH,
                   "Jensen-Shannon distance (square root of the divergence, base 2) in [0, 1]."),
        MethodInfo("hellinger", "distance", _BOTH,
                   "Hellinger distance between the bin or category proportions, in [0, 1]."),
        MethodInfo("chi_square", "test", _CATEGORICAL,
                   "Pearson chi-square goodness of fit of the window's counts to the reference proportions."),
        MethodInfo("linf", "distance", _CATEGORICAL,
                   "L-infinity distance: the largest change of any category's proportion."),
    )
}


def default_methods(kind: str, n: int) -> list[str]:
    """The drift methods to run by default for a feature of ``kind`` with ``n`` observations.

    Evidently's default logic: with at most 1000 observations a statistical
    test -- the two-sample Kolmogorov-Smirnov test for numeric features, the
    chi-square test for categorical ones; with more, a distance, because with
    much data a test rejects for differences too small to matter -- the normed
    Wasserstein distance for numeric features, Jensen-Shannon for categorical
    ones. Evidently counts the reference dataset's rows; streamdq passes the
    window's sample size (its reference is usually large, and the window is
    what the test's power depends on). Evidently also treats numeric columns
    with at most 5 distinct values as categorical and uses a z-test for binary
    ones; here the caller decides ``kind``, and a boolean is categorical
    (chi-square). PSI, streamdq's classic metric, is always run too, first.

    Examples
    --------
    >>> default_methods("numeric", 500), default_methods("numeric", 50_000)
    (['psi', 'ks'], ['psi', 'wasserstein'])
    >>> default_methods("boolean", 1000), default_methods("categorical", 1001)
    (['psi', 'chi_square'], ['psi', 'jensen_shannon'])
    """
    if n < 0:
        raise ValueError(f"n must not be negative, got {n}")
    small = n <= SMALL_SAMPLE
    if kind == "numeric":
        return ["psi", "ks" if small else "wasserstein"]
    if kind in ("categorical", "boolean"):
        return ["psi", "chi_square" if small else "jensen_shannon"]
    raise ValueError(f"unknown feature kind {kind!r}; expected 'numeric', 'categorical' or 'boolean'")
