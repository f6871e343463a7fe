"""Seeded messy streams and the split-run harness of the feature-stage snapshot tests
(``tests/unit/test_stream_snapshots.py``): run a stream uninterrupted, and checkpointed after ``k``
records through JSON and restored into a fresh engine, and compare what both report."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import orjson

from monitor.alerts import AlertPolicy
from monitor.reference import build_profile
from monitor.report import WindowReport
from monitor.spec import MonitorSpec, StreamSpec
from monitor.stream import EVENT_CLOCK, FeatureEngine
from monitor.testing.scenarios import (
    duplicate_ids,
    late_records,
    missing_spike,
    out_of_range_burst,
    unseen_categories,
    wrong_types,
)
from monitor.testing.stream import ScenarioStream
from monitor.times import parse_times
from tests.strategies import SplitRun

# -- the stream -------------------------------------------------------------------------------------

NUMERIC = ["score", "income", "items", "discount_rate"]
CATEGORICAL = ["country", "channel"]
CHANGES = [duplicate_ids(), late_records(), wrong_types(feature="items"), out_of_range_burst(),
           unseen_categories(feature="channel"), missing_spike(start=500)]
FEATURES: list[dict[str, Any]] = [
    {"name": "score", "type": "numeric", "range": {"min": -3, "max": 3}},
    {"name": "income", "type": "numeric"},
    {"name": "items", "type": "numeric", "range": {"min": 0, "max": 1000}},
    {"name": "discount_rate", "type": "numeric", "range": {"min": 0, "max": 1}},
    {"name": "country", "type": "categorical"},
    {"name": "channel", "type": "categorical"},
    {"name": "session", "type": "string"},  # hundreds of distinct values a window: HLL sketches in set mode
]


def stream_records(seed: int, n: int, *, messy: bool = True, gap_at: int | None = None) -> list[dict[str, Any]]:
    """``n`` seeded records of the scenario stream (100 a second; 5% repeat an earlier id, 5% five
    minutes late, wrong types, out-of-range and unseen values, a missing spike), plus a
    high-cardinality string, and (``messy``) 10% integer ids, 10% a few seconds out of order (some
    beyond the allowed lateness), 3% without an event time and 2% with an unexpected field. From
    record ``gap_at`` on, event times are 500 s later (a gap of more than 100 empty windows)."""
    raw = ScenarioStream(seed=seed, changes=CHANGES if messy else []).records(n)
    times = parse_times([r["event_time"] for r in raw]).tolist()
    if gap_at is not None:
        times[gap_at:] = [t + 500.0 for t in times[gap_at:]]
        for r, t in zip(raw[gap_at:], times[gap_at:], strict=True):
            r["event_time"] = t
    rng = np.random.default_rng([seed, 2])
    draws = rng.random((n, 5)).tolist()
    sessions = rng.integers(0, 3000, n).tolist()
    out = []
    for r, t, u, session in zip(raw, times, draws, sessions, strict=True):
        rec: dict[str, Any] = {"record_id": r["record_id"], "event_time": r["event_time"]}
        rec.update((f, r[f]) for f in NUMERIC + CATEGORICAL)
        rec["session"] = f"u{session}"
        if messy:
            if u[0] < 0.10:
                rec["record_id"] = int(r["record_id"].split("-")[1])  # a repeated id stays repeated
            if u[1] < 0.10:
                rec["event_time"] = t - 3.0 * u[2]
            if u[3] < 0.03:
                del rec["event_time"]
            if u[4] < 0.02:
                rec["zz_extra"] = 1
        out.append(rec)
    return out


BASE_STREAM: dict[str, Any] = {"name": "s", "features": FEATURES, "detectors": []}
REFERENCE = build_profile(StreamSpec.model_validate({**BASE_STREAM, "windows": [{"name": "w", "kind": "count",
                                                                                 "size": 10}]}),
                          lambda: stream_records(10_000, 3000, messy=False), source={"kind": "test"})

COUNT_TUMBLING = {"name": "c150", "kind": "count", "size": 150}
COUNT_SLIDING = {"name": "c120s40", "kind": "count", "size": 120, "slide": 40}
TIME_TUMBLING = {"name": "t3", "kind": "time", "seconds": 3}
TIME_SLIDING = {"name": "t4s1", "kind": "time", "seconds": 4, "slide": 1}

#: name: (windows, time spec). Event time allows 1.5 s of lateness: the stream's 3 s jitter makes
#: some records out of order but accepted, others late.
VARIANTS: dict[str, tuple[list[dict[str, Any]], dict[str, Any]]] = {
    "count_tumbling": ([COUNT_TUMBLING], {}),
    "count_sliding": ([COUNT_SLIDING], {}),
    "time_tumbling": ([TIME_TUMBLING], {"allowed_lateness_seconds": 1.5}),
    "time_sliding": ([TIME_SLIDING], {"allowed_lateness_seconds": 1.5}),
    "all_windows": ([COUNT_TUMBLING, COUNT_SLIDING, TIME_TUMBLING, TIME_SLIDING], {"allowed_lateness_seconds": 1.5}),
    "processing_time": ([COUNT_SLIDING, {"name": "p2", "kind": "time", "seconds": 2},
                         {"name": "p3s1", "kind": "time", "seconds": 3, "slide": 1}], {"mode": "processing"}),
}


def monitor_spec(windows: list[dict[str, Any]], time: dict[str, Any], *, duplicates: int | None = 100,
                 **stream: Any) -> MonitorSpec:
    dup = {"enabled": False} if duplicates is None else {"capacity": duplicates}
    return MonitorSpec.model_validate({"version": 1, "name": "t", "streams": [
        {**BASE_STREAM, "windows": windows, "time": time, "duplicates": dup, **stream}]})


# -- running ----------------------------------------------------------------------------------------


class Clock:
    """A processing clock the test sets before each batch (the same schedule for every engine)."""

    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


def make_engine(spec: MonitorSpec, clock: Clock | None, policy: AlertPolicy | None = None) -> FeatureEngine:
    return FeatureEngine(spec, references={"s": REFERENCE}, clock=clock or EVENT_CLOCK, policy=policy)


def feed(engine: FeatureEngine, batches: list[list[dict[str, Any]]], clock: Clock | None,
         first: int) -> list[WindowReport]:
    """Process the batches (batch ``i`` at processing time ``first + i``, 0.8 s apart)."""
    reports: list[WindowReport] = []
    for i, batch in enumerate(batches, start=first):
        if clock is not None:
            clock.now = 1_700_000_000.0 + 0.8 * i
        reports += engine.process("s", batch)
        if clock is not None:
            reports += engine.tick()
    return reports


def through_json(state: dict[str, Any]) -> dict[str, Any]:
    """What a checkpoint store hands back; the state must survive it unchanged (no NaN, no infinity,
    no numpy scalar: orjson writes NaN and infinities as null and refuses numpy integers)."""
    back: dict[str, Any] = orjson.loads(orjson.dumps(state))
    assert back == state
    return back


def canonical(reports: list[WindowReport]) -> list[Any]:
    """The reports' profiles, NaN made comparable (NaN != NaN)."""
    def fix(x: Any) -> Any:
        if isinstance(x, float) and math.isnan(x):
            return "NaN"
        if isinstance(x, dict):
            return {k: fix(v) for k, v in x.items()}
        if isinstance(x, list | tuple):
            return [fix(v) for v in x]
        return x
    return [fix(r.to_dict()) for r in reports]


def split_and_compare(spec: MonitorSpec, run: SplitRun, *, processing: bool,
                      tamper: Callable[[dict[str, Any]], None] | None = None,
                      gap_at: int | None = None) -> tuple[list[Any], list[Any]]:
    """Reports after the checkpoint (and at the end) of an uninterrupted run and of a restored one."""
    before, after = run.batches(stream_records(run.seed, run.n, gap_at=gap_at))
    clock = Clock() if processing else None
    whole = make_engine(spec, clock)
    feed(whole, before, clock, 0)
    saved = through_json(whole.snapshot("s"))
    policy = through_json(whole.policy.to_state())
    if tamper is not None:
        tamper(saved)
    expected = feed(whole, after, clock, len(before)) + whole.close()

    restored = make_engine(spec, clock, AlertPolicy.from_state(spec.alerting, policy))
    restored.restore("s", saved)
    got = feed(restored, after, clock, len(before)) + restored.close()
    if tamper is None:
        assert restored.records_processed == whole.records_processed == {"s": run.n}
        assert through_json(restored.snapshot("s")) == whole.snapshot("s")  # the same state, not only reports
    return canonical(expected), canonical(got)
