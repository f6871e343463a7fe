"""The label join store: joins, TTL, bounds, counters, latency summary, snapshots, journal replay, restarts."""

from __future__ import annotations

import json
import math
import random
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.join import (
    COUNTERS,
    LATENCY_BINS_PER_DECADE,
    META_KEY,
    LabelJoinStore,
    LatencyHistogram,
    PendingPrediction,
    combined_stats,
)

TTL = 5.0


def pred(rid: str, t: float, offset: int = -1, score: float = 0.5) -> PendingPrediction:
    return PendingPrediction(rid, "fraud", "v1", t, {"score": score}, offset)


def _json(x: Any) -> Any:
    return json.loads(json.dumps(x))  # what a checkpoint store hands back


# -- examples -------------------------------------------------------------------------------------------------------


def test_joins_in_order() -> None:
    s = LabelJoinStore(ttl_seconds=60, max_pending=10, max_orphans=10)
    assert s.add_prediction(pred("a", 100.0), now=100.0) is None
    assert s.add_prediction(pred("b", 101.0), now=101.0) is None
    j = s.add_label("b", "fraud", label_time=131.0, now=131.0)
    assert j is not None and j.record_id == "b" and j.label == "fraud" and j.latency_seconds == 30.0
    assert j.prediction == pred("b", 101.0) and j.label_time == 131.0
    assert [p.record_id for p in s.pending()] == ["a"]
    assert s.counters["joined"] == 1 and s.n_orphans == 0


def test_label_before_prediction_joins_when_the_prediction_comes() -> None:
    s = LabelJoinStore(ttl_seconds=60, max_pending=10, max_orphans=10)
    assert s.add_label("x", 1, label_time=50.0, now=50.0) is None
    assert s.n_orphans == 1 and s.n_pending == 0
    j = s.add_prediction(pred("x", 45.0), now=51.0)
    assert j is not None and j.label == 1 and j.latency_seconds == 5.0
    assert s.n_orphans == 0 and s.n_pending == 0
    assert s.stats()["labels"] == 1 and s.stats()["joined"] == 1


def test_ttl_expiry_exactly_at_the_boundary() -> None:
    s = LabelJoinStore(ttl_seconds=10, max_pending=10, max_orphans=10)
    s.add_prediction(pred("p", 100.0), now=100.0)
    s.add_label("orphan", 0, label_time=100.0, now=100.0)
    # age == ttl: still live, and still joins
    assert s.expire(now=110.0) == []
    assert s.n_pending == 1 and s.n_orphans == 1
    just_after = math.nextafter(110.0, math.inf)
    assert [p.record_id for p in s.expire(now=just_after)] == ["p"]
    assert s.n_pending == 0 and s.n_orphans == 0
    assert s.counters["expired_predictions"] == 1 and s.counters["expired_orphan_labels"] == 1
    # a label exactly ttl behind its prediction joins, even after expire at that instant
    s.add_prediction(pred("q", 200.0), now=200.0)
    assert s.expire(now=210.0) == []
    j = s.add_label("q", 1, label_time=210.0, now=210.0)
    assert j is not None and j.latency_seconds == 10.0


def test_expiry_follows_event_time_not_arrival_order() -> None:
    s = LabelJoinStore(ttl_seconds=10, max_pending=10, max_orphans=10)
    for rid, t in [("late", 50.0), ("early", 10.0), ("mid", 30.0), ("new", 55.0)]:
        s.add_prediction(pred(rid, t), now=55.0)
    assert [p.record_id for p in s.expire(now=45.0)] == ["early", "mid"]
    assert [p.record_id for p in s.pending()] == ["late", "new"]


