"""What the monitor concludes about one closed window: one report protocol for every stream kind.

Two report types carry it: :class:`WindowReport` (a feature, predictions or
labels stream: data quality and drift) and :class:`ModelWindowReport` (a
model version's performance window). Both follow :class:`Report`, which is
all that replay, the worker's publishing and the metrics exporter read: the
window's identity, its lines for ``windows.jsonl``, its profile for the
profiles topic, its raw verdicts (``alerts``) and what the alert policy
notified (``events``).

Reports are immutable once built: their collections are tuples, and the
policy's events are added by :func:`dataclasses.replace` (:meth:`with_events`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol, runtime_checkable

from monitor.alerts import Alert, Observation
from monitor.checks import FeatureWindowResult
from monitor.drift import DriftResult
from monitor.names import ChangeSeries

__all__ = ["ESTIMATED_METRICS", "Change", "ModelWindowReport", "Report", "WindowReport", "WindowSummary"]

#: Metrics the label-free estimate and the realised performance share (the estimation error is reported for them).
ESTIMATED_METRICS = ("accuracy", "precision", "recall", "f1", "roc_auc")


@runtime_checkable
class Report(Protocol):
    """One closed window of one stream (and, for model windows, one model version)."""

    @property
    def stream(self) -> str:
        """The stream's name."""

    @property
    def window(self) -> Mapping[str, Any]:
        """The window's identity: name, kind, index, ISO start and end, ``partial``."""

    @property
    def count(self) -> int:
        """Records (or joined examples, or predictions) in the window."""

    @property
    def alerts(self) -> Sequence[Alert]:
        """The window's raw verdicts: every check over its raise level."""

    @property
    def events(self) -> Sequence[Alert]:
        """What the alert policy notified for this window (firing/resolved, deduplicated)."""

    @property
    def end_time(self) -> float:
        """The window's end in epoch seconds (the policy's clock)."""

    def rows(self) -> list[dict[str, Any]]:
        """The window's lines in a replay's ``windows.jsonl``."""

    def to_dict(self) -> dict[str, Any]:
        """The window's profile, as sent to the profiles topic."""


@dataclass(frozen=True, slots=True)
class Change:
    """One point of a change detector's series in a window, with the detectors that flagged a change
    at it (none: the series was watched and nothing changed).

    A feature's series (``mean``, ``drift``) has one point per window: ``feature`` and ``value`` (the
    standardised mean, or the drift statistic). A model's ``error`` stream has one point per labelled
    example: only the points where a detector fired are kept, numbered by ``example``.

    Examples
    --------
    >>> Change(ChangeSeries.MEAN, ("adwin",), feature="age", value=4.2).to_dict()
    {'feature': 'age', 'series': 'mean', 'value': 4.2, 'detectors': ['adwin']}
    >>> Change(ChangeSeries.ERROR, ("ddm",), example=1207).to_dict()
    {'series': 'error', 'detectors': ['ddm'], 'example': 1207}
    """

    series: ChangeSeries
    detectors: tuple[str, ...]
    feature: str | None = None
    value: float | None = None
    example: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """As written in ``windows.jsonl``, the profiles topic and alert details."""
        if self.series is ChangeSeries.ERROR:
            return {"series": str(self.series), "detectors": list(self.detectors), "example": self.example}
        return {"feature": self.feature, "series": str(self.series), "value": self.value,
                "detectors": list(self.detectors)}


def _verdict_rows(alerts: Sequence[Alert], incidents: Mapping[str, str]) -> list[dict[str, Any]]:
    """A window's raw verdicts as written in ``windows.jsonl`` and the profiles topic: the check, its
    severity, value and level, the fingerprint, and ``alert_id``: the incident it belongs to (the
    ``alert_id`` of the firing event in ``alerts.jsonl`` that opened it; ``None`` when it opened no alert,
    e.g. before ``for_windows`` windows or in a partial window that is not notified)."""
    return [{"check": a.check, "severity": str(a.severity), "value": a.value, "threshold": a.threshold,
             "sample_size": a.sample_size, "fingerprint": a.fingerprint, "alert_id": incidents.get(a.fingerprint)}
            for a in alerts]


