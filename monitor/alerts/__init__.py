"""Alert events and the rules that raise them."""

from monitor.alerts.alert import ALERT_SCHEMA_VERSION, SEVERITIES, Alert, fingerprint
from monitor.alerts.rules import QUALITY_CHECKS, evaluate_window

__all__ = ["ALERT_SCHEMA_VERSION", "QUALITY_CHECKS", "SEVERITIES", "Alert", "evaluate_window", "fingerprint"]
