"""Input checks shared by the histogram distances (private)."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["counts", "proportions"]


def counts(expected: ArrayLike, actual: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Two 1-D, same-length, non-empty, finite, non-negative histograms with positive totals, as floats."""
    e = np.asarray(expected, dtype=float)
    a = np.asarray(actual, dtype=float)
    if e.ndim != 1 or a.ndim != 1:
        raise ValueError(f"histograms must be 1-D, got shapes {e.shape} and {a.shape}")
    if e.size != a.size:
        raise ValueError(f"histograms differ in length: {e.size} != {a.size}")
    if e.size == 0:
        raise ValueError("histograms are empty")
    if not (np.all(np.isfinite(e)) and np.all(np.isfinite(a))):
        raise ValueError("histograms must be finite (no NaN or infinity)")
    if np.any(e < 0) or np.any(a < 0):
        raise ValueError("histograms must be non-negative")
    if e.sum() <= 0 or a.sum() <= 0:
        raise ValueError("both histograms need a positive total")
    return e, a


def proportions(expected: ArrayLike, actual: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """:func:`counts`, each normalised to sum to 1."""
    e, a = counts(expected, actual)
    return e / e.sum(), a / a.sum()
