"""The Grafana dashboard for one monitor spec (``streamdq dashboard SPEC``): classic dashboard JSON for file
provisioning (``deploy/grafana/``), over the metrics a worker exports (``agents.worker.metrics``) and the
``ALERTS`` series of the generated Prometheus rules (``streamdq rules``).

Generated, not hand-kept: the spec decides the rows (one per stream), the per-feature panels and the levels
drawn on them (the same ``MonitorSpec.threshold_for`` the alert policy and the rules use). Every query only
uses the ``$stream`` variable and ``$__rate_interval``; :func:`panel_queries` lists them all (the live
test evaluates each against a real Prometheus).

Examples
--------
>>> from monitor.spec import parse_spec
>>> spec = parse_spec({"version": 1, "name": "x", "streams": [{"name": "s", "windows": [
...     {"name": "w", "kind": "count", "size": 10}], "features": [{"name": "a", "type": "numeric"}]}]})
>>> doc = dashboard_document(spec)
>>> doc["uid"], doc["title"]
('streamdq-x', 'streamdq: x')
>>> [q for _, q in panel_queries(doc) if "missing" in q]
['streamdq_feature_missing_ratio{stream="s", feature="a"}']
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from monitor.names import DriftMethod, FeatureCheck, RecordCheck
from monitor.spec import FeatureSpec, MonitorSpec, StreamSpec

__all__ = ["DATASOURCE_UID", "dashboard_document", "panel_queries", "render_dashboard"]

#: The uid of the provisioned Prometheus data source (deploy/grafana/provisioning/datasources/).
DATASOURCE_UID = "streamdq-prometheus"
_DS = {"type": "prometheus", "uid": "${datasource}"}
_RATE = "$__rate_interval"
_STREAMS = 'stream=~"$stream"'

_RECORD_RATIO_CHECKS = (RecordCheck.DUPLICATE_RATIO, RecordCheck.LATE_RATIO, RecordCheck.OUT_OF_ORDER_RATIO,
                        RecordCheck.UNEXPECTED_FIELD_RATIO)


class _Layout:
    """Places panels left to right, 24 grid columns wide, rows of ``h`` units."""

    def __init__(self) -> None:
        self.panels: list[dict[str, Any]] = []
        self.x = 0
        self.y = 0
        self.h = 0
        self.next_id = 1

    def row(self, title: str) -> None:
        self._newline()
        self.panels.append({"type": "row", "title": title, "id": self._id(), "collapsed": False, "panels": [],
                            "gridPos": {"h": 1, "w": 24, "x": 0, "y": self.y}})
        self.y += 1

    def add(self, panel: dict[str, Any], *, w: int = 12, h: int = 8) -> None:
        if self.x + w > 24:
            self._newline()
        panel["id"] = self._id()
        panel["gridPos"] = {"h": h, "w": w, "x": self.x, "y": self.y}
        self.panels.append(panel)
        self.x += w
        self.h = max(self.h, h)

    def _newline(self) -> None:
        if self.x:
            self.y += self.h
        self.x, self.h = 0, 0

    def _id(self) -> int:
        self.next_id += 1
        return self.next_id - 1


def _target(ref: str, expr: str, legend: str, *, instant: bool = False) -> dict[str, Any]:
    t: dict[str, Any] = {"refId": ref, "datasource": _DS, "expr": expr, "legendFormat": legend, "range": not instant,
                         "instant": instant}
    if instant:
        t["format"] = "table"
    return t


def _steps(warning: float | None, critical: float | None) -> dict[str, Any]:
    steps: list[dict[str, Any]] = [{"color": "green", "value": None}]
    if warning is not None:
        steps.append({"color": "orange", "value": warning})
    if critical is not None:
        steps.append({"color": "red", "value": critical})
    return {"mode": "absolute", "steps": steps}


def _timeseries(title: str, targets: list[dict[str, Any]], *, unit: str = "short", description: str = "",
                levels: dict[str, tuple[float | None, float | None]] | None = None,
                stack: bool = False) -> dict[str, Any]:
    """A time series panel; ``levels`` maps a target's refId to its (warning, critical) lines."""
    custom: dict[str, Any] = {"drawStyle": "line", "lineWidth": 1, "fillOpacity": 10 if stack else 0,
                              "showPoints": "never", "spanNulls": False,
                              "thresholdsStyle": {"mode": "off"}}
    if stack:
        custom["stacking"] = {"mode": "normal", "group": "A"}
    overrides = []
    for ref, (warning, critical) in (levels or {}).items():
        overrides.append({"matcher": {"id": "byFrameRefID", "options": ref}, "properties": [
            {"id": "thresholds", "value": _steps(warning, critical)},
            {"id": "custom.thresholdsStyle", "value": {"mode": "dashed"}},
        ]})
    return {"type": "timeseries", "title": title, "description": description, "datasource": _DS,
            "targets": targets,
            "fieldConfig": {"defaults": {"unit": unit, "custom": custom, "thresholds": _steps(None, None)},
                            "overrides": overrides},
            "options": {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
                        "tooltip": {"mode": "multi", "sort": "desc"}}}


