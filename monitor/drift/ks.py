"""Kolmogorov-Smirnov test of a window's values against a reference quantile summary."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.stats import kstwo

from monitor.stats.quantiles import QuantileSummary

__all__ = ["ks_test"]


def ks_test(reference: QuantileSummary, sample: ArrayLike, *, n: int | None = None) -> tuple[float, float]:
    """Two-sample KS test of ``sample`` against the reference; returns ``(D, p_value)``.

    ``D = sup_x |F_window(x) - F_ref(x)|`` where ``F_window`` is the empirical
    CDF of ``sample`` and ``F_ref`` is the reference's CDF from its quantile
    grid. Between sample points ``F_window`` is flat and ``F_ref`` rises, so
    the supremum is reached at a sample point, from the right (``F(x)``) or
    from the left (``F(x-)``): both limits are compared, each with the same
    limit of ``F_ref`` (they differ only at an atom of the reference, a value
    that fills several grid levels, e.g. discrete data). The reference grid
    values are checked as well; in exact arithmetic they cannot raise ``D``.
    ``D`` is known to about one grid step (0.001 with the default 1001 levels;
    half a step at an atom, whose CDF jump the grid only brackets), which
    bounds how closely the p-value can follow a KS test on the raw reference
    when ``m n / (m + n)`` is large.

    The p-value is that of ``scipy.stats.ks_2samp(method="asymp")``: the
    Kolmogorov distribution ``kstwo`` at ``round(m n / (m + n))`` with
    ``m = reference.n`` and ``n`` the window's count -- pass the true count as
    ``n`` when ``sample`` is a thinned subset of the window, else ``len(sample)``.
    A test: drift when ``p_value <= alpha``. Like every KS test it assumes
    continuous data; with ties (discrete values) the p-value is conservative.

    Examples
    --------
    >>> ref = QuantileSummary.from_values(np.linspace(0.0, 1.0, 10_001))
    >>> d, p = ks_test(ref, np.linspace(0.0, 1.0, 1_001))
    >>> round(d, 3), p > 0.99
    (0.001, True)
    >>> d, p = ks_test(ref, np.linspace(0.5, 1.5, 1_001))  # half the mass moved past the maximum
    >>> round(d, 3), p < 1e-12
    (0.5, True)
    """
    x = np.sort(np.asarray(sample, dtype=float).ravel())
    if x.size == 0:
        raise ValueError("ks_test: the sample is empty")
    if not np.all(np.isfinite(x)):
        raise ValueError("ks_test: the sample must be finite (no NaN or infinity)")
    count = x.size if n is None else int(n)
    if count < x.size:
        raise ValueError(f"ks_test: n={count} is smaller than the sample ({x.size} values)")
    if reference.n < 1:
        raise ValueError("ks_test: the reference summarises no values")

    points = np.concatenate([x, reference.values])
    win_right = np.searchsorted(x, points, side="right") / x.size
    win_left = np.searchsorted(x, points, side="left") / x.size
    ref_left, ref_right = _cdf_limits(reference, points)
    d = max(float(np.max(np.abs(win_right - ref_right))), float(np.max(np.abs(win_left - ref_left))))

    m = float(reference.n)
    en = m * count / (m + count)
    p_value = float(kstwo.sf(d, max(1.0, float(np.round(en)))))
    return d, min(1.0, max(0.0, p_value))


def _cdf_limits(reference: QuantileSummary,
                x: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """The reference CDF's left and right limits, ``P(X < x)`` and ``P(X <= x)``.

    A value held by several grid levels (a plateau of the quantile function) is
    an atom: its CDF jumps there. The grid only brackets the jump: ``P(X <= v)``
    lies between the plateau's highest level and the next level, and
    ``P(X < v)`` between the level before the plateau and its lowest level, so
    each limit is taken half a grid step outside the plateau (halving the error
    on discrete data). Between distinct values the CDF is linear, as in
    ``QuantileSummary.cdf``; with no ties both limits equal that function.
    """
    levels = reference.levels
    # Non-decreasing for sure (interpolated quantiles may wobble by an ulp), so each plateau is contiguous.
    values = np.maximum.accumulate(reference.values)
    u, first, count = np.unique(values, return_index=True, return_counts=True)
    last = first + count - 1
    lo, hi = levels[first].copy(), levels[last].copy()  # the plateau's lowest and highest level
    down = (count > 1) & (first > 0)
    lo[down] = (levels[first[down] - 1] + levels[first[down]]) / 2
    up = (count > 1) & (last < levels.size - 1)
    hi[up] = (levels[last[up]] + levels[last[up] + 1]) / 2

    # The CDF is lo[j] just before u[j], hi[j] at u[j], and linear from hi[j] to lo[j + 1] in between.
    j = np.searchsorted(u, x, side="right") - 1  # the last distinct value <= x (-1: none)
    a, b = np.clip(j, 0, u.size - 1), np.clip(j + 1, 0, u.size - 1)
    with np.errstate(over="ignore"):
        wide = not np.isfinite(u[-1] - u[0])
    # Values more than the float range apart: their halves are not (and give the same fraction).
    xs, us = (x * 0.5, u * 0.5) if wide else (x, u)
    span = us[b] - us[a]
    t = np.divide(xs - us[a], span, out=np.zeros_like(x), where=span > 0)
    between = np.where(j < 0, 0.0, np.where(j < u.size - 1, hi[a] + t * (lo[b] - hi[a]), 1.0))
    exact = (j >= 0) & (u[a] == x)
    left = np.where(exact, lo[a], between)
    right = np.where(exact, hi[a], between)
    return np.asarray(left, dtype=float), np.asarray(right, dtype=float)
