"""Pearson's chi-square goodness-of-fit test of a window's category counts."""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike
from scipy.special import chdtrc

from monitor.drift._histograms import counts

__all__ = ["CHI_SQUARE_FLOOR", "chi_square"]

#: Proportion given to a bin the reference never saw (then renormalised), so a
#: new category is a large but finite contribution instead of a division by zero.
CHI_SQUARE_FLOOR = 1e-4


def chi_square(expected: ArrayLike, actual: ArrayLike) -> tuple[float, float, float]:
    """Goodness of fit of the window's counts to the reference proportions.

    ``expected`` (the reference; counts or proportions) gives the proportions
    ``p``; bins where it is zero get :data:`CHI_SQUARE_FLOOR` and ``p`` is
    renormalised. ``actual`` holds the window's *counts* (their total ``n`` is
    the sample size, so proportions would make the test meaningless). The
    statistic is ``sum((actual - n p)^2 / (n p))`` over ``k`` bins with
    ``k - 1`` degrees of freedom; the p-value is its chi-square upper tail
    (``scipy.special.chdtrc``). A test: drift when ``p_value <= alpha``.

    Returns ``(statistic, p_value, cramers_v)``, where Cramér's V
    ``= sqrt(statistic / (n (k - 1)))``, capped at 1, is the effect size. With a
    single bin there is nothing to test: ``(0.0, 1.0, 0.0)``.

    Examples
    --------
    >>> chi_square([1, 1], [50, 50])
    (0.0, 1.0, 0.0)
    >>> stat, p, v = chi_square([0.5, 0.5], [60, 40])  # (10^2 + 10^2) / 50 = 4 on 1 df
    >>> round(stat, 12), round(p, 4), round(v, 4)
    (4.0, 0.0455, 0.2)
    """
    e, a = counts(expected, actual)
    k = e.size
    if k == 1:
        return 0.0, 1.0, 0.0
    p = e / e.sum()
    if np.any(p == 0):
        p = np.where(p == 0, CHI_SQUARE_FLOOR, p)
        p = p / p.sum()
    n = float(a.sum())
    f_exp = n * p
    stat = float(np.sum((a - f_exp) ** 2 / f_exp))
    p_value = float(chdtrc(k - 1, stat))
    cramers_v = min(1.0, math.sqrt(stat / (n * (k - 1))))
    return stat, p_value, cramers_v
