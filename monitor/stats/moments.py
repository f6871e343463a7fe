"""Count, mean, variance, min and max of a numeric stream, mergeable."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import NDArray
from river import stats

__all__ = ["Moments"]

_sum, _min, _max = np.add.reduce, np.minimum.reduce, np.maximum.reduce


class Moments:
    """Running count/mean/std/min/max, backed by River's :class:`river.stats.Var`.

    Follows River's statistic protocol (``update``/``get``) and is mergeable:
    ``a += b`` gives exactly the state of the concatenated stream (River uses
    the parallel-variance formulas). Memory is constant.

    Examples
    --------
    >>> m = Moments()
    >>> for x in [1.0, 2.0, 3.0, 4.0]:
    ...     m.update(x)
    >>> m.n, m.mean, round(m.std, 6), m.min, m.max
    (4, 2.5, 1.290994, 1.0, 4.0)
    >>> other = Moments()
    >>> other.update(10.0)
    >>> m += other
    >>> m.n, m.mean, m.max
    (5, 4.0, 10.0)
    >>> Moments().get() is None
    True
    """

    __slots__ = ("_var", "max", "min")

    def __init__(self) -> None:
        self._var = stats.Var(ddof=1)
        self.min = math.inf
        self.max = -math.inf

    def update(self, x: float) -> None:
        self._var.update(x)
        if x < self.min:
            self.min = x
        if x > self.max:
            self.max = x

    def update_many(self, x: NDArray[np.float64]) -> None:
        """Add a batch of values at once (numpy moments, then the parallel-variance merge)."""
        nb = int(x.size)
        if nb == 0:
            return
        with np.errstate(over="ignore"):  # |x| > ~1e154: the variance is inf, as River's would be
            mb = float(_sum(x)) / nb  # x.mean() without its Python-level wrapper
            d = x - mb
            sb = float(_sum(d * d))
        self.add_summary(nb, mb, sb, float(_min(x)), float(_max(x)))

    def add_summary(self, n: int, mean: float, m2: float, lo: float, hi: float) -> None:
        """Add ``n >= 1`` values given by their mean, sum of squared deviations from it, minimum
        and maximum (the parallel-variance merge, as for a batch)."""
        na = self._var.mean.n
        if na == 0:
            self._var.mean.n, self._var.mean._mean, self._var._S = float(n), mean, m2
        else:
            total = na + n
            delta = mean - self._var.mean._mean
            self._var.mean._mean += delta * n / total
            self._var._S += m2 + delta * delta * na * n / total
            self._var.mean.n = total
        if lo < self.min:
            self.min = lo
        if hi > self.max:
            self.max = hi

    @property
    def n(self) -> int:
        return int(self._var.mean.n)

    @property
    def mean(self) -> float | None:
        return self._var.mean.get() if self.n else None

    @property
    def std(self) -> float | None:
        """Sample standard deviation (ddof=1), ``None`` below two values."""
        if self.n < 2:
            return None
        return math.sqrt(max(self._var.get(), 0.0))

    def get(self) -> dict[str, float | None] | None:
        """All moments as a dict, or ``None`` when no value was seen."""
        if not self.n:
            return None
        return {"count": self.n, "mean": self.mean, "std": self.std, "min": self.min, "max": self.max}

    def __iadd__(self, other: Moments) -> Moments:
        if other.n == 0:  # River's Var merge divides by the combined count
            return self
        if self.n == 0:
            self._var = Moments.from_state(other.to_state())._var
            self.min, self.max = other.min, other.max
            return self
        self._var += other._var
        self.min = min(self.min, other.min)
        self.max = max(self.max, other.max)
        return self

    def __add__(self, other: Moments) -> Moments:
        out = Moments.from_state(self.to_state())
        out += other
        return out

    def to_state(self) -> dict[str, Any]:
        return {
            "schema_version": 1,
            "n": self.n,
            "mean": self._var.mean._mean,
            "m2": self._var._S,
            "min": self.min if self.n else None,
            "max": self.max if self.n else None,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Moments:
        if state.get("schema_version") != 1:
            raise ValueError(f"unsupported Moments state version {state.get('schema_version')!r}")
        m = cls()
        m._var.mean.n = float(state["n"])
        m._var.mean._mean = float(state["mean"])
        m._var._S = float(state["m2"])
        m.min = math.inf if state["min"] is None else float(state["min"])
        m.max = -math.inf if state["max"] is None else float(state["max"])
        return m

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Moments) and self.to_state() == other.to_state()

    def __repr__(self) -> str:
        return f"Moments(n={self.n}, mean={self.mean}, std={self.std})"
