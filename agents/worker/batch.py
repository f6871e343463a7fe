"""What the ingest service takes from a consumer batch: where each record came from, and one stream's records."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Message

from agents.worker.checkpoint import positions as record_positions
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
    """One stream partition's good records of a consumer batch, in order, with the message each came from: the
    rows of consecutive messages, or the columns of consecutive columnar messages with the same columns."""

    stream: StreamSpec
    partition: int = 0
    records: list[dict[str, Any]] = field(default_factory=list)
    columnar: list[ColumnBatch] = field(default_factory=list)  # columnar messages, concatenated by payload()
    messages: list[Message] = field(default_factory=list)  # per record (the same object for a message's records)

    def add(self, records: Sequence[dict[str, Any]] | ColumnBatch, message: Message) -> None:
        """The records of one message."""
        if isinstance(records, ColumnBatch):
            self.columnar.append(records)
        else:
            self._extend(records)
        self.messages += [message] * len(records)

    def add_singles(self, records: Sequence[dict[str, Any]], messages: Sequence[Message]) -> None:
        """The records of single-record messages, one each, decoded together (their event times parsed)."""
        if not self.records and getattr(records, "times", None) is not None:
            self.records = records  # type: ignore[assignment]  # a RecordBatch: the engine reuses its parsed times
        else:
            self._extend(records)
        self.messages += messages

    def positions(self) -> list[int]:
        """The position of each record: its message's offset and its index in it."""
        return record_positions(self.messages)

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