def _stat(title: str, targets: list[dict[str, Any]], *, unit: str = "short", description: str = "",
          warning: float | None = None, critical: float | None = None) -> dict[str, Any]:
    return {"type": "stat", "title": title, "description": description, "datasource": _DS, "targets": targets,
            "fieldConfig": {"defaults": {"unit": unit, "thresholds": _steps(warning, critical)}, "overrides": []},
            "options": {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                        "colorMode": "background", "graphMode": "area", "textMode": "value_and_name",
                        "orientation": "auto"}}


def _table(title: str, targets: list[dict[str, Any]], *, description: str = "") -> dict[str, Any]:
    return {"type": "table", "title": title, "description": description, "datasource": _DS, "targets": targets,
            "fieldConfig": {"defaults": {}, "overrides": []},
            "options": {"showHeader": True},
            "transformations": [{"id": "organize", "options": {"excludeByName": {"Time": True}}}]}


def _levels(spec: MonitorSpec, stream: StreamSpec, feature: FeatureSpec | None,
            check: str) -> tuple[float | None, float | None] | None:
    t = spec.threshold_for(stream, feature, check)
    return None if t is None else (t.warning, t.critical)


def _feature_checks(stream: StreamSpec, feature: FeatureSpec) -> list[FeatureCheck]:
    """The ratio checks the engine reports for ``feature`` (monitor.checks.feature)."""
    checks = [FeatureCheck.MISSING_RATIO, FeatureCheck.TYPE_VIOLATION_RATIO, FeatureCheck.OUT_OF_DOMAIN_RATIO]
    if feature.type == "categorical" and stream.reference is not None:
        checks.append(FeatureCheck.UNSEEN_CATEGORY_RATIO)
    if feature.pattern is not None:
        checks.append(FeatureCheck.FORMAT_VIOLATION_RATIO)
    return checks


def _drifts(stream: StreamSpec, feature: FeatureSpec) -> bool:
    methods = feature.drift_methods if feature.drift_methods is not None else stream.drift.methods
    return stream.reference is not None and feature.type != "string" and methods != []


def _overview(lay: _Layout, spec: MonitorSpec) -> None:
    lay.row("Streams")
    lay.add(_stat("Records processed per second", [_target(
        "A", f'sum by (stream) (rate(streamdq_records_total{{outcome="processed", {_STREAMS}}}[{_RATE}]))',
        "{{stream}}")], unit="reqps", description="Per stream, over every worker."), w=8, h=5)
    lay.add(_stat("Dead-lettered share", [_target(
        "A", f'sum by (stream) (rate(streamdq_records_total{{outcome="deadlettered", {_STREAMS}}}[{_RATE}])) / '
             f'(sum by (stream) (rate(streamdq_records_total{{{_STREAMS}}}[{_RATE}])) > 0)', "{{stream}}")],
        unit="percentunit", warning=0.01, critical=0.05,
        description="Share of the records read that went to the dead-letter topic (rules: 1% warning, 5% critical)."),
        w=8, h=5)
    lay.add(_stat("Open alerts (streamdq's policy)", [_target("A", "sum(streamdq_open_alerts)",
                                                              "open")],
                  warning=1, description="Alerts firing after streamdq's own alert policy (all workers)."), w=8, h=5)
    lay.add(_timeseries("Records by stream and outcome", [_target(
        "A", f"sum by (stream, outcome) (rate(streamdq_records_total{{{_STREAMS}}}[{_RATE}]))",
        "{{stream}} {{outcome}}")], unit="reqps", stack=True))
    lay.add(_timeseries("Dead letters by reason", [_target(
        "A", f"sum by (stream, reason) (rate(streamdq_deadletter_records_total{{{_STREAMS}}}[{_RATE}]))",
        "{{stream}} {{reason}}")], unit="reqps", stack=True,
        description="Records sent to the dead-letter topic, by reason code (malformed_json, missing_id, ...)."))
    lay.add(_table("Open alerts by stream, feature, check and severity (Prometheus rules)", [_target(
        "A", 'count by (stream, feature, check, severity) (ALERTS{alertstate="firing", alertname=~"Streamdq.*", '
             f"{_STREAMS}}})", "", instant=True)],
        description="Alerts of the rules generated by `streamdq rules` that are firing now."))
    lay.add(_timeseries("streamdq alert events by check and severity", [_target(
        "A", f"sum by (stream, check, severity, status) (increase(streamdq_alerts_total{{{_STREAMS}}}[{_RATE}]))",
        "{{stream}} {{check}} {{severity}} {{status}}")],
        description="Alert events (firing, resolved) streamdq sent to its alerts topic."))
    lay.add(_timeseries("Windows closed", [_target(
        "A", f"sum by (stream, window) (increase(streamdq_windows_closed_total{{{_STREAMS}}}[{_RATE}]))",
        "{{stream}} {{window}}")]))
    lay.add(_timeseries("Records in the last closed window", [_target(
        "A", f"max by (stream, window) (streamdq_window_records{{{_STREAMS}}})", "{{stream}} {{window}}")]))


