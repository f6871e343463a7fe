"""The alert lifecycle: from per-window verdicts to deduplicated firing/resolved notifications.

Every closed window gives one :class:`Observation` per evaluated check (raised or not).
:class:`AlertPolicy` turns them into the events that are actually sent:

* a *condition* is one (fingerprint, window name); it becomes active after
  ``for_windows`` consecutive raised windows and inactive again after
  ``clear_windows`` consecutive clear windows (value below the clear level). A value
  between the clear level and the raise level (the hysteresis band) keeps an active
  condition active and resets both counters; a check that was not evaluated in a
  window (insufficient data) changes nothing;
* an *alert* (one per fingerprint) fires while any of its conditions is active, at the
  highest severity among its active conditions' latest raised windows;
* events: ``firing`` when the alert starts, when its severity rises above the last
  notified one (at once) and, while it keeps firing, every ``renotify_seconds`` (0:
  never); ``resolved`` when the incident ends (below). Nothing else: a condition
  that stays raised window after window is notified once;
* one alert per incident: the window specs of a stream (a count window and a time window,
  say) see the same incident at different times (a time window closes only after its
  allowed lateness). When the last active condition clears, the alert stays open while a
  window spec of the same stream (and model) has not yet closed a window ending at or
  after the incident's last raised window (``last_raised``): that spec has not judged the
  incident's period yet. It resolves once every such spec has (whether it cleared or never
  raised there), or once ``incident_wait_seconds`` passed since ``last_raised`` (0: at
  once). A condition raised again meanwhile continues the same incident (same
  ``first_seen``, no new ``firing`` unless it escalates). Which window specs a stream has
  is learned from the observations (each spec's latest window end, :meth:`AlertPolicy.to_state`
  keeps it); a pending alert keeps the specs it waits for in its own state. In processing-time
  mode nothing waits (time windows close on the worker's clock, without lateness, and their ends
  do not compare with count windows' event-time ends).
* an observation marked ``insufficient`` (fewer samples than the check's ``min_samples``)
  changes no condition; it only counts as its window spec having judged its window.

The policy is pure: time is the window end passed to :meth:`AlertPolicy.observe`, never
a clock. Its state is JSON, as a whole (:meth:`~AlertPolicy.to_state`) or per fingerprint
(:meth:`~AlertPolicy.state_of`, :meth:`~AlertPolicy.load`, :meth:`~AlertPolicy.drain_changes`
for a changelog-backed table), and a restored policy continues exactly where the old one
stopped: no duplicate firing, no forgotten open alert.

Examples
--------
>>> from monitor.spec import AlertingSpec
>>> def obs(value, severity, clear, index):
...     return Observation(stream="s", feature="x", check="psi", value=value, severity=severity, clear=clear,
...                        threshold=0.1, sample_size=100, reference_version=None, summary="x",
...                        window={"name": "w", "kind": "count", "index": index, "start": "t0", "end": "t1"})
>>> policy = AlertPolicy(AlertingSpec(for_windows=2))
>>> policy.observe([obs(0.3, "warning", False, 0)], now=60.0)
[]
>>> [a.status for a in policy.observe([obs(0.3, "warning", False, 1)], now=120.0)]
['firing']
>>> policy.observe([obs(0.3, "warning", False, 2)], now=180.0)
[]
>>> [a.status for a in policy.observe([obs(0.01, None, True, 3)], now=240.0)]
['resolved']

One incident seen by a count window ``w`` and a later-closing time window ``t``: the count
window clears first, but the alert waits for ``t`` to judge the incident's period.

>>> policy = AlertPolicy(AlertingSpec())
>>> def seen(value, severity, clear, name, end):
...     return Observation(stream="s", feature="x", check="missing_ratio", value=value, severity=severity,
...                        clear=clear, threshold=0.05, sample_size=500, reference_version=None, summary="x",
...                        window={"name": name, "kind": "count", "index": 0, "start": "t0", "end": "t1"})
>>> policy.observe([seen(0.0, None, True, "t", 60.0)], now=60.0)  # t has closed [0, 60)
[]
>>> [a.status for a in policy.observe([seen(0.3, "critical", False, "w", 105.0)], now=105.0)]
['firing']
>>> policy.observe([seen(0.0, None, True, "w", 130.0)], now=130.0)  # w clears; t has not judged 60-120 yet
[]
>>> policy.observe([seen(0.25, "critical", False, "t", 120.0)], now=120.0)  # t sees it: the same incident
[]
>>> [a.status for a in policy.observe([seen(0.0, None, True, "t", 180.0)], now=180.0)]
['resolved']
"""