def test_duplicates_are_counted() -> None:
    s = LabelJoinStore(ttl_seconds=60, max_pending=10, max_orphans=10)
    s.add_prediction(pred("a", 1.0, score=0.1), now=1.0)
    s.add_prediction(pred("a", 2.0, score=0.2), now=2.0)  # replaces the first
    assert s.counters["duplicate_predictions"] == 1 and s.n_pending == 1
    j = s.add_label("a", 1, label_time=3.0, now=3.0)
    assert j is not None and j.prediction.prediction == {"score": 0.2} and j.latency_seconds == 1.0
    assert s.add_label("a", 0, label_time=4.0, now=4.0) is None  # already joined
    assert s.counters["duplicate_labels"] == 1 and s.n_orphans == 0
    assert s.add_prediction(pred("a", 5.0), now=5.0) is None  # a replay after the join is dropped
    assert s.counters["duplicate_predictions"] == 2 and s.n_pending == 0
    s.add_label("b", "first", label_time=5.0, now=5.0)
    s.add_label("b", "second", label_time=6.0, now=6.0)  # first label wins
    assert s.counters["duplicate_labels"] == 2
    j = s.add_prediction(pred("b", 4.0), now=7.0)
    assert j is not None and j.label == "first"
    # once the joined id is forgotten (ttl after max(prediction, label) time) it can join again
    s.expire(now=100.0)
    s.add_prediction(pred("a", 100.0), now=100.0)
    assert s.n_pending == 1


def test_max_pending_evicts_the_oldest_by_event_time() -> None:
    s = LabelJoinStore(ttl_seconds=60, max_pending=2, max_orphans=1)
    s.add_prediction(pred("a", 10.0), now=10.0)
    s.add_prediction(pred("b", 5.0), now=10.0)
    s.add_prediction(pred("c", 7.0), now=10.0)
    assert [p.record_id for p in s.pending()] == ["c", "a"] and s.counters["evicted_pending"] == 1
    s.add_prediction(pred("d", 1.0), now=10.0)  # older than everything: evicted at once
    assert [p.record_id for p in s.pending()] == ["c", "a"] and s.counters["evicted_pending"] == 2
    s.add_label("x", 1, 3.0, now=10.0)
    s.add_label("y", 1, 4.0, now=10.0)
    assert s.n_orphans == 1 and s.counters["evicted_orphans"] == 1
    assert s.add_prediction(pred("y", 2.0), now=10.0) is not None  # y survived, x was evicted
    assert s.counters["predictions"] == 5 and s.n_pending == 2


def test_invalid_inputs_are_rejected() -> None:
    with pytest.raises(ValueError):
        LabelJoinStore(ttl_seconds=0, max_pending=1, max_orphans=0)
    with pytest.raises(ValueError):
        LabelJoinStore(ttl_seconds=math.inf, max_pending=1, max_orphans=0)
    with pytest.raises(ValueError):
        LabelJoinStore(ttl_seconds=1, max_pending=0, max_orphans=0)
    s = LabelJoinStore(ttl_seconds=1, max_pending=1, max_orphans=1)
    with pytest.raises(ValueError):
        s.add_prediction(pred("a", math.nan), now=0.0)
    with pytest.raises(ValueError):
        s.add_label("a", 1, math.inf, now=0.0)
    with pytest.raises(ValueError):
        s.add_prediction(pred(META_KEY, 0.0), now=0.0)
    with pytest.raises(ValueError):
        s.add_label(META_KEY, 1, 0.0, now=0.0)
    assert s.counters == dict.fromkeys(COUNTERS, 0)


def test_stats_coverage_and_latency() -> None:
    s = LabelJoinStore(ttl_seconds=10, max_pending=100, max_orphans=100)
    assert s.stats()["coverage"] is None and s.stats()["latency"]["p50"] is None
    for i in range(10):
        s.add_prediction(pred(f"r{i}", float(i)), now=float(i))
    for i in range(6):
        s.add_label(f"r{i}", 1, float(i) + 2.0, now=12.0)
    s.add_label("nobody", 1, 12.0, now=12.0)
    # r6..r9 still pending: undecided, not in the coverage
    st_ = s.stats()
    assert st_["coverage"] == 1.0 and st_["pending"] == 4 and st_["oldest_pending_age"] == 6.0
    assert [p.record_id for p in s.expire(now=17.5)] == ["r6", "r7"]
    st_ = s.stats()
    assert st_["coverage"] == pytest.approx(6 / 8)
    assert st_["latency"]["count"] == 6 and st_["latency"]["mean"] == 2.0 and st_["latency"]["max"] == 2.0
    assert st_["latency"]["p50"] == 2.0 and st_["orphans"] == 1


