"""Model performance: rolling metrics once labels join, and label-free estimation (CBPE)."""

from monitor.performance._scores import DEFAULT_ECE_BINS, DEFAULT_SCORE_BINS, DEFAULT_THRESHOLD, LOG_LOSS_EPS
from monitor.performance.cbpe import CBPEstimator, IsotonicCalibrator
from monitor.performance.classification import (
    BinaryPerformance,
    Label,
    MulticlassPerformance,
)
from monitor.performance.reference import (
    Performance,
    ReferenceBuilder,
    calibrator_from,
    label_key,
    merge_performance_states,
    reference_metrics,
)
from monitor.performance.regression import RegressionPerformance

__all__ = [
    "DEFAULT_ECE_BINS",
    "DEFAULT_SCORE_BINS",
    "DEFAULT_THRESHOLD",
    "LOG_LOSS_EPS",
    "BinaryPerformance",
    "CBPEstimator",
    "IsotonicCalibrator",
    "Label",
    "MulticlassPerformance",
    "Performance",
    "ReferenceBuilder",
    "RegressionPerformance",
    "calibrator_from",
    "label_key",
    "merge_performance_states",
    "reference_metrics",
]
