"""Threshold rules: turn a closed window's results into alerts."""

from __future__ import annotations

from typing import TYPE_CHECKING

from monitor.alerts.alert import Alert
from monitor.spec import MonitorSpec, StreamSpec

if TYPE_CHECKING:
    from monitor.engine import WindowReport

__all__ = ["QUALITY_CHECKS", "evaluate_window"]

#: Ratio checks evaluated on every feature with data in the window.
QUALITY_CHECKS = ("missing_ratio", "type_violation_ratio", "out_of_domain_ratio")

_WHAT = {
    "missing_ratio": "missing values",
    "type_violation_ratio": "values of the wrong type",
    "out_of_domain_ratio": "values outside the allowed range/categories",
}


def evaluate_window(spec: MonitorSpec, stream: StreamSpec, report: WindowReport) -> list[Alert]:
    """Every threshold the window crosses, one alert per (feature, check), worst severity.

    Drift alerts need a drift result with ``drifted`` decided (enough sample);
    "insufficient data" never alerts.
    """
    alerts: list[Alert] = []
    win = report.window
    where = (f"window {win['name']}#{win['index']}" if win["kind"] == "count"
             else f"window {win['name']} from {win['start']}")
    for feature in stream.features:
        fr = report.features[feature.name]
        for check in QUALITY_CHECKS:
            thr = spec.threshold_for(stream, feature, check)
            value = fr.ratios.get(check)
            if thr is None or value is None:
                continue
            severity = thr.severity(value)
            if severity is None:
                continue
            alerts.append(Alert(
                stream=stream.name, feature=feature.name, check=check, severity=severity,
                value=value, threshold=thr.level(severity), sample_size=fr.count,
                summary=f"{stream.name}.{feature.name}: {value:.1%} {_WHAT[check]} in {where} "
                        f"(>= {thr.level(severity):.1%}, {severity})",
                window=win, reference_version=report.reference_version, created_at=win["end"],
            ))
        drift = report.drift.get(feature.name)
        thr = spec.threshold_for(stream, feature, "psi")
        if drift is None or thr is None or not drift.drifted or drift.statistic is None:
            continue
        severity = thr.severity(drift.statistic)
        if severity is None:
            continue
        alerts.append(Alert(
            stream=stream.name, feature=feature.name, check="psi", severity=severity,
            value=drift.statistic, threshold=thr.level(severity), sample_size=drift.sample_size,
            summary=f"{stream.name}.{feature.name}: distribution drifted from reference, "
                    f"PSI {drift.statistic:.3f} in {where} (>= {thr.level(severity)}, {severity})",
            window=win, reference_version=report.reference_version, created_at=win["end"],
        ))
    return alerts
