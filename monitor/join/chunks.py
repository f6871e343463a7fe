"""A join store's full state as size-limited chunks (snapshots for the worker's checkpoint table)."""

from __future__ import annotations

import zlib
from collections.abc import Iterable

import orjson

from monitor.join.entries import JOIN_STATE_VERSION
from monitor.join.store import LabelJoinStore

__all__ = ["from_chunks", "snapshot_chunks"]


def snapshot_chunks(store: LabelJoinStore, max_bytes: int) -> list[bytes]:
    """The full state as orjson chunks of at most ``max_bytes`` each, for size-limited stores.

    Chunk 0 holds the store-wide state (config, counters, latency
    histogram, offsets); the others hold entries, packed greedily. Every
    chunk names its index, the number of chunks and a checksum of chunk 0,
    so :func:`from_chunks` rejects a missing chunk or a mix of snapshots.
    A chunk is larger than ``max_bytes`` only when a single item is: chunk 0
    (about 2-5 kB with a full histogram) or one entry with a large payload.
    """
    if max_bytes < 1:
        raise ValueError("max_bytes must be >= 1")
    head_body = orjson.dumps({**store.meta(), "config": store.config()})
    snap = zlib.crc32(head_body)
    encoded = [orjson.dumps(e) for e in store.entries()]
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


def from_chunks(chunks: Iterable[bytes]) -> LabelJoinStore:
    """Rebuild a store from :func:`snapshot_chunks` (the chunks in any order)."""
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
    return LabelJoinStore.from_state({**head, "entries": entries})
