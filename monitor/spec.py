"""The monitor spec: a team's written definition of clean data, as a typed model.

A spec is one YAML file. :func:`load_spec` parses and validates it once and
either returns a :class:`MonitorSpec` or raises :class:`~monitor.errors.ConfigError`
listing every problem with the dotted path of the bad key, e.g.::

    streams[0].features[2].type: Input should be 'numeric', 'categorical' or 'boolean'

Examples
--------
>>> spec = MonitorSpec.model_validate({
...     "version": 1, "name": "shop",
...     "streams": [{"name": "features",
...                  "windows": [{"name": "w1k", "kind": "count", "size": 1000}],
...                  "features": [{"name": "age", "type": "numeric"}]}]})
>>> spec.streams[0].topic
'features'
>>> spec.threshold_for(spec.streams[0], spec.streams[0].features[0], "psi").critical
0.25
"""

from __future__ import annotations

import re
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from monitor.drift.methods import METHODS
from monitor.errors import ConfigError
from monitor.names import (
    FEATURE_CHECKS,
    MODEL_CHECKS,
    RECORD_CHECKS,
    THRESHOLD_CHECKS,
    DriftMethod,
    ModelCheck,
    Severity,
)

__all__ = [
    "CATEGORICAL_METHODS",
    "CHECKS",
    "DEFAULT_THRESHOLDS",
    "FEATURE_CHECKS",
    "MODEL_CHECKS",
    "MODEL_DEFAULT_THRESHOLDS",
    "NUMERIC_METHODS",
    "RECORD_CHECKS",
    "AlertFilter",
    "AlertingSpec",
    "DriftSpec",
    "DuplicatesSpec",
    "FeatureSpec",
    "JoinSpec",
    "ModelSpec",
    "MonitorSpec",
    "OutputsSpec",
    "Range",
    "StreamSpec",
    "SubscriptionSpec",
    "Threshold",
    "TimeSpec",
    "VolumeSpec",
    "WindowSpec",
    "format_loc",
    "load_spec",
    "parse_spec",
]

CHECKS: tuple[str, ...] = THRESHOLD_CHECKS
NUMERIC_METHODS = frozenset(DriftMethod(m) for m, info in METHODS.items() if "numeric" in info.applies_to)
CATEGORICAL_METHODS = frozenset(DriftMethod(m) for m, info in METHODS.items() if "categorical" in info.applies_to)

if TYPE_CHECKING:
    ThresholdCheck = str
else:  # the keys ``thresholds`` accepts, derived from monitor.names (validated and in the JSON Schema)
    ThresholdCheck = StrEnum("ThresholdCheck", {c.upper(): c for c in THRESHOLD_CHECKS})

_NAME = r"^[A-Za-z_][A-Za-z0-9_.\-]{0,127}$"
_TOPIC = r"^[A-Za-z0-9._\-]{1,249}$"


class _Model(BaseModel):
    # Unknown keys are almost always typos: reject them so the path is reported.
    model_config = ConfigDict(extra="forbid", frozen=True)


class Threshold(_Model):
    """Levels for one check: value ``>= warning`` warns, ``>= critical`` is critical; a firing
    alert resolves only when the value falls below ``clear`` (hysteresis; default: the lowest
    raise level times ``alerting.clear_ratio``)."""

    warning: float | None = Field(default=None, ge=0)
    critical: float | None = Field(default=None, ge=0)
    clear: float | None = Field(default=None, ge=0)

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


class Range(_Model):
    """Allowed closed interval for a numeric feature; either end may be open."""

    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _ordered(self) -> Range:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"'min' ({self.min}) must not exceed 'max' ({self.max})")
        return self