def test_combined_stats_sums_partitions() -> None:
    stores = [LabelJoinStore(10, 100, 100, partition=k) for k in range(3)]
    for k, s in enumerate(stores):
        for i in range(5):
            s.add_prediction(pred(f"{k}-{i}", 0.0), now=0.0)
        for i in range(k + 1):
            s.add_label(f"{k}-{i}", 1, float(k + 1), now=3.0)
        s.expire(now=11.0)
    c = combined_stats(stores)
    assert c["predictions"] == 15 and c["joined"] == 6 and c["expired_predictions"] == 9
    assert c["coverage"] == pytest.approx(6 / 15)
    assert c["latency"]["count"] == 6 and c["latency"]["max"] == 3.0 and c["latency"]["min"] == 1.0
    assert c["latency"]["mean"] == pytest.approx((1 + 2 * 2 + 3 * 3) / 6)


# -- a naive reference model (linear scans, no heaps) and random interleavings --------------------------------------


@dataclass
class Reference:
    ttl: float
    max_pending: int
    max_orphans: int
    max_joined: int
    seq: int = 0
    offsets: list[int] = field(default_factory=lambda: [-1, -1])
    pending: dict[str, tuple[float, int, PendingPrediction]] = field(default_factory=dict)
    orphans: dict[str, tuple[float, int, Any]] = field(default_factory=dict)
    joined: dict[str, tuple[float, int]] = field(default_factory=dict)
    c: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTERS, 0))
    latencies: list[float] = field(default_factory=list)

    def _next(self) -> int:
        self.seq += 1
        return self.seq

    @staticmethod
    def _oldest(d: dict[str, Any]) -> str:
        return min(d, key=lambda k: (d[k][0], d[k][1]))

    def _join(self, p: PendingPrediction, label: Any, lt: float) -> tuple[str, Any, float]:
        self.c["joined"] += 1
        self.latencies.append(lt - p.event_time)
        if self.max_joined:
            self.joined[p.record_id] = (max(p.event_time, lt), self._next())
            if len(self.joined) > self.max_joined:
                del self.joined[self._oldest(self.joined)]
        return p.record_id, label, lt - p.event_time

    def add_prediction(self, p: PendingPrediction) -> tuple[str, Any, float] | None:
        if p.offset >= 0:
            if p.offset <= self.offsets[0]:
                self.c["skipped_predictions"] += 1
                return None
            self.offsets[0] = p.offset
        self.c["predictions"] += 1
        rid = p.record_id
        if rid in self.orphans:
            lt, _, label = self.orphans.pop(rid)
            return self._join(p, label, lt)
        if rid in self.joined:
            self.c["duplicate_predictions"] += 1
            return None
        if rid in self.pending:
            self.c["duplicate_predictions"] += 1
            del self.pending[rid]
        self.pending[rid] = (p.event_time, self._next(), p)
        if len(self.pending) > self.max_pending:
            del self.pending[self._oldest(self.pending)]
            self.c["evicted_pending"] += 1
        return None

    def add_label(self, rid: str, label: Any, lt: float, offset: int) -> tuple[str, Any, float] | None:
        if offset >= 0:
            if offset <= self.offsets[1]:
                self.c["skipped_labels"] += 1
                return None
            self.offsets[1] = offset
        self.c["labels"] += 1
        if rid in self.pending:
            return self._join(self.pending.pop(rid)[2], label, lt)
        if rid in self.joined or rid in self.orphans:
            self.c["duplicate_labels"] += 1
            return None
        self.orphans[rid] = (lt, self._next(), label)
        if len(self.orphans) > self.max_orphans:
            del self.orphans[self._oldest(self.orphans)]
            self.c["evicted_orphans"] += 1
        return None

    def expire(self, now: float) -> list[str]:
        def gone(d: dict[str, Any]) -> list[str]:
            ids = sorted((k for k in d if now - d[k][0] > self.ttl), key=lambda k: (d[k][0], d[k][1]))
            for k in ids:
                del d[k]
            return ids

        out = gone(self.pending)
        self.c["expired_predictions"] += len(out)
        self.c["expired_orphan_labels"] += len(gone(self.orphans))
        gone(self.joined)
        return out


