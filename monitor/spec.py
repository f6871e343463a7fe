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

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from monitor.errors import ConfigError

__all__ = [
    "CHECKS",
    "DEFAULT_THRESHOLDS",
    "FeatureSpec",
    "MonitorSpec",
    "OutputsSpec",
    "Range",
    "StreamSpec",
    "Threshold",
    "WindowSpec",
    "format_loc",
    "load_spec",
    "parse_spec",
]

#: Checks that produce a value per feature per window and can carry thresholds.
CheckName = Literal["missing_ratio", "type_violation_ratio", "out_of_domain_ratio", "psi"]
CHECKS: tuple[str, ...] = ("missing_ratio", "type_violation_ratio", "out_of_domain_ratio", "psi")

_NAME = r"^[A-Za-z_][A-Za-z0-9_.\-]{0,127}$"
_TOPIC = r"^[A-Za-z0-9._\-]{1,249}$"


class _Model(BaseModel):
    # Unknown keys are almost always typos: reject them so the path is reported.
    model_config = ConfigDict(extra="forbid", frozen=True)


class Threshold(_Model):
    """Raise levels for one check: value ``>= warning`` warns, ``>= critical`` is critical."""

    warning: float | None = Field(default=None, ge=0)
    critical: float | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _ordered(self) -> Threshold:
        if self.warning is None and self.critical is None:
            raise ValueError("set at least one of 'warning' or 'critical'")
        if self.warning is not None and self.critical is not None and self.warning > self.critical:
            raise ValueError(
                f"'warning' ({self.warning}) must not exceed 'critical' ({self.critical})"
            )
        return self

    def severity(self, value: float) -> str | None:
        """The severity ``value`` reaches, or ``None`` below every level."""
        if self.critical is not None and value >= self.critical:
            return "critical"
        if self.warning is not None and value >= self.warning:
            return "warning"
        return None

    def level(self, severity: str) -> float:
        """The threshold value of ``severity`` (``warning`` or ``critical``)."""
        value = self.critical if severity == "critical" else self.warning
        if value is None:
            raise KeyError(severity)
        return value


#: Used for every check the spec does not configure.
DEFAULT_THRESHOLDS: dict[str, Threshold] = {
    "missing_ratio": Threshold(warning=0.05, critical=0.20),
    "type_violation_ratio": Threshold(warning=0.01, critical=0.05),
    "out_of_domain_ratio": Threshold(warning=0.01, critical=0.05),
    "psi": Threshold(warning=0.10, critical=0.25),
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
    type: Literal["numeric", "categorical", "boolean"]
    nullable: bool = Field(
        default=False,
        description="If true, missing values are expected and the missing_ratio check is off "
        "unless this feature sets its own missing_ratio threshold.",
    )
    range: Range | None = None
    categories: list[str] | None = Field(default=None, min_length=1)
    thresholds: dict[CheckName, Threshold] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _fits_type(self) -> FeatureSpec:
        if self.range is not None and self.type != "numeric":
            raise ValueError("'range' applies to numeric features only")
        if self.categories is not None:
            if self.type != "categorical":
                raise ValueError("'categories' applies to categorical features only")
            if len(set(self.categories)) != len(self.categories):
                raise ValueError("'categories' contains duplicates")
        return self


class WindowSpec(_Model):
    """A tumbling window: ``count`` closes every ``size`` records, ``time`` every ``seconds``."""

    name: str = Field(pattern=_NAME)
    kind: Literal["count", "time"]
    size: int | None = Field(default=None, ge=1, le=10_000_000)
    seconds: float | None = Field(default=None, gt=0, le=7 * 86400)

    @model_validator(mode="after")
    def _sized(self) -> WindowSpec:
        if self.kind == "count" and (self.size is None or self.seconds is not None):
            raise ValueError("a count window needs 'size' (records) and no 'seconds'")
        if self.kind == "time" and (self.seconds is None or self.size is not None):
            raise ValueError("a time window needs 'seconds' and no 'size'")
        return self


class StreamSpec(_Model):
    """One input stream: a Kafka topic of JSON records with the listed features."""

    name: str = Field(pattern=_NAME)
    kind: Literal["features"] = "features"
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
        return self

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
    partitions: int = Field(default=1, ge=1, le=1024)


class MonitorSpec(_Model):
    """The whole monitor spec (``version: 1``)."""

    version: Literal[1]
    name: str = Field(pattern=_NAME)
    description: str | None = None
    streams: list[StreamSpec] = Field(min_length=1)
    thresholds: dict[CheckName, Threshold] = Field(
        default_factory=dict, description="Defaults for every feature; features may override."
    )
    outputs: OutputsSpec = Field(default_factory=OutputsSpec)

    @model_validator(mode="after")
    def _unique(self) -> MonitorSpec:
        _no_duplicates([s.name for s in self.streams], "stream")
        _no_duplicates([s.topic for s in self.streams], "stream topic")
        return self

    def stream(self, name: str) -> StreamSpec:
        for s in self.streams:
            if s.name == name:
                return s
        raise KeyError(name)

    def threshold_for(self, stream: StreamSpec, feature: FeatureSpec, check: str) -> Threshold | None:
        """Effective threshold of ``check`` for ``feature``, or ``None`` if the check is off."""
        if check in feature.thresholds:
            return feature.thresholds[check]
        if check == "missing_ratio" and feature.nullable:
            return None
        if check in self.thresholds:
            return self.thresholds[check]
        return DEFAULT_THRESHOLDS[check]


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
