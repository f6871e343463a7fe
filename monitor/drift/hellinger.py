"""Hellinger distance between two histograms."""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike

from monitor.drift._histograms import proportions

__all__ = ["hellinger"]


def hellinger(expected: ArrayLike, actual: ArrayLike) -> float:
    """Hellinger distance between two histograms over the same bins.

    ``expected`` (the reference) and ``actual`` (the window) are counts or
    proportions; each is normalised to proportions ``p`` and ``q``, then
    ``H = ||sqrt(p) - sqrt(q)||_2 / sqrt(2)``: a metric, symmetric, 0 for
    identical distributions and 1 for disjoint ones. Empty bins need no floor.

    Examples
    --------
    >>> hellinger([3, 1], [0.75, 0.25])
    0.0
    >>> hellinger([1, 0], [0, 1])
    1.0
    >>> round(hellinger([0.5, 0.5], [1.0, 0.0]), 6)  # sqrt(1 - sqrt(0.5))
    0.541196
    """
    p, q = proportions(expected, actual)
    value = float(np.linalg.norm(np.sqrt(p) - np.sqrt(q))) / math.sqrt(2.0)
    return min(1.0, value)