class FeatureSpec(_Model):
    """One monitored field of a stream's records."""

    name: str = Field(pattern=_NAME)
    type: Literal["numeric", "categorical", "boolean", "string"]
    nullable: bool = Field(
        default=False,
        description="If true, missing values are expected and the missing_ratio check is off "
        "unless this feature sets its own missing_ratio threshold.",
    )
    range: Range | None = None
    categories: list[str] | None = Field(default=None, min_length=1)
    pattern: str | None = Field(default=None, description="Regular expression every value must match "
                                "in full (categorical and string features).")
    drift_methods: list[DriftMethod] | None = Field(
        default=None, description="Drift methods for this feature (default: the stream's drift.methods).")
    thresholds: dict[ThresholdCheck, Threshold] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _fits_type(self) -> FeatureSpec:
        if self.range is not None and self.type != "numeric":
            raise ValueError("'range' applies to numeric features only")
        if self.pattern is not None:
            if self.type not in ("categorical", "string"):
                raise ValueError("'pattern' applies to categorical and string features only")
            try:
                re.compile(self.pattern)
            except re.error as exc:
                raise ValueError(f"'pattern' is not a valid regular expression: {exc}") from None
        if self.drift_methods is not None:
            allowed = NUMERIC_METHODS if self.type == "numeric" else CATEGORICAL_METHODS
            if self.type == "string":
                raise ValueError("string features have no drift methods")
            bad = sorted(set(self.drift_methods) - allowed)
            if bad:
                raise ValueError(f"drift method(s) {bad} do not apply to {self.type} features "
                                 f"(use {sorted(allowed)})")
        if self.categories is not None:
            if self.type != "categorical":
                raise ValueError("'categories' applies to categorical features only")
            if len(set(self.categories)) != len(self.categories):
                raise ValueError("'categories' contains duplicates")
        return self


class WindowSpec(_Model):
    """A window over a stream.

    ``count`` windows span ``size`` records, ``time`` windows ``seconds`` of
    (event or processing) time. Without ``slide`` a window is tumbling; with it
    a new window starts every ``slide`` records/seconds and windows overlap
    (``size`` must be a multiple of ``slide``; at most 64 panes per window).
    """

    name: str = Field(pattern=_NAME)
    kind: Literal["count", "time"]
    size: int | None = Field(default=None, ge=1, le=10_000_000)
    seconds: float | None = Field(default=None, gt=0, le=7 * 86400)
    slide: float | None = Field(default=None, gt=0, description="Sliding step: records (count) or seconds (time).")

    @model_validator(mode="after")
    def _sized(self) -> WindowSpec:
        if self.kind == "count" and (self.size is None or self.seconds is not None):
            raise ValueError("a count window needs 'size' (records) and no 'seconds'")
        if self.kind == "time" and (self.seconds is None or self.size is not None):
            raise ValueError("a time window needs 'seconds' and no 'size'")
        if self.slide is not None:
            span = float(self.size if self.kind == "count" else self.seconds)  # type: ignore[arg-type]
            panes = span / self.slide
            if self.kind == "count" and self.slide != int(self.slide):
                raise ValueError("'slide' of a count window must be a whole number of records")
            if abs(panes - round(panes)) > 1e-9 or round(panes) < 1:
                raise ValueError(f"'slide' ({self.slide}) must divide the window length ({span:g}) evenly")
            if round(panes) > 64:
                raise ValueError(f"a window of {round(panes)} slides is too many (at most 64)")
        return self

    @property
    def span(self) -> float:
        """Length in records (count) or seconds (time)."""
        return float(self.size if self.kind == "count" else self.seconds)  # type: ignore[arg-type]

    @property
    def pane(self) -> float:
        """Length of one pane: the slide, or the whole window when tumbling."""
        return float(self.slide) if self.slide is not None else self.span

    @property
    def panes(self) -> int:
        return round(self.span / self.pane)


class TimeSpec(_Model):
    """How time windows and lateness are measured."""

    mode: Literal["event", "processing"] = Field(
        default="event", description="event: the record's time field drives time windows (records without "
        "one take the stream's latest event time); processing: the worker's clock.")
    allowed_lateness_seconds: float = Field(
        default=30.0, ge=0, description="A record older than the latest event time seen minus this is late: "
        "counted (late_ratio) and kept out of time windows.")


class DriftSpec(_Model):
    """Drift evaluation settings of a stream."""

    methods: Literal["auto"] | list[DriftMethod] = Field(
        default="auto", description="auto: chosen by window sample size (n <= 1000: KS for numeric, chi-square "
        "for categorical; larger: normed Wasserstein / Jensen-Shannon), always with PSI.")
    alpha: float = Field(default=0.01, gt=0, lt=1, description="Significance level of the statistical tests "
                         "(KS, chi-square), after the multiple-testing correction.")
    correction: Literal["bh", "bonferroni", "none"] = Field(
        default="bh", description="Multiple-testing control across the features of one window.")


