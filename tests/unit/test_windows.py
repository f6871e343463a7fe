"""Window tracks (count and time, tumbling and sliding) and the engine's window semantics:
lateness, empty windows, batching invariance, closing, pane merges."""

from __future__ import annotations

import math
import random
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

import monitor.stream.engine as engine_module
from monitor.engine import MICRO_BATCH, Monitor
from monitor.reference import ReferenceProfile, build_profile
from monitor.report import WindowReport
from monitor.spec import MonitorSpec, WindowSpec, parse_spec
from monitor.windows import MAX_EMPTY_WINDOWS, ClosedWindow, CountTrack, TimeTrack
from tests.strategies import batch_sizes

# ---------------------------------------------------------------- CountTrack


def count_spec(slide: int, panes: int, sliding: bool) -> WindowSpec:
    return WindowSpec(name="w", kind="count", size=slide * panes, slide=slide if sliding else None)


@settings(max_examples=150, deadline=None)
@given(slide=st.integers(1, 7), panes=st.integers(1, 5), sliding=st.booleans(), sizes=batch_sizes)
def test_count_track_window_k_covers_records_k_slide_to_k_slide_plus_size(
        slide: int, panes: int, sliding: bool, sizes: list[int]) -> None:
    if not sliding:  # tumbling: one pane of the whole window
        slide, panes = slide * panes, 1
    spec = count_spec(slide, panes, sliding)
    size = slide * panes
    track: CountTrack[list[int]] = CountTrack(spec, new_pane=list)
    windows: list[ClosedWindow[list[int]]] = []
    batch_start: list[float] = []  # the clock (= first record index) of the batch each record came in
    offset = 0
    for k in sizes:
        def update(pane: list[int], rows: slice, clock: float, off: int = offset) -> None:
            assert clock == off
            pane.extend(range(off + rows.start, off + rows.stop))
        windows += track.add(k, update, clock=float(offset))
        batch_start += [float(offset)] * k
        offset += k
    total = offset
    n_windows = (total - size) // slide + 1 if total >= size else 0
    assert [w.index for w in windows] == list(range(n_windows))
    for w in windows:
        assert not w.partial and len(w.panes) == panes
        for j, pane in enumerate(w.panes):
            first = w.index * slide + j * slide
            assert pane == list(range(first, first + slide))
        assert w.start == batch_start[w.index * slide]                # clock of its first record
        assert w.end == batch_start[w.index * slide + size - 1]       # clock when its last record came
    rest = track.flush(clock=-1.0)
    if total % slide == 0:
        assert rest == []
    else:  # the open pane, with the closed panes before it, as one partial window
        [w] = rest
        assert w.partial and w.end == -1.0
        last_pane = total // slide
        first_pane = max(0, last_pane - panes + 1)
        assert w.index == first_pane
        assert [r for p in w.panes if p is not None for r in p] == list(range(first_pane * slide, total))


# ---------------------------------------------------------------- TimeTrack


def run_time_track(spec: WindowSpec, times: list[float], sizes: list[int], lateness: float
                   ) -> tuple[list[ClosedWindow[list[int]]], list[ClosedWindow[list[int]]], int]:
    """Feed ``times`` in batches, advancing to (max time - lateness) after each; then flush."""
    track: TimeTrack[list[int]] = TimeTrack(spec, new_pane=list)
    out: list[ClosedWindow[list[int]]] = []
    dropped = 0
    i, b = 0, 0
    high = -math.inf
    while i < len(times):
        k = sizes[b % len(sizes)]
        b += 1
        chunk = np.array(times[i:i + k], dtype=float)

        def update(pane: list[int], rows: NDArray[np.intp], off: int = i) -> None:
            pane.extend((rows + off).tolist())
        dropped += track.add(chunk, update).size
        high = max(high, float(chunk.max()))
        out += track.advance(high - lateness)
        i += k
    return out, track.flush(), dropped


