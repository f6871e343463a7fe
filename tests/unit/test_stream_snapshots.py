"""Feature-stage snapshots: a run checkpointed after ``k`` records and restored into a fresh engine
reports exactly what an uninterrupted run reports; every state round-trips through JSON; bad
snapshots are refused; a stream's state stays bounded."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.checks import DuplicateFilter
from monitor.errors import StateError
from monitor.spec import MonitorSpec
from monitor.stats import Cardinality
from monitor.stream import EVENT_CLOCK, SNAPSHOT_VERSION, FeatureEngine
from monitor.stream.panes import Pane, StreamState
from monitor.testing.scenarios import duplicate_ids
from monitor.testing.stream import ScenarioStream
from monitor.windows import CountTrack, TimeTrack
from tests.strategies import SplitRun, record_ids, split_runs
from tests.support.snapshot_runs import (
    BASE_STREAM,
    CATEGORICAL,
    COUNT_SLIDING,
    COUNT_TUMBLING,
    NUMERIC,
    TIME_SLIDING,
    TIME_TUMBLING,
    VARIANTS,
    Clock,
    canonical,
    feed,
    make_engine,
    monitor_spec,
    split_and_compare,
    stream_records,
    through_json,
)

# -- the property -----------------------------------------------------------------------------------


@pytest.mark.parametrize("variant", sorted(VARIANTS))
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(run=split_runs(), duplicates=st.sampled_from([100, 100_000, None]))
def test_restored_run_reports_what_an_uninterrupted_run_reports(variant: str, run: SplitRun,
                                                                duplicates: int | None) -> None:
    windows, time = VARIANTS[variant]
    spec = monitor_spec(windows, time, duplicates=duplicates)
    expected, got = split_and_compare(spec, run, processing=time.get("mode") == "processing")
    assert len(got) == len(expected)
    for a, b in zip(got, expected, strict=True):
        assert a == b


def test_the_property_covers_what_it_claims() -> None:
    """On one fixed run of the "all windows" spec, the cases the property is meant to exercise occur:
    ids repeated across the checkpoint, late and out-of-order records, records without an event time,
    windows closing after the restore, in all four windows."""
    spec = monitor_spec(*VARIANTS["all_windows"], duplicates=100_000)
    run = SplitRun(seed=3, n=1200, k=610, batch_sizes=(37, 200))
    records = stream_records(run.seed, run.n)
    ids_before = {r["record_id"] for r in records[:run.k]}
    assert sum(r["record_id"] in ids_before for r in records[run.k:]) > 10
    assert sum("event_time" not in r for r in records) > 10
    expected, got = split_and_compare(spec, run, processing=False)
    assert got == expected
    closed = {(r["window"]["name"], r["window"]["partial"]) for r in got}
    assert {name for name, partial in closed if not partial} == {"c150", "c120s40", "t3", "t4s1"}
    records_after = [r["records"] for r in got]
    assert sum(r["duplicates"] for r in records_after) > 0
    assert sum(r["late"] for r in records_after) > 0 and sum(r["late_excluded"] for r in records_after) > 0
    assert sum(r["missing_event_time"] for r in records_after) > 0
    assert any(r["out_of_order_ratio"] for r in records_after)


@pytest.mark.parametrize("k", [300, 600, 601, 900])
def test_a_restore_around_a_long_gap_skips_the_same_empty_windows(k: int) -> None:
    """500 s without records: at most 100 empty windows per gap are emitted, the rest skipped; a
    checkpoint just before, at or after the gap changes nothing."""
    spec = monitor_spec(*VARIANTS["all_windows"])
    run = SplitRun(seed=7, n=1200, k=k, batch_sizes=(50, 301))
    expected, got = split_and_compare(spec, run, processing=False, gap_at=600)
    assert got == expected
    if k <= 600:
        # About 100 empty windows for each time window (the cap), not the 166 and 500 of the gap.
        assert 150 <= sum(r["count"] == 0 for r in got) <= 210


def _drop_duplicate_ids(s: dict[str, Any]) -> None:
    for gen in ("previous", "current"):
        s["partitions"]["0"]["duplicates"][gen] = {"strings": [], "integers": []}


def _drop_closed_panes(s: dict[str, Any]) -> None:
    for t in s["merge"]["windows"]:  # the panes sliding windows still need, merged over the partitions
        t["closed"] = []


def _forget_watermark(s: dict[str, Any]) -> None:
    s["partitions"]["0"]["watermark"] = None


def _empty_open_panes(s: dict[str, Any]) -> None:
    for t in s["partitions"]["0"]["tracks"]:
        if t["kind"] == "time":
            t["open"] = []


def _forget_first_time(s: dict[str, Any]) -> None:
    for t in s["partitions"]["0"]["tracks"]:
        if t["kind"] == "time":
            t["first_time"] = None
    for t in s["merge"]["windows"]:  # what the merge stage was told of it
        t["first_time"] = None
    for p in s["merge"]["partitions"].values():
        p["first_times"] = {}


def _renumber_count_panes(s: dict[str, Any]) -> None:
    for t in s["partitions"]["0"]["tracks"]:
        if t["kind"] == "count":
            t["pane_index"] += 1


@pytest.mark.parametrize("tamper", [_drop_duplicate_ids, _drop_closed_panes, _forget_watermark, _empty_open_panes,
                                    _forget_first_time, _renumber_count_panes])
def test_the_comparison_notices_a_lost_part_of_the_state(tamper: Callable[[dict[str, Any]], None]) -> None:
    """The property is not vacuous: a snapshot missing any one of these parts gives other reports."""
    spec = monitor_spec(*VARIANTS["all_windows"], duplicates=100_000)
    # first_time only matters before the first pane closes (after ~250 records here)
    run = SplitRun(seed=3, n=1200, k=100 if tamper is _forget_first_time else 610, batch_sizes=(37, 200))
    expected, got = split_and_compare(spec, run, processing=False, tamper=tamper)
    assert got != expected


def test_a_snapshot_before_any_event_time_keeps_the_watermark_unset() -> None:
    spec = monitor_spec(*VARIANTS["all_windows"])
    engine = make_engine(spec, None)
    assert engine.snapshot("s")["partitions"] == {}  # no partition read yet
    no_time = [{k: v for k, v in r.items() if k != "event_time"} for r in stream_records(1, 50)]
    engine.process("s", no_time)
    state = through_json(engine.snapshot("s"))
    assert state["partitions"]["0"]["watermark"] is None and state["records_processed"] == 50
    again = make_engine(spec, None)
    again.restore("s", state)
    assert again.watermark("s") == -math.inf
    rest = stream_records(1, 400)[50:]
    assert canonical(again.process("s", rest) + again.close()) == canonical(engine.process("s", rest) + engine.close())


# -- round trips of each state ----------------------------------------------------------------------


def engine_after(seed: int, n: int, variant: str = "all_windows", duplicates: int | None = 100) -> FeatureEngine:
    spec = monitor_spec(*VARIANTS[variant], duplicates=duplicates)
    clock = Clock() if variant == "processing_time" else None
    engine = make_engine(spec, clock)
    feed(engine, [stream_records(seed, n)[i:i + 97] for i in range(0, n, 97)], clock, 0)
    return engine


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**16), n=st.integers(0, 700), variant=st.sampled_from(sorted(VARIANTS)))
def test_every_state_round_trips(seed: int, n: int, variant: str) -> None:
    """``from_state(to_state(x)).to_state() == to_state(x)`` through JSON, for panes, both kinds of
    track, the duplicate filter, the stream state and the engine's snapshot."""
    engine = engine_after(seed, n, variant)
    rt: StreamState = engine._streams["s"].part(0)
    spec, ref = rt.spec, rt.ref

    def encode(pane: Pane) -> dict[str, Any]:
        return pane.to_state()

    def decode(state: dict[str, Any]) -> Pane:
        return Pane.from_state(spec, ref, state)

    panes: list[dict[str, Any]] = []
    for track in rt.tracks:
        state = through_json(track.to_state(encode))
        fresh: CountTrack[Pane] | TimeTrack[Pane] = (
            CountTrack(track.spec, new_pane=rt.new_pane) if isinstance(track, CountTrack)
            else TimeTrack(track.spec, new_pane=rt.new_pane))
        fresh.load_state(state, decode)
        assert fresh.to_state(encode) == state
        if isinstance(track, CountTrack):
            panes += [state["pane"], *(p for p, _ in state["closed"])]
        else:
            panes += [p for _, p in state["open"]] + [p for _, p in state["closed"] if p is not None]
    for pane_state in panes:
        assert Pane.from_state(spec, ref, through_json(pane_state)).to_state() == pane_state
    assert rt.dedup is not None
    dedup = through_json(rt.dedup.to_state())
    assert DuplicateFilter.from_state(dedup).to_state() == dedup
    stream_state = through_json(rt.to_state())
    other = StreamState(spec, ref)
    other.load_state(stream_state)
    assert other.to_state() == stream_state
    snap = through_json(engine.snapshot("s"))
    again = make_engine(engine.spec, None)
    again.restore("s", snap)
    assert again.snapshot("s") == snap
    merged = [p for w in snap["merge"]["windows"] for _, parts in w["open"] for p in parts.values()]
    merged += [p for w in snap["merge"]["windows"] for _, p, _ in w["closed"] if p is not None]
    assert n == 0 or any(p["records"]["count"] for p in panes + merged)  # not only empty panes