from __future__ import annotations

import copy
import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from monitor.alerts.alert import Alert, fingerprint
from monitor.names import SEVERITIES, SEVERITY_RANK, Direction, Severity, Status
from monitor.spec import AlertingSpec
from monitor.times import iso

__all__ = ["POLICY_STATE_VERSION", "AlertPolicy", "Observation", "OpenAlert", "event_id"]

#: Version of the JSON written by :meth:`AlertPolicy.to_state` and :meth:`AlertPolicy.state_of`.
POLICY_STATE_VERSION = 1



_iso = iso  # the same format as window bounds


def event_id(fingerprint: str, first_seen: str, status: str, seq: int) -> str:
    """Idempotency key of one notification: the ``seq``-th (0, 1, 2, ...) event of the alert
    ``fingerprint`` that started at ``first_seen`` (the event's ``first_seen`` timestamp).

    A replay or a restarted worker that sends the same notification again sends the same id.

    >>> event_id("0123456789abcdef", "2026-01-01T00:00:00.000Z", "firing", 0) == \\
    ...     event_id("0123456789abcdef", "2026-01-01T00:00:00.000Z", "firing", 0)
    True
    >>> len(event_id("0123456789abcdef", "2026-01-01T00:00:00.000Z", "resolved", 1))
    32
    """
    key = f"{fingerprint}|{first_seen}|{status}|{seq}"
    return hashlib.sha256(key.encode()).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class Observation:
    """One check's verdict in one closed window (produced for EVERY evaluated check, raised or not).

    ``severity`` is the level reached in this window (``None``: not raised); ``clear`` is true
    when the value is below the clear level and so counts toward resolving. A value between
    the clear level and the raise level has neither (the hysteresis band). ``threshold`` is
    the level of ``severity``, or the lowest raise level when ``severity`` is ``None``;
    ``direction`` says on which side of it ``value`` is bad (``below``: a drift test's p-value).
    ``insufficient`` marks a check the window had too few samples for (``sample_size`` below
    ``details["min_samples"]``): no verdict, so it never raises nor clears. ``time_mode`` is the
    stream's (``event`` or ``processing``): only event-time window ends are compared across window
    specs (in processing time, count windows end at event times and time windows on the worker's clock).
    """

    stream: str
    feature: str | None
    check: str
    value: float
    severity: Severity | None
    clear: bool
    threshold: float
    sample_size: int
    window: dict[str, Any]
    reference_version: str | None
    summary: str
    details: dict[str, Any] = field(default_factory=dict)
    model: str | None = None
    direction: Direction = Direction.ABOVE
    insufficient: bool = False
    time_mode: str = "event"

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.stream, self.feature, self.check, self.model)

    def to_alert(self) -> Alert:
        """The window's raw verdict as an alert (raised observations only)."""
        assert self.severity is not None  # callers pass raised observations only
        return Alert(stream=self.stream, feature=self.feature, check=self.check, severity=self.severity,
                     value=self.value, threshold=self.threshold, sample_size=self.sample_size, summary=self.summary,
                     window=self.window, reference_version=self.reference_version, created_at=self.window["end"],
                     model=self.model, details=self.details, direction=self.direction)


@dataclass(slots=True)
class _Condition:
    """One (fingerprint, window name). Canonical: an inactive condition keeps only its raised
    count (``clear`` 0, no evidence); an active one keeps its clear count and the latest raised
    observation (``raised`` 0). An inactive condition with ``raised`` 0 is not stored."""

    active: bool = False
    raised: int = 0
    clear: int = 0
    #: The latest raised observation of an active condition, as JSON: what a firing event reports.
    evidence: dict[str, Any] | None = None

    @property
    def empty(self) -> bool:
        return not self.active and self.raised == 0


@dataclass(frozen=True, slots=True)
class OpenAlert:
    """An alert that is firing now (:meth:`AlertPolicy.firing`): its identity and notified severity.

    The identity is ``None`` only for an alert restored from a state written before it was kept,
    until its next observation."""

    fingerprint: str
    stream: str | None
    feature: str | None
    check: str | None
    model: str | None
    severity: Severity