IDS = st.sampled_from("abcdefg")
TIMES = st.integers(0, 40).map(float)
# ("p", id, time, offset mode) | ("l", id, time, offset mode) | ("e", now, 0, 0); offset mode: 0 none, 1 next, 2 replay
OPS = st.one_of(
    st.tuples(st.just("p"), IDS, TIMES, st.sampled_from([0, 1, 1, 2])),
    st.tuples(st.just("l"), IDS, TIMES, st.sampled_from([0, 1, 1, 2])),
    st.tuples(st.just("e"), st.just(""), TIMES, st.just(0)),
)
BOUNDS = st.tuples(st.integers(1, 4), st.integers(0, 3), st.integers(0, 4))


class Driver:
    """Feeds the same operations to a store (and optionally the reference), with Kafka-like offsets."""

    def __init__(self, store: LabelJoinStore) -> None:
        self.store = store
        self.next_offset = [0, 0]

    def offset(self, topic: int, mode: int) -> int:
        if mode == 0:
            return -1
        if mode == 2 and self.next_offset[topic]:
            return self.next_offset[topic] - 1  # a redelivered record
        self.next_offset[topic] += 1
        return self.next_offset[topic] - 1

    def run(self, op: tuple[str, str, float, int], ref: Reference | None = None) -> Any:
        kind, rid, t, mode = op
        s = self.store
        if kind == "e":
            got_e = [p.record_id for p in s.expire(now=t)]
            if ref is not None:
                assert got_e == ref.expire(t)
            return got_e
        if kind == "p":
            p = pred(rid, t, self.offset(0, mode), score=t / 100)
            j = s.add_prediction(p, now=t)
            want = ref.add_prediction(p) if ref is not None else None
        else:
            off = self.offset(1, mode)
            j = s.add_label(rid, int(t) % 2, t, now=t, offset=off)
            want = ref.add_label(rid, int(t) % 2, t, off) if ref is not None else None
        got = None if j is None else (j.record_id, j.label, j.latency_seconds)
        if ref is not None:
            assert got == want
        return got


def check_bounds(s: LabelJoinStore) -> None:
    assert s.n_pending <= s.max_pending
    assert s.n_orphans <= s.max_orphans
    assert len(s._joined) <= s.max_joined
    for index in (s._pending, s._orphans, s._joined):
        assert len(index.heap) <= 2 * len(index) + 32
    assert len(s._dirty) <= s.max_journal


def check_accounting(s: LabelJoinStore) -> None:
    c = s.counters
    assert c["predictions"] == (c["joined"] + c["expired_predictions"] + c["evicted_pending"]
                                + c["duplicate_predictions"] + s.n_pending)
    assert c["labels"] == (c["joined"] + c["expired_orphan_labels"] + c["evicted_orphans"]
                           + c["duplicate_labels"] + s.n_orphans)
    assert s.latency.count == c["joined"]


@settings(max_examples=300, deadline=None)
@given(bounds=BOUNDS, ops=st.lists(OPS, max_size=80))
def test_store_matches_the_reference_model(bounds: tuple[int, int, int], ops: list[Any]) -> None:
    max_pending, max_orphans, max_joined = bounds
    s = LabelJoinStore(TTL, max_pending, max_orphans, max_joined=max_joined)
    ref = Reference(TTL, max_pending, max_orphans, max_joined)
    d = Driver(s)
    for op in ops:
        d.run(op, ref)
        assert s.counters == ref.c
        assert [p.record_id for p in s.pending()] == sorted(ref.pending, key=lambda k: ref.pending[k][:2])
        assert set(s._orphans.entries) == set(ref.orphans)
        assert set(s._joined.entries) == set(ref.joined)
        assert (s.max_prediction_offset, s.max_label_offset) == tuple(ref.offsets)
    h = LatencyHistogram()
    for x in ref.latencies:
        h.add(x)
    assert s.latency.counts == h.counts and s.latency.total == h.total


@settings(max_examples=300, deadline=None)
@given(bounds=BOUNDS, ops=st.lists(OPS, max_size=120))
def test_memory_stays_bounded_under_random_interleavings(bounds: tuple[int, int, int], ops: list[Any]) -> None:
    max_pending, max_orphans, max_joined = bounds
    s = LabelJoinStore(TTL, max_pending, max_orphans, max_joined=max_joined, max_journal=5)
    d = Driver(s)
    for op in ops:
        d.run(op)
        check_bounds(s)


