"""Count, mean, standard deviation, min and max of a numeric stream, mergeable, for any finite floats."""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = ["Moments"]

_sum, _min, _max = np.add.reduce, np.minimum.reduce, np.maximum.reduce

#: After a rescale every stored or incoming value is below ``2 ** _HEADROOM`` in magnitude, so a
#: squared difference is below ``2 ** 898`` and the merge term ``d^2 n_a n_b`` stays finite while
#: ``n_a n_b < 2 ** 124``.
_HEADROOM = 448

#: Below this, ``d ** 2`` cannot overflow.
_SQUARE_SAFE = 1e154

_FLOAT_MAX = sys.float_info.max


def _square(d: float) -> float:
    """``d ** 2`` as River computes it (libm's ``pow``, which rounds some ties unlike ``d * d``),
    but ``inf`` where ``**`` would raise ``OverflowError``."""
    return d**2 if -_SQUARE_SAFE < d < _SQUARE_SAFE else d * d


def _down(v: float, k: int) -> float:
    """``v / 2 ** k`` for ``k >= 0`` (exact unless the result is subnormal; never overflows)."""
    return math.ldexp(v, -k) if k else v


def _safe_exp(*values: float) -> int:
    """The scale exponent that brings the largest finite ``|value|`` below ``2 ** _HEADROOM``."""
    bound = max((abs(v) for v in values if math.isfinite(v)), default=0.0)
    return math.frexp(bound)[1] - _HEADROOM


def _welford(n: int, mean: float, m2: float, x: float) -> tuple[float, float]:
    """Mean and M2 after adding ``x`` as the ``n``-th value (River's ``Var.update`` arithmetic)."""
    new_mean = mean + (1.0 / n) * (x - mean)
    return new_mean, m2 + (x - mean) * (x - new_mean)


def _add_batch(na: int, mean_a: float, m2_a: float, nb: int, mean_b: float, m2_b: float) -> tuple[float, float]:
    """Chan et al.'s merge as a batch is added: the mean moves by ``delta nb / n``."""
    total = na + nb
    delta = mean_b - mean_a
    return mean_a + delta * nb / total, m2_a + (m2_b + delta * delta * na * nb / total)


def _merge(na: int, mean_a: float, m2_a: float, nb: int, mean_b: float, m2_b: float) -> tuple[float, float]:
    """Chan et al.'s merge as River's ``Var.__iadd__`` and ``Mean.__iadd__`` compute it."""
    total = na + nb
    m2 = m2_a + m2_b + _square(mean_a - mean_b) * na * nb / total
    return (na * mean_a + nb * mean_b) / total, m2


def _batch(x: NDArray[np.float64]) -> tuple[float, float]:
    """Mean and sum of squared deviations of a non-empty batch (inf or NaN when they overflow)."""
    with np.errstate(over="ignore", invalid="ignore"):
        mean = float(_sum(x)) / x.size  # x.mean() without its Python-level wrapper
        d = x - mean
        return mean, float(_sum(d * d))


