"""The engine: records in, window reports and alerts out. No I/O.

One :class:`Engine` serves every stream of a spec. Feed it decoded, envelope-
valid records with :meth:`Engine.process`; each call returns the reports of the
windows those records closed. Time windows also close on :meth:`Engine.tick`.
The clock is injected, so tests and replays control time.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from monitor.alerts import Alert, evaluate_window
from monitor.checks import MISSING, FeatureWindow, FeatureWindowResult
from monitor.drift import DriftResult, psi
from monitor.reference import ReferenceProfile
from monitor.spec import MonitorSpec, StreamSpec, WindowSpec
from monitor.windows import TumblingWindow

__all__ = ["Engine", "WindowReport"]


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class WindowReport:
    """Everything streamdq concluded about one stream in one closed window."""

    stream: str
    window: dict[str, Any]
    count: int
    features: dict[str, FeatureWindowResult]
    drift: dict[str, DriftResult]
    reference_version: str | None
    alerts: list[Alert] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": 1,
            "stream": self.stream,
            "window": self.window,
            "count": self.count,
            "reference_version": self.reference_version,
            "features": {n: r.to_dict() for n, r in self.features.items()},
            "drift": {n: d.to_dict() for n, d in self.drift.items()},
            "alerts": [a.alert_id for a in self.alerts],
        }


class _OpenWindow:
    """A window being filled: its bounds plus one accumulator per feature."""

    __slots__ = ("bounds", "features", "updaters")

    def __init__(self, bounds: TumblingWindow, stream: StreamSpec, ref: ReferenceProfile | None) -> None:
        self.bounds = bounds
        self.features = {
            f.name: FeatureWindow(f, ref.features.get(f.name) if ref is not None else None)
            for f in stream.features
        }
        self.updaters = [(name, fw.update) for name, fw in self.features.items()]


class Engine:
    """Quality and drift monitoring of every stream in a monitor spec.

    Memory per stream is one accumulator per feature per configured window,
    each of constant size; no record is retained.

    Examples
    --------
    >>> from monitor.spec import MonitorSpec
    >>> spec = MonitorSpec.model_validate({"version": 1, "name": "t", "streams": [{
    ...     "name": "f", "windows": [{"name": "w3", "kind": "count", "size": 3}],
    ...     "features": [{"name": "x", "type": "numeric"}]}]})
    >>> engine = Engine(spec, clock=lambda: 0.0)
    >>> engine.process("f", [{"record_id": 1, "x": 1.0}, {"record_id": 2}])
    []
    >>> [report] = engine.process("f", [{"record_id": 3, "x": 2.0}])
    >>> report.count, round(report.features["x"].ratios["missing_ratio"], 3)
    (3, 0.333)
    >>> [(a.check, a.severity) for a in report.alerts]
    [('missing_ratio', 'critical')]
    """

    def __init__(
        self,
        spec: MonitorSpec,
        *,
        references: Mapping[str, ReferenceProfile] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.spec = spec
        self.clock = clock
        self.references = dict(references or {})
        for name, ref in self.references.items():
            ref.check_against(spec.stream(name))
        self._streams = {s.name: s for s in spec.streams}
        now = clock()
        self._open: dict[str, list[_OpenWindow]] = {
            s.name: [self._new_window(s, TumblingWindow(w, now=now)) for w in s.windows]
            for s in spec.streams
        }
        self.records_processed: dict[str, int] = {s.name: 0 for s in spec.streams}

    def _new_window(self, stream: StreamSpec, bounds: TumblingWindow) -> _OpenWindow:
        return _OpenWindow(bounds, stream, self.references.get(stream.name))

    def process(self, stream: str, records: Iterable[dict[str, Any]]) -> list[WindowReport]:
        """Update ``stream``'s windows with ``records``; return reports of windows that closed."""
        spec = self._streams[stream]
        windows = self._open[stream]
        reports: list[WindowReport] = []
        now = self.clock()
        reports += self._close_expired(spec, now)
        n = 0
        for rec in records:
            n += 1
            get = rec.get
            for i, ow in enumerate(windows):
                for name, update in ow.updaters:
                    update(get(name, MISSING))
                if ow.bounds.add(now):
                    reports.append(self._close(spec, ow, now))
                    windows[i] = self._new_window(spec, ow.bounds.next(now))
        self.records_processed[stream] += n
        return reports

    def tick(self, now: float | None = None) -> list[WindowReport]:
        """Close every time window whose end has passed (call periodically)."""
        now = self.clock() if now is None else now
        reports: list[WindowReport] = []
        for spec in self.spec.streams:
            reports += self._close_expired(spec, now)
        return reports

    def _close_expired(self, spec: StreamSpec, now: float) -> list[WindowReport]:
        reports = []
        windows = self._open[spec.name]
        for i, ow in enumerate(windows):
            if ow.bounds.expired(now):
                if ow.bounds.count:
                    reports.append(self._close(spec, ow, now))
                windows[i] = self._new_window(spec, TumblingWindow(ow.bounds.spec, now=now))
        return reports

    def _close(self, spec: StreamSpec, ow: _OpenWindow, now: float) -> WindowReport:
        b = ow.bounds
        window = _window_doc(b.spec, b.index, b.start, b.end if b.end is not None else now)
        ref = self.references.get(spec.name)
        features = {name: fw.result() for name, fw in ow.features.items()}
        drift = {}
        if ref is not None:
            for f in spec.features:
                drift[f.name] = self._drift(spec, f.name, features[f.name], ref)
        report = WindowReport(
            stream=spec.name, window=window, count=b.count, features=features, drift=drift,
            reference_version=ref.profile_version if ref is not None else None,
        )
        report.alerts.extend(evaluate_window(self.spec, spec, report))
        return report

    def _drift(self, spec: StreamSpec, name: str, fr: FeatureWindowResult, ref: ReferenceProfile) -> DriftResult:
        thr = self.spec.threshold_for(spec, spec.feature(name), "psi")
        level = (thr.warning if thr.warning is not None else thr.critical) if thr else None
        threshold = level if level is not None else float("inf")
        expected = ref.features[name].expected_histogram()
        n = sum(fr.histogram) if fr.histogram else 0
        if expected is None or sum(expected) == 0 or n < spec.min_samples:
            return DriftResult(method="psi", statistic=None, threshold=threshold, sample_size=n, drifted=None)
        value = psi(expected, fr.histogram)  # type: ignore[arg-type]
        return DriftResult(method="psi", statistic=value, threshold=threshold, sample_size=n,
                           drifted=value >= threshold)


def _window_doc(w: WindowSpec, index: int, start: float, end: float) -> dict[str, Any]:
    return {"name": w.name, "kind": w.kind, "index": index, "start": _iso(start), "end": _iso(end)}