@st.composite
def event_times(draw: st.DrawFn) -> tuple[list[float], float]:
    """Event times (multiples of 0.5 s) growing with gaps, jittered back by less than the lateness,
    the first one the smallest; and the lateness."""
    lateness = draw(st.sampled_from([0.0, 2.0, 5.0]))
    gaps = draw(st.lists(st.integers(0, 24), min_size=1, max_size=80))
    jitter = draw(st.lists(st.integers(0, max(int(lateness * 2) - 1, 0)), min_size=len(gaps), max_size=len(gaps)))
    t, times = 7.0, []
    for g, j in zip(gaps, jitter, strict=True):
        t += g / 2
        times.append(max(7.0, t - j / 2))
    times[0] = 7.0
    return times, lateness


@settings(max_examples=150, deadline=None)
@given(pane_len=st.sampled_from([1.0, 2.5, 4.0]), panes=st.integers(1, 4), data=event_times(), sizes=batch_sizes)
def test_time_track_panes_hold_exactly_their_rows(pane_len: float, panes: int, data: tuple[list[float], float],
                                                  sizes: list[int]) -> None:
    times, lateness = data
    spec = WindowSpec(name="t", kind="time", seconds=pane_len * panes, slide=pane_len if panes > 1 else None)
    closed, flushed, dropped = run_time_track(spec, times, sizes, lateness)
    assert dropped == 0  # nothing is later than the lateness allows
    by_pane: dict[int, list[int]] = {}
    for row, t in enumerate(times):
        by_pane.setdefault(math.floor(t / pane_len), []).append(row)
    first, last = min(by_pane), max(by_pane)
    windows = closed + flushed
    # every pane from the first to the last closes exactly once, empty ones included (gaps here
    # are far below MAX_EMPTY_WINDOWS), each closing the window that ends with it
    assert [w.index + panes - 1 for w in windows] == list(range(first, last + 1))
    for w in windows:
        assert w.start == pytest.approx(w.index * pane_len) and w.end == pytest.approx(w.start + spec.span)
        k = w.index + panes - 1
        assert len(w.panes) == min(panes, k - first + 1)
        for j, pane in enumerate(w.panes):
            rows = by_pane.get(k - len(w.panes) + 1 + j)
            assert pane == rows  # None for an empty pane
    # a window is partial when it began before the first record (only partly covered)
    assert all(w.partial == (w.start < min(times) - 1e-9) for w in closed)
    assert flushed == [] or flushed[-1].partial


def test_time_track_emits_empty_windows_between_records() -> None:
    spec = WindowSpec(name="t", kind="time", seconds=10)
    track: TimeTrack[list[int]] = TimeTrack(spec, new_pane=list)

    def update(pane: list[int], rows: NDArray[np.intp]) -> None:
        pane.extend(rows.tolist())
    track.add(np.array([5.0]), update)
    track.add(np.array([35.0]), update)
    got = [(w.index, w.panes) for w in track.advance(40.0)]
    assert got == [(0, [[0]]), (1, [None]), (2, [None]), (3, [[0]])]


def test_time_track_bounds_empty_windows_when_nothing_is_open() -> None:
    spec = WindowSpec(name="t", kind="time", seconds=10)
    track: TimeTrack[list[int]] = TimeTrack(spec, new_pane=list)

    def update(pane: list[int], rows: NDArray[np.intp]) -> None:
        pane.extend(rows.tolist())
    track.add(np.array([5.0]), update)
    assert [w.index for w in track.advance(10.0)] == [0]
    gap = MAX_EMPTY_WINDOWS + 37
    empty = track.advance(10.0 * (gap + 1))  # panes 1..gap have ended, all empty
    assert len(empty) == MAX_EMPTY_WINDOWS
    assert [w.index for w in empty] == list(range(1, MAX_EMPTY_WINDOWS + 1))
    assert all(w.panes == [None] for w in empty)
    assert track.skipped == gap - MAX_EMPTY_WINDOWS
    # the track carries on after the skipped stretch
    track.add(np.array([10.0 * (gap + 1) + 3]), update)
    [w] = track.advance(10.0 * (gap + 2))
    assert (w.index, w.panes) == (gap + 1, [[0]])


# ---------------------------------------------------------------- engine helpers


def make_spec(windows: list[dict[str, Any]], *, thresholds: dict[str, Any] | None = None,
              **stream: Any) -> MonitorSpec:
    return parse_spec({
        "version": 1, "name": "t", "thresholds": thresholds or {},
        "streams": [{
            "name": "s", "windows": windows, **stream,
            "features": [
                {"name": "x", "type": "numeric", "range": {"min": 0, "max": 100}},
                {"name": "c", "type": "categorical", "categories": ["a", "b", "c"]},
                {"name": "b", "type": "boolean"},
            ],
        }],
    })


