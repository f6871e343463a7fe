"""The result of one drift evaluation."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["DriftResult"]


@dataclass(frozen=True, slots=True)
class DriftResult:
    """One drift evaluation of one feature in one window.

    One meaning per field: ``statistic`` is the method's own statistic, and a
    distance drifts when ``statistic >= threshold``; a test (``p_value`` set)
    drifts when ``p_value_adjusted <= threshold`` (alpha): ``p_value`` is the
    test's own p-value, ``p_value_adjusted`` the same after the window's
    multiple-testing correction (:func:`~monitor.drift.adjusted_p_values`; equal to
    ``p_value`` with ``correction: none``). ``drifted`` is ``None`` when the
    window had fewer than the minimum sample ("insufficient data", not drift).

    ``effect_size`` says how large the change is, whatever the method, and is
    computed by the caller: for numeric features the standardised mean
    difference ``(window mean - reference mean) / reference std``; for
    categorical features Cramér's V of the window's counts against the
    reference proportions (in [0, 1]). ``None`` when not computed.

    Examples
    --------
    >>> DriftResult(method="psi", statistic=0.3, threshold=0.1, sample_size=500, drifted=True).drifted
    True
    >>> DriftResult(method="ks", statistic=0.08, threshold=0.05, sample_size=2000, drifted=True,
    ...             p_value=1e-9, p_value_adjusted=4e-9, effect_size=0.21).to_dict()["p_value_adjusted"]
    4e-09
    """

    method: str
    statistic: float | None
    threshold: float
    sample_size: int
    drifted: bool | None
    p_value: float | None = None
    effect_size: float | None = None
    p_value_adjusted: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
