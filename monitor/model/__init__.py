"""Model monitoring: a predictions stream joined to its delayed labels, rolling performance per model
version, label-free estimates (CBPE) and concept-drift detectors on the error stream."""

from monitor.model.monitor import DEFAULT_VERSION, ERROR_DETECTORS, ModelMonitor, ModelWindowReport
from monitor.model.reference import ReferenceBuilder, calibrator_from, label_key, reference_metrics

__all__ = [
    "DEFAULT_VERSION",
    "ERROR_DETECTORS",
    "ModelMonitor",
    "ModelWindowReport",
    "ReferenceBuilder",
    "calibrator_from",
    "label_key",
    "reference_metrics",
]
