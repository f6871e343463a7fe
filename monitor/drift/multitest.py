"""Multiple-testing corrections for the drift tests of many features in one window."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import numpy as np

__all__ = ["adjust", "adjusted_p_values", "benjamini_hochberg", "bonferroni"]


def _valid(p_values: Sequence[float | None], alpha: float) -> tuple[list[int], list[float]]:
    """Indices and values of the tests that ran (not ``None``), after checking them and ``alpha``."""
    if not (0.0 < alpha < 1.0):
        raise ValueError(f"alpha must be strictly between 0 and 1, got {alpha}")
    idx, ps = [], []
    for i, p in enumerate(p_values):
        if p is None:
            continue
        try:
            value = float(p)
        except (TypeError, ValueError):
            value = math.nan
        if isinstance(p, bool) or not 0.0 <= value <= 1.0:  # NaN fails the comparison too
            raise ValueError(f"p-value #{i} is not a number in [0, 1]: {p!r}")
        idx.append(i)
        ps.append(value)
    return idx, ps


def benjamini_hochberg(p_values: Sequence[float | None], alpha: float) -> list[bool]:
    """Which hypotheses to reject (drifted) controlling the false discovery rate at ``alpha``.

    Benjamini-Hochberg step-up: with the ``m`` p-values sorted, reject the
    ``k`` smallest for the largest ``k`` with ``p_(k) <= k alpha / m``. Computed
    as adjusted p-values ``min_{j >= i} p_(j) m / j`` (``<= alpha`` means
    rejected), the same arithmetic as ``scipy.stats.false_discovery_control``.
    ``None`` entries (a test that did not run: insufficient data) are never
    rejected and do not count toward ``m``.

    Examples
    --------
    >>> benjamini_hochberg([0.01, 0.04, None, 0.03, 0.5], 0.05)  # m = 4: only 0.01 <= 1 * 0.05 / 4
    [True, False, False, False, False]
    >>> benjamini_hochberg([0.01, 0.02, 0.03], 0.05)  # 0.03 <= 3 * 0.05 / 3: all three
    [True, True, True]
    """
    idx, ps = _valid(p_values, alpha)
    out = [False] * len(p_values)
    if not ps:
        return out
    arr = np.asarray(ps, dtype=float)
    m = arr.size
    order = np.argsort(arr)
    adjusted = arr[order] * (m / np.arange(1, m + 1, dtype=float))
    adjusted = np.minimum.accumulate(adjusted[::-1])[::-1]
    for pos, adj in zip(order.tolist(), adjusted.tolist(), strict=True):
        out[idx[pos]] = min(adj, 1.0) <= alpha
    return out


def bonferroni(p_values: Sequence[float | None], alpha: float) -> list[bool]:
    """Which hypotheses to reject controlling the family-wise error rate at ``alpha``: ``p m <= alpha``.

    ``None`` entries are never rejected and do not count toward ``m``. Every
    rejection here is also a Benjamini-Hochberg rejection (the same ``p m``
    is BH's adjusted p-value before its step-up minimum).

    Examples
    --------
    >>> bonferroni([0.01, 0.02, None, 0.03], 0.05)  # m = 3: p <= 0.0167
    [True, False, False, False]
    """
    idx, ps = _valid(p_values, alpha)
    out = [False] * len(p_values)
    m = len(ps)
    for i, p in zip(idx, ps, strict=True):
        out[i] = p * m <= alpha
    return out


def adjusted_p_values(p_values: Sequence[float | None],
                      method: Literal["bh", "bonferroni", "none"]) -> list[float | None]:
    """The p-values on the scale of the decision: a test is rejected by :func:`adjust` at ``alpha``
    exactly when its adjusted p-value is ``<= alpha`` (the same arithmetic as the decisions).

    ``"bh"``: Benjamini-Hochberg adjusted p-values ``min(1, min_{j >= i} p_(j) m / j)`` (as
    ``scipy.stats.false_discovery_control``); ``"bonferroni"``: ``min(1, p m)``; ``"none"``: ``p``.
    ``None`` entries stay ``None`` and do not count toward ``m``. An alert compares this value with
    alpha (a raw p-value below alpha may still not be rejected after the correction).

    Examples
    --------
    >>> adjusted_p_values([0.01, 0.04, None, 0.03, 0.5], "bh")
    [0.04, 0.05333333333333333, None, 0.05333333333333333, 0.5]
    >>> adjusted_p_values([0.01, None, 0.4], "bonferroni"), adjusted_p_values([0.2], "none")
    ([0.02, None, 0.8], [0.2])
    """
    idx, ps = _valid(p_values, 0.5)
    out: list[float | None] = [None] * len(p_values)
    if not ps:
        return out
    m = len(ps)
    if method == "bh":
        arr = np.asarray(ps, dtype=float)
        order = np.argsort(arr)
        adj = arr[order] * (m / np.arange(1, m + 1, dtype=float))
        adj = np.minimum.accumulate(adj[::-1])[::-1]
        for pos, a in zip(order.tolist(), adj.tolist(), strict=True):
            out[idx[pos]] = min(a, 1.0)
    elif method == "bonferroni":
        for i, p in zip(idx, ps, strict=True):
            out[i] = min(p * m, 1.0)
    elif method == "none":
        for i, p in zip(idx, ps, strict=True):
            out[i] = p
    else:
        raise ValueError(f"unknown multiple-testing method {method!r}; expected 'bh', 'bonferroni' or 'none'")
    return out


def adjust(p_values: Sequence[float | None], alpha: float,
           method: Literal["bh", "bonferroni", "none"]) -> list[bool]:
    """Rejections by ``method``: ``"bh"`` (false discovery rate), ``"bonferroni"``, or ``"none"`` (``p <= alpha``).

    Examples
    --------
    >>> adjust([0.01, 0.04, None], 0.05, "none")
    [True, True, False]
    >>> adjust([], 0.05, "bonferroni")
    []
    """
    if method == "bh":
        return benjamini_hochberg(p_values, alpha)
    if method == "bonferroni":
        return bonferroni(p_values, alpha)
    if method == "none":
        idx, ps = _valid(p_values, alpha)
        out = [False] * len(p_values)
        for i, p in zip(idx, ps, strict=True):
            out[i] = p <= alpha
        return out
    raise ValueError(f"unknown multiple-testing method {method!r}; expected 'bh', 'bonferroni' or 'none'")