@settings(max_examples=300, deadline=None)
@given(bounds=BOUNDS, ops=st.lists(OPS, max_size=120))
def test_every_prediction_and_label_ends_exactly_once(bounds: tuple[int, int, int], ops: list[Any]) -> None:
    max_pending, max_orphans, max_joined = bounds
    s = LabelJoinStore(TTL, max_pending, max_orphans, max_joined=max_joined)
    d = Driver(s)
    for op in ops:
        d.run(op)
        check_accounting(s)
    s.expire(now=1e9)  # everything decided at the end
    check_accounting(s)
    assert s.n_pending == 0 and s.n_orphans == 0 and len(s._joined) == 0


def test_heap_stays_compact_under_churn() -> None:
    # many joins and replacements leave stale heap items behind; the heap is still bounded
    s = LabelJoinStore(ttl_seconds=1e6, max_pending=10, max_orphans=10, max_joined=0)
    for i in range(10_000):
        s.add_prediction(pred(f"r{i % 7}", float(i)), now=float(i))
        if i % 3 == 0:
            s.add_label(f"r{i % 7}", 1, float(i), now=float(i))
        check_bounds(s)
    check_accounting(s)


# -- latency summary ----------------------------------------------------------------------------------------------

HALF_BIN = 10 ** (1 / (2 * LATENCY_BINS_PER_DECADE))


@settings(max_examples=200, deadline=None)
@given(exps=st.lists(st.floats(min_value=-3.0, max_value=7.9), min_size=1, max_size=300),
       q=st.sampled_from([0.0, 0.01, 0.25, 0.5, 0.9, 0.95, 0.99, 1.0]))
def test_latency_quantiles_match_numpy_within_the_bin_resolution(exps: list[float], q: float) -> None:
    x = np.power(10.0, np.asarray(exps))
    x = x[(x >= 1e-3) & (x < 1e8)]
    if not x.size:
        return
    h = LatencyHistogram()
    for v in x.tolist():
        h.add(v)
    exact = float(np.percentile(x, 100 * q, method="inverted_cdf"))
    est = h.quantile(q)
    assert est is not None
    assert exact / HALF_BIN * (1 - 1e-12) <= est <= exact * HALF_BIN * (1 + 1e-12)
    s = h.summary()
    assert s["count"] == x.size and s["max"] == x.max() and s["min"] == x.min()
    assert s["mean"] == pytest.approx(float(x.mean()), rel=1e-9)


def test_latency_open_buckets_and_errors() -> None:
    h = LatencyHistogram()
    for v in [-2.0, -4.0, 0.0, 0.0005, 2e8, 4e8]:
        h.add(v)
    assert [h.quantile(q) for q in (0.0, 1 / 3, 0.5, 2 / 3, 1.0)] == [-4.0, -3.0, 0.0, 0.0, 4e8]
    assert h.quantile(5 / 6) == 3e8
    with pytest.raises(ValueError):
        h.add(math.nan)
    with pytest.raises(ValueError):
        h.quantile(1.5)
    assert LatencyHistogram().summary() == {"count": 0, "mean": None, "min": None, "p50": None, "p95": None,
                                            "max": None}


@settings(max_examples=100, deadline=None)
@given(a=st.lists(st.floats(-10, 1e9), max_size=50), b=st.lists(st.floats(-10, 1e9), max_size=50))
def test_latency_histograms_merge_like_the_concatenation(a: list[float], b: list[float]) -> None:
    ha, hb, hab = LatencyHistogram(), LatencyHistogram(), LatencyHistogram()
    for v in a:
        ha.add(v)
        hab.add(v)
    for v in b:
        hb.add(v)
        hab.add(v)
    ha += hb
    assert ha.counts == hab.counts and ha.count == hab.count
    assert (ha.min, ha.max) == (hab.min, hab.max)
    assert ha.total == pytest.approx(hab.total, rel=1e-9, abs=1e-6)
    back = LatencyHistogram.from_state(_json(ha.to_state()))
    assert back.to_state() == ha.to_state()
    for q in (0.0, 0.5, 0.95, 1.0):
        assert back.quantile(q) == ha.quantile(q)


def test_latency_state_is_checked() -> None:
    state = LatencyHistogram().to_state()
    with pytest.raises(ValueError):
        LatencyHistogram.from_state(state | {"schema_version": 2})
    with pytest.raises(ValueError):
        LatencyHistogram.from_state(state | {"bins_per_decade": 10})
    with pytest.raises(ValueError):
        LatencyHistogram.from_state(state | {"count": 3})