def by_window(reports: list[WindowReport]) -> dict[tuple[str, int], WindowReport]:
    out: dict[tuple[str, int], WindowReport] = {}
    for r in reports:
        key = (r.window["name"], r.window["index"])
        assert key not in out, f"window {key} reported twice"
        out[key] = r
    return out


def assert_same(a: Any, b: Any, path: str = "") -> None:
    """Structural equality; floats up to rounding (a different batching sums in another order)."""
    if isinstance(a, dict) and isinstance(b, dict):
        assert a.keys() == b.keys(), path
        for k in a:
            assert_same(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, list | tuple) and isinstance(b, list | tuple):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same(x, y, f"{path}[{i}]")
    elif isinstance(a, float) and isinstance(b, float) and not (a == b or (math.isnan(a) and math.isnan(b))):
        assert a == pytest.approx(b, rel=1e-9, abs=1e-12), path
    else:
        assert type(a) is type(b) and a == b, (path, a, b)


# ---------------------------------------------------------------- engine: event time and lateness


def timed(times: list[float], start_id: int = 0) -> list[dict[str, Any]]:
    return [{"record_id": start_id + i, "event_time": t, "x": float(t), "c": "a", "b": True}
            for i, t in enumerate(times)]


LATE_TIMES = [1.0, 2.0, 3.0, 12.0, 4.0, 13.0, 8.0, 14.0, 30.0]  # 4.0 is late (watermark 12 - 5 = 7)


def late_engine() -> Monitor:
    spec = make_spec([{"name": "t10", "kind": "time", "seconds": 10}, {"name": "c8", "kind": "count", "size": 8}],
                     time={"allowed_lateness_seconds": 5})
    return Monitor(spec, clock=lambda: 100.0)


def test_late_records_counted_in_count_windows_but_kept_out_of_time_windows() -> None:
    engine = late_engine()
    reports: list[WindowReport] = []
    for rec in timed(LATE_TIMES):
        reports += engine.process("s", [rec])
    got = by_window(reports)
    count = got[("c8", 0)]
    assert count.count == 8
    assert count.records["late"] == 1 and count.records["late_ratio"] == 1 / 8
    assert count.records["out_of_order_ratio"] == 2 / 8  # 4.0 (after 12) and 8.0 (after 13)
    mc = count.features["x"].moments
    assert mc is not None and mc["count"] == 8
    assert mc["mean"] == pytest.approx(np.mean(LATE_TIMES[:8]))  # the late 4.0 is in the count window
    # time windows [0, 10) and [10, 20) closed when the watermark reached 30 (30 - 5 >= 20)
    t0, t1 = got[("t10", 0)], got[("t10", 1)]
    assert (t0.count, t1.count) == (4, 3)
    m0 = t0.features["x"].moments
    assert m0 is not None
    assert (m0["count"], m0["min"], m0["max"]) == (4, 1.0, 8.0)   # 1, 2, 3 and 8 (8 is not late): no 4
    assert m0["mean"] == pytest.approx(np.mean([1.0, 2.0, 3.0, 8.0]))
    assert t0.features["x"].count == 4 and t0.records["late"] == 0
    assert t0.records["out_of_order_ratio"] == 1 / 4        # 8.0 came after 13.0
    # the excluded record is counted once, in some time window
    assert t0.records["late_excluded"] + t1.records["late_excluded"] == 1


def test_late_ratio_of_time_windows_reflects_excluded_records() -> None:
    engine = late_engine()
    reports: list[WindowReport] = []
    for rec in timed(LATE_TIMES):
        reports += engine.process("s", [rec])
    reports += engine.close()
    windows = [r for r in reports if r.window["name"] == "t10"]
    with_late = [r for r in windows if r.records["late_excluded"]]
    assert len(with_late) == 1
    [r] = with_late
    assert r.records["late_ratio"] == r.records["late_excluded"] / (r.count + r.records["late_excluded"])


