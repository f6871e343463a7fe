"""Threshold rules: turn a closed window's results into alerts."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from monitor.alerts.alert import Alert
from monitor.detectors import SENSITIVITY
from monitor.spec import FEATURE_CHECKS, RECORD_CHECKS, MonitorSpec, StreamSpec

if TYPE_CHECKING:
    from monitor.engine import WindowReport

__all__ = ["QUALITY_CHECKS", "evaluate_window"]

#: Ratio checks evaluated on every feature with data in the window.
QUALITY_CHECKS = FEATURE_CHECKS

_WHAT = {
    "missing_ratio": "missing values",
    "type_violation_ratio": "values of the wrong type",
    "out_of_domain_ratio": "values outside the allowed range/categories",
    "unseen_category_ratio": "categories never seen in the reference",
    "format_violation_ratio": "values not matching the pattern",
    "duplicate_ratio": "duplicate record ids",
    "late_ratio": "late records",
    "out_of_order_ratio": "out-of-order records",
    "unexpected_field_ratio": "records with unexpected fields",
}


def _where(win: dict[str, Any]) -> str:
    if win["kind"] == "count":
        return f"window {win['name']}#{win['index']}"
    return f"window {win['name']} from {win['start']}"


def evaluate_window(spec: MonitorSpec, stream: StreamSpec, report: WindowReport) -> list[Alert]:
    """Every threshold the window crosses: one alert per (feature, check) at its worst severity.

    Drift distances alert at the method's warning/critical levels; drift tests
    (KS, chi-square) alert as warnings when rejected after the multiple-testing
    correction. "Insufficient data" never alerts.
    """
    alerts: list[Alert] = []
    win = report.window
    where = _where(win)

    def add(feature: str | None, check: str, value: float, threshold: float, severity: str, n: int,
            summary: str, details: dict[str, Any] | None = None) -> None:
        alerts.append(Alert(stream=stream.name, feature=feature, check=check, severity=severity, value=value,
                            threshold=threshold, sample_size=n, summary=summary, window=win,
                            reference_version=report.reference_version, created_at=win["end"],
                            details=details or {}))

    for check in RECORD_CHECKS:
        thr = spec.threshold_for(stream, None, check)
        value = report.records.get(check)
        if thr is None or value is None:
            continue
        severity = thr.severity(value)
        if severity is None:
            continue
        level = thr.level(severity)
        if check == "volume_deviation":
            text = (f"{report.count} records in {where}, expected ~{report.records['expected_records']:.0f} "
                    f"(|log2 ratio| {value:.2f} >= {level})")
        elif check == "freshness_p95_seconds":
            text = f"p95 freshness lag {value:.1f}s in {where} (>= {level}s)"
        else:
            text = f"{value:.1%} {_WHAT[check]} in {where} (>= {level:.1%})"
        details = None
        if check == "unexpected_field_ratio":
            details = {"unexpected_fields": report.records.get("unexpected_fields")}
        add(None, check, value, level, severity, report.count, f"{stream.name}: {text}, {severity}", details)

    for change in report.changes:
        what = "mean (standardised)" if change["series"] == "mean" else "drift score"
        add(change["feature"], f"change_in_{change['series']}", change["value"], SENSITIVITY[change["detector"]],
            "warning", report.features[change["feature"]].count,
            f"{stream.name}.{change['feature']}: {change['detector']} detected a change in the {what} "
            f"series at {where} (value {change['value']:.3g}, warning)", {"detector": change["detector"]})

    for feature in stream.features:
        fr = report.features[feature.name]
        for check in FEATURE_CHECKS:
            thr = spec.threshold_for(stream, feature, check)
            value = fr.ratios.get(check)
            if thr is None or value is None:
                continue
            severity = thr.severity(value)
            if severity is None:
                continue
            level = thr.level(severity)
            add(feature.name, check, value, level, severity, fr.count,
                f"{stream.name}.{feature.name}: {value:.1%} {_WHAT[check]} in {where} (>= {level:.1%}, {severity})")
        for method, d in report.drift.get(feature.name, {}).items():
            if not d.drifted or d.statistic is None:
                continue
            if d.p_value is not None:  # a test, rejected after the multiple-testing correction
                add(feature.name, method, d.statistic, d.threshold, "warning", d.sample_size,
                    f"{stream.name}.{feature.name}: distribution drifted from reference, {method} "
                    f"statistic {d.statistic:.3f}, p={d.p_value:.2g} in {where} (alpha {d.threshold}, "
                    f"{stream.drift.correction} corrected, warning)",
                    {"p_value": d.p_value, "effect_size": d.effect_size})
                continue
            thr = spec.threshold_for(stream, feature, method.split("@")[0])  # psi@rolling: psi's levels
            severity = thr.severity(d.statistic) if thr is not None else "warning"
            if severity is None:
                continue
            level = thr.level(severity) if thr is not None else d.threshold
            label = "PSI" if method == "psi" else method
            add(feature.name, method, d.statistic, level, severity, d.sample_size,
                f"{stream.name}.{feature.name}: distribution drifted from reference, "
                f"{label} {d.statistic:.3f} in {where} (>= {level}, {severity})",
                {"effect_size": d.effect_size})
    return alerts
