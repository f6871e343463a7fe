"""The join-state checkpoint format of a worker (what the ``join-state`` table holds per partition).

Keys, per predictions stream and input partition ``p``:

* ``stream/p``: the manifest (:meth:`Checkpoint.manifest`), written last: the snapshot generation, its
  chunk count, and the chunk count of each journal written since;
* ``stream/p/G/i``: chunk ``i`` of generation ``G``'s snapshot (:meth:`monitor.join.LabelJoinStore.snapshot_chunks`,
  each at most :data:`CHUNK_BYTES`);
* ``stream/p/G/jK/i``: chunk ``i`` of journal ``K`` (:func:`journal_chunks`: ``[id, entry]`` pairs).

A record is identified by its :func:`positions` (Kafka offset and index in its message), which the
join store keeps per topic, so nothing is applied twice after a restore.

Examples
--------
>>> cp = Checkpoint(generation=3, chunks=2, journals=[1])
>>> cp.keys("predictions/0")
['predictions/0/3/0', 'predictions/0/3/1', 'predictions/0/3/j0/0']
>>> Checkpoint.from_manifest(cp.manifest()) == Checkpoint(generation=3, chunks=2, journals=[1])
True
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

__all__ = ["CHUNK_BYTES", "MIN_SNAPSHOT_BYTES", "POSITION_BITS", "Checkpoint", "journal_chunks", "positions"]

#: A record's position is ``offset << POSITION_BITS | index in its message`` (messages hold < 16.7M records).
POSITION_BITS = 24
#: Largest snapshot chunk written to the join-state table (below Kafka's default 1 MiB message limit).
CHUNK_BYTES = 256 * 1024
#: A full snapshot is written when the journals since the last one exceed its size (and at least this).
MIN_SNAPSHOT_BYTES = 4 * 1024 * 1024


def positions(origins: Sequence[Any]) -> list[int]:
    """The position of each record, given the Kafka message each came from (``offset()`` as on a
    ``confluent_kafka.Message``; the records of a message are consecutive, with the same message object).

    >>> class M:
    ...     def __init__(self, offset): self._offset = offset
    ...     def offset(self): return self._offset
    >>> a, b = M(7), M(8)
    >>> [p - (7 << POSITION_BITS) for p in positions([a, a, b])]
    [0, 1, 16777216]
    """
    out: list[int] = []
    last: Any = None
    index = 0
    for message in origins:
        if message is last:
            index += 1
        else:
            last, index = message, 0
        out.append((int(message.offset()) << POSITION_BITS) | index)
    return out


@dataclass
class Checkpoint:
    """What the table holds for one partition: snapshot generation, its chunk count, and the chunk count of
    each journal written since."""

    generation: int
    chunks: int
    journals: list[int] = field(default_factory=list)
    snapshot_bytes: int = 0
    journal_bytes: int = 0

    def manifest(self) -> bytes:
        """The manifest written last (``stream/partition``): generation, chunk count, journals."""
        return orjson.dumps({"generation": self.generation, "chunks": self.chunks, "journals": self.journals})

    @classmethod
    def from_manifest(cls, manifest: bytes) -> Checkpoint:
        """The checkpoint a manifest names (sizes unknown until its chunks are read)."""
        man = orjson.loads(manifest)
        return cls(generation=int(man["generation"]), chunks=int(man["chunks"]),
                   journals=[int(n) for n in man.get("journals", [])])

    def keys(self, prefix: str) -> list[str]:
        """Every table key of this checkpoint under ``prefix`` (``stream/partition``), snapshot chunks first."""
        base = f"{prefix}/{self.generation}"
        return [f"{base}/{i}" for i in range(self.chunks)] + [
            f"{base}/j{k}/{i}" for k, n in enumerate(self.journals) for i in range(n)]


def journal_chunks(entries: list[tuple[str, dict[str, Any] | None]]) -> list[bytes]:
    """A drained journal as JSON arrays of ``[id, entry]`` pairs, each at most about :data:`CHUNK_BYTES`."""
    chunks: list[bytes] = []
    current: list[bytes] = []
    size = 2
    for rid, entry in entries:
        item = orjson.dumps([rid, entry])
        if current and size + len(item) + 1 > CHUNK_BYTES:
            chunks.append(b"[" + b",".join(current) + b"]")
            current, size = [], 2
        current.append(item)
        size += len(item) + 1
    chunks.append(b"[" + b",".join(current) + b"]")
    return chunks