class DuplicatesSpec(_Model):
    enabled: bool = True
    capacity: int = Field(default=100_000, ge=100, le=10_000_000,
                          description="Distinct recent ids remembered per stream (two generations of half each).")


class VolumeSpec(_Model):
    expected_per_second: float | None = Field(
        default=None, gt=0, description="Expected record rate for time windows (default: the reference "
        "profile's rate, when it has event times).")


class JoinSpec(_Model):
    """How labels join predictions: by record id, within a time-to-live, in bounded memory (per partition)."""

    ttl_seconds: float = Field(
        default=86_400.0, gt=0, le=90 * 86_400, description="How long a prediction waits for its label (and an "
        "early label for its prediction); then it counts as expired. Measured in the stream's time mode.")
    max_pending: int = Field(default=1_000_000, ge=1, le=100_000_000,
                             description="Pending predictions per partition at most; beyond, the oldest is evicted.")
    max_orphans: int = Field(default=100_000, ge=0, le=100_000_000,
                             description="Labels waiting for their prediction per partition at most.")
    label_lag_seconds: float = Field(
        default=300.0, ge=0, description="Event time: how far one topic's clock may trail the other's. A prediction "
        "expires when the labels have moved ttl past it, or the predictions ttl + this past it (labels stopped or far "
        "behind); an early label likewise. Below this lag, how the two topics are interleaved changes no join.")
    future_tolerance_seconds: float = Field(
        default=3600.0, gt=0, description="Event time: a record dated further ahead of the worker's clock than this "
        "counts as dated now + this for the join (one mis-dated record must not expire every pending prediction).")
    checkpoint_seconds: float = Field(
        default=10.0, gt=0, le=3600, description="How often the worker checkpoints the join state (a chunked "
        "snapshot per partition, only when it changed); on restart it reloads it and replays the topics from the "
        "checkpoint's offsets, so nothing pending is lost.")


ModelDetector = Literal["ddm", "eddm", "hddm_a", "hddm_w", "adwin"]


