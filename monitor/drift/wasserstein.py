"""Wasserstein-1 (earth mover's) distance of a window's values from a reference quantile summary."""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from numpy.typing import ArrayLike, NDArray

from monitor.stats.quantiles import QuantileSummary

__all__ = ["wasserstein", "wasserstein_normed"]


def wasserstein(reference: QuantileSummary, sample: ArrayLike, *, grid: int = 2000) -> float:
    """Wasserstein-1 distance ``W = integral_0^1 |Q_window(u) - Q_ref(u)| du``, in the feature's units.

    ``Q_window`` is the sample's empirical quantile function (numpy's
    ``inverted_cdf``, the step function of the empirical CDF, as
    ``scipy.stats.wasserstein_distance`` uses) and ``Q_ref`` the reference's
    (``reference.quantile``, linear between grid levels). The integral is the
    midpoint rule on ``grid`` levels ``(i + 0.5) / grid``. A distance: zero for
    identical distributions, growing with the shift, symmetric.

    Accuracy: the summary does not know the reference's quantile function inside
    its end cells (levels below 0.001 and above 0.999 with the default grid),
    where it interpolates linearly to the minimum and maximum; for heavy tails
    that can cost up to ``0.001 * (max - q_0.999)`` (and likewise at the low end).

    Examples
    --------
    >>> ref = QuantileSummary.from_values(np.linspace(0.0, 1.0, 10_001))
    >>> round(wasserstein(ref, np.linspace(0.0, 1.0, 10_001)), 4)
    0.0
    >>> round(wasserstein(ref, np.linspace(0.0, 1.0, 10_001) + 2.5), 4)  # a shift moves every quantile
    2.5
    """
    w, factor = _distance(reference, sample, grid)
    return w * factor


def _distance(reference: QuantileSummary, sample: ArrayLike, grid: int) -> tuple[float, float]:
    """:func:`wasserstein` as ``(w, factor)``, the distance being ``w * factor``: ``factor`` is 2
    when the quantiles lie more than the float range apart and ``w`` is the mean of the halved gaps
    (so a distance past the float range still divides by a scale), else 1."""
    x = np.asarray(sample, dtype=float).ravel()
    if x.size == 0:
        raise ValueError("wasserstein: the sample is empty")
    if not np.isfinite(x).all():
        raise ValueError("wasserstein: the sample must be finite (no NaN or infinity)")
    if grid < 1:
        raise ValueError(f"wasserstein: grid must be at least 1, got {grid}")
    # numpy's "inverted_cdf" quantile is x_sorted[ceil(n*u) - 1]; one sort plus indexing is ~40x
    # faster than np.quantile with thousands of levels (which partitions once per level).
    xs = np.sort(x)
    q_window = xs[_ranks(x.size, grid)]
    q_ref = reference.midpoint_quantiles(grid)
    with np.errstate(over="ignore"):
        w = float(np.add.reduce(np.abs(q_window - q_ref))) / grid
    if math.isfinite(w):
        return w, 1.0
    return float(np.add.reduce(np.abs(q_window * 0.5 - q_ref * 0.5) / grid)), 2.0


@lru_cache(maxsize=64)
def _ranks(n: int, grid: int) -> NDArray[np.intp]:
    """The sorted-sample positions of the ``grid`` midpoint levels ``(i + 0.5) / grid`` (read-only)."""
    u = (np.arange(grid) + 0.5) / grid
    ranks = np.clip(np.ceil(n * u).astype(np.intp) - 1, 0, n - 1)
    ranks.flags.writeable = False
    return ranks


def wasserstein_normed(reference: QuantileSummary, sample: ArrayLike, *, scale: float, grid: int = 2000) -> float:
    """:func:`wasserstein` divided by ``scale``, the reference standard deviation: unit-free.

    Evidently's normed Wasserstein distance (drift when >= 0.1, i.e. the
    distributions are a tenth of a standard deviation apart on average). When
    ``scale`` is 0 or not finite (a constant or broken reference), the
    reference interquartile range is used instead, and when that is 0 too,
    1.0 (the distance is then in the feature's own units).

    Examples
    --------
    >>> ref = QuantileSummary.from_values(np.linspace(0.0, 1.0, 10_001))
    >>> round(wasserstein_normed(ref, np.linspace(0.0, 1.0, 10_001) + 0.5, scale=2.0), 4)
    0.25
    >>> const = QuantileSummary.from_values(np.zeros(10))
    >>> wasserstein_normed(const, np.full(10, 3.0), scale=0.0)  # falls back to 1.0
    3.0
    """
    if math.isfinite(scale) and scale < 0:
        raise ValueError(f"wasserstein_normed: scale must not be negative, got {scale}")
    if not (math.isfinite(scale) and scale > 0):
        q1, q3 = reference.quantile(np.array([0.25, 0.75])).tolist()
        iqr = q3 - q1
        scale = iqr if math.isfinite(iqr) and iqr > 0 else 1.0
    w, factor = _distance(reference, sample, grid)
    return w / scale * factor
