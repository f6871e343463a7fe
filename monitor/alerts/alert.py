"""The alert event: what streamdq publishes when a check crosses a threshold."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from monitor.names import SEVERITIES, Direction, Severity, Status

__all__ = ["ALERT_SCHEMA_VERSION", "SEVERITIES", "Alert", "fingerprint"]

#: 2: ``direction`` added; a drift test's ``value`` is its (corrected) p-value against alpha, no longer its
#: statistic (now ``details.statistic``).
ALERT_SCHEMA_VERSION = 2


def fingerprint(stream: str, feature: str | None, check: str, model: str | None = None) -> str:
    """Stable identity of an alert condition: the same (stream, feature, check, model) always
    maps to the same 16-hex-digit fingerprint, across workers and restarts.

    >>> fingerprint("features", "age", "psi") == fingerprint("features", "age", "psi")
    True
    >>> len(fingerprint("features", None, "volume"))
    16
    """
    key = "\x1f".join([stream, feature or "", check, model or ""])
    return hashlib.sha256(key.encode()).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class Alert:
    """One alert about one condition in one window.

    ``alert_id`` is derived from the fingerprint and the window, so the same
    window evaluated twice (a replay, a redelivery) yields the same id and
    receivers can drop duplicates.

    ``value`` and ``threshold`` are on one scale and ``direction`` says which side is bad:
    ``above`` (``value >= threshold`` raises: ratios, distances, drops) or ``below`` (a drift
    test: ``value`` is its p-value after the window's multiple-testing correction, ``threshold``
    alpha; the test's statistic and effect size are in ``details``).

    Examples
    --------
    >>> a = Alert(stream="s", feature="x", check="psi", severity=Severity.CRITICAL, value=0.4,
    ...           threshold=0.25, sample_size=1000, summary="x drifted",
    ...           window={"name": "w", "kind": "count", "index": 3, "start": "t0", "end": "t1"},
    ...           reference_version="abc", created_at="t1")
    >>> a.to_event()["status"], a.alert_id == a.alert_id, a.fingerprint == fingerprint("s", "x", "psi")
    ('firing', True, True)
    >>> a.to_event()["direction"], a.value >= a.threshold
    ('above', True)
    """

    stream: str
    feature: str | None
    check: str
    severity: Severity
    value: float
    threshold: float
    sample_size: int
    summary: str
    window: dict[str, Any]
    reference_version: str | None
    created_at: str
    status: Status = Status.FIRING
    model: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    direction: Direction = Direction.ABOVE
    #: Set by the alert policy: the notification's id (idempotency key) and the alert's lifetime.
    event_id: str | None = None
    first_seen: str | None = None
    last_seen: str | None = None

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.stream, self.feature, self.check, self.model)

    @property
    def incident_id(self) -> str | None:
        """The ``alert_id`` of the ``firing`` event that opened this alert's incident (so every event of
        one incident, and the window lines that saw it, share it); ``None`` for a raw verdict."""
        if self.first_seen is None:
            return None
        key = f"{self.fingerprint}|{self.first_seen}|{Status.FIRING}|0"
        return hashlib.sha256(key.encode()).hexdigest()[:32]

    @property
    def alert_id(self) -> str:
        if self.event_id is not None:
            return self.event_id
        key = f"{self.fingerprint}|{self.window['name']}|{self.window['index']}|{self.status}"
        return hashlib.sha256(key.encode()).hexdigest()[:32]

    def to_event(self) -> dict[str, Any]:
        """The JSON document sent to the alerts topic (``schemas/alert.schema.json``)."""
        return {
            "schema_version": ALERT_SCHEMA_VERSION,
            "alert_id": self.alert_id,
            "incident_id": self.incident_id,
            "fingerprint": self.fingerprint,
            "status": str(self.status),
            "severity": str(self.severity),
            "stream": self.stream,
            "feature": self.feature,
            "check": self.check,
            "model": self.model,
            "value": self.value,
            "threshold": self.threshold,
            "direction": str(self.direction),
            "sample_size": self.sample_size,
            "window": self.window,
            "reference_version": self.reference_version,
            "first_seen": self.first_seen or self.created_at,
            "last_seen": self.last_seen or self.created_at,
            "summary": self.summary,
            "details": self.details,
        }
