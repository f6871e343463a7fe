"""Offline replay (backtest): run the monitor over recorded data, write what it would have alerted.

The same :class:`~monitor.Monitor` as the worker, with event time driving every
time window (the spec's time mode is forced to ``event``) and the clock standing
at the latest event time seen, so a day of history replays in seconds and the
results match what a worker would have produced for the same records in the
same order. One loop serves any number of input streams (a features stream; a
model's predictions and labels together): the inputs are merged by event time
and every report, of any kind, is written the same way.
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from monitor.engine import EVENT_CLOCK, Monitor
from monitor.records import FromPartition, Rejection, checked
from monitor.reference import ReferenceProfile
from monitor.report import Report
from monitor.spec import MonitorSpec, StreamSpec
from monitor.times import parse_times

__all__ = ["BATCH", "ReplaySummary", "replay"]

#: Records of one stream handed to the monitor at once.
BATCH = 1000
#: Records between two progress calls.
PROGRESS_EVERY = 10_000


@dataclass
class ReplaySummary:
    """What a replay did."""

    records: int = 0
    #: Records processed per input stream.
    by_stream: Counter[str] = field(default_factory=Counter)
    rejected: Counter[str] = field(default_factory=Counter)
    windows: int = 0
    alerts: Counter[tuple[str | None, str, str, str]] = field(default_factory=Counter)

    def to_dict(self) -> dict[str, Any]:
        return {"records": self.records, "by_stream": dict(self.by_stream), "rejected": dict(self.rejected),
                "windows": self.windows,
                "alerts": [{"feature": f, "check": c, "severity": s, "status": st, "count": n}
                           for (f, c, s, st), n in sorted(self.alerts.items(), key=lambda kv: str(kv[0]))]}


def replay(spec: MonitorSpec, inputs: Mapping[str, Iterable[dict[str, Any] | Rejection]], out_dir: str | Path,
           *, references: Mapping[str, ReferenceProfile] | None = None,
           progress: Callable[[int], None] | None = None, close_partial: bool = False,
           partitions: Mapping[str, int] | None = None) -> ReplaySummary:
    """Replay recorded records of one or more streams and write ``alerts.jsonl``, ``windows.jsonl`` and
    ``deadletters.jsonl`` into ``out_dir``.

    ``inputs`` maps stream names to their records, each in event-time order as recorded (a model's
    predictions and labels stream go together, so that they join). Several inputs are merged by event
    time (ties: the first input first; a record without an event time keeps its place after the
    previous record of its input), so a label is read after the predictions made before it, as a worker
    that keeps up would read them. A record is of partition 0 unless it comes as a
    :class:`~monitor.records.FromPartition` (a replay of a Kafka topic; ``partitions`` then gives each stream's
    partition count, so that windows hold what a worker's would). Records may include
    :class:`~monitor.records.Rejection` values (from decoding Kafka messages); plain dicts are checked
    like the worker checks them; a rejected record is a line of ``deadletters.jsonl`` (its reason,
    detail and original bytes) and the replay goes on. With several inputs each dead-letter line names
    its stream.

    The windows still open at the end of the input are written to ``windows.jsonl`` marked
    ``partial``; they raise alerts only with ``close_partial`` (a worker would not have closed them).
    """
    if not inputs:
        raise ValueError("nothing to replay: no input stream")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    spec = spec.in_event_time()
    streams = [spec.stream(name) for name in inputs]
    for st in streams:
        if st.model is not None and st.model.labels not in inputs:
            raise ValueError(f"stream {st.name!r} holds a model's predictions: replay it with its labels stream "
                             f"{st.model.labels!r}")
    monitor = Monitor(spec, references=references, clock=EVENT_CLOCK, partitions=partitions)
    summary = ReplaySummary()
    opt = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_APPEND_NEWLINE
    inputs_checked = [checked(inputs[st.name], st) for st in streams]
    items: Iterator[tuple[StreamSpec, dict[str, Any] | Rejection]] = (
        ((streams[0], item) for item in inputs_checked[0]) if len(streams) == 1
        else _by_time(inputs_checked, streams))
    named = len(streams) > 1
    with (out / "alerts.jsonl").open("wb") as alerts_fh, (out / "windows.jsonl").open("wb") as windows_fh, \
            (out / "deadletters.jsonl").open("wb") as dlq_fh:

        def emit(reports: Iterable[Report]) -> None:
            for report in reports:
                summary.windows += 1
                for row in report.rows():
                    windows_fh.write(orjson.dumps(row, option=opt))
                for alert in report.events:  # what the worker would have sent: after the alert policy
                    alerts_fh.write(orjson.dumps(alert.to_event(), option=opt))
                    summary.alerts[(alert.feature or alert.model, alert.check, alert.severity, alert.status)] += 1

        def flush(stream: StreamSpec, batch: list[dict[str, Any]], partition: int) -> None:
            before = summary.records
            summary.records += len(batch)
            summary.by_stream[stream.name] += len(batch)
            emit(monitor.process(stream.name, batch, partition=partition))
            if progress is not None and summary.records // PROGRESS_EVERY != before // PROGRESS_EVERY:
                progress(summary.records)

        current: StreamSpec | None = None
        current_partition = 0
        batch: list[dict[str, Any]] = []
        for stream, item in items:
            partition = 0
            if isinstance(item, FromPartition):
                partition, item = item.partition, item.item
            if isinstance(item, Rejection):
                summary.rejected[item.reason] += 1
                line = {"stream": stream.name} if named else {}
                dlq_fh.write(orjson.dumps({**line, "reason": item.reason, "detail": item.detail,
                                           "original": item.original.decode("utf-8", "replace")}, option=opt))
                continue
            if stream is not current or partition != current_partition or len(batch) == BATCH:
                if batch and current is not None:
                    flush(current, batch, current_partition)
                current, current_partition, batch = stream, partition, []
            batch.append(item)
        if batch and current is not None:
            flush(current, batch, current_partition)
        emit(monitor.close(notify=close_partial))
    return summary


def _by_time(inputs: list[Iterator[dict[str, Any] | Rejection]],
             streams: list[StreamSpec]) -> Iterator[tuple[StreamSpec, dict[str, Any] | Rejection]]:
    """Merge event-time-ordered inputs by event time (ties: the earlier input first; untimed items keep
    their input's last time; rejections go out at once)."""

    def keyed(items: Iterator[dict[str, Any] | Rejection], spec: StreamSpec,
              rank: int) -> Iterator[tuple[float, int, int, StreamSpec, dict[str, Any] | Rejection]]:
        last = float("-inf")
        for n, item in enumerate(items):
            record = item.item if isinstance(item, FromPartition) else item
            if not isinstance(record, Rejection):
                t = float(parse_times([record.get(spec.time_field)])[0])
                if t == t:  # not NaN
                    last = max(last, t)
            yield last, rank, n, spec, item

    for _, _, _, spec, item in heapq.merge(*(keyed(it, st, k) for k, (it, st) in enumerate(zip(inputs, streams,
                                                                                              strict=True)))):
        yield spec, item
