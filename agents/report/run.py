"""A replay's output directory read back as typed windows and alert events: what the report draws.

``streamdq replay`` writes ``windows.jsonl`` (a line per stream, feature and window; a stream-level
line with ``feature: null``; model windows carry ``basis``), ``alerts.jsonl`` (the alert events, the
alerts topic's schema) and ``deadletters.jsonl``. :func:`load_run` reads them into a :class:`ReplayRun`.
Memory is that of the files' content (a replay's outputs are per window, not per record).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from monitor.errors import ConfigError

__all__ = ["AlertEvent", "FeatureWindow", "ModelWindow", "ReplayRun", "StreamWindow", "load_run"]


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


@dataclass(frozen=True, slots=True)
class WindowId:
    """A window's identity as written by the engine."""

    name: str
    index: int
    start: str
    end: str
    partial: bool

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> WindowId:
        return cls(name=str(d["name"]), index=int(d["index"]), start=str(d["start"]), end=str(d["end"]),
                   partial=bool(d.get("partial", False)))

    @property
    def label(self) -> str:
        """``w2000#3`` (with `` (partial)`` for a window still open at the end of the replay)."""
        return f"{self.name}#{self.index}" + (" (partial)" if self.partial else "")


@dataclass(frozen=True, slots=True)
class FeatureWindow:
    """One feature in one closed window: its quality counts and ratios, histogram and drift results."""

    stream: str
    feature: str
    window: WindowId
    count: int
    quality: dict[str, Any]
    drift: dict[str, dict[str, Any]]

    @property
    def histogram(self) -> list[int] | None:
        """Counts over the reference's bins (numeric) or categories plus ``other`` (categorical)."""
        h = self.quality.get("histogram")
        return [int(x) for x in h] if h else None

    @property
    def histogram_labels(self) -> list[str] | None:
        labels = self.quality.get("histogram_labels")
        return [str(x) for x in labels] if labels else None

    def first_distance(self) -> float | None:
        """The largest drift distance of the window (PSI first: every distance method drifts upwards)."""
        values = [float(r["statistic"]) for r in self.drift.values()
                  if r.get("p_value") is None and r.get("statistic") is not None]
        return max(values) if values else None

    @property
    def drifted(self) -> bool:
        return any(r.get("drifted") for r in self.drift.values())


@dataclass(frozen=True, slots=True)
class StreamWindow:
    """The stream-level line of a window: record counts and record-level ratios."""

    stream: str
    window: WindowId
    count: int
    records: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ModelWindow:
    """One model window of one model version: ``basis`` ``labels`` (realised beside estimated) or
    ``predictions`` (the label-free estimate)."""

    stream: str
    model: str
    version: str
    basis: str
    window: WindowId
    count: int
    realised: dict[str, Any] | None
    estimated: dict[str, Any] | None
    reference: dict[str, Any] | None
    join: dict[str, Any]

    @property
    def key(self) -> str:
        """``model:version``, as alert events name it."""
        return f"{self.model}:{self.version}"


@dataclass(frozen=True, slots=True)
class AlertEvent:
    """One alert event (firing or resolved) as the alerts topic carries it."""

    stream: str
    feature: str | None
    model: str | None
    check: str
    severity: str
    status: str
    value: float | None
    threshold: float | None
    window: WindowId
    fingerprint: str
    summary: str

    @property
    def subject(self) -> str:
        """What the alert is about: ``stream.feature``, ``stream model:version`` or the stream itself."""
        if self.feature is not None:
            return f"{self.stream}.{self.feature}"
        if self.model is not None:
            return f"{self.stream} {self.model}"
        return self.stream

    @property
    def time(self) -> float:
        """The end of the window that caused it (epoch seconds)."""
        return _epoch(self.window.end)


