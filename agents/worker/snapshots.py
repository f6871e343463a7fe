"""Checkpoints of a worker's window state, stored in a compacted topic and named by its offset commits.

A checkpoint is one JSON document (:func:`document`): for every input partition the worker holds, the
feature stage's state of that partition (:meth:`FeatureEngine.partition_state
<monitor.stream.FeatureEngine.partition_state>`: its panes, duplicate filter and watermark) with the
offset of the next record to read. Each partition is restored on its own, by whichever worker is given
it next (after a restart or a rebalance), from the checkpoint its commit names. It is written to the
checkpoints topic as chunks of at most :data:`CHUNK_BYTES` (keys ``K/i``), then a manifest (key ``K``,
``<process token>.<generation>``) listing the chunks' offsets and the document's SHA-256, every write
acknowledged (``acks=all``).

Only then are the input offsets committed, each carrying in its metadata a :class:`Pointer` to the
manifest: so the committed offset never passes the checkpoint, and whoever reads the commits finds the
state they belong with, without scanning the topic. A restore reads the manifest and its chunks at their
offsets and checks the digest; anything missing or different (a chunk compacted away, a checkpoint cut
short by a crash) means no restore, never a wrong one. Old generations are deleted (tombstones) once a
newer one is committed.

Examples
--------
>>> p = Pointer(key="a1b2.7", offset=1234, chunks=3)
>>> p.encode()
'streamdq-ckpt:2:a1b2.7:1234:3'
>>> Pointer.decode(p.encode()) == p, Pointer.decode(""), Pointer.decode("other metadata")
(True, None, None)
>>> len(chunks(b"x" * 10, 4)), b"".join(chunks(b"abcdefghij", 4))
(3, b'abcdefghij')
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import orjson
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition

from monitor.engine import Monitor
from monitor.errors import StreamdqError

__all__ = ["CHUNK_BYTES", "FORMAT", "CheckpointError", "CheckpointStore", "Checkpointer", "Pointer", "chunks",
           "document"]

log = logging.getLogger("streamdq.worker")

#: Version of the checkpoint document and manifest.
FORMAT = 2
#: Largest chunk written (below Kafka's default 1 MiB message limit, with room for the key and headers).
CHUNK_BYTES = 512 * 1024
_PREFIX = "streamdq-ckpt"


class CheckpointError(StreamdqError, RuntimeError):
    """A checkpoint could not be written (the broker did not acknowledge it)."""


@dataclass(frozen=True, slots=True)
class Pointer:
    """Where a partition's committed offset finds its checkpoint: the manifest's key and offset, and its
    chunk count (carried in the commit's metadata, a few dozen bytes)."""

    key: str
    offset: int
    chunks: int

    def encode(self) -> str:
        return f"{_PREFIX}:{FORMAT}:{self.key}:{self.offset}:{self.chunks}"

    @classmethod
    def decode(cls, metadata: str | None) -> Pointer | None:
        parts = (metadata or "").split(":")
        if len(parts) != 5 or parts[0] != _PREFIX or parts[1] != str(FORMAT) or not parts[2]:
            return None
        try:
            return cls(parts[2], int(parts[3]), int(parts[4]))
        except ValueError:
            return None


def chunks(data: bytes, size: int = CHUNK_BYTES) -> list[bytes]:
    """``data`` cut into pieces of at most ``size`` bytes (at least one piece)."""
    return [data[i:i + size] for i in range(0, len(data), size)] or [b""]


def document(*, partitions: list[list[Any]], offsets: dict[tuple[str, int], int]) -> bytes:
    """The checkpoint document: per input partition ``[topic, partition, offset, stream, state]`` (the
    feature stage's state of that partition, covering the records before ``offset``), and the offsets."""
    return orjson.dumps({"format": FORMAT, "partitions": partitions,
                         "offsets": [[t, p, o] for (t, p), o in sorted(offsets.items())]})


class CheckpointStore:
    """Writes and reads checkpoints on the (one-partition, compacted) ``topic``. Blocking: call it from a
    worker thread. ``client`` is a confluent-kafka client configuration (bootstrap and security)."""

    def __init__(self, client: dict[str, Any], topic: str, *, timeout: float = 30.0,
                 producer_factory: Callable[[dict[str, Any]], Any] = Producer,
                 consumer_factory: Callable[[dict[str, Any]], Any] = Consumer) -> None:
        self.topic, self.timeout = topic, timeout
        self._client = client
        self._producer = producer_factory({**client, "acks": "all", "enable.idempotence": True,
                                           "compression.type": "lz4", "linger.ms": 5, "log_level": 3})
        self._consumer_factory = consumer_factory

    def write(self, key: str, data: bytes) -> Pointer:
        """Write ``data`` as checkpoint ``key``; return the pointer to commit with the offsets."""
        parts = chunks(data)
        offsets = self._produce([(f"{key}/{i}", part) for i, part in enumerate(parts)])
        manifest = orjson.dumps({"format": FORMAT, "key": key, "chunks": offsets, "bytes": len(data),
                                 "sha256": hashlib.sha256(data).hexdigest()})
        [at] = self._produce([(key, manifest)])
        return Pointer(key, at, len(parts))

    def delete(self, key: str, count: int) -> None:
        """Tombstone a checkpoint's manifest and ``count`` chunks (compaction then drops them)."""
        self._produce([(key, None)] + [(f"{key}/{i}", None) for i in range(count)])

    def read(self, pointer: Pointer) -> tuple[bytes, int] | None:
        """The document a pointer names and its chunk count, or ``None`` (logged) if it cannot be read whole."""
        consumer = self._consumer_factory({**self._client, "group.id": f"{_PREFIX}-reader", "enable.auto.commit": False,
                                           "log_level": 3})
        try:
            manifest = self._at(consumer, pointer.offset, pointer.key)
            if manifest is None:
                return None
            meta = orjson.loads(manifest)
            if meta.get("format") != FORMAT or meta.get("key") != pointer.key:
                log.warning("checkpoint %s: unexpected manifest %s", pointer.key, meta)
                return None
            parts = []
            for i, offset in enumerate(meta["chunks"]):
                part = self._at(consumer, offset, f"{pointer.key}/{i}")
                if part is None:
                    return None
                parts.append(part)
            data = b"".join(parts)
            if hashlib.sha256(data).hexdigest() != meta["sha256"]:
                log.warning("checkpoint %s: digest mismatch", pointer.key)
                return None
            return data, len(parts)
        finally:
            consumer.close()

    def close(self) -> None:
        self._producer.flush(self.timeout)

    # -- internals --------------------------------------------------------------------------------------

    def _produce(self, items: Iterable[tuple[str, bytes | None]]) -> list[int]:
        """Produce ``(key, value)`` in order and wait for every acknowledgement; their offsets, in order."""
        results: list[Any] = []
        for key, value in items:
            slot: list[Any] = [None]
            results.append(slot)
            self._producer.produce(self.topic, value=value, key=key.encode(), partition=0,
                                   on_delivery=lambda err, msg, slot=slot: slot.__setitem__(0, (err, msg)))
        left = self._producer.flush(self.timeout)
        if left:
            raise CheckpointError(f"{left} checkpoint message(s) not acknowledged within {self.timeout:.0f}s")
        out = []
        for slot in results:
            err, msg = slot[0]
            if err is not None:
                raise CheckpointError(f"checkpoint write to {self.topic} failed: {err.str()}")
            out.append(msg.offset())
        return out

    def _at(self, consumer: Any, offset: int, key: str) -> bytes | None:
        """The value of the message at ``offset`` if it is there with ``key``."""
        consumer.assign([TopicPartition(self.topic, 0, offset)])
        msgs = consumer.consume(1, self.timeout)
        if not msgs or msgs[0].error() is not None:
            err = msgs[0].error() if msgs else None
            log.warning("checkpoint message at %s:0@%d not read (%s)", self.topic, offset,
                        err.str() if isinstance(err, KafkaError) else "timed out")
            return None
        msg = msgs[0]
        if msg.offset() != offset or (msg.key() or b"").decode() != key or msg.value() is None:
            log.warning("checkpoint message %r at %s:0@%d is gone (compacted?)", key, self.topic, offset)
            return None
        return bytes(msg.value())


class Checkpointer:
    """Takes, saves and restores a worker's checkpoints: each input partition's feature-stage state with the
    offset it covers.

    :meth:`take` reads the monitor, so it runs when nothing else changes it: on the ingest service's loop
    between batches, or in a rebalance callback (which runs inside a consumer poll, when the loop is not
    processing). :meth:`save` and :meth:`restore` block on the broker: call them on the consumer's thread.
    ``token`` keeps this process's chunk keys apart from any other worker's; ``streams`` maps each input
    topic to its stream's name.
    """

    def __init__(self, monitor: Monitor, store: CheckpointStore, *, token: str, streams: dict[str, str]) -> None:
        self.monitor = monitor
        self.store = store
        self.token = token
        self.streams = streams
        self.generation = 0
        #: The last checkpoint written, deleted once a newer one is committed for every partition it covered:
        #: (key, chunk count, the partitions it covered).
        self._previous: tuple[str, int, frozenset[tuple[str, int]]] | None = None

    def take(self, positions: dict[tuple[str, int], int]) -> bytes:
        features = self.monitor.features
        return document(partitions=[[t, p, o, self.streams[t], features.partition_state(self.streams[t], p)]
                                    for (t, p), o in sorted(positions.items())], offsets=positions)

    def save(self, consumer: Any, data: bytes, positions: dict[tuple[str, int], int]) -> Pointer:
        """Write ``data``, then commit ``positions`` pointing to it, then delete the checkpoint before (when this
        one covers every partition it covered: a partition that moved to another worker may still be committed
        with a pointer to it)."""
        self.generation += 1
        key = f"{self.token}.{self.generation}"
        pointer = self.store.write(key, data)
        if positions:
            result = consumer.commit(offsets=[TopicPartition(t, p, o, metadata=pointer.encode())
                                              for (t, p), o in sorted(positions.items())], asynchronous=False)
            failed = [tp for tp in result or [] if tp.error is not None]
            if failed:  # the commits now name two checkpoints: keep the older one, try again next time
                raise CheckpointError(f"committing {len(failed)} offset(s) with checkpoint {key} failed: "
                                      f"{failed[0].error}")
        if self._previous is not None and self._previous[2] <= positions.keys():
            try:
                self.store.delete(self._previous[0], self._previous[1])
            except CheckpointError as exc:  # compaction keeps it a while longer; nothing depends on it
                log.warning("old checkpoint %s not deleted: %s", self._previous[0], exc)
        self._previous = (key, pointer.chunks, frozenset(positions))
        return pointer

    def restore(self, committed: list[TopicPartition]) -> int:
        """For partitions just assigned (``committed``: their committed offsets, as ``Consumer.committed``
        returns them): each takes the state its commit's checkpoint holds for it at exactly that offset, or
        starts new windows (no commit, no readable checkpoint, another offset, a state that does not fit the
        spec). Returns how many were restored. The model stage's join state is restored apart from this."""
        features = self.monitor.features
        docs: dict[Pointer, dict[tuple[str, int], tuple[int, str, Any]] | None] = {}
        restored = 0
        for tp in committed:
            stream = self.streams.get(tp.topic)
            if stream is None:
                continue
            state = None
            pointer = Pointer.decode(tp.metadata) if tp.offset is not None and tp.offset >= 0 else None
            if pointer is not None:
                if pointer not in docs:
                    docs[pointer] = self._read(pointer)
                entries = docs[pointer]
                entry = entries.get((tp.topic, tp.partition)) if entries is not None else None
                if entry is None or entry[0] != tp.offset:
                    log.warning("checkpoint %s holds no state of %s[%d] at offset %d: new windows there",
                                pointer.key, tp.topic, tp.partition, tp.offset)
                else:
                    state = entry[2]
            elif tp.offset is not None and tp.offset >= 0:
                log.warning("%s[%d] was committed at %d without a checkpoint (an older version?): new windows "
                            "there", tp.topic, tp.partition, tp.offset)
            try:
                features.load_partition(stream, tp.partition, state)
                restored += state is not None
            except StreamdqError as exc:  # a spec or reference change since
                log.warning("the checkpoint of %s[%d] does not fit this spec (%s): new windows there", tp.topic,
                            tp.partition, exc)
                features.load_partition(stream, tp.partition, None)
        if restored:
            log.info("restored %d partition(s) from checkpoints", restored)
        return restored

    def drop(self, partitions: Iterable[tuple[str, int]]) -> None:
        """Forget the state of partitions this worker no longer holds."""
        for topic, partition in partitions:
            stream = self.streams.get(topic)
            if stream is not None:
                self.monitor.features.drop_partition(stream, partition)

    def _read(self, pointer: Pointer) -> dict[tuple[str, int], tuple[int, str, Any]] | None:
        got = self.store.read(pointer)
        if got is None:
            log.warning("checkpoint %s could not be read whole: new windows for its partitions", pointer.key)
            return None
        doc = orjson.loads(got[0])
        if doc.get("format") != FORMAT:
            log.warning("checkpoint %s has format %r (this worker reads %d): new windows for its partitions",
                        pointer.key, doc.get("format"), FORMAT)
            return None
        return {(t, int(p)): (int(o), stream, state) for t, p, o, stream, state in doc["partitions"]}
