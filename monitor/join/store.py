"""Join a label stream to predictions by record id, with a time-to-live, in bounded memory.

One :class:`LabelJoinStore` serves one input partition: the predictions and
labels topics are co-partitioned by record id, so a prediction and its label
always meet in the same store. The store is pure and synchronous: the caller
passes the current time ``now`` (stream time or wall clock, epoch seconds)
into every call and it never reads a clock.

Checkpoint protocol (what the Faust layer does per partition)
-------------------------------------------------------------
1. Before each batch call :meth:`~LabelJoinStore.expire` with the batch's
   ``now`` (this is the only place entries expire, so expired predictions are
   always reported), then :meth:`~LabelJoinStore.add_prediction` /
   :meth:`~LabelJoinStore.add_label` per record, passing its Kafka offset.
2. From time to time write a checkpoint: a full snapshot
   (:meth:`~LabelJoinStore.snapshot_chunks`, each chunk at most ``max_bytes``)
   or, cheaper, the changes since the previous drain
   (:meth:`~LabelJoinStore.drain_journal`). Nothing is written per record.
3. The state carries the highest offset seen on each topic
   (:attr:`~LabelJoinStore.max_prediction_offset`,
   :attr:`~LabelJoinStore.max_label_offset`): the checkpoint *covers* every
   record up to those offsets. Commit the consumer offsets only once the
   checkpoint that covers them is durable.
4. On restart: :meth:`~LabelJoinStore.from_chunks` the latest snapshot,
   :meth:`~LabelJoinStore.apply_journal` every journal drained after it, in
   drain order, and consume from the committed offsets. The store ignores
   (and counts as ``skipped_*``) any record whose offset is ``<=`` the covered
   offset, since its effect is already in the state; so a record is applied
   exactly once. Offset ``-1`` means unknown and is never skipped.
"""

from __future__ import annotations

import heapq
import math
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import orjson

from monitor.join.latency import LatencyHistogram

__all__ = ["COUNTERS", "JOIN_STATE_VERSION", "META_KEY", "JoinedExample", "LabelJoinStore", "PendingPrediction",
           "combined_stats"]

#: ``schema_version`` of :meth:`LabelJoinStore.to_state`, of snapshot chunks and of journal meta entries.
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


class _TimedIndex(Generic[V]):
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


def _finite(name: str, x: float) -> float:
    x = float(x)
    if not math.isfinite(x):
        raise ValueError(f"{name} must be finite, got {x!r}")
    return x


