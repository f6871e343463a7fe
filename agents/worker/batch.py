"""What the ingest service takes from a consumer batch: where each record came from, and one stream's records."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Message

from agents.worker.checkpoint import POSITION_BITS
from monitor.records import ColumnBatch
from monitor.spec import StreamSpec

__all__ = ["Batch", "Origin"]


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a record came from: what a dead letter names."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int | None = None

    @classmethod
    def of(cls, message: Message) -> Origin:
        kind, ts = message.timestamp()
        return cls(message.topic() or "", message.partition() or 0, message.offset() or 0,
                   ts if kind != 0 and ts >= 0 else None)  # 0: TIMESTAMP_NOT_AVAILABLE


@dataclass
class Batch:
    """One stream's good records of a consumer batch, in order, with where each came from (a row batch
    gathers consecutive messages; a columnar message is a batch of its own, already columns)."""

    stream: StreamSpec
    records: list[dict[str, Any]] | ColumnBatch = field(default_factory=list)
    partitions: list[int] = field(default_factory=list)
    positions: list[int] = field(default_factory=list)
    messages: list[Message] = field(default_factory=list)  # per record (the same object for a message's records)

    columnar: list[ColumnBatch] = field(default_factory=list)  # columnar messages, concatenated by payload()

    def add(self, records: Sequence[dict[str, Any]] | ColumnBatch, message: Message) -> None:
        """The records of one message (a batch holds rows, or the columns of messages with the same columns)."""
        n = len(records)
        if isinstance(records, ColumnBatch):
            self.columnar.append(records)
        else:
            self._extend(records)
        p, base = message.partition() or 0, (message.offset() or 0) << POSITION_BITS
        self.partitions += [p] * n
        self.positions += range(base, base + n)
        self.messages += [message] * n

    def add_singles(self, records: Sequence[dict[str, Any]], messages: Sequence[Message]) -> None:
        """The records of single-record messages, one each, decoded together (their event times parsed)."""
        if not self.records and getattr(records, "times", None) is not None:
            self.records = records  # type: ignore[assignment]  # a RecordBatch: the engine reuses its parsed times
        else:
            self._extend(records)
        self.partitions += [m.partition() or 0 for m in messages]
        self.positions += [(m.offset() or 0) << POSITION_BITS for m in messages]
        self.messages += messages

    def takes_columns(self, records: ColumnBatch) -> bool:
        """Whether ``records`` can join this batch (it holds columns, the same ones)."""
        return bool(self.columnar) and set(self.columnar[0].columns) == set(records.columns)

    def payload(self) -> Sequence[dict[str, Any]] | ColumnBatch:
        """The records to process: the rows, or the columnar messages as one column batch."""
        if self.columnar:
            return ColumnBatch.concat(self.columnar)
        return self.records

    def _extend(self, records: Sequence[dict[str, Any]]) -> None:
        if type(self.records) is not list:  # a RecordBatch's parsed times would no longer match its records
            self.records = list(self.records)
        self.records += records