class Moments:
    """Running count/mean/std/min/max (Welford's algorithm), mergeable, robust to any finite float.

    Follows River's statistic protocol (``update``/``get``) and is mergeable:
    ``a += b`` gives the state of the concatenated stream (Chan et al.'s
    parallel-variance formulas). Memory is constant.

    The arithmetic is River's ``stats.Var`` (``ddof=1``), operation for
    operation, as long as nothing overflows. Values beyond about ``1e154``
    would: their squares exceed the float range. Then the state switches to
    scaled units: the mean is kept divided by ``2 ** exp`` and the sum of
    squared deviations by ``4 ** exp``, ``exp`` just large enough that every
    value seen is below ``2 ** 448`` (``exp <= 576``), and the update or merge
    is done again in those units. Scaling by a power of two is exact, so the
    mean keeps full precision; values below ``2 ** (exp - 1022)`` are then
    tiny next to the ones that forced the scale and lose their low digits.
    ``update`` and ``+=`` never raise and give no NaN on finite input; the
    mean stays finite; ``std`` is ``inf`` only when the true standard
    deviation exceeds the float range (the variance itself, ``std ** 2``,
    overflows from about ``1.3e154``, as any float does).

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

    Extreme values are fine:

    >>> big = Moments()
    >>> big.update_many(np.array([1e308, -1e308, 1e308]))
    >>> big.mean, f"{big.std:.6e}"  # std = 1e308 * sqrt(4/3)
    (3.333333333333333e+307, '1.154701e+308')
    """

    __slots__ = ("_exp", "_m2", "_mean", "max", "min", "n")

    def __init__(self) -> None:
        self.n = 0
        self._mean = 0.0
        self._m2 = 0.0
        self._exp = 0  # the mean is kept divided by 2 ** _exp, M2 by 4 ** _exp
        self.min = math.inf
        self.max = -math.inf

    @classmethod
    def of(cls, *, n: int, mean: float, std: float | None, lo: float, hi: float) -> Moments:
        """The state of ``n`` values with this mean, sample standard deviation (``None``: none
        known, taken as 0), minimum and maximum, e.g. from a saved profile.

        >>> a = Moments.of(n=3, mean=2.0, std=1.0, lo=1.0, hi=3.0)
        >>> b = Moments.of(n=2, mean=1e300, std=1e300, lo=0.0, hi=2e300)
        >>> (a + b).mean, f"{(a + b).std:.4e}"
        (4e+299, '7.4162e+299')
        """
        s = std or 0.0
        m2 = _square(s) * max(n - 1, 0)
        exp = 0
        if not math.isfinite(m2):
            exp = max(0, _safe_exp(mean, s, lo, hi))
            m2 = _square(_down(s, exp)) * max(n - 1, 0)
        m = cls()
        m.add_summary(n, _down(mean, exp), m2, lo, hi, exp=exp)
        return m

    def _rescale(self, exp: int) -> None:
        """Express the state in units of ``2 ** exp`` (``exp >= self._exp``)."""
        k = exp - self._exp
        self._mean, self._m2, self._exp = _down(self._mean, k), _down(self._m2, 2 * k), exp

    def update(self, x: float) -> None:
        n = self.n + 1
        mean, m2 = _welford(n, self._mean, self._m2, _down(x, self._exp))
        if not (math.isfinite(mean) and math.isfinite(m2)):
            exp = _safe_exp(x, self.min, self.max)
            if exp > self._exp:
                self._rescale(exp)
                mean, m2 = _welford(n, self._mean, self._m2, _down(x, exp))
        self.n, self._mean, self._m2 = n, mean, m2
        if x < self.min:
            self.min = x
        if x > self.max:
            self.max = x

    def update_many(self, x: NDArray[np.float64], *, bounds: tuple[float, float] | None = None) -> None:
        """Add a batch of values at once (numpy moments, then the parallel-variance merge).

        ``bounds`` is the batch's ``(min, max)`` when the caller has it already.
        """
        nb = int(x.size)
        if nb == 0:
            return
        lo, hi = bounds if bounds is not None else (float(_min(x)), float(_max(x)))
        mean, m2 = _batch(x)
        exp = 0
        if not (math.isfinite(mean) and math.isfinite(m2)):
            exp = max(0, _safe_exp(lo, hi))
            if exp:
                mean, m2 = _batch(np.ldexp(x, -exp))
        self.add_summary(nb, mean, m2, lo, hi, exp=exp)

    def add_summary(self, n: int, mean: float, m2: float, lo: float, hi: float, *, exp: int = 0) -> None:
        """Add ``n >= 1`` values given by their mean, sum of squared deviations from it, minimum
        and maximum (the parallel-variance merge, as for a batch); ``mean`` and ``m2`` are in
        units of ``2 ** exp`` and ``4 ** exp`` (``exp >= 0``)."""
        if self.n == 0:
            self.n, self._mean, self._m2, self._exp = n, mean, m2, exp
        else:
            self._combine(n, mean, m2, exp, (lo, hi), _add_batch)
        if lo < self.min:
            self.min = lo
        if hi > self.max:
            self.max = hi

    def _combine(self, nb: int, mean_b: float, m2_b: float, exp_b: int, bounds: tuple[float, float],
                 formula: Callable[[int, float, float, int, float, float], tuple[float, float]]) -> None:
        """Merge ``nb`` values (mean and M2 in units of ``2 ** exp_b``, extremes ``bounds``) into
        this non-empty state by ``formula``, in finer units first and coarser ones if it overflows."""
        exp = max(self._exp, exp_b)
        self._rescale(exp)
        mean, m2 = formula(self.n, self._mean, self._m2, nb, _down(mean_b, exp - exp_b),
                           _down(m2_b, 2 * (exp - exp_b)))
        if not (math.isfinite(mean) and math.isfinite(m2)):
            safe = _safe_exp(self.min, self.max, *bounds)
            if safe > exp:
                self._rescale(safe)
                mean, m2 = formula(self.n, self._mean, self._m2, nb, _down(mean_b, safe - exp_b),
                                   _down(m2_b, 2 * (safe - exp_b)))
        self.n += nb
        self._mean, self._m2 = mean, m2

    @property
    def mean(self) -> float | None:
        if not self.n:
            return None
        if not self._exp:
            return self._mean
        # Within [min, max] but for rounding, which must not carry it past the float range.
        return math.ldexp(self._mean, self._exp) if math.frexp(self._mean)[1] + self._exp <= 1024 \
            else math.copysign(_FLOAT_MAX, self._mean)

    @property
    def std(self) -> float | None:
        """Sample standard deviation (ddof=1), ``None`` below two values."""
        if self.n < 2:
            return None
        std = math.sqrt(max(self._m2 / (self.n - 1), 0.0))
        if not self._exp:
            return std
        return math.ldexp(std, self._exp) if math.frexp(std)[1] + self._exp <= 1024 else math.inf

    def get(self) -> dict[str, float | None] | None:
        """All moments as a dict, or ``None`` when no value was seen."""
        if not self.n:
            return None
        return {"count": self.n, "mean": self.mean, "std": self.std, "min": self.min, "max": self.max}

    def __iadd__(self, other: Moments) -> Moments:
        if other.n == 0:
            return self
        if self.n == 0:
            self.n, self._mean, self._m2, self._exp = other.n, other._mean, other._m2, other._exp
        else:
            self._combine(other.n, other._mean, other._m2, other._exp, (other.min, other.max), _merge)
        self.min = min(self.min, other.min)
        self.max = max(self.max, other.max)
        return self

    def __add__(self, other: Moments) -> Moments:
        out = Moments.from_state(self.to_state())
        out += other
        return out

    def to_state(self) -> dict[str, Any]:
        """JSON-able state: ``schema_version`` 1, or 2 (with ``exp``) once values forced a scale.

        An unscaled state keeps writing version 1, which every reader of version 1 still loads.
        """
        state: dict[str, Any] = {
            "schema_version": 2 if self._exp else 1,
            "n": self.n,
            "mean": self._mean,
            "m2": self._m2,
            "min": self.min if self.n else None,
            "max": self.max if self.n else None,
        }
        if self._exp:
            state["exp"] = self._exp
        return state

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Moments:
        version = state.get("schema_version")
        if version not in (1, 2):
            raise ValueError(f"unsupported Moments state version {version!r}")
        m = cls()
        m.n = int(state["n"])
        m._mean = float(state["mean"])
        m._m2 = float(state["m2"])
        m._exp = int(state["exp"]) if version == 2 else 0
        m.min = math.inf if state["min"] is None else float(state["min"])
        m.max = -math.inf if state["max"] is None else float(state["max"])
        return m

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Moments) and self.to_state() == other.to_state()

    def __repr__(self) -> str:
        return f"Moments(n={self.n}, mean={self.mean}, std={self.std})"
