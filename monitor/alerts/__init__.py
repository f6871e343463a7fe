"""Alert events and the lifecycle policy that decides what is notified (hysteresis, for-N-windows,
re-notification, dedup). The rules that raise them per window are in :mod:`monitor.evaluation`."""

from monitor.alerts.alert import ALERT_SCHEMA_VERSION, SEVERITIES, Alert, fingerprint
from monitor.alerts.policy import AlertPolicy, Observation, OpenAlert

__all__ = [
    "ALERT_SCHEMA_VERSION",
    "SEVERITIES",
    "Alert",
    "AlertPolicy",
    "Observation",
    "OpenAlert",
    "fingerprint",
]