def _stream_rows(lay: _Layout, spec: MonitorSpec, stream: StreamSpec) -> None:
    lay.row(f"Stream {stream.name} ({stream.kind})")
    sel = f'stream="{stream.name}"'
    targets, levels = [], {}
    for i, check in enumerate(_RECORD_RATIO_CHECKS):
        ref = chr(ord("A") + i)
        targets.append(_target(ref, f"max by (window) (streamdq_{check}{{{sel}}})", f"{check} {{{{window}}}}"))
        lv = _levels(spec, stream, None, check)
        if lv is not None:
            levels[ref] = lv
    lay.add(_timeseries(f"{stream.name}: record checks", targets, unit="percentunit", levels=levels,
                        description="Shares of the last closed window's records; dashed lines: the spec's levels."))
    if any(w.kind == "time" for w in stream.windows):
        lv_vol = _levels(spec, stream, None, RecordCheck.VOLUME_DEVIATION)
        lay.add(_timeseries(f"{stream.name}: volume deviation (|log2| of records / expected)", [_target(
            "A", f"max by (window) (streamdq_volume_deviation{{{sel}}})", "{{window}}")],
            levels={"A": lv_vol} if lv_vol else None))
    lv_fresh = _levels(spec, stream, None, RecordCheck.FRESHNESS_P95_SECONDS)
    lay.add(_timeseries(f"{stream.name}: freshness lag p95", [_target(
        "A", f"max by (window) (streamdq_freshness_lag_p95_seconds{{{sel}}})", "{{window}}")], unit="s",
        levels={"A": lv_fresh} if lv_fresh else None,
        description="95th percentile of processing time minus event time in the last closed window."))
    for feature in stream.features:
        fsel = f'{sel}, feature="{feature.name}"'
        targets, levels = [], {}
        for i, fcheck in enumerate(_feature_checks(stream, feature)):
            ref = chr(ord("A") + i)
            targets.append(_target(ref, f"streamdq_feature_{fcheck}{{{fsel}}}", f"{fcheck} {{{{window}}}}"))
            lv = _levels(spec, stream, feature, fcheck)
            if lv is not None:
                levels[ref] = lv
        lay.add(_timeseries(f"{stream.name}.{feature.name}: quality", targets, unit="percentunit", levels=levels,
                            description=f"Quality ratios of feature {feature.name} ({feature.type}) per closed "
                            "window; dashed lines: the spec's warning and critical levels."), w=8, h=7)
        if _drifts(stream, feature):
            psi = _levels(spec, stream, feature, DriftMethod.PSI)
            lay.add(_timeseries(f"{stream.name}.{feature.name}: drift", [
                _target("A", f'streamdq_feature_drift_score{{{fsel}, method="psi"}}', "psi {{window}}"),
                _target("B", f'streamdq_feature_drift_score{{{fsel}, method!="psi"}}', "{{method}} {{window}}"),
                _target("C", f"max by (window) (streamdq_feature_drifted{{{fsel}}})", "drifted {{window}}"),
            ], levels={"A": psi} if psi else None,
                description="Drift statistics against the reference per closed window (methods are not on one "
                "scale; ks and chi_square are test statistics, decided by their p-value); dashed: PSI levels; "
                "drifted = 1 when streamdq's decision for some method was positive."), w=8, h=7)


