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
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

from monitor.alerts import AlertPolicy
from monitor.errors import ConfigError
from monitor.frames import frame_records
from monitor.model import ModelMonitor
from monitor.records import Rejection, checked
from monitor.reference import ReferenceProfile, build_profile, load_references
from monitor.report import Report
from monitor.results import Results
from monitor.spec import MonitorSpec, StreamSpec, load_spec, parse_spec
from monitor.stream import EVENT_CLOCK, MICRO_BATCH, FeatureEngine
from monitor.stream.merge import PartitionUpdate

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["BATCH", "EVENT_CLOCK", "MICRO_BATCH", "Monitor"]

#: A reference: a profile, the path of a saved one, or a DataFrame of reference data.
Reference: TypeAlias = "ReferenceProfile | str | Path | pd.DataFrame"

#: Records handed to the stages at once by :meth:`Monitor.process_records`.
BATCH = 1000


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
    ...     "name": "f", "windows": [{"name": "w3", "kind": "count", "size": 3}], "min_samples": 3,
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

    @classmethod
    def from_spec(cls, spec: str | Path | Mapping[str, Any] | MonitorSpec, *,
                  reference: Reference | Mapping[str, Reference] | None = None,
                  live: bool = False) -> Monitor:
        """A monitor for a spec file, a spec as a dict, or a parsed spec: the notebook and batch-job entry point.

        ``reference`` is the reference of a one-stream spec, or references by stream name; each a
        :class:`~monitor.reference.ReferenceProfile`, the path of a saved one, or a pandas DataFrame of
        reference (e.g. training) data to profile. By default the profiles the spec's ``reference:``
        keys name are loaded (relative to the spec file). Unless ``live``, every stream runs in event
        time with the clock at the latest event time seen (as a replay does), so results depend on the
        data only, never on when it is run.
        """
        if isinstance(spec, MonitorSpec):
            parsed = spec
        elif isinstance(spec, Mapping):
            parsed = parse_spec(dict(spec))
        else:
            parsed = load_spec(spec)
        if reference is None:
            references = load_references(parsed)
        elif not isinstance(reference, Mapping):
            if len(parsed.streams) != 1:
                raise ConfigError("the spec has several streams: pass reference={stream name: profile, ...}")
            references = {parsed.streams[0].name: _profile(parsed.streams[0], reference)}
        else:
            references = {name: _profile(parsed.stream(name), ref) for name, ref in reference.items()}
        if live:
            return cls(parsed, references=references)
        return cls(parsed.in_event_time(), references=references, clock=EVENT_CLOCK)

    def __init__(self, spec: MonitorSpec, *, references: Mapping[str, ReferenceProfile] | None = None,
                 clock: Callable[[], float] = time.time, partitions: Mapping[str, int] | None = None) -> None:
        self.spec = spec
        self.references = dict(references or {})
        #: Between every window's verdicts and what is notified; its state is checkpointed by the worker.
        self.policy = AlertPolicy(spec.alerting)
        self.features = FeatureEngine(spec, references=self.references, clock=clock, policy=self.policy,
                                      partitions=partitions)
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

    def window_fill(self, stream: str) -> dict[str, float | None]:
        """How full each window of ``stream`` that closes next is, 0..1, by window name (count
        windows: records / size; time windows: time passed / length; ``None`` before any record)."""
        return self.features.window_fill(stream)

    def model_for(self, stream: str) -> ModelMonitor | None:
        """The model stage that reads ``stream`` (a predictions or labels stream), if any."""
        return self._model_of.get(stream)

    # -- input --------------------------------------------------------------------------------------------

    def process(self, stream: str, records: Iterable[dict[str, Any]], *, partition: int | Sequence[int] = 0,
                offsets: Sequence[int] | None = None) -> list[Report]:
        """Update ``stream``'s windows with a batch of its records (decoded and envelope-checked, in
        order; a :class:`~monitor.records.ColumnBatch` works too); return the reports of the windows
        that closed, feature windows first.

        ``partition`` (one for the batch, or one per record) and ``offsets`` (one per record) tell the
        model stage where each record came from, so that its join state is kept per input partition and
        a record applied before a restart is not joined twice; offline callers leave the defaults. The
        feature stage takes the batch whole either way.
        """
        model = self._model_of.get(stream)
        if model is None and isinstance(partition, int):
            return list(self.features.process(stream, records, partition=partition))
        batch = records if isinstance(records, Sequence) else list(records)
        reports: list[Report] = []
        if isinstance(partition, int):
            reports += self.features.process(stream, batch, partition=partition)
        else:
            for p, rows in _by_partition(batch, partition):
                reports += self.features.process(stream, rows, partition=p)
        if model is not None:
            reports += model.add(stream, batch, partition=partition, offsets=offsets)
        return reports

    def update(self, stream: str, records: Iterable[dict[str, Any]], *, partition: int,
               offsets: Sequence[int] | None = None) -> tuple[list[PartitionUpdate], list[Report]]:
        """A worker's step for a batch of one input ``partition``: the feature stage's partition step
        (its :class:`~monitor.stream.merge.PartitionUpdate` s, for the merge stage wherever it runs) and the
        model stage's reports (a predictions or labels stream; joined on this worker)."""
        model = self._model_of.get(stream)
        if model is None:
            return self.features.update(stream, records, partition=partition), []
        batch = records if isinstance(records, Sequence) else list(records)
        reports: list[Report] = list(model.add(stream, batch, partition=partition, offsets=offsets))
        return self.features.update(stream, batch, partition=partition), reports

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

    def close(self, *, notify: bool = True) -> list[Report]:
        """End of input (a replay): every open window, feature windows then model windows, marked partial.

        Without ``notify`` they are evaluated (verdicts in ``alerts``) but raise no events: a worker
        would not have closed them yet."""
        reports: list[Report] = list(self.features.close(notify=notify))
        for model in self.models.values():
            reports += model.close(notify=notify)
        return reports

    # -- batch runs (notebooks, jobs) ---------------------------------------------------------------------

    def process_records(self, records: Iterable[Mapping[str, Any]], *, stream: str | None = None,
                        close: bool = True) -> Results:
        """Run every record of one stream through the monitor and return what it concluded.

        Each record is checked as the worker checks a decoded message (an invalid one is rejected with
        its reason, not processed); the rest go through :meth:`process` in batches of :data:`BATCH`.
        With ``close`` (the default) the windows still open at the end are reported too, marked
        ``partial``. ``stream`` defaults to the spec's only stream (or only features stream). A model's
        predictions and labels go together through :func:`monitor.replay.replay`.
        """
        st = self._one_stream(stream)
        results = Results()
        batch: list[dict[str, Any]] = []
        for rec in checked((r if isinstance(r, dict) else dict(r) for r in records), st):
            if isinstance(rec, Rejection):
                results.rejected.append(rec)
                continue
            batch.append(rec)
            if len(batch) == BATCH:
                results.add(self.process(st.name, batch))
                batch = []
        if batch:
            results.add(self.process(st.name, batch))
        if close:
            results.add(self.close())
        return results

    def process_frame(self, frame: pd.DataFrame, *, stream: str | None = None, close: bool = True) -> Results:
        """:meth:`process_records` over the rows of a pandas DataFrame (one column per field).

        Rows become records as :func:`~monitor.frames.frame_records` turns them (missing values
        ``None``, datetimes epoch seconds).
        """
        return self.process_records(frame_records(frame), stream=stream, close=close)

    def _one_stream(self, name: str | None) -> StreamSpec:
        if name is not None:
            return self.spec.stream(name)
        stream = self.spec.default_stream()
        if stream is not None:
            return stream
        raise ConfigError(f"the spec has several streams: name one with stream= "
                          f"({', '.join(s.name for s in self.spec.streams)})")


def _by_partition(batch: Sequence[dict[str, Any]], partitions: Sequence[int]) -> list[tuple[int, Any]]:
    """A batch's records grouped by their partition (in order within each; partitions by first appearance)."""
    if len(set(partitions)) <= 1:
        return [(partitions[0] if len(partitions) else 0, batch)]
    groups: dict[int, list[dict[str, Any]]] = {}
    for rec, p in zip(batch, partitions, strict=True):
        groups.setdefault(p, []).append(rec)
    return list(groups.items())


def _profile(stream: StreamSpec, ref: Reference) -> ReferenceProfile:
    if isinstance(ref, ReferenceProfile):
        return ref
    if isinstance(ref, str | Path):
        return ReferenceProfile.load(ref)
    return build_profile(stream, lambda: frame_records(ref), source={"kind": "dataframe", "rows": len(ref)})
