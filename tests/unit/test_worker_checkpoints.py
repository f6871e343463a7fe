"""The worker checkpoint's restore decision, per input partition: a partition continues from the state its
commit's checkpoint holds for it at exactly the committed offset; otherwise it starts new windows, and the
other partitions are untouched. (tests/integration/test_exactness.py runs the real thing: a SIGKILL on the
real broker, and a rebalance between workers.)"""

from __future__ import annotations

from typing import Any

import orjson
from confluent_kafka import TopicPartition

from agents.worker.snapshots import Checkpointer, Pointer
from monitor.engine import Monitor
from monitor.spec import parse_spec

SPEC = {"version": 1, "name": "cp", "streams": [{
    "name": "f", "windows": [{"name": "w3", "kind": "count", "size": 3}], "detectors": [], "min_samples": 3,
    "features": [{"name": "x", "type": "numeric"}]}]}
class Store:
    """Checkpoints in a dict, by manifest offset (the broker's part is in the integration test)."""

    timeout = 1.0

    def __init__(self) -> None:
        self.docs: dict[int, tuple[bytes, int]] = {}

    def write(self, key: str, data: bytes) -> Pointer:
        at = len(self.docs) * 10
        self.docs[at] = (data, 1)
        return Pointer(key, at, 1)

    def read(self, pointer: Pointer) -> tuple[bytes, int] | None:
        return self.docs.get(pointer.offset)

    def delete(self, key: str, count: int) -> None:
        pass


class Consumer:
    def __init__(self) -> None:
        self.commits: dict[tuple[str, int], TopicPartition] = {}

    def commit(self, *, offsets: list[TopicPartition], asynchronous: bool) -> None:
        self.commits.update({(tp.topic, tp.partition): tp for tp in offsets})

    def committed(self, partitions: list[TopicPartition], timeout: float) -> list[TopicPartition]:
        return [self.commits.get((tp.topic, tp.partition), TopicPartition(tp.topic, tp.partition, -1001))
                for tp in partitions]


def _monitor() -> Monitor:
    return Monitor(parse_spec(SPEC), clock=lambda: 0.0)


def _checkpointer(monitor: Monitor, store: Store, token: str) -> Checkpointer:
    return Checkpointer(monitor, store, token=token, streams={"f": "f"})  # type: ignore[arg-type]


def _saved(positions: dict[tuple[str, int], int], store: Store | None = None,
           consumer: Consumer | None = None) -> tuple[Store, Consumer]:
    """Two records on each partition of ``positions``, checkpointed with those offsets."""
    store, consumer = store or Store(), consumer or Consumer()
    monitor = _monitor()
    for _, p in positions:
        monitor.process("f", [{"record_id": 1, "x": 1.0}, {"record_id": 2, "x": 2.0}], partition=p)
    cp = _checkpointer(monitor, store, f"t{len(store.docs)}")
    cp.save(consumer, cp.take(positions), positions)
    return store, consumer


def _restore(store: Store, consumer: Any, partitions: list[int]) -> tuple[Monitor, int]:
    monitor = _monitor()
    got = _checkpointer(monitor, store, "u").restore(
        consumer.committed([TopicPartition("f", p) for p in partitions], timeout=1.0))
    return monitor, got


def _fill(monitor: Monitor, partition: int) -> int:
    """Records in the window a third record on ``partition`` closes (3: the restored two and this one)."""
    reports = monitor.process("f", [{"record_id": 3, "x": 3.0}], partition=partition)
    return reports[0].count if reports else 1


def test_each_partition_continues_from_its_checkpoint() -> None:
    store, consumer = _saved({("f", 0): 5, ("f", 1): 7})
    monitor, got = _restore(store, consumer, [0])  # a rebalance gave this worker partition 0 only
    assert got == 1 and monitor.features.partitions_of("f") == [0]
    saved = orjson.loads(store.docs[0][0])
    assert monitor.features.partition_state("f", 0) == saved["partitions"][0][4]
    assert _fill(monitor, 0) == 3  # the window continues: the checkpoint's 2 records + 1


def test_partitions_named_by_different_checkpoints_each_take_their_own() -> None:
    store, consumer = _saved({("f", 0): 5, ("f", 1): 7})
    _saved({("f", 2): 9}, store, consumer)  # a rebalance: partition 2 was checkpointed by another worker
    monitor, got = _restore(store, consumer, [0, 1, 2])
    assert got == 3 and monitor.features.partitions_of("f") == [0, 1, 2]
    assert [monitor.features.partition_state("f", p)["tracks"][0]["filled"] for p in (0, 1, 2)] == [2, 2, 2]


def test_a_missing_foreign_or_other_offset_checkpoint_means_new_windows_there() -> None:
    store, consumer = _saved({("f", 0): 5, ("f", 1): 7})
    consumer.commits[("f", 1)] = TopicPartition("f", 1, 8, metadata=consumer.commits[("f", 1)].metadata)
    monitor, got = _restore(store, consumer, [0, 1])  # partition 1 was committed past its checkpoint
    assert got == 1 and _fill(monitor, 0) == 3 and _fill(monitor, 1) == 1  # 1: new windows on partition 1
    store.docs.clear()  # compacted away
    assert _restore(store, consumer, [0])[1] == 0
    assert _restore(Store(), Consumer(), [0])[1] == 0  # nothing committed: a first start
    store, consumer = _saved({("f", 0): 5})
    data, n = store.docs[0]
    doc = orjson.loads(data)
    doc["partitions"][0][4]["reference_version"] = "another"  # a state of another reference
    store.docs[0] = (orjson.dumps(doc), n)
    monitor, got = _restore(store, consumer, [0])
    assert got == 0 and _fill(monitor, 0) == 1


def test_an_old_checkpoint_is_deleted_only_once_every_partition_it_covered_moved_on() -> None:
    deleted: list[str] = []
    store, consumer = Store(), Consumer()
    store.delete = lambda key, count: deleted.append(key)  # type: ignore[method-assign]
    monitor = _monitor()
    cp = _checkpointer(monitor, store, "w")
    both = {("f", 0): 5, ("f", 1): 7}
    cp.save(consumer, cp.take(both), both)
    cp.save(consumer, cp.take({("f", 0): 6}), {("f", 0): 6})  # partition 1 moved away: its commit names w.1
    assert deleted == []
    cp.save(consumer, cp.take({("f", 0): 7}), {("f", 0): 7})
    assert deleted == ["w.2"]