@dataclass(slots=True)
class _Open:
    """An alert that is firing: when it started, what was last notified, the end of its latest raised
    window, once every condition has cleared the resolution waiting for lagging window specs, and what
    it is about (stream, feature, check, model: the fingerprint's preimage, for metrics)."""

    first_seen: float
    next_seq: int
    notified_at: float
    notified_severity: Severity
    last_raised: float
    #: Set while every condition is clear but window specs (``waiting``) have not judged ``last_raised`` yet:
    #: the clearing observation's identity and evidence (what the resolved event reports).
    pending: dict[str, Any] | None = None
    ident: tuple[str, str | None, str, str | None] | None = None


@dataclass(slots=True)
class _Entry:
    conditions: dict[str, _Condition] = field(default_factory=dict)
    open: _Open | None = None

    @property
    def empty(self) -> bool:
        return self.open is None and not self.conditions


#: Scopes (stream, model) whose window specs' progress is remembered at most; the least recently seen goes first.
MAX_SCOPES = 1024


def _scope(stream: str, model: str | None) -> str:
    return f"{stream}\x1f{model or ''}"


def _pending(o: Observation, now: float, waiting: list[str]) -> dict[str, Any]:
    return {"stream": o.stream, "feature": o.feature, "check": o.check, "model": o.model,
            "evidence": _evidence(o, now), "waiting": sorted(waiting)}


def _evidence(o: Observation, now: float) -> dict[str, Any]:
    return {"at": now, "severity": o.severity, "value": o.value, "threshold": o.threshold, "direction": o.direction,
            "sample_size": o.sample_size, "window": copy.deepcopy(o.window), "reference_version": o.reference_version,
            "summary": o.summary, "details": copy.deepcopy(o.details)}


def _entry_to_json(entry: _Entry) -> dict[str, Any]:
    conditions = {
        name: {"active": c.active, "raised": c.raised, "clear": c.clear, "evidence": copy.deepcopy(c.evidence)}
        for name, c in sorted(entry.conditions.items())
    }
    alert = None
    if entry.open is not None:
        o = entry.open
        alert = {"first_seen": o.first_seen, "next_seq": o.next_seq, "notified_at": o.notified_at,
                 "notified_severity": o.notified_severity, "last_raised": o.last_raised,
                 "pending": copy.deepcopy(o.pending)}
        if o.ident is not None:
            alert["stream"], alert["feature"], alert["check"], alert["model"] = o.ident
    return {"schema_version": POLICY_STATE_VERSION, "conditions": conditions, "alert": alert}


def _entry_from_json(state: dict[str, Any]) -> _Entry:
    try:
        if state.get("schema_version") != POLICY_STATE_VERSION:
            raise ValueError(f"unsupported alert policy state version {state.get('schema_version')!r}")
        entry = _Entry()
        for name, c in state["conditions"].items():
            evidence = c["evidence"]
            if c["active"] and (not isinstance(evidence, dict) or evidence.get("severity") not in SEVERITY_RANK):
                raise ValueError(f"active condition {name!r} without evidence")
            entry.conditions[str(name)] = _Condition(active=bool(c["active"]), raised=int(c["raised"]),
                                                     clear=int(c["clear"]), evidence=_upgrade(evidence))
        a = state["alert"]
        if a is not None:
            if a["notified_severity"] not in SEVERITY_RANK:
                raise ValueError(f"unknown severity {a['notified_severity']!r}")
            pending = a.get("pending")
            if pending is not None and (not isinstance(pending, dict) or not isinstance(pending.get("waiting"), list)
                                        or not isinstance(pending.get("evidence"), dict)):
                raise ValueError("malformed pending resolution")
            ident = None
            if isinstance(a.get("stream"), str) and isinstance(a.get("check"), str):
                ident = (a["stream"], a.get("feature"), a["check"], a.get("model"))
            entry.open = _Open(first_seen=float(a["first_seen"]), next_seq=int(a["next_seq"]),
                               notified_at=float(a["notified_at"]), notified_severity=Severity(a["notified_severity"]),
                               # states written before incidents: the latest notification stands for it
                               last_raised=float(a.get("last_raised", a["notified_at"])),
                               pending=copy.deepcopy(pending), ident=ident)
    except (KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"malformed alert policy state: {exc!r}") from exc
    return entry