class ModelSpec(_Model):
    """The model whose predictions a ``kind: predictions`` stream carries, and where its labels come from.

    Binary classifiers give ``score_field`` (the probability of ``positive_label``, in [0, 1]);
    multiclass classifiers ``class_field`` (the predicted class) and ``classes``; regressors
    ``value_field``. Labels come from the ``kind: labels`` stream named by ``labels`` (its
    ``label_field``), joined to predictions by record id.
    """

    name: str = Field(pattern=_NAME, description="Model name used when a record carries none.")
    task: Literal["binary", "multiclass", "regression"]
    labels: str = Field(pattern=_NAME, description="Name of the kind: labels stream.")
    model_field: str = Field(default="model", description="Record field with the model name (optional in records).")
    version_field: str = Field(default="model_version",
                               description="Record field with the model version (optional; default 'unversioned').")
    score_field: str | None = Field(default=None, description="Binary: predicted probability of the positive label.")
    class_field: str | None = Field(default=None, description="Multiclass: the predicted class.")
    value_field: str | None = Field(default=None, description="Regression: the predicted value.")
    label_field: str = Field(default="label", description="The label's field in the labels stream.")
    positive_label: str = Field(default="1", description="Binary: the label value (as a string; true/false for "
                                "booleans) that is the positive class; every other value is negative.")
    classes: list[str] | None = Field(default=None, min_length=2, description="Multiclass: the class list.")
    threshold: float = Field(default=0.5, ge=0, le=1, description="Binary: a score >= threshold predicts positive.")
    join: JoinSpec = Field(default_factory=JoinSpec)
    windows: list[WindowSpec] = Field(
        default_factory=lambda: [WindowSpec(name="perf1k", kind="count", size=1000)],
        description="Count windows of performance, per model version: over labelled (joined) examples for the "
        "realised metrics (with the label-free estimate on the same examples beside them), and over predictions "
        "for the label-free estimate alone.")
    min_samples: int = Field(default=200, ge=1, description="Fewest examples a window needs for a verdict.")
    detectors: list[ModelDetector] | None = Field(
        default=None, description="River detectors on the error stream (one point per labelled example: 0/1 error "
        "for classifiers, absolute error for regressors; DDM and friends take classifiers only). Default: "
        "[ddm, adwin] for classifiers, [adwin] for regressors; [] turns them off.")
    max_versions: int = Field(default=8, ge=1, le=1000,
                              description="Model versions tracked at once; the least recently seen is dropped.")
    thresholds: dict[ModelCheck, Threshold] = Field(
        default_factory=dict, description="Levels of the model checks (defaults: MODEL_DEFAULT_THRESHOLDS).")

    @model_validator(mode="after")
    def _fits_task(self) -> ModelSpec:
        if self.detectors is None:  # frozen model: set the task's default once, here
            object.__setattr__(self, "detectors", ["adwin"] if self.task == "regression" else ["ddm", "adwin"])
        need = {"binary": "score_field", "multiclass": "class_field", "regression": "value_field"}[self.task]
        if getattr(self, need) is None:
            raise ValueError(f"a {self.task} model needs '{need}'")
        if self.task == "multiclass" and not self.classes:
            raise ValueError("a multiclass model needs 'classes'")
        if self.task != "multiclass" and self.classes is not None:
            raise ValueError("'classes' applies to multiclass models only")
        if self.task == "regression" and set(self.detectors or []) - {"adwin"}:
            raise ValueError("regression models take the 'adwin' detector only (DDM and friends need 0/1 errors)")
        for w in self.windows:
            if w.kind != "count":
                raise ValueError(f"model window {w.name!r}: only count windows are supported")
        _no_duplicates([w.name for w in self.windows], "model window")
        return self

    @property
    def prediction_fields(self) -> list[str]:
        """The prediction payload fields this model reads."""
        return [f for f in (self.score_field, self.class_field, self.value_field) if f is not None]

    def level_for(self, check: str) -> Threshold | None:
        """The effective levels of a model check, ``None`` if it raises no alert."""
        if check not in MODEL_CHECKS:
            return None
        key = ModelCheck(check)
        if key in self.thresholds:
            return self.thresholds[key]
        return MODEL_DEFAULT_THRESHOLDS.get(key)