@dataclass
class ReplayRun:
    """Everything one or more replay directories hold, in file order (e.g. a features backtest and a
    model backtest of the same spec, shown together)."""

    paths: list[Path]
    features: list[FeatureWindow] = field(default_factory=list)
    streams: list[StreamWindow] = field(default_factory=list)
    models: list[ModelWindow] = field(default_factory=list)
    alerts: list[AlertEvent] = field(default_factory=list)
    deadletters: Counter[str] = field(default_factory=Counter)

    def stream_names(self) -> list[str]:
        """Streams in order of first appearance."""
        seen: dict[str, None] = {}
        for w in self.streams:
            seen.setdefault(w.stream, None)
        for fw in self.features:
            seen.setdefault(fw.stream, None)
        return list(seen)

    def window_names(self, stream: str) -> list[str]:
        """The stream's window specs in order of first appearance."""
        seen: dict[str, None] = {}
        for w in self.streams:
            if w.stream == stream:
                seen.setdefault(w.window.name, None)
        return list(seen)

    def feature_names(self, stream: str) -> list[str]:
        seen: dict[str, None] = {}
        for fw in self.features:
            if fw.stream == stream:
                seen.setdefault(fw.feature, None)
        return list(seen)

    def model_keys(self) -> list[tuple[str, str]]:
        """``(stream, model:version)`` pairs in order of first appearance."""
        seen: dict[tuple[str, str], None] = {}
        for m in self.models:
            seen.setdefault((m.stream, m.key), None)
        return list(seen)


def _lines(path: Path) -> Iterator[dict[str, Any]]:
    if not path.is_file():
        return
    with path.open("rb") as fh:
        for n, line in enumerate(fh, 1):
            if line.strip():
                try:
                    yield orjson.loads(line)
                except orjson.JSONDecodeError as e:
                    raise ConfigError(f"{path}: line {n} is not JSON ({e})") from None


def load_run(*directories: str | Path) -> ReplayRun:
    """Read replay output directories (each needs ``windows.jsonl``; ``alerts.jsonl`` and
    ``deadletters.jsonl`` are optional).

    A missing or malformed file is a :class:`~monitor.errors.ConfigError` naming it."""
    if not directories:
        raise ConfigError("no replay directory given")
    run = ReplayRun(paths=[Path(d) for d in directories])
    for root in run.paths:
        _load_into(run, root)
    return run


def _load_into(run: ReplayRun, root: Path) -> None:
    if not (root / "windows.jsonl").is_file():
        raise ConfigError(f"{root} holds no windows.jsonl: give the --out folder of a streamdq replay")
    try:
        for d in _lines(root / "windows.jsonl"):
            wid = WindowId.from_dict(d["window"])
            if "basis" in d:
                run.models.append(ModelWindow(
                    stream=d["stream"], model=d["model"], version=d["model_version"], basis=d["basis"], window=wid,
                    count=int(d["count"]), realised=d.get("realised"), estimated=d.get("estimated"),
                    reference=d.get("reference"), join=d.get("join") or {}))
            elif d.get("feature") is None:
                run.streams.append(StreamWindow(stream=d["stream"], window=wid, count=int(d["count"]),
                                                records=d.get("records") or {}))
            else:
                run.features.append(FeatureWindow(stream=d["stream"], feature=d["feature"], window=wid,
                                                  count=int(d["count"]), quality=d.get("quality") or {},
                                                  drift=d.get("drift") or {}))
        for d in _lines(root / "alerts.jsonl"):
            run.alerts.append(AlertEvent(
                stream=d["stream"], feature=d.get("feature"), model=d.get("model"), check=d["check"],
                severity=d["severity"], status=d["status"], value=d.get("value"), threshold=d.get("threshold"),
                window=WindowId.from_dict(d["window"]), fingerprint=d["fingerprint"], summary=d.get("summary", "")))
        for d in _lines(root / "deadletters.jsonl"):
            run.deadletters[str(d.get("reason"))] += 1
    except ConfigError:
        raise
    except (KeyError, TypeError, ValueError) as e:
        raise ConfigError(f"{root}: not a replay output this version reads ({type(e).__name__}: {e})") from None

