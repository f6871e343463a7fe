"""Offline replay (backtest): run the engine over recorded data, write what it would have alerted.

The same engine as the worker, with event time driving every time window (the
spec's time mode is forced to ``event``) and the clock standing at the latest
event time seen, so a day of history replays in seconds and the results match
what a worker would have produced for the same records in the same order.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from monitor.columns import parse_times
from monitor.engine import EVENT_CLOCK, Engine, WindowReport
from monitor.model import ModelMonitor, ModelWindowReport
from monitor.records import Rejection, check_record
from monitor.reference import ReferenceProfile
from monitor.spec import MonitorSpec, StreamSpec

__all__ = ["ReplaySummary", "replay", "replay_model", "replay_spec"]

BATCH = 1000


@dataclass
class ReplaySummary:
    """What a replay did."""

    records: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    windows: int = 0
    alerts: Counter[tuple[str | None, str, str, str]] = field(default_factory=Counter)

    def to_dict(self) -> dict[str, Any]:
        return {"records": self.records, "rejected": dict(self.rejected), "windows": self.windows,
                "alerts": [{"feature": f, "check": c, "severity": s, "status": st, "count": n}
                           for (f, c, s, st), n in sorted(self.alerts.items(), key=lambda kv: str(kv[0]))]}


def replay_spec(spec: MonitorSpec) -> MonitorSpec:
    """``spec`` with every stream in event-time mode (what a replay runs)."""
    streams = [s.model_copy(update={"time": s.time.model_copy(update={"mode": "event"})}) for s in spec.streams]
    return spec.model_copy(update={"streams": streams})


def replay(spec: MonitorSpec, stream: StreamSpec, records: Iterable[dict[str, Any] | Rejection], out_dir: str | Path,
           *, references: dict[str, ReferenceProfile] | None = None,
           progress: Callable[[int], None] | None = None) -> ReplaySummary:
    """Replay ``records`` of ``stream`` and write ``alerts.jsonl``, ``windows.jsonl`` and
    ``deadletters.jsonl`` into ``out_dir``.

    ``records`` may hold :class:`~monitor.records.Rejection` values (from
    decoding Kafka messages); plain dicts are checked like the worker checks them.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    spec = replay_spec(spec)
    stream = spec.stream(stream.name)
    engine = Engine(spec, references=references, clock=EVENT_CLOCK)
    summary = ReplaySummary()
    opt = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_APPEND_NEWLINE
    with (out / "alerts.jsonl").open("wb") as alerts_fh, (out / "windows.jsonl").open("wb") as windows_fh, \
            (out / "deadletters.jsonl").open("wb") as dlq_fh:

        def emit(reports: list[WindowReport]) -> None:
            for report in reports:
                summary.windows += 1
                for row in report.rows():
                    windows_fh.write(orjson.dumps(row, option=opt))
                for alert in report.events:  # what the worker would have sent: after the alert policy
                    alerts_fh.write(orjson.dumps(alert.to_event(), option=opt))
                    summary.alerts[(alert.feature, alert.check, alert.severity, alert.status)] += 1

        batch: list[dict[str, Any]] = []
        for item in _checked(records, stream):
            if isinstance(item, Rejection):
                summary.rejected[item.reason] += 1
                dlq_fh.write(orjson.dumps({"reason": item.reason, "detail": item.detail,
                                           "original": item.original.decode("utf-8", "replace")}, option=opt))
                continue
            batch.append(item)
            if len(batch) == BATCH:
                summary.records += len(batch)
                emit(engine.process(stream.name, batch))
                batch = []
                if progress is not None and summary.records % 10_000 == 0:
                    progress(summary.records)
        if batch:
            summary.records += len(batch)
            emit(engine.process(stream.name, batch))
        emit(engine.close())
    return summary


def _checked(records: Iterable[dict[str, Any] | Rejection], stream: StreamSpec) -> Iterator[dict[str, Any] | Rejection]:
    for rec in records:
        if isinstance(rec, Rejection):
            yield rec
            continue
        problem = check_record(rec, stream)
        yield rec if problem is None else Rejection(problem[0], problem[1], orjson.dumps(rec))