@given(ids=st.lists(st.lists(st.one_of(record_ids, st.integers(2**64, 2**70), st.integers(-(2**70), -(2**63) - 1)),
                             max_size=80), max_size=6),
       capacity=st.sampled_from([2, 10, 100]))
def test_duplicate_filter_round_trip_continues_identically(ids: list[list[Any]], capacity: int) -> None:
    """Restored at any point, the filter flags the same ids as one that was never saved (the eviction
    of a whole generation included); integers beyond 64 bits survive JSON."""
    for cut in range(len(ids) + 1):
        whole = DuplicateFilter(capacity=capacity)
        for batch in ids[:cut]:
            whole.check(batch)
        state = through_json(whole.to_state())
        back = DuplicateFilter.from_state(state)
        assert back.to_state() == state and len(back) == len(whole)
        for batch in ids[cut:]:
            assert back.check(batch).tolist() == whole.check(batch).tolist()
        assert back.to_state() == whole.to_state()


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**16), before=st.sampled_from([3, 10, 50, 200, 380, 1000]),
       after=st.sampled_from([0, 10, 500]), other=st.sampled_from([5, 100, 450, 2000]))
def test_a_restored_cardinality_sketch_evolves_like_the_original(seed: int, before: int, after: int,
                                                                  other: int) -> None:
    """Updates and unions after a restore give the original's estimate and bytes. (A compact image
    fails this: a small sketch's coupons come back in another order, and a union's estimate depends
    on the order.)"""
    rng = np.random.default_rng(seed)

    def values(n: int) -> list[str]:
        return [f"v{x}" for x in rng.integers(0, 2**40, n).tolist()]

    original = Cardinality()
    original.update_many(values(before))
    state = through_json(original.to_state())
    restored = Cardinality.from_state(state)
    saved_again = restored.to_state()
    more, union = values(after), Cardinality()
    union.update_many(values(other))
    for c in (original, restored):
        c.update_many(more)
        c += union
    assert restored.get() == original.get()
    assert restored.to_state() == original.to_state()
    assert saved_again == state


