"""Alert events, the rules that raise them per window, and the lifecycle policy that decides
what is notified (hysteresis, for-N-windows, re-notification, dedup)."""

from monitor.alerts.alert import ALERT_SCHEMA_VERSION, SEVERITIES, Alert, fingerprint
from monitor.alerts.policy import AlertPolicy, Observation
from monitor.alerts.rules import QUALITY_CHECKS, evaluate_window, observe_window

__all__ = [
    "ALERT_SCHEMA_VERSION",
    "QUALITY_CHECKS",
    "SEVERITIES",
    "Alert",
    "AlertPolicy",
    "Observation",
    "evaluate_window",
    "fingerprint",
    "observe_window",
]
