"""Model monitoring: a predictions stream joined to its delayed labels, rolling performance per model
version, label-free estimates (CBPE) and concept-drift detectors on the error stream."""

from monitor.model.monitor import ModelMonitor
from monitor.model.windows import DEFAULT_VERSION

__all__ = ["DEFAULT_VERSION", "ModelMonitor"]