def test_duplicate_filter_refuses_ids_it_cannot_save() -> None:
    d = DuplicateFilter(capacity=100)
    d.check([("a", 1)])
    with pytest.raises(StateError, match="strings or integers"):
        d.to_state()


# -- refusals ---------------------------------------------------------------------------------------


def test_unknown_versions_are_refused_and_change_nothing() -> None:
    engine = engine_after(5, 300)
    snap = through_json(engine.snapshot("s"))
    assert snap["schema_version"] == SNAPSHOT_VERSION == 2
    target = engine_after(6, 200)
    before = target.snapshot("s")
    bad_versions: list[Callable[[dict[str, Any]], None]] = [
        lambda s: s.update(schema_version=1),
        lambda s: s.pop("schema_version"),
        lambda s: s["partitions"]["0"].update(schema_version=99),
        lambda s: s["partitions"]["0"]["tracks"][2].update(schema_version=0),
        lambda s: s["partitions"]["0"]["tracks"][0]["pane"].update(schema_version="1"),
        lambda s: s["partitions"]["0"]["duplicates"].update(schema_version=2),
        lambda s: s["partitions"]["0"]["tracks"][0]["pane"]["records"].update(schema_version=2),
        lambda s: s["partitions"]["0"]["tracks"][0]["pane"]["features"]["score"].update(schema_version=3),
    ]
    for change in bad_versions:
        bad = copy.deepcopy(snap)
        change(bad)
        with pytest.raises(StateError) as info:
            target.restore("s", bad)
        assert isinstance(info.value, ValueError)
        assert "version" in str(info.value)
        assert target.snapshot("s") == before  # nothing half-restored
    with pytest.raises(StateError, match=r"unsupported feature-stage snapshot version 1 \(reads 2\)"):
        target.restore("s", {**snap, "schema_version": 1})


def test_pending_records_are_refused() -> None:
    spec = monitor_spec(*VARIANTS["count_sliding"])
    engine = make_engine(spec, None)
    records = stream_records(2, 10)
    assert engine.process_one("s", records[0]) == []
    with pytest.raises(StateError, match="1 pending records: flush them"):
        engine.snapshot("s")
    saved = make_engine(spec, None).snapshot("s")
    with pytest.raises(StateError, match="pending"):
        engine.restore("s", saved)
    engine.flush()
    assert engine.snapshot("s")["records_processed"] == 1


