"""The model side of a worker: predictions and labels fed to a ModelMonitor, join state checkpointed.

Per ``kind: predictions`` stream, a :class:`ModelRuntime` owns the stream's
:class:`~monitor.model.ModelMonitor` (the model stage of the worker's
:class:`~monitor.Monitor`): its checkpoints and restore. The ingest service
passes each predictions and labels batch through the monitor (the
feature stage, so every prediction and label is monitored for quality and
drift like any record, then this model stage) under :attr:`ModelRuntime.lock`.

Positions. Records are identified by their Kafka offset *and* their index in
the message (a message may hold an array or columns):
``position = offset * 2**24 + index``. The join store remembers the highest
position it applied per topic and partition, so nothing is applied twice.

Durability. Every ``model.join.checkpoint_seconds`` (and once more on
shutdown) each changed partition's store is checkpointed to the ``join-state``
Faust table: usually its journal (the entries of the record ids that changed
since the previous checkpoint), sometimes a full snapshot (see
:meth:`ModelRuntime.checkpoint`), in chunks of at most :data:`CHUNK_BYTES`
keyed ``stream/partition/generation/i`` (snapshot) and
``stream/partition/generation/jK/i`` (journal K), then a manifest
``stream/partition`` naming the generation, its chunk count and its journals.
The manifest is written last, so a crash part-way leaves the previous one
valid; the previous generation's keys are deleted after the new manifest. The
ingest service commits input offsets with its own checkpoints, on another
schedule, so on start the runtime reloads the snapshot and replays, for the
join only, the records between the snapshot's positions and the committed
offsets (read with an independent consumer): the pending predictions and early
labels are exactly what they were.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import orjson
from confluent_kafka import Consumer, Message, TopicPartition

from agents.kafka.connect import client_config
from agents.kafka.security import KafkaSecurity
from agents.kafka.source import read_range
from agents.worker.checkpoint import (
    CHUNK_BYTES,
    MIN_SNAPSHOT_BYTES,
    POSITION_BITS,
    Checkpoint,
    journal_chunks,
    positions,
)
from monitor.join import LabelJoinStore
from monitor.model import ModelMonitor
from monitor.records import ColumnBatch, decode_message
from monitor.report import ModelWindowReport
from monitor.spec import StreamSpec

if TYPE_CHECKING:
    import faust

    from agents.worker.app import WorkerContext

__all__ = ["GAP_CHUNK", "ModelRuntime"]

log = logging.getLogger("streamdq.worker")

#: Seconds between attempts to restore the join state while the stream waits.
RESTORE_RETRY_DELAYS = (1.0, 2.0, 5.0, 10.0, 30.0)
#: Messages read and applied at a time while replaying the gap after a restart.
GAP_CHUNK = 5000


class ModelRuntime:
    """One predictions stream's model monitor, its checkpoints and its restore."""

    def __init__(self, ctx: WorkerContext, stream: StreamSpec, monitor: ModelMonitor, table: Any,
                 bootstrap: str, group_id: str, security: KafkaSecurity | None = None) -> None:
        assert stream.model is not None
        self.ctx = ctx
        self.stream = stream
        self.labels: StreamSpec = ctx.spec.stream(stream.model.labels)
        self.monitor = monitor
        self.table = table
        self.bootstrap = bootstrap
        self.security = security if security is not None else KafkaSecurity()
        self.group_id = group_id
        self.lock = asyncio.Lock()
        self.restored = False
        self._cp: dict[int, Checkpoint] = {}

    # -- the batch path -------------------------------------------------------------------------------------

    async def wait_restored(self) -> None:
        """Block until the join state is restored (retrying, like a send to a broker that is away): a batch
        joined into a store that is then replaced by its checkpoint would be lost to the join. The caller
        then processes the batch and publishes its reports under :attr:`lock`, so a checkpoint never covers
        records whose alerts are unsent."""
        attempt = 0
        while not self.restored:
            try:
                await self.ensure_restored()
            except asyncio.CancelledError:
                raise
            except Exception:  # logged; the stream waits until the state is back
                delay = RESTORE_RETRY_DELAYS[min(attempt, len(RESTORE_RETRY_DELAYS) - 1)]
                log.exception("restoring the join state of %s failed; retrying in %.0fs", self.stream.name, delay)
                attempt += 1
                await asyncio.sleep(delay)

    def _apply(self, stream: StreamSpec, records: Sequence[dict[str, Any]],
               origins: Sequence[Any]) -> list[ModelWindowReport]:
        return self.monitor.add(stream.name, records, partition=[m.partition() for m in origins],
                                offsets=positions(origins))

    # -- checkpoints ----------------------------------------------------------------------------------------

    async def checkpoint(self) -> int:
        """Checkpoint every partition whose store changed; returns how many were written.

        Incremental: usually only the changes since the previous checkpoint (the store's journal: one entry
        per record id that changed) are written, as journal ``k`` of the current generation. A full snapshot
        starts a new generation when there is none yet or when the journals written since the last one
        outweigh it (so a restore never reads more than about twice the state), and the previous
        generation's keys are deleted once the new manifest is written."""
        if not self.restored or self.table is None:
            return 0
        written = 0
        async with self.lock:
            assigned = set(self._assigned_partitions())
            for p in sorted(self.monitor.changed):
                if p not in assigned:  # revoked: its new owner restores and checkpoints it
                    self.monitor.stores.pop(p, None)
                    self.monitor.mark_checkpointed(p)
                    self._cp.pop(p, None)
                    continue
                store = self.monitor.stores.get(p)
                if store is None:
                    continue
                cp = self._cp.get(p)
                prefix = f"{self.stream.name}/{p}"
                if cp is None or cp.snapshot_bytes < 0 or cp.journal_bytes > max(cp.snapshot_bytes, MIN_SNAPSHOT_BYTES):
                    chunks = store.snapshot_chunks(CHUNK_BYTES)
                    store.reset_journal()  # the snapshot holds it
                    new = Checkpoint(generation=(cp.generation if cp else 0) + 1, chunks=len(chunks),
                                      snapshot_bytes=sum(map(len, chunks)))
                    for i, chunk in enumerate(chunks):
                        self.table[f"{prefix}/{new.generation}/{i}"] = chunk
                    self.table[prefix] = new.manifest()
                    if cp is not None and cp.chunks:  # the previous generation is no longer needed
                        for key in cp.keys(prefix):
                            self.table.pop(key, None)
                    self._cp[p] = new
                else:
                    entries = store.drain_journal()
                    chunks = journal_chunks(entries)
                    k = len(cp.journals)
                    for i, chunk in enumerate(chunks):
                        self.table[f"{prefix}/{cp.generation}/j{k}/{i}"] = chunk
                    cp.journals.append(len(chunks))
                    cp.journal_bytes += sum(map(len, chunks))
                    self.table[prefix] = cp.manifest()
                self.monitor.mark_checkpointed(p)
                written += 1
                await asyncio.sleep(0)  # let the consumer's heartbeat and the web server run between partitions
        return written

    async def ensure_restored(self) -> None:
        """On the first batch: reload the checkpoints, then replay what they do not cover."""
        if self.restored:
            return
        async with self.lock:
            if self.restored:
                return
            self.monitor.reset()  # a previous attempt may have failed half-way
            self._cp.clear()
            assigned = self._assigned_partitions()
            loaded = self._load(assigned)
            reports = await self._replay_gap(assigned)
            for report in reports:
                await self.ctx.publish(report)
            self.restored = True
        if loaded:
            stats = self.monitor.join_stats()
            log.info("model %s: restored the join state of %d partition(s): %d pending prediction(s), "
                     "%d early label(s)", self.stream.model.name if self.stream.model else "?", loaded,
                     stats["pending"], stats["orphans"])

    def _load(self, assigned: list[int]) -> int:
        """Restore the stores of the ``assigned`` partitions: the latest snapshot, then its journals in order."""
        if self.table is None:
            return 0
        prefix = f"{self.stream.name}/"
        manifests: dict[int, Checkpoint] = {}
        items = {k: v for k, v in list(self.table.items()) if isinstance(k, str) and k.startswith(prefix)}
        for key, value in items.items():
            parts = key.split("/")
            if len(parts) == 2 and value is not None and int(parts[1]) in assigned:
                manifests[int(parts[1])] = Checkpoint.from_manifest(value)
        for p, cp in manifests.items():
            base = f"{self.stream.name}/{p}/{cp.generation}"
            found = [items.get(f"{base}/{i}") for i in range(cp.chunks)]
            found_journals = [[items.get(f"{base}/j{k}/{i}") for i in range(n)] for k, n in enumerate(cp.journals)]
            live = set(cp.keys(f"{self.stream.name}/{p}"))
            for key in items:  # chunks of older generations, or of a checkpoint cut short by a crash
                if key.startswith(f"{self.stream.name}/{p}/") and key not in live:
                    self.table.pop(key, None)
            chunks = [c for c in found if isinstance(c, bytes)]
            journals = [[c for c in j if isinstance(c, bytes)] for j in found_journals]
            if len(chunks) < len(found) or any(len(j) < len(f) for j, f in zip(journals, found_journals, strict=True)):
                log.error("join state of %s partition %d is incomplete (generation %d); rebuilding it from the "
                          "topics", self.stream.name, p, cp.generation)
                self._cp[p] = Checkpoint(generation=cp.generation, chunks=0, snapshot_bytes=-1)  # numbering goes on
                continue
            store = LabelJoinStore.from_chunks(chunks)
            for journal in journals:
                for chunk in journal:
                    store.apply_journal([(str(rid), entry) for rid, entry in orjson.loads(chunk)])
            self.monitor.restore(p, store)
            cp.snapshot_bytes = sum(len(c) for c in chunks)
            cp.journal_bytes = sum(len(c) for j in journals for c in j)
            self._cp[p] = cp
        return len(manifests)

    async def _replay_gap(self, assigned: list[int]) -> list[ModelWindowReport]:
        """Apply the records the live stream will not deliver again (committed) but no checkpoint covers.

        Read in chunks of :data:`GAP_CHUNK` messages by an independent consumer in a thread, applied here
        one chunk at a time, so memory stays bounded however long the gap."""
        if not assigned:
            return []
        reports: list[ModelWindowReport] = []
        for stream, covered in ((self.stream, "max_prediction_offset"), (self.labels, "max_label_offset")):
            starts = {}
            for p in assigned:
                store = self.monitor.stores.get(p)
                pos = getattr(store, covered) if store is not None else -1
                starts[p] = pos >> POSITION_BITS if pos >= 0 else None  # re-read that message: its tail may be new
            assert self.stream.model is not None
            j = self.stream.model.join
            # Without a checkpoint, records older than a TTL (plus the allowed lag) could not change the join:
            # start there (by the messages' timestamps) rather than at the beginning of the topic.
            horizon_ms = int((time.time() - j.ttl_seconds - j.label_lag_seconds) * 1000)
            reader = _GapReader(client_config(self.bootstrap, self.security), self.group_id,
                                stream.topic or stream.name, starts, horizon_ms=horizon_ms)
            count = 0
            try:
                while True:
                    messages = await asyncio.to_thread(reader.read, GAP_CHUNK)
                    if not messages:
                        break
                    for msg in messages:
                        ok, _ = decode_message(msg.value(), stream)  # rejections were dead-lettered the first time
                        if not ok:
                            continue
                        records = ok if isinstance(ok, ColumnBatch) else list(ok)
                        reports += self._apply(stream, records, [msg] * len(ok))
                        count += len(ok)
            finally:
                await asyncio.to_thread(reader.close)
            if count:
                log.info("model %s: replayed %d %s record(s) committed after the last join checkpoint",
                         self.stream.name, count, stream.name)
        return reports

    def _assigned_partitions(self) -> list[int]:
        if self.ctx.ingest is None:  # no consumer (tests): every partition
            return list(range(self.stream.partitions))
        topic = self.stream.topic or self.stream.name
        return sorted({p for t, p in set(self.ctx.ingest.assignment) if t == topic})


