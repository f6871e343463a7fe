"""The names streamdq's outputs and spec use, each defined once: severities, alert statuses, checks and
drift methods.

They are :class:`~enum.StrEnum` members, so they compare equal to, hash like, format as and serialise
(orjson, JSON Schema, Prometheus labels) exactly as their plain string values; their ``repr`` is the
value's too, so lists of them read as the names people use.

Examples
--------
>>> Severity.WARNING == "warning", f"{Severity.CRITICAL}", max(SEVERITIES, key=SEVERITY_RANK.__getitem__)
(True, 'critical', 'critical')
>>> "psi" in THRESHOLD_CHECKS, "ks" in THRESHOLD_CHECKS  # a test's level is drift.alpha, not a threshold
(True, False)
"""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "CHANGE_CHECKS",
    "DISTANCE_METHODS",
    "FEATURE_CHECKS",
    "MODEL_CHECKS",
    "RECORD_CHECKS",
    "SEVERITIES",
    "SEVERITY_RANK",
    "TEST_METHODS",
    "THRESHOLD_CHECKS",
    "ChangeCheck",
    "ChangeSeries",
    "Direction",
    "DriftMethod",
    "FeatureCheck",
    "ModelCheck",
    "RecordCheck",
    "Severity",
    "Status",
    "drift_key",
]


class _Name(StrEnum):
    def __repr__(self) -> str:
        return repr(self.value)


class Severity(_Name):
    """How bad an alert is, lowest first."""

    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


#: Every severity, lowest first.
SEVERITIES: tuple[Severity, ...] = tuple(Severity)
#: 0 for info, 1 for warning, 2 for critical (looked up by the member or its plain string).
SEVERITY_RANK: dict[str, int] = {s: i for i, s in enumerate(SEVERITIES)}



class Direction(_Name):
    """Which side of its threshold an alert's value is bad on.

    ``above``: the check raises when ``value >= threshold`` (ratios, distances, drops); ``below``: when
    ``value <= threshold`` (a drift test's p-value against alpha).
    """

    ABOVE = "above"
    BELOW = "below"


class Status(_Name):
    """An alert event's status."""

    FIRING = "firing"
    RESOLVED = "resolved"


class FeatureCheck(_Name):
    """Ratio checks evaluated on every feature with data in a window."""

    MISSING_RATIO = "missing_ratio"
    TYPE_VIOLATION_RATIO = "type_violation_ratio"
    OUT_OF_DOMAIN_RATIO = "out_of_domain_ratio"
    UNSEEN_CATEGORY_RATIO = "unseen_category_ratio"
    FORMAT_VIOLATION_RATIO = "format_violation_ratio"


class RecordCheck(_Name):
    """Checks of a stream's records as a whole (stream level)."""

    DUPLICATE_RATIO = "duplicate_ratio"
    LATE_RATIO = "late_ratio"
    OUT_OF_ORDER_RATIO = "out_of_order_ratio"
    UNEXPECTED_FIELD_RATIO = "unexpected_field_ratio"
    VOLUME_DEVIATION = "volume_deviation"
    FRESHNESS_P95_SECONDS = "freshness_p95_seconds"


class DriftMethod(_Name):
    """Drift methods; each is also the name of its check."""

    PSI = "psi"
    KS = "ks"
    WASSERSTEIN = "wasserstein"
    JENSEN_SHANNON = "jensen_shannon"
    HELLINGER = "hellinger"
    CHI_SQUARE = "chi_square"
    LINF = "linf"


#: Statistical tests: they drift when the corrected p-value rejects at ``drift.alpha``.
TEST_METHODS = frozenset({DriftMethod.KS, DriftMethod.CHI_SQUARE})
#: Distances: they drift when the statistic reaches the check's warning level.
DISTANCE_METHODS = frozenset(DriftMethod) - TEST_METHODS


class ChangeCheck(_Name):
    """Change-detector checks: on a feature's window series, or a model's error stream."""

    CHANGE_IN_MEAN = "change_in_mean"
    CHANGE_IN_DRIFT = "change_in_drift"
    CHANGE_IN_ERROR = "change_in_error"


class ModelCheck(_Name):
    """Checks of a model version's windows (``value >= level`` raises, like every check)."""

    # realised (labels joined): drops against the reference performance, absolute
    ACCURACY_DROP = "accuracy_drop"
    PRECISION_DROP = "precision_drop"
    RECALL_DROP = "recall_drop"
    F1_DROP = "f1_drop"
    ROC_AUC_DROP = "roc_auc_drop"
    # realised, absolute levels
    LOG_LOSS_INCREASE = "log_loss_increase"
    CALIBRATION_ERROR = "calibration_error"
    # regression: relative increase over the reference error (0.2 = 20 % worse)
    MAE_INCREASE = "mae_increase"
    RMSE_INCREASE = "rmse_increase"
    MAPE_INCREASE = "mape_increase"
    # label-free (CBPE, binary): estimated drops, before any label arrives
    ESTIMATED_ACCURACY_DROP = "estimated_accuracy_drop"
    ESTIMATED_ROC_AUC_DROP = "estimated_roc_auc_drop"
    ESTIMATED_F1_DROP = "estimated_f1_drop"
    # binary: |share of positive predictions - the reference's| (class proportion drift)
    POSITIVE_RATE_CHANGE = "positive_rate_change"
    # the join: share of decided predictions whose label never came (TTL ran out)
    LABEL_EXPIRED_RATIO = "label_expired_ratio"


FEATURE_CHECKS: tuple[FeatureCheck, ...] = tuple(FeatureCheck)
RECORD_CHECKS: tuple[RecordCheck, ...] = tuple(RecordCheck)
CHANGE_CHECKS: tuple[ChangeCheck, ...] = tuple(ChangeCheck)
MODEL_CHECKS: tuple[ModelCheck, ...] = tuple(ModelCheck)
#: The checks a spec's ``thresholds`` may set levels for (feature, record and drift-distance checks).
THRESHOLD_CHECKS: tuple[str, ...] = (*FEATURE_CHECKS, *RECORD_CHECKS,
                                     *(m for m in DriftMethod if m in DISTANCE_METHODS))


def drift_key(method: str, *, rolling: bool = False) -> str:
    """The key of a drift result in a window's ``drift`` (and ``windows.jsonl``): the method's name, or
    ``<method>@rolling`` against the rolling reference (the result's ``method`` stays the plain name).

    >>> drift_key(DriftMethod.PSI), drift_key("psi", rolling=True)
    ('psi', 'psi@rolling')
    """
    return f"{method}@rolling" if rolling else str(method)


class ChangeSeries(_Name):
    """The series a change detector watches: a feature's standardised window mean or drift score, or a
    model's error stream. Its check is ``change_in_<series>``."""

    MEAN = "mean"
    DRIFT = "drift"
    ERROR = "error"

    @property
    def check(self) -> ChangeCheck:
        """``change_in_<series>``."""
        return ChangeCheck(f"change_in_{self.value}")
