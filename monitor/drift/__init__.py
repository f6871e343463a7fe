"""Drift statistics against a reference profile."""

from monitor.drift.psi import PSI_EPSILON, psi
from monitor.drift.result import DriftResult

__all__ = ["PSI_EPSILON", "DriftResult", "psi"]
