"""The worker checkpoint's restore decision: restored only when every committed offset points to one readable
checkpoint covering exactly the partitions with a commit; otherwise new windows, with the engine untouched.
(tests/integration/test_exactness.py runs the real thing: a SIGKILL on the real broker.)"""

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


def _saved(positions: dict[tuple[str, int], int]) -> tuple[Store, Consumer]:
    store, consumer = Store(), Consumer()
    monitor = _monitor()
    monitor.process("f", [{"record_id": 1, "x": 1.0}, {"record_id": 2, "x": 2.0}])
    cp = Checkpointer(monitor, store, token="t")  # type: ignore[arg-type]
    cp.save(consumer, cp.take(positions), positions)
    return store, consumer


def _restore(store: Store, consumer: Any, partitions: list[int]) -> tuple[Monitor, Any]:
    monitor = _monitor()
    got = Checkpointer(monitor, store, token="u").restore(  # type: ignore[arg-type]
        consumer.committed([TopicPartition("f", p) for p in partitions], timeout=1.0))
    return monitor, got


def test_a_checkpoint_covering_exactly_the_committed_partitions_is_restored() -> None:
    store, consumer = _saved({("f", 0): 5, ("f", 1): 7})
    monitor, got = _restore(store, consumer, [0, 1])
    assert got == {("f", 0): 5, ("f", 1): 7}
    assert monitor.records_processed == {"f": 2}
    [report] = monitor.process("f", [{"record_id": 3, "x": 3.0}])  # the window continues: 2 + 1 records
    assert report.count == 3


def test_partitions_from_elsewhere_mean_new_windows() -> None:
    store, consumer = _saved({("f", 0): 5, ("f", 1): 7})
    monitor, got = _restore(store, consumer, [0])  # half of what the checkpoint covers
    assert got is None and monitor.records_processed == {"f": 0}
    other_store, other = _saved({("f", 2): 9})
    consumer.commits.update(other.commits)  # two checkpoints named by the commits: a rebalance mixed them
    store.docs.update({k + 1000: v for k, v in other_store.docs.items()})
    monitor, got = _restore(store, consumer, [0, 1, 2])
    assert got is None and monitor.records_processed == {"f": 0}


def test_a_missing_or_foreign_checkpoint_means_new_windows() -> None:
    store, consumer = _saved({("f", 0): 5})
    store.docs.clear()  # compacted away
    assert _restore(store, consumer, [0])[1] is None
    assert _restore(Store(), Consumer(), [0])[1] is None  # nothing committed: a first start
    store, consumer = _saved({("f", 0): 5})
    data, n = store.docs[0]
    doc = orjson.loads(data)
    doc["streams"]["f"]["state"]["reference_version"] = "another"  # a snapshot of another reference
    store.docs[0] = (orjson.dumps(doc), n)
    monitor, got = _restore(store, consumer, [0])
    assert got is None and monitor.records_processed == {"f": 0}


def test_an_alert_fired_after_the_checkpoint_stays_open_through_the_restore() -> None:
    store, consumer = _saved({("f", 0): 5})  # no alert in the checkpoint
    monitor = _monitor()
    [report] = monitor.process("f", [{"record_id": 1}, {"record_id": 2}, {"record_id": 3}])  # x missing: fires
    assert [e.status for e in report.events] == ["firing"] and monitor.policy.open_alerts()
    open_before = monitor.policy.open_alerts()
    got = Checkpointer(monitor, store, token="u").restore(  # type: ignore[arg-type]
        consumer.committed([TopicPartition("f", 0)], timeout=1.0))
    assert got == {("f", 0): 5}
    assert monitor.records_processed == {"f": 2}  # the windows are the checkpoint's
    assert monitor.policy.open_alerts() == open_before  # the alert receivers were told about is still open
