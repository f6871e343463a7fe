"""The spec of one stream: its features, windows, time, drift, duplicates, volume and model."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, model_validator

from monitor.names import (
    MODEL_CHECKS,
    DriftMethod,
    ModelCheck,
)
from monitor.spec.base import (
    CATEGORICAL_METHODS,
    MODEL_DEFAULT_THRESHOLDS,
    NAME_PATTERN,
    NUMERIC_METHODS,
    TOPIC_PATTERN,
    SpecModel,
    Threshold,
    ThresholdCheck,
    no_duplicates,
)

__all__ = ["DriftSpec", "DuplicatesSpec", "FeatureSpec", "JoinSpec", "ModelSpec", "Range", "StreamSpec", "TimeSpec",
           "VolumeSpec", "WindowSpec"]


class Range(SpecModel):
    """Allowed closed interval for a numeric feature; either end may be open."""

    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _ordered(self) -> Range:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"'min' ({self.min}) must not exceed 'max' ({self.max})")
        return self


class FeatureSpec(SpecModel):
    """One monitored field of a stream's records."""

    name: str = Field(pattern=NAME_PATTERN)
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


class WindowSpec(SpecModel):
    """A window over a stream.

    ``count`` windows span ``size`` records, ``time`` windows ``seconds`` of
    (event or processing) time. Without ``slide`` a window is tumbling; with it
    a new window starts every ``slide`` records/seconds and windows overlap
    (``size`` must be a multiple of ``slide``; at most 64 panes per window).
    """

    name: str = Field(pattern=NAME_PATTERN)
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


class TimeSpec(SpecModel):
    """How time windows and lateness are measured."""

    mode: Literal["event", "processing"] = Field(
        default="event", description="event: the record's time field drives time windows (records without "
        "one take the stream's latest event time); processing: the worker's clock.")
    allowed_lateness_seconds: float = Field(
        default=30.0, ge=0, description="A record older than the latest event time seen minus this is late: "
        "counted (late_ratio) and kept out of time windows.")
    max_future_seconds: float | None = Field(
        default=3600.0, gt=0, description="A worker dead-letters a record whose event time is further ahead of its "
        "clock than this (event_time_in_future): one such record would otherwise move its partition's watermark "
        "into the future. null: no limit. Offline replays have no wall clock and apply none.")
    idle_timeout_seconds: float = Field(
        default=30.0, gt=0, description="A partition without records for this long (wall clock) stops holding "
        "the stream's windows back; when every partition is idle, time windows close on the wall clock.")
    expected_lag_seconds: float | None = Field(
        default=None, gt=0, description="How far behind the present a record normally arrives (p95 of processing "
        "time minus event time; in event-time replay, behind the stream's latest event time). Sets the default "
        "freshness_p95_seconds levels: warning 2x, critical 10x. Default: allowed_lateness_seconds.")
    expected_out_of_order_ratio: float | None = Field(
        default=None, ge=0, lt=1, description="Share of records normally older than a record before them. Sets "
        "the default out_of_order_ratio levels: warning max(0.05, 2x), critical max(0.20, 4x) (capped below 1). "
        "Default: 0 for a one-partition stream; none for a stream of several partitions (interleaving partitions "
        "puts records out of order normally), whose out_of_order_ratio is then only reported unless set here or "
        "in thresholds.")

    @property
    def expected_lag(self) -> float:
        """The stream's expected lag in seconds (``expected_lag_seconds``, else ``allowed_lateness_seconds``;
        at least 1 s so a lateness of 0 does not make every lag an alert)."""
        lag = self.expected_lag_seconds if self.expected_lag_seconds is not None else self.allowed_lateness_seconds
        return max(lag, 1.0)


class DriftSpec(SpecModel):
    """Drift evaluation settings of a stream."""

    methods: Literal["auto"] | list[DriftMethod] = Field(
        default="auto", description="auto: chosen by window sample size (n <= 1000: KS for numeric, chi-square "
        "for categorical; larger: normed Wasserstein / Jensen-Shannon), always with PSI.")
    alpha: float = Field(default=0.01, gt=0, lt=1, description="Significance level of the statistical tests "
                         "(KS, chi-square), after the multiple-testing correction.")
    correction: Literal["bh", "bonferroni", "none"] = Field(
        default="bh", description="Multiple-testing control across the features of one window.")


class DuplicatesSpec(SpecModel):
    enabled: bool = True
    capacity: int = Field(default=100_000, ge=100, le=10_000_000,
                          description="Distinct recent ids remembered per stream (two generations of half each).")


class VolumeSpec(SpecModel):
    expected_per_second: float | None = Field(
        default=None, gt=0, description="Expected record rate for time windows (default: the reference "
        "profile's rate, when it has event times).")


class JoinSpec(SpecModel):
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


class ModelSpec(SpecModel):
    """The model whose predictions a ``kind: predictions`` stream carries, and where its labels come from.

    Binary classifiers give ``score_field`` (the probability of ``positive_label``, in [0, 1]);
    multiclass classifiers ``class_field`` (the predicted class) and ``classes``; regressors
    ``value_field``. Labels come from the ``kind: labels`` stream named by ``labels`` (its
    ``label_field``), joined to predictions by record id.
    """

    name: str = Field(pattern=NAME_PATTERN, description="Model name used when a record carries none.")
    task: Literal["binary", "multiclass", "regression"]
    labels: str = Field(pattern=NAME_PATTERN, description="Name of the kind: labels stream.")
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
        no_duplicates([w.name for w in self.windows], "model window")
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


class StreamSpec(SpecModel):
    """One input stream: a Kafka topic of JSON records with the listed features.

    ``kind: predictions`` streams carry a model's predictions (their score/class/value fields are
    features, monitored for quality and drift like any other) and name the model in ``model``;
    ``kind: labels`` streams carry the ground truth joined to them by record id.
    """

    name: str = Field(pattern=NAME_PATTERN)
    kind: Literal["features", "predictions", "labels"] = "features"
    model: ModelSpec | None = Field(default=None, description="kind: predictions only: the model and its labels.")
    topic: str | None = Field(default=None, pattern=TOPIC_PATTERN, description="Defaults to the name.")
    partitions: int = Field(default=1, ge=1, le=1024)
    id_field: str = "record_id"
    time_field: str = "event_time"
    reference: str | None = Field(
        default=None, description="Path of the reference profile JSON, relative to the spec file."
    )
    max_message_bytes: int = Field(default=1_048_576, ge=64, le=64 * 1_048_576)
    min_samples: int = Field(
        default=100, ge=1, description="Fewest samples a window needs for a verdict on a check: valid values for "
        "drift methods; records (the ratio's denominator) for the ratio checks and freshness. Fewer is "
        "'insufficient data' (listed in the window's insufficient_data), never an alert. A check's threshold may set "
        "its own min_samples. volume_deviation has none (a window's count is its own signal)."
    )
    psi_bins: int = Field(default=10, ge=2, le=100)
    time: TimeSpec = Field(default_factory=TimeSpec)
    drift: DriftSpec = Field(default_factory=DriftSpec)
    duplicates: DuplicatesSpec = Field(default_factory=DuplicatesSpec)
    volume: VolumeSpec = Field(default_factory=VolumeSpec)
    rolling_reference: int | None = Field(
        default=None, ge=1, le=100, description="Also compare each window with the merge of the previous N "
        "windows of the same window spec (drift results keyed <method>@rolling); memory grows with N.")
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
        no_duplicates([f.name for f in self.features], "feature")
        no_duplicates([w.name for w in self.windows], "window")
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
