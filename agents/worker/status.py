"""What ``/status`` shows: the last closed window of every stream, each feature's latest quality and
drift figures, and the open alerts.

:class:`StatusBoard` is fed every published report (:meth:`~agents.worker.app.WorkerContext.publish_all`)
and answers :meth:`StatusBoard.status` from what it kept and from the monitor's own state (records
processed, watermarks, the alert policy's open fingerprints). It never touches the per-record path:
one dictionary update per closed window.

Memory: one entry per (stream, window), per (stream, feature), per (stream, model, version, basis)
(model versions are bounded by the spec's ``max_versions``) and per open alert fingerprint
(bounded by the spec's streams x features x checks); a resolved alert's entry is dropped.

Examples
--------
>>> from monitor.engine import Monitor
>>> from monitor.spec import MonitorSpec
>>> spec = MonitorSpec.model_validate({"version": 1, "name": "t", "streams": [{
...     "name": "f", "windows": [{"name": "w3", "kind": "count", "size": 3}], "min_samples": 3,
...     "features": [{"name": "x", "type": "numeric"}]}]})
>>> monitor = Monitor(spec, clock=lambda: 0.0)
>>> board = StatusBoard()
>>> for report in monitor.process("f", [{"record_id": 1, "x": 1.0}, {"record_id": 2}, {"record_id": 3}]):
...     board.observe(report)
>>> doc = board.status(monitor)
>>> [(s["name"], s["records_processed"], s["windows"][0]["last_closed"]["count"]) for s in doc["streams"]]
[('f', 3, 3)]
>>> feature = doc["streams"][0]["features"][0]
>>> feature["name"], feature["state"], round(feature["quality"]["missing_ratio"], 3)
('x', 'alert', 0.667)
>>> [(a["feature"], a["check"], a["severity"]) for a in doc["open_alerts"]]
[('x', 'missing_ratio', 'critical')]
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

from monitor.engine import Monitor
from monitor.report import ModelWindowReport, Report, WindowReport

__all__ = ["STATUS_SCHEMA_VERSION", "StatusBoard"]

#: Version of the ``/status`` document (``schemas/status.schema.json``).
STATUS_SCHEMA_VERSION = 1

#: Model metrics shown per model window (the reports hold more).
_MODEL_SHOWN = ("accuracy", "roc_auc", "f1", "macro_f1", "mae", "rmse")


class StatusBoard:
    """The latest closed-window figures per stream, window and feature, and the open alerts' events.

    ``clock`` (epoch seconds) stamps when each window was seen closing; tests pass a fake one.
    """

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._windows: dict[tuple[str, str], dict[str, Any]] = {}
        self._features: dict[tuple[str, str], dict[str, Any]] = {}
        self._models: dict[tuple[str, str, str, str], dict[str, Any]] = {}
        self._firing: dict[str, dict[str, Any]] = {}

    def observe(self, report: Report) -> None:
        """Keep what ``report`` (a closed feature or model window, after the alert policy) says."""
        now = self.clock()
        if isinstance(report, WindowReport):
            self._windows[(report.stream, report.window["name"])] = _window(report.window, report.count, now)
            for name, fr in report.features.items():
                drift = {m: {"statistic": _num(d.statistic), "p_value": _num(d.p_value), "threshold": _num(d.threshold),
                             "drifted": d.drifted, "sample_size": d.sample_size}
                         for m, d in report.drift.get(name, {}).items()}
                self._features[(report.stream, name)] = {
                    "window": report.window["name"], "count": fr.count,
                    "quality": {k: _num(v) for k, v in fr.ratios.items() if v is not None},
                    "drift": drift}
        elif isinstance(report, ModelWindowReport):
            entry = _window(report.window, report.count, now)
            entry["realised"] = {k: _num(v) for k, v in (report.realised or {}).items()
                                 if k in _MODEL_SHOWN and isinstance(v, (int, float))}
            entry["estimated"] = {k: _num(v) for k, v in (report.estimated or {}).items()
                                  if k in _MODEL_SHOWN and isinstance(v, (int, float))}
            self._models[(report.stream, report.model, report.version, report.basis)] = entry
        for alert in report.events:
            event = alert.to_event()
            if event["status"] == "firing":
                self._firing[alert.fingerprint] = event
            else:
                self._firing.pop(alert.fingerprint, None)

    def status(self, monitor: Monitor, **extra: Any) -> dict[str, Any]:
        """The ``/status`` document (JSON-able): ``extra`` keys (app, worker state) come first."""
        open_fps = monitor.policy.open_alerts()
        open_alerts = [self._open_alert(monitor, fp) for fp in open_fps]
        for fp in [fp for fp in self._firing if fp not in open_fps]:  # resolved or dropped by the policy
            del self._firing[fp]
        alerting: dict[tuple[str, str | None], list[str]] = {}
        for a in open_alerts:
            if a.get("stream") is not None:
                alerting.setdefault((a["stream"], a.get("feature")), []).append(a["check"])
        processed = monitor.records_processed
        # How full each open window is: Monitor.window_fill comes with issue 15's metrics work (item 4); until a
        # monitor has it, open_fill is null.
        window_fill = getattr(monitor, "window_fill", None)
        streams = []
        for s in monitor.spec.streams:
            wm = monitor.watermark(s.name)
            fills = window_fill(s.name) if callable(window_fill) else {}
            windows = [{"name": w.name, "kind": w.kind, "size": _window_size(w), "open_fill": _num(fills.get(w.name)),
                        "last_closed": self._windows.get((s.name, w.name))} for w in s.windows]
            features = []
            for f in s.features:
                seen = self._features.get((s.name, f.name))
                checks = sorted(alerting.get((s.name, f.name), []))
                drifted = seen is not None and any(d["drifted"] for d in seen["drift"].values())
                state = "alert" if checks else "no data" if seen is None else "drifted" if drifted else "ok"
                features.append({"name": f.name, "type": f.type, "state": state, "alerting": checks,
                                 **(seen or {"window": None, "count": 0, "quality": {}, "drift": {}})})
            models = [{"model": m, "version": v, "basis": b, **entry}
                      for (stream, m, v, b), entry in sorted(self._models.items()) if stream == s.name]
            streams.append({"name": s.name, "kind": s.kind, "topic": s.topic,
                            "records_processed": processed.get(s.name, 0),
                            "watermark": wm if math.isfinite(wm) else None,
                            "windows": windows, "features": features, "models": models,
                            "stream_alerts": sorted(alerting.get((s.name, None), []))})
        return {"schema_version": STATUS_SCHEMA_VERSION, **extra, "time": self.clock(), "streams": streams,
                "open_alerts": open_alerts}

    def _open_alert(self, monitor: Monitor, fp: str) -> dict[str, Any]:
        event = self._firing.get(fp)
        if event is not None:
            return {k: event[k] for k in ("fingerprint", "severity", "stream", "feature", "check", "model", "value",
                                          "threshold", "sample_size", "first_seen", "last_seen", "summary")}
        # Open since before this worker started (restored from the alert-state table): the policy's
        # evidence has the figures, not the names.
        state = monitor.policy.state_of(fp) or {}
        evidence: dict[str, Any] = next((c["evidence"] for c in state.get("conditions", {}).values()
                         if c.get("active") and c.get("evidence")), {})
        opened = state.get("alert") or {}
        return {"fingerprint": fp, "severity": opened.get("notified_severity") or evidence.get("severity"),
                "stream": None, "feature": None, "check": None, "model": None,
                "value": _num(evidence.get("value")), "threshold": _num(evidence.get("threshold")),
                "sample_size": evidence.get("sample_size"), "first_seen": opened.get("first_seen"),
                "last_seen": None, "summary": evidence.get("summary", "(open before this worker started)")}


def _window(window: dict[str, Any], count: int, now: float) -> dict[str, Any]:
    return {"index": window.get("index"), "start": window.get("start"), "end": window.get("end"),
            "partial": bool(window.get("partial")), "count": count, "closed_at": now}


def _window_size(w: Any) -> str:
    if w.kind == "count":
        return f"{w.size} records" + (f" / {w.slide:g}" if w.slide and w.slide != w.size else "")
    return f"{w.seconds:g} s" + (f" / {w.slide:g} s" if w.slide and w.slide != w.seconds else "")


def _num(x: Any) -> float | None:
    """A finite float, else ``None`` (JSON has no NaN or infinity)."""
    if x is None or isinstance(x, bool):
        return None
    try:
        f = float(x)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None
