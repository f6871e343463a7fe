"""Windows across partitions: one evaluation per stream window, whatever the number of workers.

The same partitioned input gives the same windows whether one engine reads every partition or
several "workers" (engines owning some partitions each) send their panes, through JSON, to one
merge stage, in any interleaving and batching; a partition restored from its checkpoint and read
again from there changes nothing (panes sent twice are merged once); idle partitions stop holding
windows back; count windows hold ``size`` records across partitions.
"""

from __future__ import annotations

import random
import zlib
from typing import Any

import orjson
import pytest

from monitor.report import WindowReport
from monitor.stream import EVENT_CLOCK, FeatureEngine
from monitor.stream.merge import PartitionUpdate
from tests.support.snapshot_runs import REFERENCE, VARIANTS, canonical, monitor_spec, stream_records

PARTITIONS = 3
EVENT_VARIANTS = ["count_tumbling", "count_sliding", "time_tumbling", "time_sliding", "all_windows"]


def partition_of(record: dict[str, Any]) -> int:
    return zlib.crc32(str(record["record_id"]).encode()) % PARTITIONS


def split(records: list[dict[str, Any]]) -> dict[int, list[dict[str, Any]]]:
    parts: dict[int, list[dict[str, Any]]] = {p: [] for p in range(PARTITIONS)}
    for r in records:
        parts[partition_of(r)].append(r)
    return parts


def engine(variant: str) -> FeatureEngine:
    windows, time = VARIANTS[variant]
    return FeatureEngine(monitor_spec(windows, time), references={"s": REFERENCE}, clock=EVENT_CLOCK,
                         partitions={"s": PARTITIONS})


def batches(records: list[dict[str, Any]], size: int) -> list[list[dict[str, Any]]]:
    return [records[i:i + size] for i in range(0, len(records), size)]


def interleave(queues: dict[Any, list[Any]], rng: random.Random) -> list[tuple[Any, Any]]:
    """Every queue's items in its own order, the queues interleaved at random."""
    out = []
    live = {k: list(v) for k, v in queues.items() if v}
    while live:
        k = rng.choice(sorted(live, key=str))
        out.append((k, live[k].pop(0)))
        if not live[k]:
            del live[k]
    return out


def rounded(x: Any) -> Any:
    """Floats to 10 significant digits: merging partial sums in another order (another batching)
    changes the last bits of a variance."""
    if isinstance(x, float):
        return float(f"{x:.10g}")
    if isinstance(x, dict):
        return {k: rounded(v) for k, v in x.items()}
    if isinstance(x, list):
        return [rounded(v) for v in x]
    return x


def by_window(reports: list[WindowReport]) -> list[Any]:
    """The windows' profiles in window order, without the alert policy's ids: the policy sees the windows of
    different window specs in the order they close, which depends on the partitions' progress (one incident
    spans window specs, and its id names the window that opened it)."""
    rows = [rounded({k: v for k, v in r.items() if k != "events"}) for r in canonical(reports)]
    for row in rows:
        for verdict in row.get("alerts", []):
            if isinstance(verdict, dict):
                verdict.pop("alert_id", None)
    return sorted(rows, key=lambda r: (r["window"]["name"], r["window"]["index"]))


def one_engine(variant: str, parts: dict[int, list[dict[str, Any]]], size: int, seed: int) -> list[WindowReport]:
    eng = engine(variant)
    reports: list[WindowReport] = []
    for p, batch in interleave({p: batches(rs, size) for p, rs in parts.items()}, random.Random(seed)):
        reports += eng.process("s", batch, partition=p)
    return reports + eng.close()


def workers(variant: str, parts: dict[int, list[dict[str, Any]]], owners: list[set[int]], sizes: list[int],
            seed: int) -> list[WindowReport]:
    """Engines owning ``owners[i]`` partitions read them in batches of ``sizes[i]``; their updates go through
    JSON to one merge engine, interleaved at random."""
    engines = [engine(variant) for _ in owners]
    merger = engine(variant)
    rng = random.Random(seed)
    queues = {(i, p): batches(parts[p], sizes[i]) for i, own in enumerate(owners) for p in own}
    updates: dict[int, list[PartitionUpdate]] = {i: [] for i in range(len(owners))}
    for (i, p), batch in interleave(queues, rng):
        updates[i] += engines[i].update("s", batch, partition=p)
    for i, eng in enumerate(engines):
        updates[i] += eng.final_updates()
    reports: list[WindowReport] = []
    # The merge reads each worker's updates in order (one Kafka partition keyed by stream), interleaved.
    for _, u in interleave({i: us for i, us in updates.items()}, rng):
        reports += merger.merge(merger.decode_update(orjson.loads(orjson.dumps(u.to_state()))))
    return reports + merger.close_merge()