def _upgrade(evidence: dict[str, Any] | None) -> dict[str, Any] | None:
    """Evidence saved before alert values were put on one scale: a drift test's evidence had its
    statistic as ``value`` (against alpha); it gets its p-value (uncorrected: the corrected one was
    not kept), ``direction: below`` and the statistic in ``details``. The next raised window replaces it."""
    if not isinstance(evidence, dict):
        return evidence
    ev = copy.deepcopy(evidence)
    if "direction" not in ev:
        raw = ev.get("details")
        details: dict[str, Any] = raw if isinstance(raw, dict) else {}
        if details.get("p_value") is not None:
            ev["details"] = {**details, "statistic": ev.get("value")}
            ev["value"], ev["direction"] = details["p_value"], Direction.BELOW
        else:
            ev["direction"] = Direction.ABOVE
    return ev


class AlertPolicy:
    """Per-fingerprint alert lifecycle with for/clear windows, hysteresis, escalation and
    re-notification (see the module docstring). Not thread-safe; one instance per worker
    (or per partition, keyed by fingerprint)."""

    def __init__(self, spec: AlertingSpec) -> None:
        self.spec = spec
        self._entries: dict[str, _Entry] = {}
        #: fingerprint -> its state at the last drain_changes()/load(), for every fingerprint touched since.
        self._baseline: dict[str, dict[str, Any] | None] = {}
        #: scope (stream, model) -> window spec name -> the latest window end observed (at most MAX_SCOPES scopes).
        self._progress: dict[str, dict[str, float]] = {}

    # -- evaluation -------------------------------------------------------------------------

    def observe(self, observations: Sequence[Observation], *, now: float) -> list[Alert]:
        """Apply one batch of observations (typically one closed window's) at time ``now`` (the
        window end, epoch seconds) and return the events to send, in order of the fingerprints'
        first appearance in the batch, then the pending resolutions this batch completed.
        Observations of one fingerprint in several window names in one batch are decided together
        (one event at most per fingerprint and batch)."""
        now = float(now)
        batch: dict[str, list[Observation]] = {}
        touched: set[str] = set()
        for o in observations:
            if o.severity is not None and o.severity not in SEVERITY_RANK:
                raise ValueError(f"unknown severity {o.severity!r} (one of {', '.join(SEVERITIES)})")
            fp = o.fingerprint
            if fp not in batch:
                batch[fp] = []
                if fp not in self._baseline:
                    self._baseline[fp] = self.state_of(fp)
            batch[fp].append(o)
            scope = _scope(o.stream, o.model)
            touched.add(scope)
            self._advance(scope, str(o.window["name"]), now)
        events: list[Alert] = []
        for fp, obs in batch.items():
            entry = self._entries.get(fp) or _Entry()
            for o in obs:
                self._update(entry, o, now)
            event = self._decide(fp, entry, obs, now)
            if event is not None:
                events.append(event)
            self._store(fp, entry)
        for fp, entry in list(self._entries.items()):  # resolutions that waited for this batch's window specs
            alert = entry.open
            if fp in batch or alert is None or alert.pending is None \
                    or _scope(alert.pending["stream"], alert.pending["model"]) not in touched:
                continue
            if fp not in self._baseline:
                self._baseline[fp] = self.state_of(fp)
            event = self._try_resolve(fp, entry, now)
            if event is not None:
                events.append(event)
            self._store(fp, entry)
        return events

    def _store(self, fp: str, entry: _Entry) -> None:
        if entry.empty:
            self._entries.pop(fp, None)
        else:
            self._entries[fp] = entry

    def _advance(self, scope: str, window: str, end: float) -> None:
        seen = self._progress.pop(scope, None)  # re-inserted last: the most recently seen scope
        if seen is None:
            seen = {}
            if len(self._progress) >= MAX_SCOPES:
                self._progress.pop(next(iter(self._progress)))
        self._progress[scope] = seen
        if end > seen.get(window, -math.inf):
            seen[window] = end

    def _update(self, entry: _Entry, o: Observation, now: float) -> None:
        if o.insufficient:  # no verdict: changes nothing
            return
        name = str(o.window["name"])
        c = entry.conditions.get(name) or _Condition()
        if o.severity is not None:  # raised (wins over an inconsistent clear=True)
            c.clear = 0
            if c.active:
                c.evidence = _evidence(o, now)
            else:
                c.raised += 1
                if c.raised >= self.spec.for_windows:
                    c.active, c.raised, c.evidence = True, 0, _evidence(o, now)
        elif o.clear:
            c.raised = 0
            if c.active:
                c.clear += 1
                if c.clear >= self.spec.clear_windows:
                    c.active, c.clear, c.evidence = False, 0, None
        else:  # the hysteresis band: an active condition stays active, nothing counts
            c.raised = c.clear = 0
        if c.empty:
            entry.conditions.pop(name, None)
        else:
            entry.conditions[name] = c

    def _decide(self, fp: str, entry: _Entry, obs: list[Observation], now: float) -> Alert | None:
        active = [(name, c.evidence) for name, c in entry.conditions.items() if c.active and c.evidence]
        ident = obs[-1]
        if not active:
            if entry.open is None:
                return None
            o = entry.open
            if o.pending is None:  # every condition has just cleared: wait for the specs still behind
                clearing = [x for x in obs if not x.insufficient and x.severity is None] or [ident]
                seen = self._progress.get(_scope(ident.stream, ident.model), {}) if ident.time_mode == "event" else {}
                o.pending = _pending(clearing[-1], now, [w for w, end in seen.items() if end < o.last_raised])
            return self._try_resolve(fp, entry, now)
        # the evidence of the alert's severity: highest severity, then the most recent, then the window name
        _, evidence = max(active, key=lambda ne: (SEVERITY_RANK[ne[1]["severity"]], ne[1]["at"], ne[0]))
        severity = Severity(evidence["severity"])
        who = (ident.stream, ident.feature, ident.check, ident.model)
        raised = any(x.severity is not None and not x.insufficient for x in obs)
        if entry.open is None:
            entry.open = _Open(first_seen=now, next_seq=0, notified_at=now, notified_severity=severity,
                               last_raised=now, ident=who)
            reason = "started"
        else:
            if entry.open.ident is None:  # restored from a state that did not keep it
                entry.open.ident = who
            entry.open.pending = None  # raised again before it resolved: the same incident goes on
            if raised:
                entry.open.last_raised = max(entry.open.last_raised, now)
            if SEVERITY_RANK[severity] > SEVERITY_RANK[entry.open.notified_severity]:
                reason = "escalated"
            elif self.spec.renotify_seconds > 0 and now - entry.open.notified_at >= self.spec.renotify_seconds:
                reason = "renotify"
            else:
                return None
        entry.open.notified_at, entry.open.notified_severity = now, severity
        return self._event(ident.stream, ident.feature, ident.check, ident.model, fp, entry.open, Status.FIRING,
                           severity, now, reason=reason, evidence=evidence)

    def _try_resolve(self, fp: str, entry: _Entry, now: float) -> Alert | None:
        """Resolve the pending alert of ``fp`` unless a window spec it waits for has still not judged its
        last raised window (and ``incident_wait_seconds`` has not run out)."""
        o = entry.open
        assert o is not None and o.pending is not None  # callers pass pending alerts only
        p = o.pending
        seen = self._progress.get(_scope(p["stream"], p["model"]), {})
        p["waiting"] = [w for w in p["waiting"] if seen.get(w, -math.inf) < o.last_raised]
        wait = self.spec.incident_wait_seconds
        if p["waiting"] and wait > 0 and now - o.last_raised < wait:
            return None
        entry.open = None
        return self._event(p["stream"], p["feature"], p["check"], p["model"], fp, o, Status.RESOLVED,
                           o.notified_severity, now, reason="resolved", evidence=p["evidence"])

    @staticmethod
    def _event(stream: str, feature: str | None, check: str, model: str | None, fp: str, o: _Open, status: Status,
               severity: Severity, now: float, *, reason: str, evidence: dict[str, Any]) -> Alert:
        seq = o.next_seq
        o.next_seq += 1
        first_seen = _iso(o.first_seen)
        details = copy.deepcopy(evidence["details"])
        details["notification_seq"] = seq
        details["notification_reason"] = reason
        return Alert(stream=stream, feature=feature, check=check, model=model,
                     severity=severity, value=evidence["value"], threshold=evidence["threshold"],
                     direction=Direction(evidence.get("direction", Direction.ABOVE)),
                     sample_size=evidence["sample_size"], summary=evidence["summary"],
                     window=copy.deepcopy(evidence["window"]), reference_version=evidence["reference_version"],
                     created_at=_iso(now), status=status, details=details,
                     event_id=event_id(fp, first_seen, status, seq), first_seen=first_seen, last_seen=_iso(now))

    # -- inspection ---------------------------------------------------------------------------

    def open_alerts(self) -> list[str]:
        """Fingerprints currently firing, sorted."""
        return sorted(fp for fp, e in self._entries.items() if e.open is not None)

    def firing(self) -> list[OpenAlert]:
        """The alerts currently firing with what they are about and their last notified severity,
        sorted by fingerprint (read by the metrics exporter at scrape time)."""
        out = []
        for fp, e in sorted(list(self._entries.items())):
            o = e.open
            if o is not None:
                stream, feature, check, model = o.ident if o.ident is not None else (None, None, None, None)
                out.append(OpenAlert(fingerprint=fp, stream=stream, feature=feature, check=check, model=model,
                                     severity=o.notified_severity))
        return out


    def incidents(self, observations: Sequence[Observation]) -> dict[str, str]:
        """:meth:`incident_id` of every fingerprint among ``observations`` that is firing."""
        out: dict[str, str] = {}
        for o in observations:
            fp = o.fingerprint
            if fp not in out:
                incident = self.incident_id(fp)
                if incident is not None:
                    out[fp] = incident
        return out

    def incident_id(self, fingerprint: str) -> str | None:
        """The ``alert_id`` of the ``firing`` event that opened the alert of ``fingerprint`` (its incident's
        id, also each of its events' ``incident_id``), or ``None`` when it is not firing."""
        entry = self._entries.get(fingerprint)
        if entry is None or entry.open is None:
            return None
        return event_id(fingerprint, _iso(entry.open.first_seen), Status.FIRING, 0)

    # -- state --------------------------------------------------------------------------------

    def state_of(self, fingerprint: str) -> dict[str, Any] | None:
        """JSON state of one fingerprint, or ``None`` when there is nothing to remember (no open
        alert and no condition part-way to ``for_windows``)."""
        entry = self._entries.get(fingerprint)
        return None if entry is None else _entry_to_json(entry)

    def load(self, fingerprint: str, state: dict[str, Any] | None) -> None:
        """Restore one fingerprint from ``state`` (as returned by :meth:`state_of`, e.g. read back
        from a checkpoint table). The loaded state counts as saved: it is not a change."""
        if state is None:
            self._entries.pop(fingerprint, None)
        else:
            entry = _entry_from_json(state)
            if entry.empty:
                self._entries.pop(fingerprint, None)
            else:
                self._entries[fingerprint] = entry
        self._baseline.pop(fingerprint, None)

    def drain_changes(self) -> dict[str, dict[str, Any] | None]:
        """Fingerprints whose state differs from the last call (or load) -> their new state
        (``None``: deleted). Writing these to a table keyed by fingerprint keeps it in step."""
        changes: dict[str, dict[str, Any] | None] = {}
        for fp, before in self._baseline.items():
            after = self.state_of(fp)
            if after != before:
                changes[fp] = after
        self._baseline = {}
        return changes

    def to_state(self) -> dict[str, Any]:
        """The whole policy state as JSON (``schema_version`` 1)."""
        progress = [{"scope": scope, "windows": dict(sorted(seen.items()))} for scope, seen in self._progress.items()]
        return {"schema_version": POLICY_STATE_VERSION,
                "fingerprints": {fp: _entry_to_json(e) for fp, e in sorted(self._entries.items())},
                "progress": progress}

    @classmethod
    def from_state(cls, spec: AlertingSpec, state: dict[str, Any]) -> AlertPolicy:
        """A policy continuing from :meth:`to_state`'s output."""
        if not isinstance(state, dict) or state.get("schema_version") != POLICY_STATE_VERSION:
            version = state.get("schema_version") if isinstance(state, dict) else None
            raise ValueError(f"unsupported alert policy state version {version!r}")
        policy = cls(spec)
        fingerprints = state.get("fingerprints")
        if not isinstance(fingerprints, dict):
            raise ValueError("malformed alert policy state: 'fingerprints' must be an object")
        for fp, entry_state in fingerprints.items():
            policy.load(str(fp), entry_state)
        progress = state.get("progress", [])  # absent in states written before incidents
        try:
            for item in progress:
                policy._progress[str(item["scope"])] = {str(w): float(end) for w, end in item["windows"].items()}
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            raise ValueError(f"malformed alert policy state: 'progress': {exc!r}") from exc
        return policy
