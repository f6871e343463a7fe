"""What a join store holds: pending predictions, joined examples, the time-ordered index of both,
the store's counter names and its state version."""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

__all__ = ["COUNTERS", "JOIN_STATE_VERSION", "META_KEY", "JoinedExample", "PendingPrediction", "TimedIndex",
           "finite"]

JOIN_STATE_VERSION = 1

#: Journal key of the store-wide entry (counters, clock, offsets); not allowed as a record id.
META_KEY = "\x00meta"

#: Every counter of a store, in the order :meth:`LabelJoinStore.stats` reports them.
COUNTERS = (
    "predictions",            # predictions accepted (not skipped by offset)
    "labels",                 # labels accepted (not skipped by offset)
    "joined",                 # prediction-label pairs joined
    "expired_predictions",    # predictions whose TTL ran out with no label
    "expired_orphan_labels",  # labels whose TTL ran out with no prediction
    "evicted_pending",        # oldest pending predictions dropped because max_pending was exceeded
    "evicted_orphans",        # oldest orphan labels dropped because max_orphans was exceeded
    "duplicate_predictions",  # a prediction replaced by a newer one with its id, or dropped: its id already joined
    "duplicate_labels",       # labels dropped: their id already has a label (joined or orphan)
    "skipped_predictions",    # predictions ignored: offset already covered by the state
    "skipped_labels",         # labels ignored: offset already covered by the state
)

V = TypeVar("V")


@dataclass(frozen=True, slots=True)
class PendingPrediction:
    """A prediction waiting for its label.

    Parameters
    ----------
    record_id
        The id shared with the label (integer ids: ``str()`` them the same way on both topics).
    model, model_version
        Which model made the prediction.
    event_time
        When the prediction was made, epoch seconds (finite); the TTL counts from here.
    prediction
        The payload, e.g. ``{"score": 0.93}``, ``{"class": "fraud"}`` or ``{"value": 12.5}``;
        JSON-able with finite floats (it is checkpointed as JSON).
    offset
        Kafka offset of the record on the predictions topic partition, ``-1`` when unknown.
    """

    record_id: str
    model: str
    model_version: str
    event_time: float
    prediction: dict[str, Any] = field(default_factory=dict)
    offset: int = -1


@dataclass(frozen=True, slots=True)
class JoinedExample:
    """A prediction with its label; ``latency_seconds = label_time - prediction.event_time``."""

    prediction: PendingPrediction
    label: Any
    label_time: float
    latency_seconds: float

    @property
    def record_id(self) -> str:
        return self.prediction.record_id


class TimedIndex(Generic[V]):
    """Entries by id, each with a time and a unique sequence number, poppable oldest-first.

    A dict ``id -> (time, seq, value)`` plus a min-heap of ``(time, seq, id)``
    with lazy deletion: a heap item is stale once its id is gone or holds a
    different ``seq``. The heap is rebuilt when it exceeds ``2 * len + 32``
    items, so it never holds more than that and the rebuild (``O(len)``) is paid
    for by the at least ``len + 32`` removals since the previous one: ``put``
    is ``O(log n)``, ``pop`` ``O(1)`` amortised, popping ``k`` oldest entries
    ``O((k + stale) log n)``, ``O(k log n)`` amortised.
    """

    __slots__ = ("entries", "heap", "mark")

    def __init__(self, mark: Callable[[str], None]) -> None:
        self.entries: dict[str, tuple[float, int, V]] = {}
        self.heap: list[tuple[float, int, str]] = []
        self.mark = mark  # called with the id on every change (the journal)

    def __len__(self) -> int:
        return len(self.entries)

    def __contains__(self, rid: str) -> bool:
        return rid in self.entries

    def put(self, rid: str, time: float, seq: int, value: V) -> None:
        self.entries[rid] = (time, seq, value)
        heapq.heappush(self.heap, (time, seq, rid))
        self.mark(rid)
        self._maybe_compact()

    def pop(self, rid: str) -> tuple[float, int, V] | None:
        item = self.entries.pop(rid, None)
        if item is not None:
            self.mark(rid)
            self._maybe_compact()
        return item

    def peek_oldest(self) -> tuple[float, str] | None:
        heap, entries = self.heap, self.entries
        while heap:
            t, s, rid = heap[0]
            live = entries.get(rid)
            if live is not None and live[1] == s:
                return t, rid
            heapq.heappop(heap)  # stale
        return None

    def pop_oldest(self) -> tuple[str, float, V] | None:
        top = self.peek_oldest()
        if top is None:
            return None
        heapq.heappop(self.heap)
        t, rid = top
        _, _, value = self.entries.pop(rid)
        self.mark(rid)
        return rid, t, value

    def pop_expired(self, now: float, ttl: float) -> list[tuple[str, float, V]]:
        """Pop, oldest first, every entry with ``now - time > ttl``."""
        out: list[tuple[str, float, V]] = []
        while True:
            top = self.peek_oldest()
            if top is None or not now - top[0] > ttl:
                return out
            item = self.pop_oldest()
            assert item is not None
            out.append(item)

    def clear(self) -> None:
        self.entries.clear()
        self.heap.clear()

    def _maybe_compact(self) -> None:
        if len(self.heap) > 2 * len(self.entries) + 32:
            self.heap = [(t, s, rid) for rid, (t, s, _) in self.entries.items()]
            heapq.heapify(self.heap)


def finite(name: str, x: float) -> float:
    x = float(x)
    if not math.isfinite(x):
        raise ValueError(f"{name} must be finite, got {x!r}")
    return x