class LabelJoinStore:
    """Pending predictions and early labels of one partition, joined by record id within a TTL.

    * :meth:`add_prediction` stores a prediction until its label comes; if the
      label came first (an *orphan* label, kept up to ``ttl_seconds`` by label
      time) they join at once.
    * :meth:`add_label` joins the label to its pending prediction, or keeps it
      as an orphan (at most ``max_orphans``: beyond, the oldest by label time is
      evicted and counted in ``evicted_orphans``).
    * :meth:`expire` removes predictions with ``now - event_time > ttl_seconds``
      and returns them (a prediction *is still live* at age exactly
      ``ttl_seconds``, so a label that far behind its prediction still joins),
      and drops orphan labels with ``now - label_time > ttl_seconds``. Entries
      past their TTL stay (and can still join) until ``expire`` is called.
    * At most ``max_pending`` predictions are pending: beyond, the oldest by
      event time (possibly the one just added) is evicted, counted in
      ``evicted_pending``.

    Duplicates: a second prediction for a pending id replaces the first (the
    first counts as ``duplicate_predictions``). Once an id has joined it is
    remembered for ``ttl_seconds`` after ``max(prediction time, label time)``
    (at most ``max_joined`` ids, oldest forgotten first): a later label for it
    counts as ``duplicate_labels``, a later prediction as
    ``duplicate_predictions``, and both are dropped. A second label for an
    orphan id is dropped as ``duplicate_labels`` (the first label wins). So
    every accepted prediction ends exactly once::

        predictions == joined + expired_predictions + evicted_pending + duplicate_predictions + pending

    and likewise ``labels == joined + expired_orphan_labels + evicted_orphans
    + duplicate_labels + orphans``.

    **Label coverage** (:meth:`stats`) is ``joined / (joined +
    expired_predictions)``: the share of *decided* predictions, those that were
    labelled or whose full TTL ran out unlabelled. Pending predictions are
    undecided and left out (else coverage would dip with every burst of fresh
    predictions); evicted and replaced ones never had a full TTL and are
    reported by their counters instead. ``None`` until something is decided.

    Complexity: ``add_prediction``/``add_label`` are ``O(log n)`` (at most one
    heap push, plus ``O(log n)`` for an eviction), removing a joined or replaced
    entry is ``O(1)`` amortised, ``expire`` is ``O(k log n)`` amortised for ``k``
    removed entries (``O(log n)`` when nothing expires), whatever the order of
    event times (min-heaps with lazy deletion, see :class:`_TimedIndex`);
    ``drain_journal`` is ``O(ids changed)``, snapshots ``O(n log n)``.

    Memory bound: at most ``max_pending`` predictions (each with its payload),
    ``max_orphans`` labels and ``max_joined`` remembered ids (default
    ``max_pending``), heap items at most ``2 * entries + 32`` per kind, the
    journal at most ``max_journal`` ids (default the sum of the three bounds;
    past it the journal resets to "everything", see :meth:`drain_journal`) and a
    fixed 223-bucket latency histogram.

    Parameters
    ----------
    ttl_seconds
        How long a prediction waits for its label (and an orphan label for its prediction).
    max_pending, max_orphans, max_joined
        The bounds above (``max_pending >= 1``, the others ``>= 0``).
    max_journal
        Bound of the change journal (ids changed since the last drain).
    partition
        The input partition this store serves (recorded in the state; ``-1`` when not partitioned).

    Examples
    --------
    >>> s = LabelJoinStore(ttl_seconds=60, max_pending=1000, max_orphans=100)
    >>> p = PendingPrediction("r1", "fraud", "v3", event_time=1000.0, prediction={"score": 0.9}, offset=7)
    >>> s.add_prediction(p, now=1000.0) is None
    True
    >>> j = s.add_label("r1", 1, label_time=1012.5, now=1013.0)
    >>> j.record_id, j.label, j.latency_seconds
    ('r1', 1, 12.5)

    A label that arrives before its prediction waits as an orphan:

    >>> s.add_label("r2", 0, label_time=1020.0, now=1020.0) is None
    True
    >>> s.add_prediction(PendingPrediction("r2", "fraud", "v3", 1019.0), now=1021.0).latency_seconds
    1.0
    >>> _ = s.add_prediction(PendingPrediction("r3", "fraud", "v3", 1030.0), now=1030.0)
    >>> s.expire(now=1090.0), [p.record_id for p in s.expire(now=1090.5)]
    ([], ['r3'])
    >>> st = s.stats()
    >>> st["joined"], st["expired_predictions"], round(st["coverage"], 3), st["latency"]["max"]
    (2, 1, 0.667, 12.5)

    Checkpoint, restart, carry on:

    >>> chunks = s.snapshot_chunks(max_bytes=256)
    >>> back = LabelJoinStore.from_chunks(chunks)
    >>> back.to_state() == s.to_state()
    True
    >>> back.add_prediction(p, now=2000.0) is None, back.counters["skipped_predictions"]  # offset 7 is covered
    (True, 1)
    """

    def __init__(self, ttl_seconds: float, max_pending: int, max_orphans: int, *, max_joined: int | None = None,
                 max_journal: int | None = None, partition: int = -1) -> None:
        ttl = float(ttl_seconds)
        if not (math.isfinite(ttl) and ttl > 0):
            raise ValueError(f"ttl_seconds must be a positive finite number, got {ttl_seconds!r}")
        if max_pending < 1 or max_orphans < 0 or (max_joined is not None and max_joined < 0) \
                or (max_journal is not None and max_journal < 0):
            raise ValueError("max_pending must be >= 1 and max_orphans, max_joined, max_journal >= 0")
        self.ttl_seconds = ttl
        self.max_pending = int(max_pending)
        self.max_orphans = int(max_orphans)
        self.max_joined = self.max_pending if max_joined is None else int(max_joined)
        self.max_journal = (self.max_pending + self.max_orphans + self.max_joined if max_journal is None
                            else int(max_journal))
        self.partition = int(partition)
        self.counters: dict[str, int] = dict.fromkeys(COUNTERS, 0)
        self.latency = LatencyHistogram()
        self.now = -math.inf  # the largest ``now`` passed in
        #: The caller's clock per topic (event time: the latest event time read from each topic), kept in the
        #: state so a restored store goes on from where it was. The store itself only reads ``now`` arguments.
        self.clocks = {"predictions": -math.inf, "labels": -math.inf}
        #: Predictions evicted by ``max_pending`` since the caller last took them (:meth:`take_evicted`).
        self.evicted: list[PendingPrediction] = []
        self._seq = 0
        self._offsets = [-1, -1]  # highest offset seen: predictions, labels
        self._dirty: dict[str, None] = {}  # ids changed since the last drain, in order
        self._journal_reset = False
        self._pending: _TimedIndex[PendingPrediction] = _TimedIndex(self._mark)
        self._orphans: _TimedIndex[tuple[Any, int]] = _TimedIndex(self._mark)  # label, offset
        self._joined: _TimedIndex[None] = _TimedIndex(self._mark)

    # -- the hot path ---------------------------------------------------------------------------------------------

    def add_prediction(self, p: PendingPrediction, now: float) -> JoinedExample | None:
        """Store a prediction; returns the join if its label was already waiting.

        ``None`` when it is now pending, or was dropped: skipped (offset already
        covered), a duplicate of a joined id, or evicted at once (the oldest
        pending while the store is full).
        """
        self._tick(now)
        rid = p.record_id
        if rid == META_KEY:
            raise ValueError("record id clashes with the journal's META_KEY")
        t = _finite("event_time", p.event_time)
        if p.offset >= 0:
            if p.offset <= self._offsets[0]:
                self.counters["skipped_predictions"] += 1
                return None
            self._offsets[0] = p.offset
        c = self.counters
        c["predictions"] += 1
        orphan = self._orphans.pop(rid)
        if orphan is not None:
            label_time, _, (label, _) = orphan
            return self._join(p, label, label_time)
        if rid in self._joined:
            c["duplicate_predictions"] += 1
            return None
        if self._pending.pop(rid) is not None:
            c["duplicate_predictions"] += 1
        self._pending.put(rid, t, self._next_seq(), p)
        if len(self._pending) > self.max_pending:
            oldest = self._pending.pop_oldest()
            c["evicted_pending"] += 1
            if oldest is not None:
                self.evicted.append(oldest[2])
        return None

    def add_label(self, record_id: str, label: Any, label_time: float, now: float, *,
                  offset: int = -1) -> JoinedExample | None:
        """Join a label to its pending prediction, or keep it as an orphan; ``None`` unless joined.

        ``label`` is any JSON-able value (class, 0/1, a number); ``offset`` is the
        record's offset on the labels topic partition (``-1`` when unknown).
        """
        self._tick(now)
        if record_id == META_KEY:
            raise ValueError("record id clashes with the journal's META_KEY")
        t = _finite("label_time", label_time)
        if offset >= 0:
            if offset <= self._offsets[1]:
                self.counters["skipped_labels"] += 1
                return None
            self._offsets[1] = offset
        c = self.counters
        c["labels"] += 1
        pending = self._pending.pop(record_id)
        if pending is not None:
            return self._join(pending[2], label, t)
        if record_id in self._joined or record_id in self._orphans:
            c["duplicate_labels"] += 1
            return None
        self._orphans.put(record_id, t, self._next_seq(), (label, offset))
        if len(self._orphans) > self.max_orphans:
            self._orphans.pop_oldest()
            c["evicted_orphans"] += 1
        return None

    def expire(self, now: float, *, orphans_now: float | None = None) -> list[PendingPrediction]:
        """Remove and return, oldest first, the predictions with ``now - event_time > ttl_seconds``.

        Also drops orphan labels past their TTL by ``orphans_now`` (default ``now``; counted in
        ``expired_orphan_labels``) and forgets joined ids past theirs by the earlier of the two.
        With event time, pass the *labels* topic's clock as ``now`` and the *predictions* topic's as
        ``orphans_now``: a prediction has waited its TTL when the labels have moved that far past it,
        whatever the other topic's lead (consumers of two topics never run in lockstep).
        """
        other = now if orphans_now is None else orphans_now
        self._tick(max(now, other))
        ttl = self.ttl_seconds
        expired = [p for _, _, p in self._pending.pop_expired(now, ttl)]
        self.counters["expired_predictions"] += len(expired)
        self.counters["expired_orphan_labels"] += len(self._orphans.pop_expired(other, ttl))
        self._joined.pop_expired(min(now, other), ttl)
        return expired

    def take_evicted(self) -> list[PendingPrediction]:
        """The predictions evicted by ``max_pending`` since the last call (each is reported once)."""
        out, self.evicted = self.evicted, []
        return out

    def _join(self, p: PendingPrediction, label: Any, label_time: float) -> JoinedExample:
        latency = label_time - p.event_time
        self.counters["joined"] += 1
        self.latency.add(latency)
        if self.max_joined:
            self._joined.put(p.record_id, max(p.event_time, label_time), self._next_seq(), None)
            if len(self._joined) > self.max_joined:
                self._joined.pop_oldest()
        return JoinedExample(p, label, label_time, latency)

    def _tick(self, now: float) -> None:
        if now > self.now:
            self.now = float(now)

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def _mark(self, rid: str) -> None:
        if self._journal_reset:
            return
        self._dirty[rid] = None
        if len(self._dirty) > self.max_journal:
            self._dirty.clear()
            self._journal_reset = True

    # -- reading ----------------------------------------------------------------------------------------------------

    @property
    def max_prediction_offset(self) -> int:
        """Highest predictions-topic offset applied (``-1`` if none): records up to it are covered."""
        return self._offsets[0]

    @property
    def max_label_offset(self) -> int:
        """Highest labels-topic offset applied (``-1`` if none): records up to it are covered."""
        return self._offsets[1]

    @property
    def n_pending(self) -> int:
        return len(self._pending)

    @property
    def n_orphans(self) -> int:
        return len(self._orphans)

    def pending(self) -> list[PendingPrediction]:
        """The pending predictions, oldest (event time, then arrival) first."""
        return [v for _, _, v in sorted(self._pending.entries.values(), key=lambda e: (e[0], e[1]))]

    def stats(self) -> dict[str, Any]:
        """Counters, sizes, label coverage (see the class notes) and the latency summary.

        Keys: every name in :data:`COUNTERS`, ``pending``, ``orphans``,
        ``coverage``, ``oldest_pending_age`` (seconds before the store's ``now``,
        ``None`` when nothing is pending) and ``latency`` (``count``, ``mean``,
        ``min``, ``p50``, ``p95``, ``max``; seconds).
        """
        oldest = self._pending.peek_oldest()
        age = None if oldest is None or not math.isfinite(self.now) else self.now - oldest[0]
        return _stats(self.counters, self.latency, len(self._pending), len(self._orphans)) | \
            {"oldest_pending_age": age}

    # -- full state ---------------------------------------------------------------------------------------------

    def _entry(self, rid: str) -> dict[str, Any] | None:
        """The JSON entry of one id (``k``: ``p`` pending, ``l`` orphan label, ``j`` joined), ``None`` if absent."""
        item = self._pending.entries.get(rid)
        if item is not None:
            t, s, p = item
            return {"k": "p", "id": rid, "t": t, "s": s, "model": p.model, "model_version": p.model_version,
                    "prediction": dict(p.prediction), "offset": p.offset}
        orphan = self._orphans.entries.get(rid)
        if orphan is not None:
            t, s, (label, offset) = orphan
            return {"k": "l", "id": rid, "t": t, "s": s, "label": label, "offset": offset}
        joined = self._joined.entries.get(rid)
        if joined is not None:
            return {"k": "j", "id": rid, "t": joined[0], "s": joined[1]}
        return None

    def _set_entry(self, rid: str, entry: dict[str, Any] | None) -> None:
        """Make ``rid``'s state ``entry`` (``None``: absent), without journaling it."""
        for index in (self._pending, self._orphans, self._joined):
            index.entries.pop(rid, None)  # stale heap items are skipped and compacted later
        if entry is None:
            for index in (self._pending, self._orphans, self._joined):
                index._maybe_compact()
            return
        kind, t, s = entry["k"], float(entry["t"]), int(entry["s"])
        if kind == "p":
            p = PendingPrediction(rid, entry["model"], entry["model_version"], t, dict(entry["prediction"]),
                                  int(entry["offset"]))
            self._pending.entries[rid] = (t, s, p)
            heapq.heappush(self._pending.heap, (t, s, rid))
        elif kind == "l":
            self._orphans.entries[rid] = (t, s, (entry["label"], int(entry["offset"])))
            heapq.heappush(self._orphans.heap, (t, s, rid))
        elif kind == "j":
            self._joined.entries[rid] = (t, s, None)
            heapq.heappush(self._joined.heap, (t, s, rid))
        else:
            raise ValueError(f"unknown join store entry kind {kind!r}")
        for index in (self._pending, self._orphans, self._joined):
            index._maybe_compact()

    def _config(self) -> dict[str, Any]:
        return {"ttl_seconds": self.ttl_seconds, "max_pending": self.max_pending, "max_orphans": self.max_orphans,
                "max_joined": self.max_joined, "max_journal": self.max_journal, "partition": self.partition}

    def _meta(self) -> dict[str, Any]:
        return {"schema_version": JOIN_STATE_VERSION, "now": self.now if math.isfinite(self.now) else None,
                "clocks": {k: (v if math.isfinite(v) else None) for k, v in self.clocks.items()},
                "seq": self._seq, "offsets": {"predictions": self._offsets[0], "labels": self._offsets[1]},
                "counters": dict(self.counters), "latency": self.latency.to_state()}

    def _set_meta(self, meta: dict[str, Any]) -> None:
        if meta.get("schema_version") != JOIN_STATE_VERSION:
            raise ValueError(f"unsupported join store state version {meta.get('schema_version')!r}")
        self.now = -math.inf if meta["now"] is None else float(meta["now"])
        clocks = meta.get("clocks") or {}  # absent in states written before per-topic clocks
        self.clocks = {k: (-math.inf if clocks.get(k) is None else float(clocks[k])) for k in ("predictions", "labels")}
        self._seq = int(meta["seq"])
        self._offsets = [int(meta["offsets"]["predictions"]), int(meta["offsets"]["labels"])]
        counters = meta["counters"]
        if set(counters) != set(COUNTERS):
            raise ValueError("join store state has unknown or missing counters")
        self.counters = {k: int(counters[k]) for k in COUNTERS}
        self.latency = LatencyHistogram.from_state(meta["latency"])

    def _entries(self) -> list[dict[str, Any]]:
        rids = [*self._pending.entries, *self._orphans.entries, *self._joined.entries]
        out = [self._entry(rid) for rid in rids]
        return sorted((e for e in out if e is not None), key=lambda e: int(e["s"]))

    def to_state(self) -> dict[str, Any]:
        """Full JSON-able snapshot (``schema_version`` 1); entries in a canonical (sequence) order.

        The change journal is not part of it: a restored store starts with an empty journal.
        """
        return {**self._meta(), "config": self._config(), "entries": self._entries()}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> LabelJoinStore:
        cfg = state["config"]
        store = cls(cfg["ttl_seconds"], cfg["max_pending"], cfg["max_orphans"], max_joined=cfg["max_joined"],
                    max_journal=cfg["max_journal"], partition=cfg["partition"])
        store._set_meta(state)
        for entry in state["entries"]:
            store._set_entry(str(entry["id"]), entry)
        if len(store._pending) > store.max_pending or len(store._orphans) > store.max_orphans \
                or len(store._joined) > store.max_joined:
            raise ValueError("join store state holds more entries than its bounds")
        return store

    # -- chunked snapshots ------------------------------------------------------------------------------------------

    def snapshot_chunks(self, max_bytes: int) -> list[bytes]:
        """The full state as orjson chunks of at most ``max_bytes`` each, for size-limited stores.

        Chunk 0 holds the store-wide state (config, counters, latency
        histogram, offsets); the others hold entries, packed greedily. Every
        chunk names its index, the number of chunks and a checksum of chunk 0,
        so :meth:`from_chunks` rejects a missing chunk or a mix of snapshots.
        A chunk is larger than ``max_bytes`` only when a single item is: chunk 0
        (about 2-5 kB with a full histogram) or one entry with a large payload.
        """
        if max_bytes < 1:
            raise ValueError("max_bytes must be >= 1")
        head_body = orjson.dumps({**self._meta(), "config": self._config()})
        snap = zlib.crc32(head_body)
        encoded = [orjson.dumps(e) for e in self._entries()]
        # the wrapper of an entry chunk, with room for any index and count (up to 20 digits each)
        overhead = len(b'{"v":,"i":,"n":,"snap":,"entries":[]}') + len(str(JOIN_STATE_VERSION)) + 20 + 20 + 10
        groups: list[list[bytes]] = []
        size = overhead
        for e in encoded:
            if groups and size + 1 + len(e) <= max_bytes:
                groups[-1].append(e)
                size += 1 + len(e)
            else:
                groups.append([e])
                size = overhead + len(e)
        n = 1 + len(groups)
        head = b'{"v":%d,"i":0,"n":%d,"snap":%d,"head":%s}' % (JOIN_STATE_VERSION, n, snap, head_body)
        chunks = [head]
        for i, g in enumerate(groups, start=1):
            chunks.append(b'{"v":%d,"i":%d,"n":%d,"snap":%d,"entries":[%s]}'
                          % (JOIN_STATE_VERSION, i, n, snap, b",".join(g)))
        return chunks

    @classmethod
    def from_chunks(cls, chunks: Iterable[bytes]) -> LabelJoinStore:
        """Rebuild a store from :meth:`snapshot_chunks` (the chunks in any order)."""
        parts = sorted((orjson.loads(c) for c in chunks), key=lambda d: int(d["i"]))
        if not parts:
            raise ValueError("no snapshot chunks")
        n, snap = parts[0]["n"], parts[0]["snap"]
        if [int(d["i"]) for d in parts] != list(range(n)) or any(d["n"] != n or d["snap"] != snap for d in parts) \
                or any(d["v"] != JOIN_STATE_VERSION for d in parts):
            raise ValueError(f"snapshot chunks are incomplete or from different snapshots (expected {n})")
        head = parts[0]["head"]
        if zlib.crc32(orjson.dumps(head)) != snap:
            raise ValueError("snapshot chunk 0 does not match its checksum")
        entries = [e for d in parts[1:] for e in d["entries"]]
        return cls.from_state({**head, "entries": entries})

    # -- the change journal --------------------------------------------------------------------------------------

    def drain_journal(self) -> list[tuple[str, dict[str, Any] | None]]:
        """The changes since the previous drain, and start a new journal.

        The first item is ``(META_KEY, meta)``: counters, latency histogram,
        clock and offsets as they are now; when ``meta["reset"]`` is true the
        journal overflowed ``max_journal`` and the rest is a copy of every live
        entry, to apply on an emptied store. The other items are ``(record id,
        entry)``, the id's state now, or ``(record id, None)`` when it is gone:
        one item per id changed since the last drain, whatever the number of
        changes. A snapshot plus every journal drained after it, applied in
        order with :meth:`apply_journal`, equals the live store; replaying a
        journal twice is harmless (entries are states, not deltas).
        """
        meta = self._meta() | {"reset": self._journal_reset}
        if self._journal_reset:
            items: list[tuple[str, dict[str, Any] | None]] = [(str(e["id"]), e) for e in self._entries()]
        else:
            items = [(rid, self._entry(rid)) for rid in self._dirty]
        self._dirty = {}
        self._journal_reset = False
        return [(META_KEY, meta), *items]

    def reset_journal(self) -> None:
        """Forget the changes recorded so far (after a full snapshot holds them), without building them."""
        self._dirty = {}
        self._journal_reset = False

    def apply_journal(self, entries: Sequence[tuple[str, dict[str, Any] | None]]) -> None:
        """Apply a journal from :meth:`drain_journal` (the changes are not journaled again)."""
        for rid, entry in entries:
            if rid == META_KEY:
                if entry is None:
                    raise ValueError("journal meta entry is empty")
                if entry.get("reset"):
                    for index in (self._pending, self._orphans, self._joined):
                        index.clear()
                self._set_meta(entry)
            else:
                self._set_entry(rid, entry)


