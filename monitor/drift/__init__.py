"""Drift statistics against a reference profile."""

from monitor.drift.chisquare import CHI_SQUARE_FLOOR, chi_square
from monitor.drift.hellinger import hellinger
from monitor.drift.jensen_shannon import js_distance
from monitor.drift.ks import ks_test
from monitor.drift.linf import linf
from monitor.drift.methods import METHODS, MethodInfo, default_methods
from monitor.drift.multitest import adjust, adjusted_p_values, benjamini_hochberg, bonferroni
from monitor.drift.psi import PSI_EPSILON, psi
from monitor.drift.result import DriftResult
from monitor.drift.wasserstein import wasserstein, wasserstein_normed

__all__ = [
    "CHI_SQUARE_FLOOR",
    "METHODS",
    "PSI_EPSILON",
    "DriftResult",
    "MethodInfo",
    "adjust",
    "adjusted_p_values",
    "benjamini_hochberg",
    "bonferroni",
    "chi_square",
    "default_methods",
    "hellinger",
    "js_distance",
    "ks_test",
    "linf",
    "psi",
    "wasserstein",
    "wasserstein_normed",
]
