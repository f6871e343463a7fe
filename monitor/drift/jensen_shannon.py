"""Jensen-Shannon distance between two histograms."""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike
from scipy.special import xlog1py

from monitor.drift._histograms import proportions

__all__ = ["js_distance"]


def js_distance(expected: ArrayLike, actual: ArrayLike) -> float:
    """Jensen-Shannon distance (base 2) between two histograms over the same bins.

    ``expected`` (the reference) and ``actual`` (the window) are counts or
    proportions; each is normalised to proportions ``p`` and ``q``. With
    ``m = (p + q) / 2`` the divergence is ``(KL(p || m) + KL(q || m)) / 2`` in
    bits, and the *distance* returned is its square root: a metric, symmetric,
    0 for identical distributions and 1 for disjoint ones. Empty bins need no
    floor (``m`` is positive wherever ``p`` or ``q`` is). Same value as
    ``scipy.spatial.distance.jensenshannon(p, q, base=2)``.

    Examples
    --------
    >>> js_distance([50, 50], [0.5, 0.5])
    0.0
    >>> js_distance([1, 0], [0, 1])
    1.0
    >>> round(js_distance([0.5, 0.5], [1.0, 0.0]), 6)  # sqrt(1.5 - 0.75 * log2(3))
    0.557923
    """
    p, q = proportions(expected, actual)
    # Per bin p ln(p/m) + q ln(q/m), written with m = (p + q) / 2 and d = (p - q) / 2 as
    # (m + d) ln(1 + d/m) + (m - d) ln(1 - d/m): about d^2 / m, so when p and q agree up to rounding
    # (the same histogram as counts and as proportions) it is ~1e-32, not ~1e-17 -- whose square root
    # would read as a distance of 1e-8.
    m = (p + q) / 2.0
    d = (p - q) / 2.0
    live = m > 0
    m, d = m[live], d[live]
    terms = xlog1py(m + d, d / m) + xlog1py(m - d, -d / m)
    divergence = float(np.sum(terms)) / (2.0 * math.log(2.0))
    # Rounding can leave a hair below 0 or above 1.
    return min(1.0, math.sqrt(max(0.0, divergence)))