def _insufficient_rows(observations: Sequence[Observation]) -> list[dict[str, Any]]:
    """The checks a window had too few samples for: no verdict ("insufficient data"), never an alert."""
    return [{"check": o.check, "sample_size": o.sample_size, "min_samples": o.details.get("min_samples")}
            for o in observations if o.insufficient]


@dataclass(frozen=True, slots=True)
class WindowSummary:
    """What one stream's closed window measured, before any verdict: what drift, the change detectors
    and the threshold rules read (the mergeable states' results, per feature and for the records)."""

    stream: str
    #: The window's identity: name, kind, index, ISO start and end, ``partial``.
    window: dict[str, Any]
    count: int
    features: dict[str, FeatureWindowResult]
    #: Record-level counts and ratios (duplicates, lateness, freshness, volume, unexpected fields).
    records: dict[str, Any]
    reference_version: str | None
    #: The window's end in epoch seconds (``window["end"]`` as a number; the policy's clock).
    end_time: float = 0.0


@dataclass(frozen=True, slots=True)
class WindowReport:
    """Everything streamdq concluded about one stream in one closed window: its :class:`WindowSummary`
    and the verdicts on it (drift, detector changes, raw alerts, the policy's events)."""

    summary: WindowSummary
    drift: dict[str, dict[str, DriftResult]]
    changes: tuple[Change, ...] = ()
    #: The window's raw verdicts: every check over its raise level in this window.
    alerts: tuple[Alert, ...] = ()
    #: What is notified after the alert policy: firing/resolved events, deduplicated.
    events: tuple[Alert, ...] = ()
    #: Every evaluated check's verdict (the policy's input); not serialised.
    observations: tuple[Observation, ...] = ()
    #: fingerprint -> the incident (alert_id of its opening firing event) open after this window, for its verdicts.
    incidents: Mapping[str, str] = field(default_factory=dict)

    @property
    def stream(self) -> str:
        return self.summary.stream

    @property
    def window(self) -> dict[str, Any]:
        return self.summary.window

    @property
    def count(self) -> int:
        return self.summary.count

    @property
    def features(self) -> dict[str, FeatureWindowResult]:
        return self.summary.features

    @property
    def records(self) -> dict[str, Any]:
        return self.summary.records

    @property
    def reference_version(self) -> str | None:
        return self.summary.reference_version

    @property
    def end_time(self) -> float:
        return self.summary.end_time

    def with_events(self, events: Sequence[Alert], *, incidents: Mapping[str, str] | None = None) -> WindowReport:
        """This report with the alert policy's events for it (and the incidents its verdicts belong to)."""
        return replace(self, events=tuple(events), incidents=dict(incidents or {}))

    def rows(self) -> list[dict[str, Any]]:
        """One row per feature plus one stream-level row (``feature`` null): the replay's windows.jsonl.

        Each row's ``alerts`` are its raw verdicts (the check and the ``alert_id`` of
        the incident in ``alerts.jsonl``), ``insufficient_data`` the checks it had too few samples for."""
        base = {"schema_version": 1, "stream": self.stream, "window": self.window, "count": self.count,
                "reference_version": self.reference_version}
        alerts_by: dict[str | None, list[Alert]] = {}
        for a in self.alerts:
            alerts_by.setdefault(a.feature, []).append(a)
        short_by: dict[str | None, list[Observation]] = {}
        for o in self.observations:
            if o.insufficient:
                short_by.setdefault(o.feature, []).append(o)
        out = [{**base, "feature": None, "records": self.records,
                "alerts": _verdict_rows(alerts_by.get(None, []), self.incidents),
                "insufficient_data": _insufficient_rows(short_by.get(None, [])),
                "events": [e.to_event() for e in self.events]}]
        for name, fr in self.features.items():
            out.append({**base, "feature": name, "quality": fr.to_dict(),
                        "drift": {m: d.to_dict() for m, d in self.drift.get(name, {}).items()},
                        "changes": [c.to_dict() for c in self.changes if c.feature == name],
                        "alerts": _verdict_rows(alerts_by.get(name, []), self.incidents),
                        "insufficient_data": _insufficient_rows(short_by.get(name, []))})
        return out

    def to_dict(self) -> dict[str, Any]:
        """The window's profile (the profiles topic)."""
        return {
            "schema_version": 1,
            "stream": self.stream,
            "window": self.window,
            "count": self.count,
            "reference_version": self.reference_version,
            "records": self.records,
            "features": {n: r.to_dict() for n, r in self.features.items()},
            "drift": {n: {m: d.to_dict() for m, d in ms.items()} for n, ms in self.drift.items()},
            "changes": [c.to_dict() for c in self.changes],
            "alerts": [{"feature": a.feature, **v} for a, v in
                       zip(self.alerts, _verdict_rows(self.alerts, self.incidents), strict=True)],
            "insufficient_data": [{"feature": o.feature, **_insufficient_rows([o])[0]}
                                  for o in self.observations if o.insufficient],
            "events": [e.alert_id for e in self.events],
        }


