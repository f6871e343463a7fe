"""Model checks of a closed model window: drops against the reference performance, label-free
estimates, calibration, class proportion, label coverage and the error-stream detectors."""

from __future__ import annotations

import math
from typing import Any

from monitor.alerts import Observation
from monitor.names import Severity
from monitor.report import ModelWindowReport
from monitor.spec import MonitorSpec, StreamSpec, Threshold

__all__ = ["observe_model_window"]

# (check, metric, direction): +1 when a higher metric is better (the check is the drop), -1 when lower is.
_REALISED_DROPS = (("accuracy_drop", "accuracy"), ("precision_drop", "precision"), ("recall_drop", "recall"),
                   ("f1_drop", "f1"), ("roc_auc_drop", "roc_auc"))
_MULTICLASS_NAMES = {"precision": "macro_precision", "recall": "macro_recall", "f1": "macro_f1"}
_ESTIMATED_DROPS = (("estimated_accuracy_drop", "accuracy"), ("estimated_roc_auc_drop", "roc_auc"),
                    ("estimated_f1_drop", "f1"))
_REGRESSION_INCREASES = (("mae_increase", "mae"), ("rmse_increase", "rmse"), ("mape_increase", "mape"))

def observe_model_window(spec: MonitorSpec, stream: StreamSpec, r: ModelWindowReport, *,
                         decided: int) -> list[Observation]:
    """Every evaluated model check of a closed model window (raised or not).

    ``decided`` is the number of predictions of the period whose join was decided (labelled or
    expired): the sample size of ``label_expired_ratio``.
    """
    m = stream.model
    assert m is not None  # a predictions stream
    out: list[Observation] = []
    where = f"window {r.window['name']}#{r.window['index']} of {r.basis}"
    who = f"{stream.name} model {r.model_key}"
    ratio = spec.alerting.clear_ratio

    def add(check: str, value: float | None, n: int, what: str, details: dict[str, Any] | None = None) -> None:
        thr: Threshold | None = m.level_for(check)
        if thr is None or value is None or not math.isfinite(value) or n < m.min_samples:
            return
        severity, clear, level = thr.verdict(value, ratio)
        out.append(Observation(stream=stream.name, feature=None, check=check, value=float(value),
                               severity=severity, clear=clear, threshold=level,
                               sample_size=n, window=r.window, reference_version=r.reference_version,
                               summary=f"{who}: {what} in {where} (level {level:g}, {severity or 'ok'})",
                               details=details or {}, model=r.model_key, time_mode=stream.time.mode))

    ref = r.reference or {}
    if r.basis == "labels" and r.realised is not None:
        got = r.realised
        if m.task == "regression":
            for check, metric in _REGRESSION_INCREASES:
                base, now = ref.get(metric), got.get(metric)
                if base and now is not None:
                    add(check, now / base - 1.0, r.count,
                        f"{metric.upper()} {now:.4g} vs reference {base:.4g} ({now / base - 1.0:+.1%})")
        else:
            for check, metric in _REALISED_DROPS:
                name = _MULTICLASS_NAMES.get(metric, metric) if m.task == "multiclass" else metric
                base, now = ref.get(name), got.get(name)
                if base is not None and now is not None:
                    add(check, base - now, r.count, f"{metric} {now:.3f} vs reference {base:.3f} "
                        f"(drop {base - now:+.3f})")
            if m.task == "binary":
                if ref.get("log_loss") is not None and got.get("log_loss") is not None:
                    inc = got["log_loss"] - ref["log_loss"]
                    add("log_loss_increase", inc, r.count, f"log loss {got['log_loss']:.3f} vs reference "
                        f"{ref['log_loss']:.3f}")
                if got.get("ece") is not None:
                    add("calibration_error", got["ece"], r.count, f"calibration error (ECE) {got['ece']:.3f}")
        fired = sorted({d for c in r.changes for d in c.detectors})
        if m.detectors:
            level = 0.0
            sev = Severity.WARNING if fired else None
            if r.count >= m.min_samples or fired:
                out.append(Observation(
                    stream=stream.name, feature=None, check="change_in_error", value=float(len(r.changes)),
                    severity=sev, clear=not fired, threshold=level, sample_size=r.count, window=r.window,
                    reference_version=r.reference_version,
                    summary=(f"{who}: {', '.join(fired)} detected a change in the error rate in {where}"
                             if fired else f"{who}: no change in the error rate in {where}"),
                    details={"detectors": fired, "changes": [c.to_dict() for c in r.changes]}, model=r.model_key,
                    time_mode=stream.time.mode))
    if r.basis == "predictions":
        est = r.estimated
        if est is not None:
            for check, metric in _ESTIMATED_DROPS:
                base, now = ref.get(metric), est.get(metric)
                if base is not None and now is not None:
                    add(check, base - now, r.count, f"estimated {metric} {now:.3f} (no labels needed) vs "
                        f"reference {base:.3f} (drop {base - now:+.3f})")
        if est is not None and ref.get("count") and ref.get("predicted_positives") is not None:
            share, base = est["predicted_positives"] / est["count"], ref["predicted_positives"] / ref["count"]
            add("positive_rate_change", abs(share - base), r.count,
                f"{share:.1%} of predictions positive vs {base:.1%} in the reference (class proportion)")
        ratio_v = r.join.get("label_expired_ratio")
        if ratio_v is not None:
            add("label_expired_ratio", ratio_v, decided,
                f"{ratio_v:.1%} of the predictions decided in the period got no label within the TTL "
                f"({r.join['expired']} expired, {r.join['joined']} labelled)")
    return out