def test_time_windows_close_on_watermark_minus_lateness() -> None:
    spec = make_spec([{"name": "t10", "kind": "time", "seconds": 10}], time={"allowed_lateness_seconds": 5})
    engine = Monitor(spec, clock=lambda: 0.0)
    assert engine.process("s", timed([1.0, 9.0, 14.9])) == []  # horizon 9.9 < 10: [0, 10) stays open
    assert engine.tick(1e9) == []                              # event time: the clock closes nothing
    [r] = engine.process("s", timed([15.0], start_id=10))      # horizon 10: [0, 10) ends
    # partial: the first record (t=1) came after the window's start, so it is only partly covered
    assert (r.window["index"], r.count, r.window["partial"]) == (0, 2, True)


def test_out_of_order_ratio_alerts_when_configured() -> None:
    spec = make_spec([{"name": "c6", "kind": "count", "size": 6}], thresholds={"out_of_order_ratio": {"warning": 0.3}},
                     min_samples=6)
    engine = Monitor(spec, clock=lambda: 20.0)
    [r] = engine.process("s", timed([10.0, 12.0, 11.0, 15.0, 14.0, 16.0]))
    assert r.records["out_of_order_ratio"] == 2 / 6 and r.records["late_ratio"] == 0.0
    [a] = r.alerts
    assert (a.check, a.severity, a.value) == ("out_of_order_ratio", "warning", 2 / 6)
    # unconfigured, a one-partition stream has the default levels 0.05 / 0.20 (expected share 0)...
    plain = Monitor(make_spec([{"name": "c6", "kind": "count", "size": 6}], min_samples=6), clock=lambda: 20.0)
    [r] = plain.process("s", timed([10.0, 12.0, 11.0, 15.0, 14.0, 16.0]))
    assert [(a.check, a.severity) for a in r.alerts] == [("out_of_order_ratio", "critical")]
    # ...and on several partitions (interleaved: out of order normally) the ratio is reported but raises nothing
    plain = Monitor(make_spec([{"name": "c6", "kind": "count", "size": 6}], min_samples=6, partitions=3),
                    clock=lambda: 20.0)
    [r] = plain.process("s", timed([10.0, 12.0, 11.0, 15.0, 14.0, 16.0]))
    assert r.records["out_of_order_ratio"] == 2 / 6 and r.alerts == ()


def test_engine_emits_empty_time_windows_between_records() -> None:
    spec = make_spec([{"name": "t10", "kind": "time", "seconds": 10}], time={"allowed_lateness_seconds": 0})
    engine = Monitor(spec, clock=lambda: 0.0)
    assert engine.process("s", timed([5.0])) == []
    reports = engine.process("s", timed([35.0], start_id=1))
    assert [(r.window["index"], r.count) for r in reports] == [(0, 1), (1, 0), (2, 0)]
    for r in reports[1:]:
        assert r.alerts == () and r.features["x"].count == 0 and r.drift == {}


def test_event_time_jump_emits_at_most_max_empty_windows() -> None:
    spec = make_spec([{"name": "t10", "kind": "time", "seconds": 10}], time={"allowed_lateness_seconds": 0})
    engine = Monitor(spec, clock=lambda: 0.0)
    engine.process("s", timed([0.0]))
    reports = engine.process("s", timed([1e5], start_id=1))
    assert len(reports) <= MAX_EMPTY_WINDOWS + 1


def test_out_of_order_record_within_lateness_before_the_first_pane_is_kept() -> None:
    spec = make_spec([{"name": "t10", "kind": "time", "seconds": 10}], time={"allowed_lateness_seconds": 30})
    engine = Monitor(spec, clock=lambda: 0.0)
    reports = engine.process("s", timed([100.0]))
    reports += engine.process("s", timed([95.0], start_id=1))  # 5 s behind the watermark: not late
    reports += engine.process("s", timed([200.0], start_id=2))
    got = by_window(reports)
    assert ("t10", 9) in got and got[("t10", 9)].count == 1
    assert all(r.records["late_excluded"] == 0 for r in reports)


# ---------------------------------------------------------------- engine: batching invariance

INVARIANCE_WINDOWS = [
    {"name": "c50", "kind": "count", "size": 50},
    {"name": "c60s20", "kind": "count", "size": 60, "slide": 20},
    {"name": "t10", "kind": "time", "seconds": 10},
    {"name": "t20s5", "kind": "time", "seconds": 20, "slide": 5},
]


