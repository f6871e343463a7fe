"""Detection benchmark with the default thresholds: each injected change (monitor.testing.scenarios) is alerted on
the right feature by a relevant check within two windows of its onset and not before, and clean streams
stay quiet (fewer than 1% of windows carry any alert).

Setup per change: a reference profile of 20,000 clean records (seed A), then one engine over 10 count
windows of 2,000 records of seed B: 5 clean, 5 with the change from record 10,000 on (the first record of
count window ``w2000`` #5). The rate drop is judged on the 60 s event-time window ``t60s``.
"""

from __future__ import annotations

import math
from typing import Any

import pytest

from monitor.alerts import Alert
from monitor.engine import Monitor
from monitor.reference import ReferenceProfile, build_profile
from monitor.report import WindowReport
from monitor.spec import MonitorSpec
from monitor.testing.scenarios import (
    CHANGES,
    START_TIME,
    STREAM,
    Change,
    ChangeKind,
    monitor_spec_dict,
)
from monitor.testing.stream import ScenarioStream

SEED_A = 1                  # reference
SEED_B = 2                  # monitored stream of the detection runs
REFERENCE_ROWS = 20_000
WINDOW = 2_000              # records per w2000 window
CLEAN_WINDOWS = CHANGED_WINDOWS = 5
ONSET = CLEAN_WINDOWS * WINDOW  # record index where every change starts
BATCH = 1_000               # records per Engine.process call
RATE = 100.0                # records/s of the clean stream
TIME_WINDOW_SECONDS = 60.0
FALSE_ALARM_SEEDS = range(100, 140)  # 40 clean streams
FALSE_ALARM_WINDOWS = 10

DETECTION_WINDOW = {kind: ("t60s" if kind is ChangeKind.RATE_DROP else "w2000") for kind in ChangeKind}


@pytest.fixture(scope="module")
def spec() -> MonitorSpec:
    return MonitorSpec.model_validate(monitor_spec_dict())


@pytest.fixture(scope="module")
def reference(spec: MonitorSpec) -> ReferenceProfile:
    return build_profile(spec.stream(STREAM), lambda: ScenarioStream(seed=SEED_A).records(REFERENCE_ROWS),
                         source={"kind": "scenario", "seed": SEED_A})


def run(spec: MonitorSpec, reference: ReferenceProfile, stream: ScenarioStream, n: int, *,
        close: bool = False) -> list[WindowReport]:
    """Feed ``n`` records of ``stream`` to a fresh engine in batches; the clock is the latest event time."""
    engine = Monitor(spec, references={STREAM: reference}, clock=lambda: stream.now)
    reports: list[WindowReport] = []
    for _ in range(n // BATCH):
        reports += engine.process(STREAM, stream.records(BATCH))
    if close:
        reports += engine.close()
    return reports


@pytest.fixture(scope="module")
def detection_runs(spec: MonitorSpec, reference: ReferenceProfile) -> dict[ChangeKind, list[WindowReport]]:
    """One run per change kind (same seed B, so the clean first half is identical in every run)."""
    n = (CLEAN_WINDOWS + CHANGED_WINDOWS) * WINDOW
    return {kind: run(spec, reference, ScenarioStream(seed=SEED_B, changes=[factory(start=ONSET)]), n)
            for kind, factory in CHANGES.items()}


def onset_index(window: str) -> int:
    """Index of the window (of ``window``) holding the change's first record."""
    if window == "w2000":
        return ONSET // WINDOW
    return math.floor((START_TIME + ONSET / RATE) / TIME_WINDOW_SECONDS)


def relevant(alert: Alert, change: Change) -> bool:
    """An alert on the changed feature (or the record-level check) by a check that should see the change."""
    return alert.feature == change.target and alert.check in change.detected_by


def describe(reports: list[WindowReport], change: Change, window: str) -> list[dict[str, Any]]:
    """Per window of ``window``: the statistics of the relevant checks (for failure messages)."""
    rows = []
    for r in reports:
        if r.window["name"] != window:
            continue
        if change.target is None:
            values = {c: r.records.get(c) for c in change.detected_by}
        else:
            values = {m: d.statistic for m, d in r.drift.get(change.target, {}).items()}
            values.update({c: v for c, v in r.features[change.target].ratios.items() if c in change.detected_by})
        rows.append({"index": r.window["index"], **values,
                     "alerts": [(a.check, a.severity, round(a.value, 4)) for a in r.alerts if relevant(a, change)]})
    return rows


@pytest.mark.parametrize("kind", list(ChangeKind), ids=str)
def test_change_is_alerted_within_two_windows_of_onset(
        kind: ChangeKind, detection_runs: dict[ChangeKind, list[WindowReport]]) -> None:
    change = CHANGES[kind](start=ONSET)
    reports = detection_runs[kind]
    window = DETECTION_WINDOW[kind]
    onset = onset_index(window)
    # No alert of this kind before the onset, in any window.
    early = [(r.window["name"], r.window["index"], a.check, a.value) for r in reports for a in r.alerts
             if relevant(a, change) and r.window["index"] < onset_index(r.window["name"])]
    assert early == [], f"{kind}: alerted before the onset: {early}"
    # The first alert comes in the onset window or the next one.
    alerted = sorted(r.window["index"] for r in reports
                     if r.window["name"] == window and any(relevant(a, change) for a in r.alerts))
    table = describe(reports, change, window)
    assert alerted, f"{kind}: never alerted on {change.target} by {change.detected_by}; per window: {table}"
    assert alerted[0] in (onset, onset + 1), \
        f"{kind}: first alerted in {window}#{alerted[0]}, onset is #{onset}; per window: {table}"
    # ... and keeps alerting while the change lasts (the last closed windows are all changed).
    last = max(r.window["index"] for r in reports if r.window["name"] == window)
    assert last in alerted, f"{kind}: the alert did not persist to {window}#{last}; per window: {table}"


@pytest.mark.parametrize("kind", list(ChangeKind), ids=str)
def test_change_alerts_only_where_it_happens(
        kind: ChangeKind, detection_runs: dict[ChangeKind, list[WindowReport]]) -> None:
    # Every alert of the run concerns the changed feature (or, for a record-level change, the records).
    change = CHANGES[kind](start=ONSET)
    elsewhere = [(r.window["name"], r.window["index"], a.feature, a.check, round(a.value, 4))
                 for r in detection_runs[kind] for a in r.alerts if a.feature != change.target]
    assert elsewhere == []


def test_clean_streams_raise_almost_no_alerts(spec: MonitorSpec, reference: ReferenceProfile) -> None:
    windows = 0
    noisy: list[tuple[int, str, int, list[tuple[str | None, str, float]]]] = []
    kinds: set[str] = set()
    for seed in FALSE_ALARM_SEEDS:
        assert seed != SEED_A
        reports = run(spec, reference, ScenarioStream(seed=seed), FALSE_ALARM_WINDOWS * WINDOW, close=True)
        assert sum(r.window["name"] == "w2000" for r in reports) == FALSE_ALARM_WINDOWS
        windows += len(reports)
        kinds |= {r.window["kind"] for r in reports}
        noisy += [(seed, r.window["name"], r.window["index"], [(a.feature, a.check, a.value) for a in r.alerts])
                  for r in reports if r.alerts]
    assert kinds == {"count", "time"}
    fraction = len(noisy) / windows
    assert fraction < 0.01, f"{len(noisy)} of {windows} clean windows alerted ({fraction:.2%}): {noisy}"
