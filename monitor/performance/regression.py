"""Rolling performance of a regressor once labels have joined: running sums, mergeable, constant memory.

Same protocol as the classification accumulators (``update``/``update_many``/``get``, ``+=``,
``to_state``/``from_state``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from monitor.performance._scores import ratio

__all__ = ["RegressionPerformance"]

#: Smallest MAPE denominator (scikit-learn's floor), so a tiny non-zero ``y_true`` cannot overflow the sum.
_EPS = float(np.finfo(np.float64).eps)


class RegressionPerformance:
    """Count, MAE, RMSE, MAPE and mean error of a regressor, from running sums (mergeable, constant memory).

    The error is ``y_pred - y_true`` (``mean_error > 0``: the model over-predicts). MAPE is the
    mean of ``|y_pred - y_true| / |y_true|`` as a fraction (scikit-learn's convention, not River's
    percentage) over the pairs with ``y_true != 0``; those with ``y_true == 0`` are skipped and
    counted in ``mape_skipped`` (River's ``MAPE`` scores them as zero error instead, which biases
    it down); a non-zero ``|y_true|`` below machine epsilon is floored at epsilon (as scikit-learn
    does) so the sum stays finite. ``mape`` is ``None`` when every ``y_true`` was 0. Non-finite values
    are rejected; the sums assume errors of a sane magnitude (squares below ``1e308``).

    Examples
    --------
    >>> rp = RegressionPerformance()
    >>> rp.update_many([3.0, -0.5, 2.0, 7.0, 0.0], [2.5, 0.0, 2.0, 8.0, 1.0])
    >>> r = rp.get()
    >>> r["count"], r["mae"], r["mape_skipped"], round(r["mape"], 6), r["mean_error"]
    (5, 0.6, 1, 0.327381, 0.4)
    """

    __slots__ = ("_abs", "_ape", "_err", "_sq", "n", "n_ape")

    def __init__(self) -> None:
        self.n = 0
        self.n_ape = 0
        self._err = 0.0
        self._abs = 0.0
        self._sq = 0.0
        self._ape = 0.0

    def update(self, y_true: float, y_pred: float) -> None:
        t, p = float(y_true), float(y_pred)
        if not (math.isfinite(t) and math.isfinite(p)):
            raise ValueError(f"regression values must be finite, got {y_true!r}, {y_pred!r}")
        e = p - t
        self.n += 1
        self._err += e
        self._abs += abs(e)
        self._sq += e * e
        if t != 0.0:
            self.n_ape += 1
            self._ape += abs(e) / max(abs(t), _EPS)

    def update_many(self, y_true: ArrayLike, y_pred: ArrayLike) -> None:
        t = np.asarray(y_true, dtype=np.float64).ravel()
        p = np.asarray(y_pred, dtype=np.float64).ravel()
        if t.size != p.size:
            raise ValueError(f"y_true and y_pred differ in length: {t.size} != {p.size}")
        if not t.size:
            return
        if not (np.all(np.isfinite(t)) and np.all(np.isfinite(p))):
            raise ValueError("regression values must be finite")
        e = p - t
        ae = np.abs(e)
        nz = t != 0.0
        self.n += int(t.size)
        self._err += float(e.sum())
        self._abs += float(ae.sum())
        self._sq += float(np.dot(e, e))
        self.n_ape += int(np.count_nonzero(nz))
        self._ape += float((ae[nz] / np.maximum(np.abs(t[nz]), _EPS)).sum())

    def get(self) -> dict[str, float | int | None] | None:
        """Metrics as a dict, or ``None`` when nothing was seen."""
        n = self.n
        if not n:
            return None
        return {
            "count": n,
            "mae": self._abs / n,
            "rmse": math.sqrt(self._sq / n),
            "mape": ratio(self._ape, self.n_ape),
            "mape_skipped": n - self.n_ape,
            "mean_error": self._err / n,
        }

    def __iadd__(self, other: RegressionPerformance) -> RegressionPerformance:
        self.n += other.n
        self.n_ape += other.n_ape
        self._err += other._err
        self._abs += other._abs
        self._sq += other._sq
        self._ape += other._ape
        return self

    def __add__(self, other: RegressionPerformance) -> RegressionPerformance:
        out = RegressionPerformance.from_state(self.to_state())
        out += other
        return out

    def to_state(self) -> dict[str, Any]:
        return {"schema_version": 1, "n": self.n, "n_ape": self.n_ape, "err_sum": self._err,
                "abs_sum": self._abs, "sq_sum": self._sq, "ape_sum": self._ape}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> RegressionPerformance:
        if state.get("schema_version") != 1:
            raise ValueError(f"unsupported RegressionPerformance state version {state.get('schema_version')!r}")
        rp = cls()
        rp.n, rp.n_ape = int(state["n"]), int(state["n_ape"])
        rp._err, rp._abs = float(state["err_sum"]), float(state["abs_sum"])
        rp._sq, rp._ape = float(state["sq_sum"]), float(state["ape_sum"])
        return rp

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RegressionPerformance) and self.to_state() == other.to_state()

    def __repr__(self) -> str:
        return f"RegressionPerformance(n={self.n})"
