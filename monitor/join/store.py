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
from collections.abc import Iterable, Sequence
from typing import Any

from monitor.join.entries import (
    COUNTERS,
    JOIN_STATE_VERSION,
    META_KEY,
    JoinedExample,
    PendingPrediction,
    TimedIndex,
    finite,
)
from monitor.join.latency import LatencyHistogram, join_stats

__all__ = ["LabelJoinStore"]

#: ``schema_version`` of :meth:`LabelJoinStore.to_state`, of snapshot chunks and of journal meta entries.
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
    event times (min-heaps with lazy deletion, see :class:`TimedIndex`);
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
        self._pending: TimedIndex[PendingPrediction] = TimedIndex(self._mark)
        self._orphans: TimedIndex[tuple[Any, int]] = TimedIndex(self._mark)  # label, offset
        self._joined: TimedIndex[None] = TimedIndex(self._mark)

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
        t = finite("event_time", p.event_time)
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
        t = finite("label_time", label_time)
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
        return join_stats(self.counters, self.latency, len(self._pending), len(self._orphans)) | \
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

    def config(self) -> dict[str, Any]:
        return {"ttl_seconds": self.ttl_seconds, "max_pending": self.max_pending, "max_orphans": self.max_orphans,
                "max_joined": self.max_joined, "max_journal": self.max_journal, "partition": self.partition}

    def meta(self) -> dict[str, Any]:
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

    def entries(self) -> list[dict[str, Any]]:
        rids = [*self._pending.entries, *self._orphans.entries, *self._joined.entries]
        out = [self._entry(rid) for rid in rids]
        return sorted((e for e in out if e is not None), key=lambda e: int(e["s"]))

    def to_state(self) -> dict[str, Any]:
        """Full JSON-able snapshot (``schema_version`` 1); entries in a canonical (sequence) order.

        The change journal is not part of it: a restored store starts with an empty journal.
        """
        return {**self.meta(), "config": self.config(), "entries": self.entries()}

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
        """The full state as orjson chunks of at most ``max_bytes`` each (see
        :func:`monitor.join.chunks.snapshot_chunks`)."""
        from monitor.join.chunks import snapshot_chunks

        return snapshot_chunks(self, max_bytes)

    @classmethod
    def from_chunks(cls, chunks: Iterable[bytes]) -> LabelJoinStore:
        """Rebuild a store from :meth:`snapshot_chunks` (the chunks in any order)."""
        from monitor.join.chunks import from_chunks

        return from_chunks(chunks)

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
        meta = self.meta() | {"reset": self._journal_reset}
        if self._journal_reset:
            items: list[tuple[str, dict[str, Any] | None]] = [(str(e["id"]), e) for e in self.entries()]
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