def clean_rows(n: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    return [{"x": rng.gauss(50, 15), "c": rng.choice("aab"), "b": rng.random() < 0.3} for _ in range(n)]


@pytest.fixture(scope="module")
def small_reference() -> ReferenceProfile:
    spec = make_spec(INVARIANCE_WINDOWS)
    rows = clean_rows(3000, seed=11)
    return build_profile(spec.streams[0], lambda: iter(rows), source={"kind": "test"})


def messy_stream(n: int, seed: int, lateness: float) -> list[dict[str, Any]]:
    """Records with event times that grow with jitter inside the lateness (never late), some without a
    time, missing/wrong-typed values, repeated ids and unexpected fields."""
    rng = random.Random(seed)
    out: list[dict[str, Any]] = []
    t = 1000.0
    for i in range(n):
        t += rng.choice([0.0, 0.05, 0.1, 0.3, 0.7])
        rec: dict[str, Any] = {"record_id": i if rng.random() > 0.03 else rng.randrange(max(i, 1))}
        if i == 0 or rng.random() > 0.05:
            rec["event_time"] = t if i == 0 else max(1000.0, t - rng.uniform(0, lateness * 0.9))
        rec["x"] = rng.choice([rng.gauss(55, 15), rng.gauss(50, 15), None, "bad", 150.0, float(rng.randint(0, 99))])
        rec["c"] = rng.choice(["a", "b", "a", "c", "d", 3, None, True])
        if rng.random() > 0.1:
            rec["b"] = rng.random() < 0.4
        if rng.random() < 0.02:
            rec["surprise"] = 1
        out.append(rec)
    return out


def run_batched(spec: MonitorSpec, ref: ReferenceProfile, records: list[dict[str, Any]], how: str,
                seed: int = 0) -> list[WindowReport]:
    engine = Monitor(spec, references={"s": ref}, clock=lambda: 5000.0)
    reports: list[WindowReport] = []
    if how == "one":
        reports += engine.process("s", records)
    elif how == "random":
        rng = random.Random(seed)
        i = 0
        while i < len(records):
            k = rng.choice([1, 2, 3, 7, 19, 64, 150])
            reports += engine.process("s", records[i:i + k])
            i += k
    else:
        for rec in records:
            reports += engine.process_one("s", rec)
        reports += engine.flush()
    return reports + engine.close()


@pytest.mark.parametrize("seed", [1, 2])
def test_batching_does_not_change_any_report(seed: int, small_reference: ReferenceProfile,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    spec = make_spec(INVARIANCE_WINDOWS, min_samples=20, time={"allowed_lateness_seconds": 3})
    # A smaller buffer than the engine's keeps the stream short; the logic does not depend on the size.
    monkeypatch.setattr(engine_module, "MICRO_BATCH", min(MICRO_BATCH, 1024))
    records = messy_stream(3 * engine_module.MICRO_BATCH + 137, seed=seed, lateness=3.0)  # several micro-batches
    one = by_window(run_batched(spec, small_reference, records, "one"))
    names = {name for name, _ in one}
    assert names == {w["name"] for w in INVARIANCE_WINDOWS}
    assert sum(r.records["duplicates"] for (name, _), r in one.items() if name == "c50") > 0
    assert any(r.alerts for r in one.values())  # the messy data raises alerts: they are compared too
    assert all(r.records["late_excluded"] == 0 and r.records["late"] == 0 for r in one.values())
    for how in ("random", "process_one"):
        other = by_window(run_batched(spec, small_reference, records, how, seed=seed))
        assert other.keys() == one.keys(), how
        for key, report in one.items():
            assert_same(other[key].to_dict(), report.to_dict(), f"{how} {key}")


def test_batching_does_not_change_where_late_records_are_counted(small_reference: ReferenceProfile) -> None:
    spec = make_spec([{"name": "t10", "kind": "time", "seconds": 10}], min_samples=1,
                     time={"allowed_lateness_seconds": 5})
    records = timed([*LATE_TIMES, 41.0, 52.0])
    one = by_window(run_batched(spec, small_reference, records, "one"))
    each = by_window(one_by_one(spec, small_reference, records))
    assert one.keys() == each.keys()
    for key, report in one.items():
        assert_same(each[key].to_dict(), report.to_dict(), str(key))


def one_by_one(spec: MonitorSpec, ref: ReferenceProfile, records: list[dict[str, Any]]) -> list[WindowReport]:
    engine = Monitor(spec, references={"s": ref}, clock=lambda: 5000.0)
    reports: list[WindowReport] = []
    for rec in records:
        reports += engine.process("s", [rec])
    return reports + engine.close()


# ---------------------------------------------------------------- engine: close()


def test_close_emits_open_windows_as_partial() -> None:
    spec = make_spec([{"name": "c10", "kind": "count", "size": 10}, {"name": "t10", "kind": "time", "seconds": 10}],
                     time={"allowed_lateness_seconds": 0})
    engine = Monitor(spec, clock=lambda: 0.0)
    reports = engine.process("s", timed([float(t) for t in range(15)]))
    got = by_window(reports)
    assert set(got) == {("c10", 0), ("t10", 0)}
    assert not got[("c10", 0)].window["partial"] and not got[("t10", 0)].window["partial"]
    closing = by_window(engine.close())
    assert set(closing) == {("c10", 1), ("t10", 1)}
    for r in closing.values():
        assert r.window["partial"] is True and r.count == 5
        assert r.records["volume_deviation"] is None  # a partial window says nothing about volume
    assert closing[("t10", 1)].features["x"].moments is not None
    assert closing[("t10", 1)].features["x"].moments["min"] == 10.0
    assert engine.close() == []  # nothing left


def test_close_emits_the_open_processing_time_window() -> None:
    spec = make_spec([{"name": "t60", "kind": "time", "seconds": 60}], time={"mode": "processing"})
    engine = Monitor(spec, clock=lambda: 30.0)
    assert engine.process("s", [{"record_id": i, "x": 1.0} for i in range(3)]) == []
    [r] = engine.close()
    assert r.window["partial"] is True and r.count == 3 and r.window["index"] == 0


# ---------------------------------------------------------------- engine: pane merge == direct


def test_sliding_count_window_equals_tumbling_window_over_the_same_records(
        small_reference: ReferenceProfile) -> None:
    sliding = make_spec([{"name": "w", "kind": "count", "size": 300, "slide": 100}], min_samples=50)
    tumbling = make_spec([{"name": "w", "kind": "count", "size": 300}], min_samples=50)
    rng = random.Random(5)
    records = [{"record_id": i, **r} for i, r in enumerate(clean_rows(1000, seed=4))]
    for i, r in enumerate(records):  # some quality problems too
        if rng.random() < 0.05:
            r["x"] = None
        if i % 97 == 0:
            r["c"] = "zz"
    reports = Monitor(sliding, references={"s": small_reference}, clock=lambda: 0.0).process("s", records)
    assert [r.window["index"] for r in reports] == list(range(8))
    for k, report in enumerate(reports):
        [direct] = Monitor(tumbling, references={"s": small_reference}, clock=lambda: 0.0).process(
            "s", records[100 * k:100 * k + 300])
        assert report.count == direct.count == 300
        assert_same(report.to_dict()["features"], direct.to_dict()["features"], f"window {k}")
        assert_same(report.records, direct.records, f"window {k}")
        assert report.drift.keys() == direct.drift.keys() == {"x", "c", "b"}
        for name, methods in direct.drift.items():
            assert methods.keys() == report.drift[name].keys() and methods
            for method, d in methods.items():
                mine = report.drift[name][method]
                assert d.statistic is not None and mine.statistic is not None
                assert mine.statistic == pytest.approx(d.statistic, rel=1e-9, abs=1e-12), (k, name, method)
                if d.p_value is None:
                    assert mine.p_value is None
                else:
                    assert mine.p_value == pytest.approx(d.p_value, rel=1e-9, abs=1e-300)
                assert (mine.drifted, mine.sample_size) == (d.drifted, d.sample_size)
        def alerts(r: WindowReport) -> list[tuple[Any, ...]]:
            return sorted((a.feature or "", a.check, a.severity, a.value) for a in r.alerts)
        assert alerts(report) == alerts(direct)