# -- snapshots and chunks -----------------------------------------------------------------------------------------


def busy_store(n: int = 200, seed: int = 0) -> LabelJoinStore:
    rng = random.Random(seed)
    s = LabelJoinStore(ttl_seconds=50, max_pending=120, max_orphans=30, partition=3)
    for i in range(n):
        t = float(i)
        s.add_prediction(PendingPrediction(f"id-{i}", "m", "v2", t, {"score": rng.random(), "class": "x" * (i % 9)},
                                           offset=i), now=t)
        if rng.random() < 0.5:
            k = rng.randrange(i + 20)
            s.add_label(f"id-{k}", rng.choice([0, 1, "maybe", 2.5]), t + rng.random(), now=t, offset=i)
        if i % 17 == 0:
            s.expire(now=t)
    return s


def test_state_round_trips_through_json() -> None:
    s = busy_store()
    assert s.n_pending and s.n_orphans and len(s._joined)
    back = LabelJoinStore.from_state(_json(s.to_state()))
    assert back.to_state() == s.to_state()
    assert back.stats() == s.stats()
    assert (back.partition, back.max_prediction_offset, back.max_label_offset) == (3, 199, s.max_label_offset)
    # and both go on identically
    for store in (s, back):
        store.expire(now=230.0)
        store.add_label("id-190", 1, 231.0, now=231.0, offset=10_000)
        store.add_prediction(pred("id-195", 196.0, offset=10_000), now=232.0)
    assert back.to_state() == s.to_state()


def test_from_state_rejects_bad_states() -> None:
    state = busy_store().to_state()
    with pytest.raises(ValueError):
        LabelJoinStore.from_state(state | {"schema_version": 99})
    with pytest.raises(ValueError):
        LabelJoinStore.from_state(state | {"counters": {**state["counters"], "bogus": 1}})
    with pytest.raises(ValueError):
        LabelJoinStore.from_state(state | {"config": {**state["config"], "max_pending": 1}})
    with pytest.raises(ValueError):
        LabelJoinStore.from_state(state | {"entries": [{**state["entries"][0], "k": "?"}]})


@pytest.mark.parametrize("max_bytes", [1, 150, 600, 10_000, 10**9])
def test_snapshot_chunks_round_trip(max_bytes: int) -> None:
    s = busy_store()
    chunks = s.snapshot_chunks(max_bytes)
    entry_sizes = [len(orjson.dumps(e)) for e in s.to_state()["entries"]]
    for c in chunks[1:]:
        body = orjson.loads(c)
        # over the bound only when a single entry is
        assert len(c) <= max_bytes or len(body["entries"]) == 1
    if max_bytes == 600:
        assert len(chunks) > 5 and all(len(c) <= 600 for c in chunks[1:])
        assert max(entry_sizes) < 600
    if max_bytes == 10**9:
        assert len(chunks) == 2
    shuffled = list(chunks)
    random.Random(1).shuffle(shuffled)
    back = LabelJoinStore.from_chunks(shuffled)
    assert back.to_state() == s.to_state()


def test_every_multi_entry_chunk_fits_whatever_the_bound() -> None:
    s = busy_store()
    sizes = [len(orjson.dumps(e)) for e in s.to_state()["entries"]]
    for max_bytes in range(min(sizes), 4 * max(sizes), 7):
        chunks = s.snapshot_chunks(max_bytes)
        counts = [len(orjson.loads(c)["entries"]) for c in chunks[1:]]
        assert sum(counts) == len(sizes)
        assert all(len(c) <= max_bytes for c, k in zip(chunks[1:], counts, strict=True) if k > 1)
        # greedy packing: at most twice the chunks a perfect packing of the entries would need (+ slack for the header)
        assert len(chunks) - 1 <= 2 * math.ceil(sum(sizes) / max(1, max_bytes - 120)) + 1