def replay_model(spec: MonitorSpec, predictions: StreamSpec, prediction_records: Iterable[dict[str, Any] | Rejection],
                 label_records: Iterable[dict[str, Any] | Rejection], out_dir: str | Path, *,
                 references: dict[str, ReferenceProfile] | None = None,
                 progress: Callable[[int], None] | None = None) -> ReplaySummary:
    """Replay a model's predictions and labels together, in event-time order, through the engine (quality and
    drift of both streams) and the model monitor (joins, performance windows, model checks), with one alert
    policy; writes the same three files as :func:`replay` (model windows are lines with a ``model`` key).

    Each input must be in event-time order (as recorded); the two are merged by event time (a record without
    one keeps its place after the previous record of its input), so a label is read after the predictions made
    before it, as a worker that keeps up would read them. Partition 0 stands for all partitions.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    spec = replay_spec(spec)
    predictions = spec.stream(predictions.name)
    if predictions.model is None:
        raise ValueError(f"stream {predictions.name!r} is not a kind: predictions stream")
    labels = spec.stream(predictions.model.labels)
    references = references or {}
    engine = Engine(spec, references=references, clock=EVENT_CLOCK)
    monitor = ModelMonitor(spec, predictions.name, reference=references.get(predictions.name),
                           policy=engine.policy, clock=engine.clock)
    summary = ReplaySummary()
    opt = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_APPEND_NEWLINE
    with (out / "alerts.jsonl").open("wb") as alerts_fh, (out / "windows.jsonl").open("wb") as windows_fh, \
            (out / "deadletters.jsonl").open("wb") as dlq_fh:

        def emit(reports: list[WindowReport] | list[ModelWindowReport]) -> None:
            for report in reports:
                summary.windows += 1
                rows = report.rows() if isinstance(report, WindowReport) else [report.to_dict()]
                for row in rows:
                    windows_fh.write(orjson.dumps(row, option=opt))
                for alert in report.events:
                    alerts_fh.write(orjson.dumps(alert.to_event(), option=opt))
                    summary.alerts[(alert.feature or alert.model, alert.check, alert.severity, alert.status)] += 1

        def flush(stream: StreamSpec, batch: list[dict[str, Any]]) -> None:
            summary.records += len(batch)
            emit(engine.process(stream.name, batch))
            emit(monitor.add_predictions(batch) if stream is predictions else monitor.add_labels(batch))

        current: StreamSpec | None = None
        batch: list[dict[str, Any]] = []
        for stream, item in _by_time(_checked(prediction_records, predictions), predictions,
                                     _checked(label_records, labels), labels):
            if isinstance(item, Rejection):
                summary.rejected[item.reason] += 1
                dlq_fh.write(orjson.dumps({"stream": stream.name, "reason": item.reason, "detail": item.detail,
                                           "original": item.original.decode("utf-8", "replace")}, option=opt))
                continue
            if stream is not current or len(batch) == BATCH:
                if batch and current is not None:
                    flush(current, batch)
                    if progress is not None and summary.records // 10_000 != (summary.records - len(batch)) // 10_000:
                        progress(summary.records)
                current, batch = stream, []
            batch.append(item)
        if batch and current is not None:
            flush(current, batch)
        emit(engine.close())
        emit(monitor.close())
    return summary


def _by_time(a: Iterator[dict[str, Any] | Rejection], a_spec: StreamSpec, b: Iterator[dict[str, Any] | Rejection],
             b_spec: StreamSpec) -> Iterator[tuple[StreamSpec, dict[str, Any] | Rejection]]:
    """Merge two event-time-ordered inputs by event time (ties: ``a`` first; untimed items keep their input's last
    time; rejections go out at once)."""
    import heapq

    def keyed(items: Iterator[dict[str, Any] | Rejection], spec: StreamSpec,
              rank: int) -> Iterator[tuple[float, int, int, StreamSpec, dict[str, Any] | Rejection]]:
        last = float("-inf")
        for n, item in enumerate(items):
            if not isinstance(item, Rejection):
                t = float(parse_times([item.get(spec.time_field)])[0])
                if t == t:  # not NaN
                    last = max(last, t)
            yield last, rank, n, spec, item

    for _, _, _, spec, item in heapq.merge(keyed(a, a_spec, 0), keyed(b, b_spec, 1)):
        yield spec, item