class _GapReader:
    """Messages of ``topic`` from ``starts[p]`` (or the partition's beginning) up to the consumer group's committed
    offset, partition by partition (nothing where the group has committed nothing), read in chunks."""

    def __init__(self, client: dict[str, Any], group_id: str, topic: str, starts: dict[int, int | None], *,
                 horizon_ms: int | None = None, timeout: float = 30.0) -> None:
        self.topic, self.starts, self.timeout, self.horizon_ms = topic, starts, timeout, horizon_ms
        self.consumer = Consumer({**client, "group.id": group_id, "enable.auto.commit": False,
                                  "auto.offset.reset": "earliest", "log_level": 0, "enable.partition.eof": True})
        self._messages: Iterator[Any] | None = None  # resolved on the first read (in the reading thread)

    def _resolve(self) -> list[tuple[int, int, int]]:
        """(partition, first offset, end offset) of each partition with something to replay."""
        out = []
        committed = self.consumer.committed([TopicPartition(self.topic, p) for p in self.starts], timeout=self.timeout)
        for tp in committed:
            end = tp.offset
            if end is None or end < 0:
                continue  # nothing committed: the live stream starts at the beginning anyway
            low, _ = self.consumer.get_watermark_offsets(TopicPartition(self.topic, tp.partition), timeout=self.timeout)
            start = self.starts.get(tp.partition)
            if start is None and self.horizon_ms is not None:  # no checkpoint: the first message within the horizon
                found = self.consumer.offsets_for_times([TopicPartition(self.topic, tp.partition, self.horizon_ms)],
                                                        timeout=self.timeout)[0]
                start = end if found.offset < 0 else found.offset
            lo = max(low, start if start is not None else low)
            if lo < end:
                out.append((tp.partition, lo, end))
        return out

    def read(self, max_messages: int) -> list[Message]:
        """The next messages (at most ``max_messages``); empty when the gap is read."""
        if self._messages is None:
            self._messages = itertools.chain.from_iterable(
                read_range(self.consumer, self.topic, p, lo, end, timeout=self.timeout)
                for p, lo, end in self._resolve())
        return list(itertools.islice(self._messages, max_messages))

    def close(self) -> None:
        self.consumer.close()


def runtime_table(app: faust.App, name: str, partitions: int) -> Any:
    """The join-state table: values are raw bytes, each key written to the partition it names."""
    table = app.Table(name, default=None, partitions=partitions, use_partitioner=True, key_type=str,
                      value_type=bytes)  # bytes: the "raw" serializer
    # Faust types partition_for_key as a method; an instance attribute is what it calls first.
    table.partition_for_key = lambda key: int(str(key).split("/")[1])  # type: ignore[method-assign]
    return table
