"""Prometheus recording and alerting rules for one monitor spec (``streamdq rules SPEC``).

The levels of the data-quality alerts are the spec's own (``MonitorSpec.threshold_for``: a feature's
``thresholds``, else the spec's, else streamdq's defaults; nullable features have no missing-ratio alert
unless they set one) and the selectors name the spec's streams and features, so the rules say what
streamdq's own alert policy says, one window at a time: ``value >= warning`` warns, ``>= critical`` is
critical. Worker health (scrapes, dead letters, stalled windows, consumer lag) does not depend on the spec.

Checks whose value is not a metric of its own are not here: the model checks that compare with the
reference performance (``accuracy_drop`` and friends: the reference is in the profile, not in /metrics) and
the statistical tests' p-values (``streamdq_feature_drifted`` carries streamdq's decision for every method).

Examples
--------
>>> from monitor.spec import parse_spec
>>> spec = parse_spec({"version": 1, "name": "x", "streams": [{"name": "s", "windows": [
...     {"name": "w", "kind": "count", "size": 10}], "features": [{"name": "a", "type": "numeric"},
...     {"name": "b", "type": "numeric", "nullable": True}]}]})
>>> doc = rules_document(spec)
>>> [g["name"] for g in doc["groups"]]
['streamdq.recording', 'streamdq.worker', 'streamdq.features', 'streamdq.records', 'streamdq.model']
>>> missing = [r for r in doc["groups"][2]["rules"] if r["alert"] == "StreamdqFeatureMissingRatioHigh"]
>>> [(r["labels"]["severity"], r["expr"]) for r in missing]  # b is nullable: no missing-ratio alert
[('warning', 'max by (stream, feature, window) (streamdq_feature_missing_ratio{stream="s", feature="a"}) >= 0.05'), \
('critical', 'max by (stream, feature, window) (streamdq_feature_missing_ratio{stream="s", feature="a"}) >= 0.2')]
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import yaml

from monitor.names import DISTANCE_METHODS, FEATURE_CHECKS, DriftMethod, FeatureCheck, ModelCheck, RecordCheck
from monitor.spec import FeatureSpec, MonitorSpec, StreamSpec, Threshold

__all__ = ["RULE_GROUPS", "render_rules", "rules_document"]

#: The groups, in evaluation order (recording rules first: alerts read recorded series).
RULE_GROUPS = ("streamdq.recording", "streamdq.worker", "streamdq.features", "streamdq.records", "streamdq.model")

SEVERITY_LEVELS = ("warning", "critical")


@dataclass(frozen=True)
class _Check:
    """How one threshold check reads as an alert."""

    alert: str
    metric: str
    what: str  # "… of the records …" phrase, after the value
    percent: bool = True
    duration: str = "5m"


_FEATURE: dict[str, _Check] = {
    FeatureCheck.MISSING_RATIO: _Check("StreamdqFeatureMissingRatioHigh", "streamdq_feature_missing_ratio",
                                       "absent, null, NaN or infinite"),
    FeatureCheck.TYPE_VIOLATION_RATIO: _Check("StreamdqFeatureInvalidValues", "streamdq_feature_type_violation_ratio",
                                              "of the wrong JSON type"),
    FeatureCheck.OUT_OF_DOMAIN_RATIO: _Check("StreamdqFeatureInvalidValues", "streamdq_feature_out_of_domain_ratio",
                                             "outside its range or categories"),
    FeatureCheck.UNSEEN_CATEGORY_RATIO: _Check("StreamdqFeatureInvalidValues",
                                               "streamdq_feature_unseen_category_ratio",
                                               "a category the reference never saw"),
    FeatureCheck.FORMAT_VIOLATION_RATIO: _Check("StreamdqFeatureInvalidValues",
                                                "streamdq_feature_format_violation_ratio",
                                                "not matching its pattern"),
}

_RECORD: dict[str, _Check] = {
    RecordCheck.DUPLICATE_RATIO: _Check("StreamdqDuplicateRecords", "streamdq_duplicate_ratio",
                                        "repeat a recently seen id"),
    RecordCheck.LATE_RATIO: _Check("StreamdqLateRecords", "streamdq_late_ratio",
                                   "arrived after the allowed lateness and were left out of time windows"),
    RecordCheck.OUT_OF_ORDER_RATIO: _Check("StreamdqOutOfOrderRecords", "streamdq_out_of_order_ratio",
                                           "arrived out of event-time order"),
    RecordCheck.UNEXPECTED_FIELD_RATIO: _Check("StreamdqUnexpectedFields", "streamdq_unexpected_field_ratio",
                                               "carry fields that are not in the monitor spec"),
    RecordCheck.VOLUME_DEVIATION: _Check("StreamdqVolumeDeviation", "streamdq_volume_deviation",
                                         "", percent=False),
    RecordCheck.FRESHNESS_P95_SECONDS: _Check("StreamdqFreshnessLag", "streamdq_freshness_lag_p95_seconds",
                                              "", percent=False),
}


def _level_text(level: float, percent: bool) -> str:
    return f"{level * 100:g}%" if percent else f"{level:g}"


def _regex(names: Iterable[str]) -> str:
    """A PromQL matcher value for exactly ``names`` (RE2, inside a double-quoted string)."""
    return "|".join(re.escape(n).replace("\\", "\\\\") for n in names)


def _matcher(label: str, names: list[str]) -> str:
    return f'{label}="{names[0]}"' if len(names) == 1 else f'{label}=~"{_regex(names)}"'


def _by_level(items: Iterable[tuple[str, str, Threshold | None]], severity: str) -> dict[float, dict[str, list[str]]]:
    """``(stream, name, threshold)`` triples grouped by the level of ``severity``: ``{level: {stream: [names]}}``
    (in spec order; items whose threshold has no such level are left out)."""
    out: dict[float, dict[str, list[str]]] = {}
    for stream, name, threshold in items:
        if threshold is None or getattr(threshold, severity) is None:
            continue
        out.setdefault(threshold.level(severity), {}).setdefault(stream, []).append(name)
    return out


def _leveled_expr(metric: str, by: str, by_level: dict[float, dict[str, list[str]]], *,
                  name_label: str | None, extra: str = "") -> str:
    """``max by (by) (metric{stream, names}) >= level`` for every stream and level group, joined by ``or``
    (one rule per alert name and severity: promtool rejects two rules with the same labels)."""
    parts = []
    for level, groups in by_level.items():
        for stream, names in groups.items():
            matchers = [f'stream="{stream}"'] if name_label is not None else [_matcher("stream", names)]
            if name_label is not None:
                matchers.append(_matcher(name_label, names))
            if extra:
                matchers.append(extra)
            parts.append(f"max by ({by}) ({metric}{{{', '.join(matchers)}}}) >= {level:g}")
    return "\nor\n".join(parts)


def _levels_text(by_level: dict[float, dict[str, list[str]]], percent: bool) -> str:
    """The level, or each level with what it applies to when they differ."""
    if len(by_level) == 1:
        return _level_text(next(iter(by_level)), percent)
    return "; ".join(f"{_level_text(level, percent)} for {', '.join(n for names in g.values() for n in names)}"
                     for level, g in by_level.items())


def _feature_annotations(check: str, severity: str, levels: str) -> dict[str, str]:
    where = "the last {{ $labels.window }} window of stream {{ $labels.stream }}"
    if check == FeatureCheck.MISSING_RATIO:
        return {"summary": "Feature {{ $labels.feature }} of stream {{ $labels.stream }} is missing in "
                           "{{ $value | humanizePercentage }} of records",
                "description": "Feature {{ $labels.feature }} was absent, null, NaN or infinite in "
                               f"{{{{ $value | humanizePercentage }}}} of the records of {where} for 5 minutes "
                               f"({severity} level {levels})."}
    # the check label is the rule's own: annotation templates see only the expression's labels
    return {"summary": f"Feature {{{{ $labels.feature }}}} of stream {{{{ $labels.stream }}}} fails {check} "
                       "({{ $value | humanizePercentage }})",
            "description": f"{check} of feature {{{{ $labels.feature }}}} was {{{{ $value | humanizePercentage }}}} "
                           f"in {where} for 5 minutes ({severity} level {levels})."}


def _drift_methods(stream: StreamSpec, feature: FeatureSpec) -> set[DriftMethod]:
    """The drift methods that may run on ``feature`` (``auto``: PSI, and by window size KS or normed
    Wasserstein for numeric features, chi-square or Jensen-Shannon for the others)."""
    if feature.type == "string":
        return set()
    methods = feature.drift_methods if feature.drift_methods is not None else stream.drift.methods
    if methods == "auto":
        if feature.type == "numeric":
            return {DriftMethod.PSI, DriftMethod.KS, DriftMethod.WASSERSTEIN}
        return {DriftMethod.PSI, DriftMethod.CHI_SQUARE, DriftMethod.JENSEN_SHANNON}
    return set(methods)


def _feature_rules(spec: MonitorSpec) -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = []
    for check in FEATURE_CHECKS:
        c = _FEATURE[check]
        items = [(s.name, f.name, spec.threshold_for(s, f, check)) for s in spec.streams for f in s.features]
        for severity in SEVERITY_LEVELS:
            by_level = _by_level(items, severity)
            if not by_level:
                continue
            rules.append({
                "alert": c.alert,
                "expr": _leveled_expr(c.metric, "stream, feature, window", by_level, name_label="feature"),
                "for": c.duration,
                "labels": {"severity": severity, "check": str(check)},
                "annotations": _feature_annotations(check, severity, _levels_text(by_level, True)),
            })
    # streamdq's own drift decision, for every method (the method's threshold or corrected test).
    rules.append({
        "alert": "StreamdqFeatureDrift",
        "expr": f"max by (stream, feature, window, method) "
                f"(streamdq_feature_drifted{{{_matcher('stream', [s.name for s in spec.streams])}}}) == 1",
        "for": "2m",
        "labels": {"severity": "warning", "check": "{{ $labels.method }}"},
        "annotations": {
            "summary": "Feature {{ $labels.feature }} of stream {{ $labels.stream }} drifted ({{ $labels.method }})",
            "description": "The {{ $labels.method }} drift check of feature {{ $labels.feature }} has flagged the "
                           "last {{ $labels.window }} windows of stream {{ $labels.stream }} for 2 minutes.",
        },
    })
    # Distances at their critical level (their warning level is streamdq's decision above).
    for method in DriftMethod:
        if method not in DISTANCE_METHODS:
            continue
        items = [(s.name, f.name, spec.threshold_for(s, f, method)) for s in spec.streams
                 for f in s.features if method in _drift_methods(s, f)]
        by_level = _by_level(items, "critical")
        if not by_level:
            continue
        rules.append({
            "alert": "StreamdqFeatureDrift",
            "expr": _leveled_expr("streamdq_feature_drift_score", "stream, feature, window, method", by_level,
                                  name_label="feature", extra=f'method="{method}"'),
            "for": "2m",
            "labels": {"severity": "critical", "check": str(method)},
            "annotations": {
                "summary": f"Feature {{{{ $labels.feature }}}} of stream {{{{ $labels.stream }}}} drifted "
                           f"({method} {{{{ $value | printf \"%.2f\" }}}})",
                "description": f"The {method} drift statistic of feature {{{{ $labels.feature }}}} against the "
                               f"reference was {{{{ $value | printf \"%.2f\" }}}} in the last "
                               f"{{{{ $labels.window }}}} window of stream {{{{ $labels.stream }}}}, at or above "
                               f"the critical level ({_levels_text(by_level, False)}) for 2 minutes.",
            },
        })
    return rules


def _record_rules(spec: MonitorSpec) -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = []
    for check, c in _RECORD.items():
        items = [(s.name, s.name, spec.threshold_for(s, None, check)) for s in spec.streams]
        for severity in SEVERITY_LEVELS:
            by_level = _by_level(items, severity)
            if not by_level:
                continue
            lv = _levels_text(by_level, c.percent)
            where = "the last {{ $labels.window }} window of stream {{ $labels.stream }}"
            if check == RecordCheck.VOLUME_DEVIATION:
                scale = "1 = twice or half" if severity == "warning" else "2 = four times or a quarter"
                summary = ("Stream {{ $labels.stream }} volume is off the expected rate "
                           "(|log2| deviation {{ $value | humanize }})")
                description = (f"The record count of {where} differs from the expected rate by "
                               f"{{{{ $value | humanize }}}} in |log2| ({scale}) for 5 minutes "
                               f"({severity} level {lv}).")
            elif check == RecordCheck.FRESHNESS_P95_SECONDS:
                summary = "Stream {{ $labels.stream }} records arrive {{ $value | humanizeDuration }} late (p95)"
                description = (f"The 95th percentile of processing time minus event time in {where} was "
                               f"{{{{ $value | humanizeDuration }}}} for 5 minutes ({severity} level {lv} s).")
            else:
                has = "Stream {{ $labels.stream }} has {{ $value | humanizePercentage }}"
                summary = {
                    str(RecordCheck.DUPLICATE_RATIO): f"{has} duplicate records",
                    str(RecordCheck.LATE_RATIO): f"{has} late records",
                    str(RecordCheck.OUT_OF_ORDER_RATIO): f"{has} out-of-order records",
                    str(RecordCheck.UNEXPECTED_FIELD_RATIO): "Stream {{ $labels.stream }} has fields the spec does "
                                                             "not know (schema change?)",
                }[check]
                description = ("{{ $value | humanizePercentage }} of the records in the last {{ $labels.window }} "
                               f"window of stream {{{{ $labels.stream }}}} {c.what}, for 5 minutes "
                               f"({severity} level {lv}).")
                if check == RecordCheck.UNEXPECTED_FIELD_RATIO:
                    description += " The field names are in streamdq's unexpected_field_ratio alert events."
            rules.append({"alert": c.alert,
                          "expr": _leveled_expr(c.metric, "stream, window", by_level, name_label=None),
                          "for": c.duration, "labels": {"severity": severity, "check": str(check)},
                          "annotations": {"summary": summary, "description": description}})
    return rules


def _model_rules(spec: MonitorSpec) -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = []
    check = ModelCheck.LABEL_EXPIRED_RATIO
    items = [(s.name, s.name, s.model.level_for(check)) for s in spec.streams if s.model is not None]
    for severity in SEVERITY_LEVELS:
        by_level = _by_level(items, severity)
        if not by_level:
            continue
        rules.append({
            "alert": "StreamdqLabelsExpired",
            "expr": _leveled_expr("streamdq_model_label_expired_ratio", "stream, model, version, window", by_level,
                                  name_label=None),
            "for": "5m",
            "labels": {"severity": severity, "check": str(check)},
            "annotations": {
                "summary": "Model {{ $labels.model }}:{{ $labels.version }} of stream {{ $labels.stream }}: "
                           "{{ $value | humanizePercentage }} of its predictions never got a label",
                "description": "{{ $value | humanizePercentage }} of the predictions decided in the last "
                               "{{ $labels.window }} window of stream {{ $labels.stream }} got no label within "
                               f"the join TTL, for 5m ({severity} level {_levels_text(by_level, True)}).",
            },
        })
    if items:
        rules.append({
            "alert": "StreamdqModelErrors",
            "expr": "sum by (stream) (increase(streamdq_model_errors_total[10m])) > 0",
            "for": "0m",
            "labels": {"severity": "warning"},
            "annotations": {
                "summary": "The model monitor of stream {{ $labels.stream }} failed on batches",
                "description": "The model monitor of stream {{ $labels.stream }} failed on "
                               "{{ $value | humanize }} batches in the last 10 minutes (see the worker's log): "
                               "their predictions and labels are not in the model windows.",
            },
        })
    return rules


_RECORDING: list[dict[str, Any]] = [
    {"record": "stream_outcome:streamdq_records:rate5m",
     "expr": "sum by (stream, outcome) (rate(streamdq_records_total[5m]))"},
    {"record": "stream:streamdq_records:rate5m", "expr": "sum by (stream) (rate(streamdq_records_total[5m]))"},
    {"record": "stream:streamdq_deadletter_ratio:rate5m",
     "expr": 'sum by (stream) (rate(streamdq_records_total{outcome="deadlettered"}[5m]))\n/\n'
             "(sum by (stream) (rate(streamdq_records_total[5m])) > 0)"},
    {"record": "stream_reason:streamdq_deadletter_records:rate5m",
     "expr": "sum by (stream, reason) (rate(streamdq_deadletter_records_total[5m]))"},
    {"record": "stream_window:streamdq_windows_closed:rate5m",
     "expr": "sum by (stream, window) (rate(streamdq_windows_closed_total[5m]))"},
    {"record": "stream_severity:streamdq_alerts:rate5m",
     "expr": "sum by (stream, severity) (rate(streamdq_alerts_total[5m]))"},
    {"record": "stream_method:streamdq_feature_drift_score:max",
     "expr": "max by (stream, method) (streamdq_feature_drift_score)"},
    {"record": "stream_method:streamdq_feature_drifted:sum",
     "expr": "sum by (stream, method) (max by (stream, feature, method) (streamdq_feature_drifted))"},
    {"record": "stream:streamdq_feature_missing_ratio:max",
     "expr": "max by (stream) (streamdq_feature_missing_ratio)"},
    {"record": "topic:streamdq_consumer_lag_records:sum",
     "expr": "sum by (topic) (max by (topic, partition) (streamdq_consumer_lag_records))"},
    {"record": "instance:streamdq_ingest_messages:rate5m",
     "expr": "sum by (job, instance) (rate(streamdq_ingest_messages_total[5m]))"},
    {"record": "instance:streamdq_ingest_batches:rate5m",
     "expr": "sum by (job, instance) (rate(streamdq_ingest_batches_total[5m]))"},
]


def _worker_rules(job: str) -> list[dict[str, Any]]:
    return [
        {"alert": "StreamdqWorkerDown", "expr": f'up{{job="{job}"}} == 0', "for": "2m",
         "labels": {"severity": "critical"},
         "annotations": {
             "summary": "streamdq worker {{ $labels.instance }} is down",
             "description": "Prometheus could not scrape the streamdq worker {{ $labels.instance }} (job "
                            "{{ $labels.job }}) for 2 minutes: the partitions it owns are not being checked."}},
        {"alert": "StreamdqNoRecordsProcessed",
         "expr": 'sum by (stream) (rate(streamdq_records_total{outcome="processed"}[5m])) == 0\nand on ()\n'
                 f'count(up{{job="{job}"}} == 1) > 0',
         "for": "10m", "labels": {"severity": "warning"},
         "annotations": {
             "summary": "streamdq processes no records of stream {{ $labels.stream }}",
             "description": "The streamdq workers are up but have processed no records of stream "
                            "{{ $labels.stream }} for at least 10 minutes: the producers stopped, the topic is "
                            "empty, or every record is dead-lettered."}},
        *({"alert": "StreamdqDeadLetterRatioHigh", "expr": f"stream:streamdq_deadletter_ratio:rate5m > {level:g}",
           "for": "5m", "labels": {"severity": severity},
           "annotations": {
               "summary": "Stream {{ $labels.stream }} dead-letters {{ $value | humanizePercentage }} of its records",
               "description": "{{ $value | humanizePercentage }} of the records of stream {{ $labels.stream }} went "
                              f"to the dead-letter topic over the last 5 minutes ({severity} above "
                              f"{_level_text(level, True)}). The reason codes are in "
                              "stream_reason:streamdq_deadletter_records:rate5m and on the dead-letter topic.",
}}
          for severity, level in (("warning", 0.01), ("critical", 0.05))),
        {"alert": "StreamdqWindowsStalled",
         "expr": "sum by (stream, window) (increase(streamdq_windows_closed_total[15m])) == 0\nand on (stream)\n"
                 'stream_outcome:streamdq_records:rate5m{outcome="processed"} > 0',
         "for": "2m", "labels": {"severity": "warning"},
         "annotations": {
             "summary": "No {{ $labels.window }} window of stream {{ $labels.stream }} closed for 15 minutes",
             "description": "Records of stream {{ $labels.stream }} are being processed but no {{ $labels.window }} "
                            "window closed in the last 15 minutes, so no checks or drift results are produced. "
                            "Event-time windows close only when event time advances; count windows need their "
                            "size in records."}},
        {"alert": "StreamdqConsumerLagGrowing",
         "expr": "deriv(topic:streamdq_consumer_lag_records:sum[10m]) > 0\nand\n"
                 "topic:streamdq_consumer_lag_records:sum > 1000",
         "for": "10m", "labels": {"severity": "warning"},
         "annotations": {
             "summary": "streamdq falls behind on topic {{ $labels.topic }}",
             "description": "The consumer lag of topic {{ $labels.topic }} has been growing for 10 minutes (now by "
                            "{{ $value | humanize }} records/s): the workers read slower than the producers "
                            "write."}},
        {"alert": "StreamdqConsumerLagHigh", "expr": "topic:streamdq_consumer_lag_records:sum > 10000",
         "for": "10m", "labels": {"severity": "warning"},
         "annotations": {
             "summary": "streamdq is {{ $value | humanize }} records behind on topic {{ $labels.topic }}",
             "description": "The workers have had more than 10000 unread records on topic {{ $labels.topic }} for "
                            "10 minutes (now {{ $value | humanize }}); window results and alerts arrive late."}},
    ]


def rules_document(spec: MonitorSpec, *, job: str = "streamdq", hold: str | None = None) -> dict[str, Any]:
    """The rule file for ``spec`` as data (``groups: [...]``). ``job`` is the scrape job of the workers;
    ``hold`` replaces every alert's ``for:`` (e.g. ``"0s"`` for a demo or a test)."""
    groups = {
        "streamdq.recording": [dict(r) for r in _RECORDING],
        "streamdq.worker": _worker_rules(job),
        "streamdq.features": _feature_rules(spec),
        "streamdq.records": _record_rules(spec),
        "streamdq.model": _model_rules(spec),
    }
    if hold is not None:
        for rules in groups.values():
            for rule in rules:
                if "alert" in rule:
                    rule["for"] = hold
    return {"groups": [{"name": name, "rules": groups[name]} for name in RULE_GROUPS]}


class _Dumper(yaml.SafeDumper):
    pass


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def render_rules(spec: MonitorSpec, *, source: str, job: str = "streamdq", hold: str | None = None) -> str:
    """The rule file for ``spec`` as YAML text, with a header naming ``source`` (the spec's path as given)."""
    header = (
        f"# Generated by `streamdq rules {source}` from the monitor spec {spec.name!r}: do not edit by hand,\n"
        "# change the spec and generate again (tests/unit/test_prometheus_rules.py fails when this file is stale).\n"
        "# Levels are the spec's (a feature's thresholds, else the spec's, else streamdq's defaults):\n"
        "# value >= warning warns, >= critical is critical; at the critical level both rules fire (inhibit\n"
        "# the warning in Alertmanager: equal: [alertname, stream, feature, window, check]).\n"
        "# Check: promtool check rules FILE; unit tests: deploy/prometheus/rules/tests/.\n"
    )
    body = yaml.dump(rules_document(spec, job=job, hold=hold), Dumper=_Dumper, sort_keys=False, width=1000,
                     allow_unicode=True)
    return header + body
