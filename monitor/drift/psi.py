"""Population Stability Index."""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = ["PSI_EPSILON", "psi"]

#: Proportion used in place of an empty bin, so an empty bin costs a large but
#: finite amount instead of infinity (the convention of Evidently and NannyML).
PSI_EPSILON = 1e-4


def psi(expected: Sequence[float], actual: Sequence[float], *, epsilon: float = PSI_EPSILON) -> float:
    """PSI between two histograms over the same bins.

    ``expected`` (the reference) and ``actual`` (the window) are counts or
    proportions; each is normalised to proportions, empty bins are floored at
    ``epsilon``, then ``PSI = sum((a - e) * ln(a / e))``. PSI is symmetric,
    zero for identical distributions and grows with the shift; 0.1 and 0.25
    are the customary warning and critical levels.

    Examples
    --------
    >>> psi([50, 50], [50, 50])
    0.0
    >>> round(psi([0.5, 0.5], [0.9, 0.1]), 5)  # 0.4*ln(1.8) + (-0.4)*ln(0.2)
    0.87889
    """
    if len(expected) != len(actual):
        raise ValueError(f"histograms differ in length: {len(expected)} != {len(actual)}")
    te, ta = float(sum(expected)), float(sum(actual))
    if te <= 0 or ta <= 0:
        raise ValueError("both histograms need a positive total")
    total = 0.0
    for e, a in zip(expected, actual, strict=True):
        pe = max(e / te, epsilon)
        pa = max(a / ta, epsilon)
        total += (pa - pe) * math.log(pa / pe)
    return total