def test_chunks_from_a_broken_or_mixed_snapshot_are_rejected() -> None:
    s = busy_store()
    chunks = s.snapshot_chunks(500)
    with pytest.raises(ValueError):
        LabelJoinStore.from_chunks(chunks[:-1])
    with pytest.raises(ValueError):
        LabelJoinStore.from_chunks([])
    s.add_prediction(pred("new", 500.0), now=500.0)
    other = s.snapshot_chunks(500)
    with pytest.raises(ValueError):
        LabelJoinStore.from_chunks([other[0], *chunks[1:]])
    head = orjson.loads(chunks[0])
    head["head"]["counters"]["joined"] += 1  # tampered
    with pytest.raises(ValueError):
        LabelJoinStore.from_chunks([orjson.dumps(head), *chunks[1:]])


def test_an_empty_store_snapshots() -> None:
    s = LabelJoinStore(ttl_seconds=1, max_pending=1, max_orphans=0)
    chunks = s.snapshot_chunks(10)
    assert len(chunks) == 1
    assert LabelJoinStore.from_chunks(chunks).to_state() == s.to_state()
    assert LabelJoinStore.from_state(_json(s.to_state())).to_state() == s.to_state()


# -- the change journal -----------------------------------------------------------------------------------------

# operations plus checkpoints: "d" drains the journal, "s" takes a full snapshot
JOURNAL_OPS = st.one_of(OPS, st.tuples(st.sampled_from(["d", "s"]), st.just(""), st.just(0.0), st.just(0)))


def replay_matches(bounds: tuple[int, int, int], max_journal: int | None, ops: list[Any], more: list[Any]) -> None:
    max_pending, max_orphans, max_joined = bounds
    s = LabelJoinStore(TTL, max_pending, max_orphans, max_joined=max_joined, max_journal=max_journal)
    d = Driver(s)
    snapshot = _json(s.to_state())
    journals: list[Any] = []  # drained after the snapshot
    for op in ops:
        if op[0] == "d":
            journals.append(_json(s.drain_journal()))
        elif op[0] == "s":
            snapshot, journals = _json(s.to_state()), []
        else:
            d.run(op)
    journals.append(_json(s.drain_journal()))
    back = LabelJoinStore.from_state(snapshot)
    for j in journals:
        back.apply_journal(j)
    assert back.to_state() == s.to_state()
    back.apply_journal(journals[-1])  # replaying a journal again is harmless
    assert back.to_state() == s.to_state()
    assert back.drain_journal()[1:] == []  # applied changes are not journaled again
    # the rebuilt store behaves like the live one from here on
    d2 = Driver(back)
    d2.next_offset = list(d.next_offset)
    for op in more:
        assert d2.run(op) == d.run(op)
    assert back.to_state() == s.to_state()


@settings(max_examples=300, deadline=None)
@given(bounds=BOUNDS, ops=st.lists(JOURNAL_OPS, max_size=100), more=st.lists(OPS, max_size=20))
def test_snapshot_plus_replayed_journals_equals_the_live_store(bounds: tuple[int, int, int], ops: list[Any],
                                                               more: list[Any]) -> None:
    replay_matches(bounds, None, ops, more)  # a journal large enough never to overflow


@settings(max_examples=150, deadline=None)
@given(bounds=BOUNDS, max_journal=st.sampled_from([0, 2, 6]), ops=st.lists(JOURNAL_OPS, max_size=100),
       more=st.lists(OPS, max_size=20))
def test_replay_equals_the_live_store_across_journal_overflows(bounds: tuple[int, int, int], max_journal: int,
                                                               ops: list[Any], more: list[Any]) -> None:
    replay_matches(bounds, max_journal, ops, more)


def test_a_join_without_remembering_the_id_is_journaled() -> None:
    s = LabelJoinStore(ttl_seconds=5, max_pending=3, max_orphans=3, max_joined=0)
    base = s.to_state()
    s.add_prediction(pred("a", 0.0), now=0.0)
    s.add_label("b", 1, 0.0, now=0.0)
    first = s.drain_journal()
    assert s.add_label("a", 1, 1.0, now=1.0) is not None  # the pending prediction goes, nothing replaces it
    assert s.add_prediction(pred("b", 0.5), now=1.0) is not None  # the orphan label goes
    second = s.drain_journal()
    assert dict(second[1:]) == {"a": None, "b": None}
    back = LabelJoinStore.from_state(base)
    back.apply_journal(first)
    back.apply_journal(second)
    assert back.to_state() == s.to_state() and back.n_pending == 0 and back.n_orphans == 0


