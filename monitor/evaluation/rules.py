"""Threshold rules: turn a closed window's results into alerts."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from monitor.alerts import Alert, Observation
from monitor.detectors import SENSITIVITY
from monitor.drift import DriftResult
from monitor.names import FEATURE_CHECKS, RECORD_CHECKS, ChangeSeries, Direction, Severity
from monitor.report import Change, WindowSummary
from monitor.spec import FeatureSpec, MonitorSpec, StreamSpec

__all__ = ["evaluate_window", "observe_window"]

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


def evaluate_window(observations: Sequence[Observation]) -> list[Alert]:
    """Every threshold the window crosses: one alert per (feature, check) at its worst severity.

    These are the window's raw verdicts; what is notified (firing/resolved,
    deduplicated, with hysteresis) is decided by :class:`~monitor.alerts.policy.AlertPolicy`
    from :func:`observe_window`.
    """
    return [o.to_alert() for o in observations if o.severity is not None]


def observe_window(spec: MonitorSpec, stream: StreamSpec, measured: WindowSummary,
                   drift: Mapping[str, Mapping[str, DriftResult]],
                   changes: Sequence[Change]) -> list[Observation]:
    """One :class:`~monitor.alerts.policy.Observation` per evaluated check, raised or not.

    Drift distances raise at the method's warning/critical levels; drift tests
    (KS, chi-square) raise as warnings when rejected after the multiple-testing
    correction, with the corrected p-value as the value, alpha as the threshold and
    direction ``below`` (statistic, raw p-value and effect size in ``details``);
    change detectors raise as warnings when they flag a change.
    "Insufficient data" (a ratio check, freshness or drift method with fewer samples
    than its ``min_samples``: the threshold's, else the stream's) gives an observation
    marked ``insufficient``, which neither raises nor clears.
    """
    out: list[Observation] = []
    win = measured.window
    where = _where(win)
    ratio = spec.alerting.clear_ratio

    def add(feature: str | None, check: str, value: float, severity: Severity | None, clear: bool, threshold: float,
            n: int, summary: str, details: dict[str, Any] | None = None,
            direction: Direction = Direction.ABOVE) -> None:
        out.append(Observation(stream=stream.name, feature=feature, check=check, value=value, severity=severity,
                               clear=clear, threshold=threshold, sample_size=n, window=win,
                               reference_version=measured.reference_version, summary=summary,
                               details=details or {}, direction=direction, time_mode=stream.time.mode))

    def too_few(feature: str | None, check: str, value: float, threshold: float, n: int, least: int) -> bool:
        if n >= least:
            return False
        out.append(Observation(stream=stream.name, feature=feature, check=check, value=value, severity=None,
                               clear=False, threshold=threshold, sample_size=n, window=win,
                               reference_version=measured.reference_version, insufficient=True,
                               time_mode=stream.time.mode,
                               summary=f"{stream.name}{'.' + feature if feature else ''}: insufficient data for "
                               f"{check} in {where} ({n} < min_samples {least})",
                               details={"min_samples": least}))
        return True

    records = measured.records
    for check in RECORD_CHECKS:
        thr = spec.threshold_for(stream, None, check)
        value = records.get(check)
        if thr is None or value is None:
            continue
        if check != "volume_deviation":  # a window's count is the volume signal itself: no minimum
            if check == "late_ratio":
                n = measured.count + int(records.get("late_excluded") or 0)
            elif check == "freshness_p95_seconds":
                n = measured.count - int(records.get("missing_event_time") or 0)
            else:
                n = measured.count
            least = thr.min_samples if thr.min_samples is not None else stream.min_samples
            if too_few(None, check, value, thr.raise_level, n, least):
                continue
        severity, clear, level = thr.verdict(value, ratio)
        if check == "volume_deviation":
            text = (f"{measured.count} records in {where}, expected ~{measured.records['expected_records']:.0f} "
                    f"(|log2 ratio| {value:.2f}, level {level})")
        elif check == "freshness_p95_seconds":
            text = f"p95 freshness lag {value:.1f}s in {where} (level {level}s)"
        else:
            text = f"{value:.1%} {_WHAT[check]} in {where} (level {level:.1%})"
        details = None
        if check == "unexpected_field_ratio":
            details = {"unexpected_fields": measured.records.get("unexpected_fields")}
        add(None, check, value, severity, clear, level, measured.count,
            f"{stream.name}: {text}, {severity or 'ok'}", details)

    for change in changes:
        if change.feature is None or change.value is None:
            continue  # a model's error-stream point: evaluated with the model's window
        what = "mean (standardised)" if change.series is ChangeSeries.MEAN else "drift score"
        detected = bool(change.detectors)
        verdict = f"{', '.join(change.detectors)} detected a change" if detected else "no change detected"
        add(change.feature, change.series.check, change.value, Severity.WARNING if detected else None,
            not detected, max((SENSITIVITY[d] for d in change.detectors), default=0.0),
            measured.features[change.feature].count,
            f"{stream.name}.{change.feature}: {verdict} in the {what} series at {where} "
            f"(value {change.value:.3g})", {"detectors": list(change.detectors)})

    for feature in stream.features:
        fr = measured.features[feature.name]
        for fcheck in FEATURE_CHECKS:
            thr = spec.threshold_for(stream, feature, fcheck)
            value = fr.ratios.get(fcheck)
            if thr is None or value is None:
                continue
            least = thr.min_samples if thr.min_samples is not None else stream.min_samples
            if too_few(feature.name, fcheck, value, thr.raise_level, fr.count, least):
                continue
            severity, clear, level = thr.verdict(value, ratio)
            add(feature.name, fcheck, value, severity, clear, level, fr.count,
                f"{stream.name}.{feature.name}: {value:.1%} {_WHAT[fcheck]} in {where} "
                f"(level {level:.1%}, {severity or 'ok'})")
        for method, d in drift.get(feature.name, {}).items():
            if d.drifted is None or d.statistic is None:
                least = _drift_min_samples(spec, stream, feature, d.method)
                if d.statistic is None and d.sample_size < least:  # too few values: insufficient data
                    too_few(feature.name, method, 0.0, d.threshold, d.sample_size, least)
                continue  # neither raises nor clears
            if d.p_value is not None:  # a test, decided after the multiple-testing correction
                verdict = "distribution drifted from reference" if d.drifted else "no drift"
                p_adj = d.p_value if d.p_value_adjusted is None else d.p_value_adjusted
                corrected = "" if stream.drift.correction == "none" else f" ({stream.drift.correction} corrected)"
                add(feature.name, method, p_adj, Severity.WARNING if d.drifted else None, not d.drifted,
                    d.threshold, d.sample_size,
                    f"{stream.name}.{feature.name}: {verdict}, {method} p={p_adj:.2g}{corrected} vs alpha "
                    f"{d.threshold:g} in {where} (statistic {d.statistic:.3f})",
                    {"statistic": d.statistic, "p_value": d.p_value, "correction": stream.drift.correction,
                     "effect_size": d.effect_size}, Direction.BELOW)
                continue
            thr = spec.threshold_for(stream, feature, d.method)  # psi@rolling: psi's levels
            if thr is None:
                severity, clear, level = (Severity.WARNING if d.drifted else None), not d.drifted, d.threshold
            else:
                severity, clear, level = thr.verdict(d.statistic, ratio)
            label = "PSI" if method == "psi" else method
            add(feature.name, method, d.statistic, severity, clear, level, d.sample_size,
                f"{stream.name}.{feature.name}: {'distribution drifted from reference' if severity else 'no drift'}"
                f", {label} {d.statistic:.3f} in {where} (level {level}, {severity or 'ok'})",
                {"statistic": d.statistic, "effect_size": d.effect_size})
    return out


def _drift_min_samples(spec: MonitorSpec, stream: StreamSpec, feature: FeatureSpec, method: str) -> int:
    """The fewest valid values a drift method needs: its threshold's ``min_samples``, else the stream's."""
    thr = spec.threshold_for(stream, feature, method)
    return thr.min_samples if thr is not None and thr.min_samples is not None else stream.min_samples