class StreamSpec(_Model):
    """One input stream: a Kafka topic of JSON records with the listed features.

    ``kind: predictions`` streams carry a model's predictions (their score/class/value fields are
    features, monitored for quality and drift like any other) and name the model in ``model``;
    ``kind: labels`` streams carry the ground truth joined to them by record id.
    """

    name: str = Field(pattern=_NAME)
    kind: Literal["features", "predictions", "labels"] = "features"
    model: ModelSpec | None = Field(default=None, description="kind: predictions only: the model and its labels.")
    topic: str | None = Field(default=None, pattern=_TOPIC, description="Defaults to the name.")
    partitions: int = Field(default=1, ge=1, le=1024)
    id_field: str = "record_id"
    time_field: str = "event_time"
    reference: str | None = Field(
        default=None, description="Path of the reference profile JSON, relative to the spec file."
    )
    max_message_bytes: int = Field(default=1_048_576, ge=64, le=64 * 1_048_576)
    min_samples: int = Field(
        default=100, ge=1, description="Fewest non-missing values a window needs for drift."
    )
    psi_bins: int = Field(default=10, ge=2, le=100)
    time: TimeSpec = Field(default_factory=TimeSpec)
    drift: DriftSpec = Field(default_factory=DriftSpec)
    duplicates: DuplicatesSpec = Field(default_factory=DuplicatesSpec)
    volume: VolumeSpec = Field(default_factory=VolumeSpec)
    rolling_reference: int | None = Field(
        default=None, ge=1, le=100, description="Also compare each window with the merge of the previous N "
        "windows of the same window spec (drift results named <method>@rolling); memory grows with N.")
    detectors: list[Literal["adwin", "page_hinkley", "kswin"]] = Field(
        default_factory=lambda: ["adwin"],  # type: ignore[arg-type]  # pydantic's stub wants the Literal list
        description="River change detectors run on per-window aggregates "
        "(standardised feature means and drift scores); [] turns them off.")
    allow_extra_fields: bool = Field(default=False, description="If false, fields that are not features, id, "
                                     "time or schema_version count as unexpected (schema change).")
    windows: list[WindowSpec] = Field(min_length=1)
    features: list[FeatureSpec] = Field(min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _default_topic(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("topic") is None and isinstance(data.get("name"), str):
            data = {**data, "topic": data["name"]}
        return data

    @model_validator(mode="after")
    def _unique(self) -> StreamSpec:
        _no_duplicates([f.name for f in self.features], "feature")
        _no_duplicates([w.name for w in self.windows], "window")
        reserved = {self.id_field, self.time_field, "schema_version"}
        clash = sorted(reserved & {f.name for f in self.features})
        if clash:
            raise ValueError(f"feature name(s) {clash} clash with the id/time/schema_version fields")
        if (self.kind == "predictions") != (self.model is not None):
            raise ValueError("a kind: predictions stream needs 'model', and only such a stream takes it")
        if self.model is not None:
            m = self.model
            names = {f.name: f for f in self.features}
            for field_name in m.prediction_fields:
                if field_name not in names:
                    raise ValueError(f"model field {field_name!r} must be one of the stream's features")
            if m.score_field is not None:
                f = names[m.score_field]
                if f.type != "numeric":
                    raise ValueError(f"score field {f.name!r} must be a numeric feature")
                if f.range is None or f.range.min is None or f.range.max is None \
                        or f.range.min < 0 or f.range.max > 1:
                    raise ValueError(f"score field {f.name!r} needs a range within [0, 1] "
                                     "(so scores outside it are reported), e.g. range: {min: 0, max: 1}")
            if m.value_field is not None and names[m.value_field].type != "numeric":
                raise ValueError(f"value field {m.value_field!r} must be a numeric feature")
            if m.class_field is not None and names[m.class_field].type not in ("categorical", "boolean"):
                raise ValueError(f"class field {m.class_field!r} must be a categorical or boolean feature")
        return self

    @property
    def known_fields(self) -> frozenset[str]:
        """Fields a record may carry without counting as unexpected: features, id, time, schema_version,
        and a predictions stream's model name and version fields."""
        extra = [self.model.model_field, self.model.version_field] if self.model is not None else []
        return frozenset([self.id_field, self.time_field, "schema_version", *extra, *(f.name for f in self.features)])

    def feature(self, name: str) -> FeatureSpec:
        for f in self.features:
            if f.name == name:
                return f
        raise KeyError(name)


class OutputsSpec(_Model):
    """Topics streamdq writes to."""

    alerts_topic: str = Field(default="streamdq.alerts", pattern=_TOPIC)
    deadletter_topic: str = Field(default="streamdq.deadletter", pattern=_TOPIC)
    profiles_topic: str = Field(default="streamdq.profiles", pattern=_TOPIC)
    alerts_deadletter_topic: str = Field(
        default="streamdq.alerts.deadletter", pattern=_TOPIC,
        description="Alert notifications a subscription could not deliver within its retry budget.")
    partitions: int = Field(default=1, ge=1, le=1024)



class AlertFilter(_Model):
    """Which alerts a subscription receives (every list: any of; omitted: all)."""

    streams: list[str] | None = None
    features: list[str] | None = None
    checks: list[str] | None = None
    min_severity: Severity = Severity.INFO


class SubscriptionSpec(_Model):
    """Where alert notifications go: a webhook (signed JSON POST) or an Alertmanager (v2 API).

    Secrets never sit in the spec: the signing secret comes from ``secret_env`` (a variable) or
    ``secret_file`` (a file), secret headers (tokens) from ``headers_env`` (header name -> variable).
    """

    name: str = Field(pattern=_NAME)
    kind: Literal["webhook", "alertmanager"]
    url: str = Field(pattern=r"^https?://", description="Webhook URL, or the Alertmanager base URL.")
    filter: AlertFilter = Field(default_factory=AlertFilter)
    secret_env: str | None = Field(
        default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="Environment variable holding the HMAC-SHA256 signing secret (webhooks).")
    secret_file: str | None = Field(
        default=None, min_length=1, description="File holding the HMAC-SHA256 signing secret (webhooks; one trailing "
        "newline is ignored); instead of secret_env.")
    headers: dict[str, str] = Field(default_factory=dict, description="Extra HTTP headers (not secret: they are "
                                    "written in the spec; use headers_env for tokens).")
    headers_env: dict[str, str] = Field(
        default_factory=dict, description="Extra HTTP headers whose values are secret: header name -> the environment "
        "variable holding its value (e.g. Authorization: ALERT_WEBHOOK_TOKEN).")
    timeout_seconds: float = Field(default=5.0, gt=0, le=120)
    max_retries: int = Field(default=5, ge=0, le=50, description="Retries after the first attempt.")
    backoff_seconds: float = Field(default=0.5, gt=0, le=60, description="First retry delay; doubles, with jitter.")
    max_backoff_seconds: float = Field(default=30.0, gt=0, le=3600)
    queue_size: int = Field(default=1000, ge=1, le=100_000,
                            description="Notifications waiting for delivery at most; beyond, they are dead-lettered.")
    resolve_timeout_seconds: float = Field(
        default=7200.0, gt=0, description="Alertmanager: endsAt of a firing alert is its last sighting (or now, "
        "if later) + this, and it is re-sent on every re-notification: keep it above alerting.renotify_seconds.")

    @model_validator(mode="after")
    def _fits_kind(self) -> SubscriptionSpec:
        if self.kind == "alertmanager" and (self.secret_env is not None or self.secret_file is not None):
            raise ValueError("'secret_env' and 'secret_file' apply to webhooks only")
        if self.secret_env is not None and self.secret_file is not None:
            raise ValueError("give the signing secret once: 'secret_env' or 'secret_file'")
        bad = [v for v in self.headers_env.values() if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", v)]
        if bad:
            raise ValueError(f"headers_env values must be environment variable names, got {bad}")
        both = sorted({h.lower() for h in self.headers} & {h.lower() for h in self.headers_env})
        if both:
            raise ValueError(f"header(s) {both} set in both 'headers' and 'headers_env'")
        return self


class AlertingSpec(_Model):
    """The policy between check results and alerts, and the subscriptions."""

    for_windows: int = Field(default=1, ge=1, le=1000,
                             description="Consecutive windows at or above the raise level before an alert fires.")
    clear_windows: int = Field(default=1, ge=1, le=1000,
                               description="Consecutive windows below the clear level before it resolves.")
    clear_ratio: float = Field(default=0.8, gt=0, le=1,
                               description="Default clear level = lowest raise level x this (hysteresis).")
    renotify_seconds: float = Field(
        default=3600.0, ge=0, description="A still-firing alert is sent again at most this often (0: never); "
        "escalations are sent at once.")
    subscriptions: list[SubscriptionSpec] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique(self) -> AlertingSpec:
        _no_duplicates([s.name for s in self.subscriptions], "subscription")
        return self


class MonitorSpec(_Model):
    """The whole monitor spec (``version: 1``)."""

    version: Literal[1]
    name: str = Field(pattern=_NAME)
    description: str | None = None
    streams: list[StreamSpec] = Field(min_length=1)
    thresholds: dict[ThresholdCheck, Threshold] = Field(
        default_factory=dict, description="Defaults for every feature; features may override."
    )
    outputs: OutputsSpec = Field(default_factory=OutputsSpec)
    alerting: AlertingSpec = Field(default_factory=AlertingSpec)

    @model_validator(mode="after")
    def _unique(self) -> MonitorSpec:
        _no_duplicates([s.name for s in self.streams], "stream")
        _no_duplicates([s.topic for s in self.streams], "stream topic")
        by_name = {s.name: s for s in self.streams}
        claimed: dict[str, str] = {}
        for s in self.streams:
            if s.model is None:
                continue
            labels = by_name.get(s.model.labels)
            if labels is None or labels.kind != "labels":
                raise ValueError(f"stream {s.name!r}: model.labels {s.model.labels!r} must name a kind: labels stream")
            label_feature = next((f for f in labels.features if f.name == s.model.label_field), None)
            if label_feature is None:
                raise ValueError(f"stream {s.name!r}: label_field {s.model.label_field!r} must be a feature of "
                                 f"stream {labels.name!r}")
            if s.model.task == "binary":
                allowed = (["true", "false"] if label_feature.type == "boolean" else label_feature.categories)
                if allowed is not None and s.model.positive_label not in allowed:
                    raise ValueError(f"stream {s.name!r}: positive_label {s.model.positive_label!r} is not a value of "
                                     f"the {label_feature.type} label {label_feature.name!r} (one of {allowed}): every "
                                     "label would count as negative")
            if labels.partitions != s.partitions:
                raise ValueError(f"streams {s.name!r} and {labels.name!r} must have the same number of partitions "
                                 "(predictions and labels are co-partitioned by record id)")
            if labels.id_field != s.id_field:
                raise ValueError(f"streams {s.name!r} and {labels.name!r} must use the same id_field")
            if labels.time.mode != s.time.mode:
                raise ValueError(f"streams {s.name!r} and {labels.name!r} must use the same time mode")
            if labels.name in claimed:
                raise ValueError(f"labels stream {labels.name!r} serves two models ({claimed[labels.name]!r}, "
                                 f"{s.name!r})")
            claimed[labels.name] = s.name
        return self

    def in_event_time(self) -> MonitorSpec:
        """This spec with every stream in event-time mode (what a replay or a batch job runs)."""
        streams = [s.model_copy(update={"time": s.time.model_copy(update={"mode": "event"})}) for s in self.streams]
        return self.model_copy(update={"streams": streams})

    def model_of_labels(self, labels: str) -> StreamSpec | None:
        """The predictions stream whose model reads the labels stream ``labels``."""
        for s in self.streams:
            if s.model is not None and s.model.labels == labels:
                return s
        return None

    def stream(self, name: str) -> StreamSpec:
        for s in self.streams:
            if s.name == name:
                return s
        raise KeyError(name)

    def threshold_for(self, stream: StreamSpec, feature: FeatureSpec | None, check: str) -> Threshold | None:
        """Effective threshold of ``check`` (for ``feature``, or the stream for record checks),
        or ``None`` if the check raises no alert."""
        if feature is not None:
            if check in feature.thresholds:
                return feature.thresholds[check]
            if check == "missing_ratio" and feature.nullable:
                return None
        if check in self.thresholds:
            return self.thresholds[check]
        return DEFAULT_THRESHOLDS.get(check)


def _no_duplicates(names: list[str | None], what: str) -> None:
    seen: set[str | None] = set()
    dups = sorted({n for n in names if n in seen or seen.add(n)}, key=str)  # type: ignore[func-returns-value]
    if dups:
        raise ValueError(f"duplicate {what} name(s): {', '.join(map(str, dups))}")


def format_loc(loc: tuple[int | str, ...]) -> str:
    """Turn a pydantic error location into a dotted path.

    >>> format_loc(("streams", 0, "features", 2, "type"))
    'streams[0].features[2].type'
    """
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part == "[key]":  # pydantic's marker for "the key itself was invalid"
            continue
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"


def parse_spec(data: Any, *, source: str = "<spec>") -> MonitorSpec:
    """Validate already-parsed YAML/JSON data into a :class:`MonitorSpec`."""
    if not isinstance(data, dict):
        raise ConfigError(
            f"{source}: invalid monitor spec",
            [("(top level)", f"expected a mapping of keys, got {type(data).__name__}")],
        )
    try:
        return MonitorSpec.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors(include_url=False):
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                msg = "unknown key (check the spelling; see schemas/monitor_spec.schema.json)"
            elif err["type"] == "missing":
                msg = "required key is missing"
            problems.append((format_loc(tuple(err["loc"])), msg))
        raise ConfigError(f"{source}: invalid monitor spec", problems) from None


def load_spec(path: str | Path) -> MonitorSpec:
    """Read, parse and validate a monitor spec file.

    Relative ``reference`` paths are resolved against the spec file's folder.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read monitor spec {path}: {exc.strerror or exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "(unknown position)"
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{path}: not valid YAML", [(where, str(problem))]) from None
    spec = parse_spec(data, source=str(path))
    streams = []
    for s in spec.streams:
        if s.reference is not None and not Path(s.reference).is_absolute():
            s = s.model_copy(update={"reference": str((path.parent / s.reference).resolve())})
        streams.append(s)
    return spec.model_copy(update={"streams": streams})
