"""The whole monitor spec (streams, outputs, alerting) and how a spec file is read and validated."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, ValidationError, model_validator

from monitor.errors import ConfigError
from monitor.names import (
    Severity,
)
from monitor.spec.base import (
    DEFAULT_THRESHOLDS,
    NAME_PATTERN,
    TOPIC_PATTERN,
    SpecModel,
    Threshold,
    ThresholdCheck,
    no_duplicates,
)
from monitor.spec.streams import FeatureSpec, StreamSpec

__all__ = ["AlertFilter", "AlertingSpec", "MonitorSpec", "OutputsSpec", "SubscriptionSpec", "format_loc",
           "freshness_levels", "load_spec", "out_of_order_levels", "parse_spec"]


class OutputsSpec(SpecModel):
    """Topics streamdq writes to."""

    alerts_topic: str = Field(default="streamdq.alerts", pattern=TOPIC_PATTERN)
    deadletter_topic: str = Field(default="streamdq.deadletter", pattern=TOPIC_PATTERN)
    profiles_topic: str = Field(default="streamdq.profiles", pattern=TOPIC_PATTERN)
    alerts_deadletter_topic: str = Field(
        default="streamdq.alerts.deadletter", pattern=TOPIC_PATTERN,
        description="Alert notifications a subscription could not deliver within its retry budget.")
    partitions: int = Field(default=1, ge=1, le=1024)



class AlertFilter(SpecModel):
    """Which alerts a subscription receives (every list: any of; omitted: all)."""

    streams: list[str] | None = None
    features: list[str] | None = None
    checks: list[str] | None = None
    min_severity: Severity = Severity.INFO


class SubscriptionSpec(SpecModel):
    """Where alert notifications go: a webhook (signed JSON POST) or an Alertmanager (v2 API).

    Secrets never sit in the spec: the signing secret comes from ``secret_env`` (a variable) or
    ``secret_file`` (a file), secret headers (tokens) from ``headers_env`` (header name -> variable).
    """

    name: str = Field(pattern=NAME_PATTERN)
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


class AlertingSpec(SpecModel):
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
    incident_wait_seconds: float = Field(
        default=3600.0, ge=0, description="One alert per incident: when every window spec's condition has cleared, "
        "the alert resolves only once every window spec of the stream has closed a window ending at or after the "
        "incident's last raised window (each has judged the incident's period), or after this long (in window "
        "time) since that last raised window, whichever comes first. 0: resolve as soon as every condition clears.")
    subscriptions: list[SubscriptionSpec] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique(self) -> AlertingSpec:
        no_duplicates([s.name for s in self.subscriptions], "subscription")
        return self


class MonitorSpec(SpecModel):
    """The whole monitor spec (``version: 1``)."""

    version: Literal[1]
    name: str = Field(pattern=NAME_PATTERN)
    description: str | None = None
    streams: list[StreamSpec] = Field(min_length=1)
    thresholds: dict[ThresholdCheck, Threshold] = Field(
        default_factory=dict, description="Defaults for every feature; features may override."
    )
    outputs: OutputsSpec = Field(default_factory=OutputsSpec)
    alerting: AlertingSpec = Field(default_factory=AlertingSpec)

    @model_validator(mode="after")
    def _unique(self) -> MonitorSpec:
        no_duplicates([s.name for s in self.streams], "stream")
        no_duplicates([s.topic for s in self.streams], "stream topic")
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

    def default_stream(self) -> StreamSpec | None:
        """The stream a command or call means when it names none: the only stream, or the only features
        stream (predictions and labels streams are chosen by name); ``None`` when that is ambiguous."""
        if len(self.streams) == 1:
            return self.streams[0]
        features = [s for s in self.streams if s.kind == "features"]
        return features[0] if len(features) == 1 else None

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
        if check == "freshness_p95_seconds":
            return freshness_levels(stream)
        if check == "out_of_order_ratio":
            return out_of_order_levels(stream)
        return DEFAULT_THRESHOLDS.get(check)


def freshness_levels(stream: StreamSpec) -> Threshold:
    """Default ``freshness_p95_seconds`` levels of a stream: 2x (warning) and 10x (critical) its expected lag
    (``time.expected_lag_seconds``, else ``time.allowed_lateness_seconds``).

    >>> s = StreamSpec.model_validate({"name": "f", "windows": [{"name": "w", "kind": "count", "size": 10}],
    ...                                "features": [{"name": "x", "type": "numeric"}]})
    >>> freshness_levels(s).warning, freshness_levels(s).critical
    (60.0, 300.0)
    """
    lag = stream.time.expected_lag
    return Threshold(warning=2.0 * lag, critical=10.0 * lag)


def out_of_order_levels(stream: StreamSpec) -> Threshold | None:
    """Default ``out_of_order_ratio`` levels of a stream, relative to the share of out-of-order records it
    normally has (``time.expected_out_of_order_ratio``; unset: 0 on one partition, and no default on several,
    where interleaved partitions make out-of-order records normal): warning ``max(0.05, 2x)``, critical
    ``max(0.20, 4x)``, each at most 1.

    >>> s = StreamSpec.model_validate({"name": "f", "windows": [{"name": "w", "kind": "count", "size": 10}],
    ...                                "features": [{"name": "x", "type": "numeric"}]})
    >>> out_of_order_levels(s).warning, out_of_order_levels(s).critical
    (0.05, 0.2)
    >>> out_of_order_levels(s.model_copy(update={"partitions": 3})) is None
    True
    """
    expected = stream.time.expected_out_of_order_ratio
    if expected is None:
        if stream.partitions > 1:
            return None
        expected = 0.0
    return Threshold(warning=min(max(0.05, 2.0 * expected), 1.0), critical=min(max(0.20, 4.0 * expected), 1.0))


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
