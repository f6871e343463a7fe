"""A quantile summary of a reference distribution (a fixed grid of quantiles)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = ["DEFAULT_LEVELS", "QuantileSummary", "interp", "quantiles"]

#: Quantile levels kept for a reference feature: 0, 0.001, ..., 1 (1001 points).
DEFAULT_LEVELS = 1001


def quantiles(values: NDArray[np.float64], levels: NDArray[np.float64]) -> NDArray[np.float64]:
    """``np.quantile(values, levels)`` (linear interpolation) for any finite values.

    numpy interpolates between neighbouring order statistics as ``a + (b - a) t``,
    and ``b - a`` overflows when they lie more than the float range apart (say
    ``-1.7e308`` and ``1.7e308``). Halving every value is exact, so then the
    quantiles of the halves are doubled; wherever numpy's own result is finite,
    it is returned as is.

    Examples
    --------
    >>> quantiles(np.array([-1.7e308, 1.7e308]), np.array([0.0, 0.5, 0.75])).tolist()
    [-1.7e+308, 0.0, 8.5e+307]
    """
    with np.errstate(over="ignore", invalid="ignore"):
        q = np.asarray(np.quantile(values, levels), dtype=float)
    if np.isfinite(q).all() or not np.isfinite(values).all():
        return q
    return np.asarray(np.quantile(values * 0.5, levels), dtype=float) * 2.0


def interp(x: NDArray[np.float64], xp: NDArray[np.float64], fp: NDArray[np.float64], *,
           left: float | None = None, right: float | None = None) -> NDArray[np.float64]:
    """``np.interp(x, xp, fp, left=left, right=right)`` (``xp`` non-decreasing) for any finite floats.

    numpy's slope ``(fp[j+1] - fp[j]) / (xp[j+1] - xp[j])`` overflows when the
    ordinates are far apart and the abscissae close, and a step of ``xp`` wider
    than the float range makes the slope 0 (a wrong but finite result). In those
    cases the result is the convex combination ``(1 - t) fp[j] + t fp[j+1]`` with
    ``t`` from halved abscissae, which cannot overflow; otherwise numpy's.

    Examples
    --------
    >>> interp(np.array([0.0]), np.array([-1.7e308, 1.7e308]), np.array([0.0, 1.0])).tolist()
    [0.5]
    >>> interp(np.array([0.5e-3]), np.array([0.0, 1e-3]), np.array([-1e306, 1e306])).tolist()
    [0.0]
    """
    with np.errstate(over="ignore", invalid="ignore"):
        out = np.asarray(np.interp(x, xp, fp, left=left, right=right), dtype=float)
        if xp.size < 2 or (math.isfinite(float(xp[-1] - xp[0]))
                           and (np.isfinite(out).all() or not (np.isfinite(x).all() and np.isfinite(fp).all()))):
            return out
        j = np.clip(np.searchsorted(xp, x, side="right") - 1, 0, xp.size - 2)
        a, b = fp[j], fp[j + 1]
        half_step = xp[j + 1] * 0.5 - xp[j] * 0.5
        t = np.divide(x * 0.5 - xp[j] * 0.5, half_step, out=np.zeros_like(x, dtype=float), where=half_step > 0)
        t = np.clip(t, 0.0, 1.0)
        out = np.clip(a * (1.0 - t) + b * t, np.minimum(a, b), np.maximum(a, b))
    if left is not None:
        out[x < xp[0]] = left
    if right is not None:
        out[x > xp[-1]] = right
    return np.asarray(out, dtype=float)


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
        return cls(levels=levels, values=quantiles(arr, levels), n=int(arr.size if n is None else n))

    def cdf(self, x: NDArray[np.float64]) -> NDArray[np.float64]:
        """P(X <= x), linear between grid points; right-continuous at ties."""
        # Repeated quantile values (ties, discrete data): keep the highest level per value.
        v, idx = np.unique(self.values[::-1], return_index=True)
        lv = self.levels[::-1][idx]
        return interp(np.asarray(x, dtype=float), v, lv, left=0.0, right=1.0)

    def quantile(self, u: NDArray[np.float64]) -> NDArray[np.float64]:
        """The quantile function at levels ``u`` (linear between grid points)."""
        return interp(np.asarray(u, dtype=float), self.levels, self.values)

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
        values = interp(self.levels, mix, grid)
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
