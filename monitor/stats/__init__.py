"""Mergeable streaming statistics in River's protocol."""

from monitor.stats.cardinality import Cardinality
from monitor.stats.histogram import OTHER, BinnedCounts, CategoryCounts
from monitor.stats.moments import Moments
from monitor.stats.quantiles import DEFAULT_LEVELS, QuantileSummary
from monitor.stats.sample import DEFAULT_CAPACITY, ValueSample

__all__ = [
    "DEFAULT_CAPACITY",
    "DEFAULT_LEVELS",
    "OTHER",
    "BinnedCounts",
    "Cardinality",
    "CategoryCounts",
    "Moments",
    "QuantileSummary",
    "ValueSample",
]
