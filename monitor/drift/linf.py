"""L-infinity distance between two histograms."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from monitor.drift._histograms import proportions

__all__ = ["linf"]


def linf(expected: ArrayLike, actual: ArrayLike) -> float:
    """The largest change of any bin's proportion: ``max_i |p_i - q_i|``.

    ``expected`` (the reference) and ``actual`` (the window) are counts or
    proportions over the same bins; each is normalised to proportions. In
    [0, 1], symmetric, 0 for identical distributions; it reads directly as
    "the share of the most-changed category moved by this much" (TFDV's
    categorical drift comparator).

    Examples
    --------
    >>> linf([10, 30, 60], [0.1, 0.3, 0.6])
    0.0
    >>> round(linf([50, 50, 0], [40, 40, 20]), 12)
    0.2
    """
    p, q = proportions(expected, actual)
    return float(np.max(np.abs(p - q)))
