"""Alert notifications: webhook and Alertmanager subscriptions delivered from bounded queues."""

from agents.notify.notifier import (
    OUTCOMES,
    RETRYABLE_STATUS,
    SEVERITY_RANK,
    DeadLetter,
    DeliveryResult,
    Notifier,
    alertmanager_payload,
    backoff_delay,
    matches,
    retry_delay,
    rfc3339,
    signature,
    verify_signature,
    webhook_request,
)

__all__ = [
    "OUTCOMES",
    "RETRYABLE_STATUS",
    "SEVERITY_RANK",
    "DeadLetter",
    "DeliveryResult",
    "Notifier",
    "alertmanager_payload",
    "backoff_delay",
    "matches",
    "retry_delay",
    "rfc3339",
    "signature",
    "verify_signature",
    "webhook_request",
]
