"""Checkpoints of a worker's window state, stored in a compacted topic and named by its offset commits.

A checkpoint is one JSON document (:func:`document`): the feature stage's snapshot of every stream
(:meth:`FeatureEngine.snapshot <monitor.stream.FeatureEngine.snapshot>`), the alert policy's state and
the input partitions it covers, each with the offset of the next record to read. It is written to the
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
'streamdq-ckpt:1:a1b2.7:1234:3'
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
FORMAT = 1
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


def document(*, streams: dict[str, Any], policy: dict[str, Any], offsets: dict[tuple[str, int], int]) -> bytes:
    """The checkpoint document: stream snapshots, alert policy state, and the offsets they cover."""
    return orjson.dumps({"format": FORMAT, "streams": streams, "policy": policy,
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
    """Takes, saves and restores a worker's checkpoints (the feature stage of every stream and the alert
    policy, with the input offsets they cover).

    :meth:`take` reads the monitor, so it runs when nothing else changes it: on the ingest service's loop
    between batches, or in a rebalance callback (which runs inside a consumer poll, when the loop is not
    processing). :meth:`save` and :meth:`restore` block on the broker: call them on the consumer's thread.
    ``token`` keeps this process's chunk keys apart from any other worker's.
    """

    def __init__(self, monitor: Monitor, store: CheckpointStore, *, token: str) -> None:
        self.monitor = monitor
        self.store = store
        self.token = token
        self.generation = 0
        #: The last checkpoint written or restored, deleted once a newer one is committed: (key, chunk count).
        self._previous: tuple[str, int] | None = None
        #: Set when a restore replaced the alert policy's state (the caller re-syncs its table).
        self.policy_restored = False

    def take(self, positions: dict[tuple[str, int], int]) -> bytes:
        features = self.monitor.features
        return document(streams={s.name: features.snapshot(s.name) for s in self.monitor.spec.streams},
                        policy=self.monitor.policy.to_state(), offsets=positions)

    def save(self, consumer: Any, data: bytes, positions: dict[tuple[str, int], int]) -> Pointer:
        """Write ``data``, then commit ``positions`` pointing to it, then delete the checkpoint before."""
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
        if self._previous is not None:
            try:
                self.store.delete(*self._previous)
            except CheckpointError as exc:  # compaction keeps it a while longer; nothing depends on it
                log.warning("old checkpoint %s not deleted: %s", self._previous[0], exc)
        self._previous = (key, pointer.chunks)
        return pointer

    def reset(self) -> None:
        """New windows for every stream (nothing of before is kept)."""
        for s in self.monitor.spec.streams:
            self.monitor.features.reset(s.name)

    def restore(self, committed: list[TopicPartition]) -> dict[tuple[str, int], int] | None:
        """At a worker's first assignment: load the checkpoint its ``committed`` offsets (those of the partitions
        it was given, as ``Consumer.committed`` returns them) point to, if they all point to one that covers
        exactly the partitions with a commit. Returns the offsets it covers (the
        partitions resume there: they are the committed ones), or ``None`` (fresh windows).

        The alert policy takes the checkpoint's state, except that an alert open before (read back from the
        alert-state table: its firing event was sent after the checkpoint) stays open: the windows read again
        may not raise it again, and receivers must not be left with an alert that never resolves."""
        with_commit = {(tp.topic, tp.partition): tp for tp in committed if tp.offset is not None and tp.offset >= 0}
        if not with_commit:
            return None
        pointers = {Pointer.decode(tp.metadata) for tp in with_commit.values()}
        if None in pointers or len(pointers) != 1:
            log.warning("the input partitions' committed offsets point to %d different checkpoints (a rebalance "
                        "moved partitions, or they were committed by an older version): starting new windows",
                        len(pointers - {None}) + (None in pointers))
            return None
        [pointer] = pointers
        assert pointer is not None
        got = self.store.read(pointer)
        if got is None:
            log.warning("checkpoint %s could not be read whole: starting new windows", pointer.key)
            return None
        data, count = got
        doc = orjson.loads(data)
        covered = {(t, p): o for t, p, o in doc.get("offsets", [])}
        if covered != {k: tp.offset for k, tp in with_commit.items()}:
            log.warning("checkpoint %s covers other partitions or offsets than this worker was given: starting "
                        "new windows", pointer.key)
            return None
        if doc.get("format") != FORMAT:
            log.warning("checkpoint %s has format %r (this worker reads %d): starting new windows", pointer.key,
                        doc.get("format"), FORMAT)
            return None
        features, policy = self.monitor.features, self.monitor.policy
        before = policy.to_state()["fingerprints"]
        try:
            for name, snap in doc["streams"].items():
                features.restore(name, snap)
            saved = doc["policy"]["fingerprints"]
            for fp in before:
                if fp not in saved:
                    policy.load(fp, None)
            for fp, state in saved.items():
                policy.load(fp, state)
            for fp, state in before.items():  # receivers were told these fire: open until their windows clear
                if state.get("alert") is not None and (saved.get(fp) or {}).get("alert") is None:
                    policy.load(fp, state)
        except (StreamdqError, KeyError, ValueError, TypeError) as exc:  # a spec or reference change since
            log.warning("checkpoint %s does not fit this spec (%s): starting new windows", pointer.key, exc)
            self.reset()
            for fp in policy.to_state()["fingerprints"]:
                policy.load(fp, before.get(fp))
            return None
        self.policy_restored = True
        self._previous = (pointer.key, count)
        log.info("restored checkpoint %s: %d stream(s), %d partition(s), %d open alert(s)", pointer.key,
                 len(doc["streams"]), len(covered), len(policy.open_alerts()))
        return covered
