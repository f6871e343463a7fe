"""The spec's building blocks: its base model, name patterns, check-name lists and thresholds."""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field, model_validator

from monitor.drift.methods import METHODS
from monitor.names import (
    THRESHOLD_CHECKS,
    DriftMethod,
    Severity,
)

__all__ = ["CATEGORICAL_METHODS", "CHECKS", "DEFAULT_THRESHOLDS", "MODEL_DEFAULT_THRESHOLDS", "NAME_PATTERN",
           "NUMERIC_METHODS", "TOPIC_PATTERN", "SpecModel", "Threshold", "ThresholdCheck", "no_duplicates"]

CHECKS: tuple[str, ...] = THRESHOLD_CHECKS
NUMERIC_METHODS = frozenset(DriftMethod(m) for m, info in METHODS.items() if "numeric" in info.applies_to)
CATEGORICAL_METHODS = frozenset(DriftMethod(m) for m, info in METHODS.items() if "categorical" in info.applies_to)

if TYPE_CHECKING:
    ThresholdCheck = str
else:  # the keys ``thresholds`` accepts, derived from monitor.names (validated and in the JSON Schema)
    ThresholdCheck = StrEnum("ThresholdCheck", {c.upper(): c for c in THRESHOLD_CHECKS})

NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_.\-]{0,127}$"
TOPIC_PATTERN = r"^[A-Za-z0-9._\-]{1,249}$"


class SpecModel(BaseModel):
    """The base of every spec model: frozen, unknown keys rejected."""

    # Unknown keys are almost always typos: reject them so the path is reported.
    model_config = ConfigDict(extra="forbid", frozen=True)


class Threshold(SpecModel):
    """Levels for one check: value ``>= warning`` warns, ``>= critical`` is critical; a firing
    alert resolves only when the value falls below ``clear`` (hysteresis; default: the lowest
    raise level times ``alerting.clear_ratio``)."""

    warning: float | None = Field(default=None, ge=0)
    critical: float | None = Field(default=None, ge=0)
    clear: float | None = Field(default=None, ge=0)
    min_samples: int | None = Field(
        default=None, ge=1, description="Fewest samples (the ratio's denominator: records, or valid values for "
        "drift) a window needs for a verdict on this check; fewer is 'insufficient data', never an alert. "
        "Default: the stream's min_samples.")

    @model_validator(mode="after")
    def _ordered(self) -> Threshold:
        if self.warning is None and self.critical is None:
            raise ValueError("set at least one of 'warning' or 'critical'")
        if self.warning is not None and self.critical is not None and self.warning > self.critical:
            raise ValueError(
                f"'warning' ({self.warning}) must not exceed 'critical' ({self.critical})"
            )
        if self.clear is not None and self.clear > self.raise_level:
            raise ValueError(f"'clear' ({self.clear}) must not exceed the lowest raise level ({self.raise_level})")
        return self

    @property
    def raise_level(self) -> float:
        """The lowest level that raises an alert."""
        return self.warning if self.warning is not None else self.critical  # type: ignore[return-value]

    def clear_level(self, clear_ratio: float) -> float:
        """Below this a firing alert may resolve."""
        return self.clear if self.clear is not None else self.raise_level * clear_ratio

    def severity(self, value: float) -> Severity | None:
        """The severity ``value`` reaches, or ``None`` below every level."""
        if self.critical is not None and value >= self.critical:
            return Severity.CRITICAL
        if self.warning is not None and value >= self.warning:
            return Severity.WARNING
        return None

    def verdict(self, value: float, clear_ratio: float) -> tuple[Severity | None, bool, float]:
        """``(severity reached or None, below the clear level, the level of that severity or the raise level)``."""
        severity = self.severity(value)
        level = self.level(severity) if severity is not None else self.raise_level
        return severity, value < self.clear_level(clear_ratio), level

    def level(self, severity: str) -> float:
        """The threshold value of ``severity`` (``warning`` or ``critical``)."""
        value = self.critical if severity == "critical" else self.warning
        if value is None:
            raise KeyError(severity)
        return value


#: Used for every check the spec does not configure. Checks absent here
#: (out_of_order_ratio, freshness_p95_seconds) are reported but only alert when configured.
DEFAULT_THRESHOLDS: dict[str, Threshold] = {
    "missing_ratio": Threshold(warning=0.05, critical=0.20),
    "type_violation_ratio": Threshold(warning=0.01, critical=0.05),
    "out_of_domain_ratio": Threshold(warning=0.01, critical=0.05),
    "unseen_category_ratio": Threshold(warning=0.01, critical=0.05),
    "format_violation_ratio": Threshold(warning=0.01, critical=0.05),
    "duplicate_ratio": Threshold(warning=0.01, critical=0.05),
    "late_ratio": Threshold(warning=0.01, critical=0.05),
    "unexpected_field_ratio": Threshold(warning=0.01, critical=0.05),
    "volume_deviation": Threshold(warning=1.0, critical=2.0),
    "psi": Threshold(warning=0.10, critical=0.25),
    # Normed Wasserstein has more sampling noise than PSI/JS on small or discrete windows (clean
    # windows of 2,000 reached 0.096 on an integer feature), hence 0.15.
    "wasserstein": Threshold(warning=0.15, critical=0.30),
    "jensen_shannon": Threshold(warning=0.10, critical=0.20),
    "hellinger": Threshold(warning=0.10, critical=0.20),
    "linf": Threshold(warning=0.10, critical=0.20),
}


#: Model checks used when the model spec does not configure them (the others are reported only).
MODEL_DEFAULT_THRESHOLDS: dict[str, Threshold] = {
    "accuracy_drop": Threshold(warning=0.05, critical=0.10),
    "f1_drop": Threshold(warning=0.05, critical=0.10),
    "roc_auc_drop": Threshold(warning=0.05, critical=0.10),
    "mae_increase": Threshold(warning=0.20, critical=0.50),
    "rmse_increase": Threshold(warning=0.20, critical=0.50),
    "estimated_accuracy_drop": Threshold(warning=0.05, critical=0.10),
    "estimated_roc_auc_drop": Threshold(warning=0.05, critical=0.10),
    "positive_rate_change": Threshold(warning=0.10, critical=0.20),
}


def no_duplicates(names: list[str | None], what: str) -> None:
    seen: set[str | None] = set()
    dups = sorted({n for n in names if n in seen or seen.add(n)}, key=str)  # type: ignore[func-returns-value]
    if dups:
        raise ValueError(f"duplicate {what} name(s): {', '.join(map(str, dups))}")
