"""Quality checks per feature and window."""

from monitor.checks.feature import MISSING, FeatureWindow, FeatureWindowResult

__all__ = ["MISSING", "FeatureWindow", "FeatureWindowResult"]
