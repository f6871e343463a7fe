"""A quantile summary of a reference distribution (a fixed grid of quantiles)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = ["DEFAULT_LEVELS", "QuantileSummary"]

#: Quantile levels kept for a reference feature: 0, 0.001, ..., 1 (1001 points).
DEFAULT_LEVELS = 1001


@dataclass(frozen=True, slots=True)
class QuantileSummary:
    """The quantile function of a distribution on a fixed grid of levels.

    ``values[j]`` is the quantile at ``levels[j]`` (``levels`` run from 0 to 1, so
    the first and last values are the minimum and maximum). With 1001 levels
    the CDF is known to within 0.001, enough for KS and Wasserstein against a
    window. Holds statistics only: ``len(levels)`` numbers, not rows.

    Examples
    --------
    >>> q = QuantileSummary.from_values(np.arange(101.0), n_levels=11)
    >>> [round(v, 9) for v in q.values.tolist()]
    [0.0, 10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0, 90.0, 100.0]
    >>> float(q.cdf(np.array([25.0]))[0]), float(q.quantile(np.array([0.25]))[0])
    (0.25, 25.0)
    """

    levels: NDArray[np.float64]
    values: NDArray[np.float64]
    n: int
    #: Quantiles at midpoint grids, by grid size (see :meth:`midpoint_quantiles`); not part of the value.
    _midpoints: dict[int, NDArray[np.float64]] = field(default_factory=dict, init=False, repr=False, compare=False)

    @classmethod
    def from_values(cls, values: NDArray[np.float64] | Sequence[float], *, n_levels: int = DEFAULT_LEVELS,
                    n: int | None = None) -> QuantileSummary:
        """Summarise ``values`` (``n`` = the count they stand for, default ``len(values)``)."""
        arr = np.asarray(values, dtype=float)
        if arr.size == 0:
            raise ValueError("cannot summarise an empty sample")
        levels = np.linspace(0.0, 1.0, n_levels)
        return cls(levels=levels, values=np.quantile(arr, levels), n=int(arr.size if n is None else n))

    def cdf(self, x: NDArray[np.float64]) -> NDArray[np.float64]:
        """P(X <= x), linear between grid points; right-continuous at ties."""
        # Repeated quantile values (ties, discrete data): keep the highest level per value.
        v, idx = np.unique(self.values[::-1], return_index=True)
        lv = self.levels[::-1][idx]
        out = np.interp(x, v, lv, left=0.0, right=1.0)
        return np.asarray(out, dtype=float)

    def quantile(self, u: NDArray[np.float64]) -> NDArray[np.float64]:
        """The quantile function at levels ``u`` (linear between grid points)."""
        return np.asarray(np.interp(u, self.levels, self.values), dtype=float)

    def midpoint_quantiles(self, grid: int) -> NDArray[np.float64]:
        """:meth:`quantile` at the levels ``(i + 0.5) / grid``, computed once per grid size (read-only)."""
        q = self._midpoints.get(grid)
        if q is None:
            q = self.quantile((np.arange(grid) + 0.5) / grid)
            q.flags.writeable = False
            if len(self._midpoints) < 8:
                self._midpoints[grid] = q
        return q

    def merge(self, other: QuantileSummary) -> QuantileSummary:
        """Approximate summary of the union: the count-weighted mixture CDF, inverted on the grid."""
        grid = np.union1d(self.values, other.values)
        mix = (self.n * self.cdf(grid) + other.n * other.cdf(grid)) / (self.n + other.n)
        mix = np.maximum.accumulate(mix)
        values = np.interp(self.levels, mix, grid)
        values[0], values[-1] = min(self.values[0], other.values[0]), max(self.values[-1], other.values[-1])
        return QuantileSummary(levels=self.levels.copy(), values=values, n=self.n + other.n)

    def to_state(self) -> dict[str, Any]:
        return {"n": self.n, "levels": len(self.levels), "values": [float(v) for v in self.values]}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> QuantileSummary:
        values = np.asarray(state["values"], dtype=float)
        if len(values) != int(state["levels"]) or len(values) < 2:
            raise ValueError("quantile summary: 'values' must hold 'levels' (>= 2) numbers")
        return cls(levels=np.linspace(0.0, 1.0, len(values)), values=values, n=int(state["n"]))

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, QuantileSummary) and self.n == other.n
                and np.array_equal(self.levels, other.levels) and np.array_equal(self.values, other.values))

    __hash__ = None  # type: ignore[assignment]