@dataclass(frozen=True, slots=True)
class ModelWindowReport:
    """One closed model window of one model version.

    ``basis`` is ``"labels"`` (a window of joined examples: realised performance, the estimate on the
    same examples beside it) or ``"predictions"`` (a window of predictions: the label-free estimate and
    the join outcome of the period).
    """

    stream: str
    model: str
    version: str
    basis: str
    window: dict[str, Any]
    count: int
    realised: dict[str, Any] | None
    estimated: dict[str, Any] | None
    reference: dict[str, Any] | None
    join: dict[str, Any]
    reference_version: str | None
    changes: tuple[Change, ...] = ()
    alerts: tuple[Alert, ...] = ()
    events: tuple[Alert, ...] = ()
    observations: tuple[Observation, ...] = ()
    end_time: float = 0.0
    #: fingerprint -> the incident (alert_id of its opening firing event) open after this window, for its verdicts.
    incidents: Mapping[str, str] = field(default_factory=dict)

    @property
    def model_key(self) -> str:
        """``name:version``: the alerts' ``model`` field."""
        return f"{self.model}:{self.version}"

    def with_events(self, events: Sequence[Alert], *,
                    incidents: Mapping[str, str] | None = None) -> ModelWindowReport:
        """This report with the alert policy's events for it (and the incidents its verdicts belong to)."""
        return replace(self, events=tuple(events), incidents=dict(incidents or {}))

    def estimation_error(self) -> dict[str, float]:
        """``|estimated - realised|`` per metric both carry (labels windows of binary models)."""
        if not self.realised or not self.estimated:
            return {}
        out = {}
        for m in ESTIMATED_METRICS:
            r, e = self.realised.get(m), self.estimated.get(m)
            if r is not None and e is not None:
                out[m] = abs(float(e) - float(r))
        return out

    def rows(self) -> list[dict[str, Any]]:
        """One line: the window's profile (model lines carry a ``model`` key)."""
        return [self.to_dict()]

    def to_dict(self) -> dict[str, Any]:
        """The window's profile (the profiles topic)."""
        return {
            "schema_version": 1,
            "stream": self.stream,
            "model": self.model,
            "model_version": self.version,
            "basis": self.basis,
            "window": self.window,
            "count": self.count,
            "realised": self.realised,
            "estimated": self.estimated,
            "estimation_error": self.estimation_error() or None,
            "reference": self.reference,
            "reference_version": self.reference_version,
            "join": self.join,
            "changes": [c.to_dict() for c in self.changes],
            "alerts": _verdict_rows(self.alerts, self.incidents),
            "events": [e.alert_id for e in self.events],
        }