@pytest.mark.parametrize(("change", "message"), [
    ({"windows": [COUNT_TUMBLING]}, "windows"),
    ({"windows": [COUNT_TUMBLING, {**COUNT_SLIDING, "slide": 60}, TIME_TUMBLING, TIME_SLIDING]},
     "does not match window 'c120s40'"),
    ({"windows": [COUNT_TUMBLING, COUNT_SLIDING, TIME_TUMBLING, {**TIME_SLIDING, "slide": 2}]},
     "does not match window 't4s1'"),
    ({"duplicates": None}, "duplicates setting"),
    ({"duplicates": 200}, "duplicates setting"),
])
def test_a_snapshot_of_another_spec_is_refused(change: dict[str, Any], message: str) -> None:
    windows, time = VARIANTS["all_windows"]
    args: dict[str, Any] = {"duplicates": 100, **change}
    other = monitor_spec(args.pop("windows", windows), time, **args)
    snap = engine_after(5, 300).snapshot("s")
    with pytest.raises(StateError, match=message):
        make_engine(other, None).restore("s", snap)


def test_a_snapshot_taken_with_another_reference_is_refused() -> None:
    snap = engine_after(5, 300).snapshot("s")
    spec = monitor_spec(*VARIANTS["all_windows"])
    without = FeatureEngine(spec, clock=EVENT_CLOCK)
    with pytest.raises(StateError, match="reference"):
        without.restore("s", snap)
    with pytest.raises(StateError, match="stream 's' cannot be restored into stream 'x'"):
        FeatureEngine(MonitorSpec.model_validate({"version": 1, "name": "t", "streams": [
            {**BASE_STREAM, "name": "x", "windows": [COUNT_TUMBLING]}]})).restore("x", snap)


def test_change_detectors_and_rolling_history_are_left_out() -> None:
    """As documented: the evaluation stage's River detectors and rolling-reference history are not in
    the snapshot, and a restore leaves a stream's own ones in place."""
    spec = monitor_spec([COUNT_TUMBLING], {}, detectors=["adwin", "page_hinkley"], rolling_reference=2)
    engine = make_engine(spec, None)
    engine.process("s", stream_records(4, 700))
    rt = engine._streams["s"]
    assert rt.detectors.names and len(rt.history["c150"]) == 2  # they do hold state
    snap = through_json(engine.snapshot("s"))
    text = orjson.dumps(snap).decode()
    assert "adwin" not in text and "history" not in text and "detector" not in text
    detectors, history = rt.detectors, rt.history
    engine.restore("s", snap)
    assert engine._streams["s"].detectors is detectors and engine._streams["s"].history is history


# -- size -------------------------------------------------------------------------------------------


def test_snapshot_size_is_bounded_by_the_windows_not_the_records() -> None:
    """After 100,500 records the state is about as large as after 10,500 (sizes printed): the windows
    hold the same number of panes, each bounded, and the duplicate filter at most ``capacity`` ids.

    Both points are at the same phase of every window (500 records into a 1,000-record pane; 1 s into a
    2 s pane at 100 records/s), so the open panes are equally full, and the bound allowed is 1.25x.
    Measured when written: 111,586 and 120,254 bytes. The windows' part is the same (25 KB for the
    count window's half-full pane, 72 KB for the time window's 6 open and kept panes: value samples,
    lags, sketches); the difference is the duplicate filter, between 1,000 and 2,000 ids by
    construction (1,020 ids, 14 KB, then 1,634 ids, 23 KB)."""
    spec = monitor_spec([{"name": "c1000", "kind": "count", "size": 1000},
                         {"name": "t10s2", "kind": "time", "seconds": 10, "slide": 2}],
                        {"allowed_lateness_seconds": 1.5}, duplicates=2000)
    engine = make_engine(spec, None)
    stream = ScenarioStream(seed=8, changes=[duplicate_ids()])
    fields = ["record_id", "event_time", *NUMERIC, *CATEGORICAL]
    sizes = {}
    done = 0
    for target in (10_500, 100_500):
        while done < target:
            batch = [{k: r[k] for k in fields} | {"session": f"u{done + i}"}
                     for i, r in enumerate(stream.records(500))]
            engine.process("s", batch)
            done += len(batch)
        snap = engine.snapshot("s")
        sizes[target] = len(orjson.dumps(snap))
        assert snap["records_processed"] == target
        assert snap["partitions"]["0"]["tracks"][0]["filled"] == 500
    print(f"snapshot bytes after 10,500 records: {sizes[10_500]:,}; after 100,500: {sizes[100_500]:,}")
    assert sizes[100_500] <= 1.25 * sizes[10_500]