@pytest.mark.parametrize("variant", EVENT_VARIANTS)
def test_windows_do_not_depend_on_workers_batching_or_interleaving(variant: str) -> None:
    parts = split(stream_records(7, 2400))
    expected = by_window(one_engine(variant, parts, 50, seed=1))
    assert expected and all(r["count"] > 0 for r in expected if not r["window"]["partial"])
    assert by_window(one_engine(variant, parts, 173, seed=2)) == expected
    assert by_window(workers(variant, parts, [{0, 2}, {1}], [37, 91], seed=3)) == expected
    assert by_window(workers(variant, parts, [{0}, {1}, {2}], [500, 11, 64], seed=4)) == expected


def test_count_windows_hold_size_records_across_partitions() -> None:
    parts = split(stream_records(8, 3000, messy=False))
    reports = one_engine("count_tumbling", parts, 40, seed=5)
    complete = [r for r in reports if not r.summary.window["partial"]]
    size = 150  # COUNT_TUMBLING: 50 records of each of the 3 partitions
    assert complete and {r.count for r in complete} == {size}
    assert sum(r.count for r in reports) == 3000


def test_a_partition_read_again_from_its_checkpoint_changes_nothing() -> None:
    """A worker restores one partition's state from a checkpoint and reads it again from there: the
    panes it sends twice are merged once."""
    variant = "all_windows"
    parts = split(stream_records(9, 1800))
    expected = by_window(one_engine(variant, parts, 60, seed=6))
    first, merger = engine(variant), engine(variant)
    reports: list[WindowReport] = []
    p0 = batches(parts[0], 60)
    saved = None
    for i, (p, batch) in enumerate(interleave({p: batches(rs, 60) for p, rs in parts.items() if p}, random.Random(7))):
        for u in first.update("s", batch, partition=p):
            reports += merger.merge(u)
        if i < len(p0):
            for u in first.update("s", p0[i], partition=0):
                reports += merger.merge(merger.decode_update(orjson.loads(orjson.dumps(u.to_state()))))
            if i == 5:
                saved = orjson.loads(orjson.dumps(first.partition_state("s", 0)))
    assert saved is not None
    # The worker dies; partition 0 restarts from the checkpoint taken after its 6th batch.
    again = engine(variant)
    again.load_partition("s", 0, saved)
    updates = [u for batch in p0[6:] for u in again.update("s", batch, partition=0)]
    updates += [u for u in again.final_updates() if u.partition == 0]
    for u in updates:
        reports += merger.merge(u)
    for u in first.final_updates():
        if u.partition != 0:
            reports += merger.merge(u)
    reports += merger.close_merge()
    assert by_window(reports) == expected


class Wall:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def test_an_idle_partition_stops_holding_windows_back_its_time_following_the_wall_clock() -> None:
    windows, time = VARIANTS["time_tumbling"]  # windows of 3 s, 1.5 s of allowed lateness
    wall = Wall()
    eng = FeatureEngine(monitor_spec(windows, time), references={"s": REFERENCE}, clock=EVENT_CLOCK,
                        partitions={"s": 2}, wall=wall)
    records = stream_records(11, 1200, messy=False)  # 12 s of event time
    assert eng.process("s", records[:600], partition=0) == []  # partition 1 has said nothing: nothing closes
    # Idle: partition 1 stands where the stream stands (partition 0's 6 s - 1.5 s) and moves with the wall clock.
    [first] = eng.set_idle("s", 1)
    assert first.summary.window["start"].endswith("00:00:00.000Z") and first.count > 0
    assert eng.process("s", records[600:], partition=0) == []  # partition 0 runs ahead; partition 1 holds at 4.5 s
    wall.now += 2.0
    [second] = eng.advance("s")  # 6.5 s: the window [3 s, 6 s) closes
    assert second.count > 0
    wall.now += 60.0
    [third] = eng.advance("s")  # far on the wall clock: partition 0 (at 10.5 s) holds the rest back
    assert third.count > 0
    # Partition 1 comes back with old records: the windows that closed without it count them as late.
    late = [{**r, "record_id": f"late-{i}"} for i, r in enumerate(records[:30])]
    eng.process("s", late, partition=1)
    rest = eng.close()
    assert sum(r.summary.records["late_excluded"] for r in rest) >= 30


def test_a_stream_idle_on_every_partition_closes_its_windows_on_the_wall_clock() -> None:
    windows, time = VARIANTS["time_tumbling"]
    wall = Wall()
    eng = FeatureEngine(monitor_spec(windows, time), references={"s": REFERENCE}, clock=EVENT_CLOCK,
                        partitions={"s": 1}, wall=wall)
    records = stream_records(12, 400, messy=False)  # 4 s of event time: one window closed, one open
    closed = eng.process("s", records, partition=0)
    assert eng.set_idle("s", 0) == []
    wall.now += 30.0  # the stream stopped dead: the open window closes, then empty ones (volume: 0 records)
    later = eng.advance("s")
    assert len(closed) + len(later) >= 3 and later[0].count > 0 and later[-1].count == 0