def test_journal_holds_one_entry_per_changed_id() -> None:
    s = LabelJoinStore(ttl_seconds=10, max_pending=100, max_orphans=100)
    s.add_prediction(pred("a", 0.0), now=0.0)
    s.add_prediction(pred("b", 0.0), now=0.0)
    s.drain_journal()
    s.add_prediction(pred("a", 1.0), now=1.0)  # replaced
    s.add_label("b", 1, 2.0, now=2.0)          # joined
    s.add_prediction(pred("c", 2.0), now=2.0)
    s.expire(now=11.5)                         # a expires
    journal = s.drain_journal()
    meta_key, meta = journal[0]
    assert meta_key == META_KEY and meta is not None and not meta["reset"] and meta["counters"] == s.counters
    items = dict(journal[1:])
    assert set(items) == {"a", "b", "c"} and len(journal) == 4
    assert items["a"] is None
    assert items["b"] is not None and items["b"]["k"] == "j"
    assert items["c"] is not None and items["c"]["k"] == "p"
    assert s.drain_journal()[1:] == []


def test_journal_overflow_resets_to_a_full_copy() -> None:
    s = LabelJoinStore(ttl_seconds=100, max_pending=100, max_orphans=100, max_journal=3)
    base = _json(s.to_state())
    for i in range(10):
        s.add_prediction(pred(f"p{i}", float(i)), now=float(i))
        s.add_label(f"p{i - 5}", 1, float(i), now=float(i))
    assert len(s._dirty) <= 3
    journal = s.drain_journal()
    assert journal[0][1] is not None and journal[0][1]["reset"]
    assert len(journal) - 1 == s.n_pending + len(s._joined) + s.n_orphans
    # a reset journal rebuilds the store even on top of an unrelated state
    stale = LabelJoinStore.from_state(base)
    stale.add_prediction(pred("zombie", 0.0), now=0.0)
    stale.apply_journal(_json(journal))
    assert stale.to_state() == s.to_state()


# -- restart in the middle of a join ---------------------------------------------------------------------------------


def test_restart_in_the_middle_of_a_join() -> None:
    live = LabelJoinStore(ttl_seconds=3600, max_pending=1000, max_orphans=1000, partition=0)
    predictions = [pred(f"r{i}", 1000.0 + i, offset=i, score=i / 10) for i in range(10)]
    for p in predictions[:6]:
        live.add_prediction(p, now=p.event_time)
    live.add_label("r9", 1, label_time=1005.5, now=1005.5, offset=0)  # a label ahead of its prediction
    checkpoint = live.snapshot_chunks(max_bytes=300)  # covers predictions 0..5 and label offset 0
    covered = (live.max_prediction_offset, live.max_label_offset)
    assert covered == (5, 0)
    for p in predictions[6:8]:  # processed after the checkpoint, never committed: lost with the worker
        live.add_prediction(p, now=p.event_time)
    del live

    store = LabelJoinStore.from_chunks(checkpoint)
    assert store.n_pending == 6 and store.n_orphans == 1
    # the consumer restarts from an older committed offset: 3..9; 3..5 are already in the state
    joined = [store.add_prediction(p, now=p.event_time) for p in predictions[3:]]
    assert store.counters["skipped_predictions"] == 3
    assert [j.record_id for j in joined if j is not None] == ["r9"]
    assert store.add_label("r9", 1, 1010.0, now=1010.0, offset=0) is None  # redelivered label: skipped
    assert store.counters["skipped_labels"] == 1 and store.counters["duplicate_labels"] == 0
    # then the labels arrive and join, including predictions made before the restart
    results = [store.add_label(f"r{i}", i % 2, 1100.0 + i, now=1100.0 + i, offset=1 + i) for i in range(9)]
    assert all(r is not None for r in results)
    assert [r.latency_seconds for r in results if r is not None] == [100.0] * 9
    assert [r.prediction.prediction["score"] for r in results if r is not None] == [i / 10 for i in range(9)]
    st_ = store.stats()
    assert st_["joined"] == 10 and st_["predictions"] == 10 and st_["pending"] == 0 and st_["orphans"] == 0
    check_accounting(store)
    assert store.expire(now=1e6) == []
    assert store.stats()["coverage"] == 1.0