def _stats(counters: dict[str, int], latency: LatencyHistogram, pending: int, orphans: int) -> dict[str, Any]:
    decided = counters["joined"] + counters["expired_predictions"]
    return {**counters, "pending": pending, "orphans": orphans,
            "coverage": counters["joined"] / decided if decided else None, "latency": latency.summary()}


def combined_stats(stores: Iterable[LabelJoinStore]) -> dict[str, Any]:
    """:meth:`LabelJoinStore.stats` over several stores (e.g. all partitions): counters summed, histograms merged.

    ``oldest_pending_age`` is left out (each store has its own clock).

    Examples
    --------
    >>> a = LabelJoinStore(10, 10, 10)
    >>> b = LabelJoinStore(10, 10, 10)
    >>> _ = a.add_prediction(PendingPrediction("x", "m", "1", 0.0), now=0.0)
    >>> _ = b.add_prediction(PendingPrediction("y", "m", "1", 0.0), now=0.0)
    >>> _ = a.add_label("x", 1, 2.0, now=2.0)
    >>> _ = b.expire(now=20.0)
    >>> s = combined_stats([a, b])
    >>> s["predictions"], s["joined"], s["coverage"], s["latency"]["count"]
    (2, 1, 0.5, 1)
    """
    counters = dict.fromkeys(COUNTERS, 0)
    latency = LatencyHistogram()
    pending = orphans = 0
    for s in stores:
        for k in COUNTERS:
            counters[k] += s.counters[k]
        latency += s.latency
        pending += s.n_pending
        orphans += s.n_orphans
    return _stats(counters, latency, pending, orphans)
