"""Mergeable streaming statistics in River's protocol."""

from monitor.stats.histogram import OTHER, BinnedCounts, CategoryCounts
from monitor.stats.moments import Moments

__all__ = ["OTHER", "BinnedCounts", "CategoryCounts", "Moments"]
