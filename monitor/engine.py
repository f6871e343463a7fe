"""The monitor: every stream of a spec behind one facade. Records in, window reports out. No I/O.

:class:`Monitor` owns the two stages and the one alert policy between every
window's verdicts and what is notified:

* the feature stage (:class:`~monitor.stream.FeatureEngine`): quality, drift and
  change detectors of every stream (features, predictions and labels alike);
* the model stage (:class:`~monitor.model.ModelMonitor`, one per ``kind:
  predictions`` stream): predictions joined to their labels, performance per
  model version, label-free estimates, error-stream detectors.

:meth:`Monitor.process` takes a batch of one stream and returns the
:class:`~monitor.report.Report` of every window that closed, feature windows
first, then model windows, each already through the alert policy (its
``events``). Replay, the worker and the metrics exporter are each one loop over
these reports.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from monitor.alerts import AlertPolicy
from monitor.model import ModelMonitor
from monitor.reference import ReferenceProfile
from monitor.report import Report
from monitor.spec import MonitorSpec
from monitor.stream import EVENT_CLOCK, MICRO_BATCH, FeatureEngine

__all__ = ["EVENT_CLOCK", "MICRO_BATCH", "Monitor"]


class Monitor:
    """Quality, drift and model monitoring of every stream in a monitor spec.

    Parameters
    ----------
    spec
        The monitor spec.
    references
        Reference profiles by stream name (drift is measured against them; a predictions stream's
        profile also carries the model's reference performance).
    clock
        Wall clock in epoch seconds, or :data:`EVENT_CLOCK` to let the latest event time stand for
        "now" (offline replay).

    Memory: the feature stage's panes and duplicate filter per stream, the model stage's join
    stores and per-version windows (see their classes), at most :data:`MICRO_BATCH` buffered
    records per stream; no record is retained after its batch.

    Examples
    --------
    >>> spec = MonitorSpec.model_validate({"version": 1, "name": "t", "streams": [{
    ...     "name": "f", "windows": [{"name": "w3", "kind": "count", "size": 3}],
    ...     "features": [{"name": "x", "type": "numeric"}]}]})
    >>> monitor = Monitor(spec, clock=lambda: 0.0)
    >>> monitor.process("f", [{"record_id": 1, "x": 1.0}, {"record_id": 2}])
    []
    >>> [report] = monitor.process("f", [{"record_id": 3, "x": 2.0}])
    >>> report.count, round(report.features["x"].ratios["missing_ratio"], 3)
    (3, 0.333)
    >>> [(a.check, a.severity, a.status) for a in report.events]
    [('missing_ratio', 'critical', 'firing')]
    """

    def __init__(self, spec: MonitorSpec, *, references: Mapping[str, ReferenceProfile] | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.spec = spec
        self.references = dict(references or {})
        #: Between every window's verdicts and what is notified; its state is checkpointed by the worker.
        self.policy = AlertPolicy(spec.alerting)
        self.features = FeatureEngine(spec, references=self.references, clock=clock, policy=self.policy)
        #: The wall clock, or the latest event time seen with :data:`EVENT_CLOCK`.
        self.clock: Callable[[], float] = self.features.clock
        #: The model stage of each predictions stream, by that stream's name.
        self.models: dict[str, ModelMonitor] = {
            s.name: ModelMonitor(spec, s.name, reference=self.references.get(s.name), policy=self.policy,
                                 clock=self.clock)
            for s in spec.streams if s.model is not None}
        self._model_of: dict[str, ModelMonitor] = {}
        for name, mm in self.models.items():
            self._model_of[name] = self._model_of[mm.model.labels] = mm

    @property
    def records_processed(self) -> dict[str, int]:
        """Records processed so far, by stream."""
        return self.features.records_processed

    def watermark(self, stream: str) -> float:
        """The latest event time seen on ``stream`` (``-inf`` before any)."""
        return self.features.watermark(stream)

    def model_for(self, stream: str) -> ModelMonitor | None:
        """The model stage that reads ``stream`` (a predictions or labels stream), if any."""
        return self._model_of.get(stream)

    # -- input --------------------------------------------------------------------------------------------

    def process(self, stream: str, records: Iterable[dict[str, Any]], *, partition: int = 0,
                offsets: Sequence[int] | None = None) -> list[Report]:
        """Update ``stream``'s windows with a batch of its records (decoded and envelope-checked, in
        order; a :class:`~monitor.records.ColumnBatch` works too); return the reports of the windows
        that closed, feature windows first.

        ``partition`` and ``offsets`` (one per record) tell the model stage where each record came from,
        so that its join state is kept per input partition and a record applied before a restart is not
        joined twice; offline callers leave the defaults.
        """
        model = self._model_of.get(stream)
        if model is None:
            return list(self.features.process(stream, records))
        batch = records if isinstance(records, Sequence) else list(records)
        reports: list[Report] = list(self.features.process(stream, batch))
        add = model.add_predictions if stream == model.stream.name else model.add_labels
        reports += add(batch, partition=partition, offsets=offsets)
        return reports

    def process_one(self, stream: str, record: dict[str, Any]) -> list[Report]:
        """Buffer one record of a feature stream; every :data:`MICRO_BATCH` records the buffer is
        processed as a batch (predictions and labels streams: use :meth:`process`)."""
        if stream in self._model_of:
            raise ValueError(f"stream {stream!r} feeds a model: pass its records in batches to process()")
        return list(self.features.process_one(stream, record))

    def flush(self) -> list[Report]:
        """Process every buffered record now."""
        return list(self.features.flush())

    def tick(self, now: float | None = None) -> list[Report]:
        """Flush buffers and close processing-time windows whose end has passed (call periodically).

        The model stage closes windows on data only; in processing time its pending predictions age
        with :meth:`ModelMonitor.expire <monitor.model.ModelMonitor.expire>` (the worker calls it under
        the lock that guards its join-state checkpoints)."""
        return list(self.features.tick(now))

    def close(self) -> list[Report]:
        """End of input (a replay): every open window, feature windows then model windows, marked partial."""
        reports: list[Report] = list(self.features.close())
        for model in self.models.values():
            reports += model.close()
        return reports
