"""Quality checks per feature and per record, per window."""

from monitor.checks.duplicates import DuplicateFilter
from monitor.checks.feature import MISSING, FeatureState, FeatureWindowResult
from monitor.checks.record import RecordFlags, RecordState

__all__ = ["MISSING", "DuplicateFilter", "FeatureState", "FeatureWindowResult", "RecordFlags", "RecordState"]