def _model_row(lay: _Layout, spec: MonitorSpec) -> None:
    streams = [s for s in spec.streams if s.model is not None]
    if not streams:
        return
    lay.row("Model performance")
    for s in streams:
        if s.model is None:
            continue
        sel = f'stream="{s.name}"'
        expired = s.model.level_for("label_expired_ratio")
        metric = {"binary": "accuracy", "multiclass": "accuracy", "regression": "mae"}[s.model.task]
        lay.add(_timeseries(f"{s.name}: {metric}, realised beside estimated", [_target(
            "A", f'streamdq_model_performance{{{sel}, metric="{metric}"}}',
            "{{model}}:{{version}} {{source}} ({{basis}} {{window}})")],
            description="Realised over labelled examples, estimated without labels (CBPE) over the same examples "
            "and over all predictions."))
        lay.add(_timeseries(f"{s.name}: label coverage and expired labels", [
            _target("A", f"streamdq_label_coverage_ratio{{{sel}}}", "coverage"),
            _target("B", f"max by (model, version) (streamdq_model_label_expired_ratio{{{sel}}})",
                    "expired {{model}}:{{version}}"),
        ], unit="percentunit", levels={"B": (expired.warning, expired.critical)} if expired else None))
        lay.add(_timeseries(f"{s.name}: label latency", [_target(
            "A", f'streamdq_label_latency_seconds{{{sel}, quantile=~"0.5|0.95"}}', "p{{quantile}}")], unit="s"))
        lay.add(_timeseries(f"{s.name}: label join", [
            _target("A", f"sum by (outcome) (rate(streamdq_label_join_events_total{{{sel}}}[{_RATE}]))",
                    "{{outcome}}"),
            _target("B", f"sum(streamdq_label_pending_predictions{{{sel}}})", "pending predictions"),
        ]))


def _worker_row(lay: _Layout) -> None:
    lay.row("Workers")
    lay.add(_timeseries("Throughput per worker", [
        _target("A", f"sum by (instance) (rate(streamdq_ingest_messages_total[{_RATE}]))", "{{instance}} messages"),
        _target("B", f"sum by (instance) (rate(streamdq_records_total[{_RATE}]))", "{{instance}} records"),
    ], unit="reqps", description="Kafka messages (a message may carry many records) and records read per second."),
        w=8)
    lay.add(_timeseries("Consumer lag", [
        _target("A", "sum by (topic) (max by (topic, partition) (streamdq_consumer_lag_records))", "{{topic}}"),
    ], description="Records between each input partition's end offset and the owning worker's position "
                   "(streamdq_consumer_lag_records), summed per topic."), w=8)
    lay.add(_timeseries("Checkpoint age", [_target(
        "A", "time() - (streamdq_checkpoint_timestamp_seconds > 0)", "{{instance}}")], unit="s",
        description="Seconds since each worker's last checkpoint of its window state (written every "
        "STREAMDQ_CHECKPOINT_SECONDS while records flow)."), w=8)
    lay.add(_timeseries("Assigned partitions", [_target("A", "streamdq_assigned_partitions", "{{instance}}")]), w=8)
    lay.add(_timeseries("Checkpoint size", [_target("A", "streamdq_checkpoint_size_bytes", "{{instance}}")],
                        unit="bytes"), w=8)
    lay.add(_stat("Workers up", [_target("A", 'sum(up{job="streamdq"})', "up")]), w=8)


def dashboard_document(spec: MonitorSpec) -> dict[str, Any]:
    """The dashboard for ``spec`` as data (Grafana's dashboard JSON model)."""
    lay = _Layout()
    _overview(lay, spec)
    for stream in spec.streams:
        _stream_rows(lay, spec, stream)
    _model_row(lay, spec)
    _worker_row(lay)
    names = [s.name for s in spec.streams]
    return {
        "uid": f"streamdq-{spec.name}"[:40],
        "title": f"streamdq: {spec.name}",
        "description": f"Generated by `streamdq dashboard` from the monitor spec {spec.name!r}.",
        "tags": ["streamdq"],
        "editable": True,
        "graphTooltip": 1,
        "refresh": "30s",
        "schemaVersion": 39,
        "version": 1,
        "time": {"from": "now-1h", "to": "now"},
        "timepicker": {},
        "timezone": "",
        "annotations": {"list": []},
        "templating": {"list": [
            {"name": "datasource", "type": "datasource", "query": "prometheus", "label": "Data source",
             "current": {"text": "Prometheus", "value": DATASOURCE_UID}, "hide": 0},
            {"name": "stream", "type": "custom", "label": "Stream", "multi": True, "includeAll": True,
             "allValue": ".*", "query": ",".join(names),
             "current": {"text": ["All"], "value": ["$__all"]},
             "options": [{"text": n, "value": n, "selected": False} for n in names], "hide": 0},
        ]},
        "panels": lay.panels,
    }


def panel_queries(doc: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """``(panel title, PromQL)`` of every query of the dashboard ``doc``."""
    for panel in doc["panels"]:
        for target in panel.get("targets", []):
            yield panel["title"], target["expr"]


def render_dashboard(spec: MonitorSpec) -> str:
    """The dashboard JSON text (indented, stable: the checked-in file is compared with it)."""
    return json.dumps(dashboard_document(spec), indent=2, ensure_ascii=False) + "\n"
