"""The alert lifecycle policy: for/clear windows, hysteresis, escalation, re-notification,
several windows per fingerprint, state round trips, the changelog and the event ids."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from monitor.alerts.alert import Alert, fingerprint
from monitor.alerts.policy import AlertPolicy, Observation, event_id
from monitor.spec import AlertingSpec, Threshold

ALERT_SCHEMA = json.loads((Path(__file__).resolve().parents[2] / "schemas" / "alert.schema.json").read_text())
VALIDATOR = Draft202012Validator(ALERT_SCHEMA, format_checker=Draft202012Validator.FORMAT_CHECKER)

THR = Threshold(warning=0.10, critical=0.25)  # clear level 0.08 with the default clear_ratio 0.8
CRIT, WARN, BAND, CLEAR = 0.30, 0.15, 0.09, 0.01
STEP = 60.0
FP = fingerprint("s", "x", "psi")


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def obs(value: float, *, index: int = 0, window: str = "w", feature: str = "x", thr: Threshold = THR,
        clear_ratio: float = 0.8, details: dict[str, Any] | None = None) -> Observation:
    """An observation as the rules make it: severity and clear from the threshold's levels."""
    severity = thr.severity(value)
    level = thr.level(severity) if severity is not None else thr.raise_level
    start, end = index * STEP, (index + 1) * STEP
    return Observation(stream="s", feature=feature, check="psi", value=value, severity=severity,
                       clear=value < thr.clear_level(clear_ratio), threshold=level, sample_size=500,
                       window={"name": window, "kind": "time", "index": index, "start": iso(start), "end": iso(end),
                               "partial": False},
                       reference_version="0123456789ab", summary=f"s.{feature}: psi {value} in {window}#{index}",
                       details=details if details is not None else {"effect_size": value})


def run(policy: AlertPolicy, values: list[float | None], **kw: Any) -> dict[int, list[Alert]]:
    """Feed one value per window (None: the check was not evaluated); the events by window index."""
    out: dict[int, list[Alert]] = {}
    for i, v in enumerate(values):
        events = policy.observe([] if v is None else [obs(v, index=i, **kw)], now=(i + 1) * STEP)
        for e in events:
            VALIDATOR.validate(e.to_event())
        if events:
            out[i] = events
    return out


def statuses(events: dict[int, list[Alert]]) -> dict[int, list[str]]:
    return {i: [e.status for e in es] for i, es in events.items()}


# -- for_windows / clear_windows ---------------------------------------------------------------


def test_for_windows_fires_exactly_on_the_nth_consecutive_raised_window() -> None:
    assert statuses(run(AlertPolicy(AlertingSpec(for_windows=3)), [WARN] * 6)) == {2: ["firing"]}
    assert statuses(run(AlertPolicy(AlertingSpec(for_windows=1)), [WARN] * 6)) == {0: ["firing"]}


@pytest.mark.parametrize("interruption", [BAND, CLEAR])
def test_for_windows_interruption_resets_the_count(interruption: float) -> None:
    values = [WARN, WARN, interruption, WARN, WARN, WARN, WARN]
    assert statuses(run(AlertPolicy(AlertingSpec(for_windows=3)), values)) == {5: ["firing"]}


def test_missing_observations_change_nothing() -> None:
    # a check not evaluated (insufficient data) neither interrupts the raise count ...
    assert statuses(run(AlertPolicy(AlertingSpec(for_windows=3)), [WARN, WARN, None, WARN])) == {3: ["firing"]}
    # ... nor the clear count, nor resolves a firing alert
    policy = AlertPolicy(AlertingSpec(clear_windows=2))
    assert statuses(run(policy, [WARN, None, None, CLEAR, None, CLEAR])) == {0: ["firing"], 5: ["resolved"]}
    policy = AlertPolicy(AlertingSpec())
    run(policy, [WARN])
    before = policy.to_state()
    assert policy.observe([], now=10_000.0) == []
    assert policy.to_state() == before


def test_clear_windows_resolves_after_n_consecutive_clear_windows() -> None:
    policy = AlertPolicy(AlertingSpec(clear_windows=3))
    events = run(policy, [WARN, CLEAR, CLEAR, WARN, CLEAR, CLEAR, BAND, CLEAR, CLEAR, CLEAR, CLEAR])
    assert statuses(events) == {0: ["firing"], 9: ["resolved"]}
    assert policy.open_alerts() == []
    assert policy.state_of(FP) is None  # removed with the resolution
    assert policy.to_state()["fingerprints"] == {}


def test_resolved_event_reports_the_latest_value_and_the_alert_lifetime() -> None:
    policy = AlertPolicy(AlertingSpec())
    events = run(policy, [WARN, CRIT, WARN, 0.02])
    fired, resolved = events[0][0], events[3][0]
    assert resolved.status == "resolved"
    assert resolved.value == 0.02 and resolved.window["index"] == 3
    assert resolved.severity == "critical"  # the last notified severity
    assert resolved.first_seen == fired.first_seen == fired.last_seen == iso(STEP)
    assert resolved.last_seen == resolved.created_at == iso(4 * STEP)
    assert resolved.details["notification_seq"] == 2  # firing 0, escalation 1, resolved 2


# -- hysteresis --------------------------------------------------------------------------------


def test_values_in_the_band_keep_a_firing_alert_firing() -> None:
    policy = AlertPolicy(AlertingSpec(renotify_seconds=0))
    band = [0.081, 0.099, 0.085, 0.095] * 20
    assert statuses(run(policy, [WARN, *band])) == {0: ["firing"]}
    assert policy.open_alerts() == [FP]
    # and band values between clear windows reset the clear count
    policy = AlertPolicy(AlertingSpec(clear_windows=2, renotify_seconds=0))
    assert statuses(run(policy, [WARN, *[CLEAR, BAND] * 30])) == {0: ["firing"]}


def test_flapping_input_does_not_flap_alerts() -> None:
    values = [THR.raise_level * (0.99 if i % 2 else 1.01) for i in range(50)]
    events = run(AlertPolicy(AlertingSpec()), values)  # default clear_ratio 0.8, 50 windows < renotify
    assert statuses(events) == {0: ["firing"]}
    # the same input without hysteresis flaps: the band is what prevents it
    events = run(AlertPolicy(AlertingSpec(clear_ratio=1.0)), values, clear_ratio=1.0)
    flat = [e.status for es in events.values() for e in es]
    assert flat.count("firing") == 25 and flat.count("resolved") == 25


# -- escalation / re-notification -------------------------------------------------------------


def test_escalation_fires_at_once_and_de_escalation_is_silent() -> None:
    policy = AlertPolicy(AlertingSpec(for_windows=2, renotify_seconds=0))
    events = run(policy, [WARN, WARN, WARN, CRIT, CRIT, WARN, WARN, CRIT])
    assert statuses(events) == {1: ["firing"], 3: ["firing"]}
    assert [events[1][0].severity, events[3][0].severity] == ["warning", "critical"]
    escalation = events[3][0]
    assert escalation.value == CRIT and escalation.threshold == THR.critical
    assert escalation.first_seen == events[1][0].first_seen  # the same alert, notified again
    assert escalation.last_seen == iso(4 * STEP)
    assert escalation.details["notification_reason"] == "escalated"
    assert escalation.alert_id != events[1][0].alert_id
    # back up to the already notified critical after the silent de-escalation: nothing new to say


def test_renotification_after_renotify_seconds_and_not_before() -> None:
    policy = AlertPolicy(AlertingSpec(renotify_seconds=300))
    events = run(policy, [WARN] * 12)  # now = 60, 120, ..., 720
    assert statuses(events) == {0: ["firing"], 5: ["firing"], 10: ["firing"]}  # at 60, 360, 660
    seqs = [es[0].details["notification_seq"] for es in events.values()]
    assert seqs == [0, 1, 2]
    assert len({es[0].alert_id for es in events.values()}) == 3
    assert {es[0].first_seen for es in events.values()} == {iso(STEP)}
    assert [es[0].details["notification_reason"] for es in events.values()] == ["started", "renotify", "renotify"]


def test_an_escalation_restarts_the_renotify_clock() -> None:
    policy = AlertPolicy(AlertingSpec(renotify_seconds=300))
    events = run(policy, [WARN, WARN, CRIT, CRIT, CRIT, CRIT, CRIT, CRIT, CRIT])  # escalation at 180
    assert statuses(events) == {0: ["firing"], 2: ["firing"], 7: ["firing"]}  # renotify at 480, not 360


def test_renotify_zero_never_renotifies() -> None:
    policy = AlertPolicy(AlertingSpec(renotify_seconds=0))
    assert statuses(run(policy, [WARN] * 200)) == {0: ["firing"]}


# -- several windows per fingerprint ----------------------------------------------------------


def test_two_window_names_one_alert() -> None:
    policy = AlertPolicy(AlertingSpec(renotify_seconds=0))
    out: list[tuple[float, str, str]] = []

    def step(now: float, *items: tuple[str, float]) -> None:
        for e in policy.observe([obs(v, window=w, index=int(now)) for w, v in items], now=now):
            out.append((now, e.status, e.severity))

    step(1, ("fast", WARN))                      # fast active -> firing
    step(2, ("slow", CRIT))                      # slow active at critical -> escalation
    step(3, ("fast", CLEAR))                     # fast inactive, slow still active: nothing
    step(4, ("fast", WARN), ("slow", CLEAR))     # one batch: slow clears, fast raised again: still firing
    assert policy.open_alerts() == [FP]
    step(5, ("fast", CLEAR))                     # both cleared -> resolved
    assert out == [(1, "firing", "warning"), (2, "firing", "critical"), (5, "resolved", "critical")]
    assert policy.open_alerts() == []


def test_one_batch_with_several_windows_gives_one_event() -> None:
    policy = AlertPolicy(AlertingSpec())
    events = policy.observe([obs(WARN, window="a"), obs(CRIT, window="b")], now=60.0)
    assert [(e.status, e.severity, e.window["name"]) for e in events] == [("firing", "critical", "b")]
    events = policy.observe([obs(CLEAR, window="a"), obs(CLEAR, window="b")], now=120.0)
    assert [e.status for e in events] == ["resolved"]


def test_each_fingerprint_is_independent() -> None:
    policy = AlertPolicy(AlertingSpec())
    events = policy.observe([obs(WARN, feature="a"), obs(CLEAR, feature="b"), obs(CRIT, feature="c")], now=60.0)
    assert [(e.feature, e.severity) for e in events] == [("a", "warning"), ("c", "critical")]
    assert policy.open_alerts() == sorted([fingerprint("s", "a", "psi"), fingerprint("s", "c", "psi")])


# -- state: round trips, restore, changelog --------------------------------------------------

LEVELS = st.sampled_from([CRIT, WARN, BAND, CLEAR])
BATCH = st.lists(st.tuples(st.sampled_from(["x", "y"]), st.sampled_from(["fast", "slow"]), LEVELS), max_size=4)
SPECS = st.builds(AlertingSpec, for_windows=st.integers(1, 3), clear_windows=st.integers(1, 3),
                  renotify_seconds=st.sampled_from([0.0, 120.0, 300.0]))


Batch = list[tuple[str, str, float]]


def batches_of(raw: list[Batch], gaps: list[int]) -> list[tuple[float, list[Observation]]]:
    out, now = [], 0.0
    for i, (batch, gap) in enumerate(zip(raw, gaps, strict=False)):
        now += gap
        out.append((now, [obs(v, feature=f, window=w, index=i) for f, w, v in batch]))
    return out


def events_of(policy: AlertPolicy, batches: list[tuple[float, list[Observation]]]) -> list[dict[str, Any]]:
    return [e.to_event() for now, b in batches for e in policy.observe(b, now=now)]


@settings(max_examples=300, deadline=None)
@given(spec=SPECS, raw=st.lists(BATCH, max_size=30), gaps=st.lists(st.sampled_from([30, 60, 90]), min_size=30,
                                                                   max_size=30), split=st.integers(0, 30))
def test_state_round_trip_anywhere_gives_the_uninterrupted_events(spec: AlertingSpec, raw: list[Batch],
                                                                  gaps: list[int], split: int) -> None:
    batches = batches_of(raw, gaps)
    expected = events_of(AlertPolicy(spec), batches)

    # whole-state checkpoint: to_state -> JSON -> from_state
    first = AlertPolicy(spec)
    got = events_of(first, batches[:split])
    restored = AlertPolicy.from_state(spec, json.loads(json.dumps(first.to_state())))
    assert restored.to_state() == first.to_state()
    assert restored.open_alerts() == first.open_alerts()
    got += events_of(restored, batches[split:])
    assert got == expected

    # per-fingerprint checkpoint table kept in step by drain_changes, restored with load()
    table: dict[str, Any] = {}
    first = AlertPolicy(spec)
    got = []
    for now, b in batches[:split]:
        got += [e.to_event() for e in first.observe(b, now=now)]
        for fp, state in first.drain_changes().items():
            if state is None:
                table.pop(fp, None)
            else:
                table[fp] = json.loads(json.dumps(state))
    assert table == first.to_state()["fingerprints"]  # the changelog missed nothing
    restored = AlertPolicy(spec)
    for fp, state in table.items():
        restored.load(fp, state)
    assert restored.drain_changes() == {}  # what was loaded is already saved
    got += events_of(restored, batches[split:])
    assert got == expected


def test_restore_does_not_repeat_a_firing_alert_nor_forget_it() -> None:
    spec = AlertingSpec(renotify_seconds=300)
    policy = AlertPolicy(spec)
    fired = run(policy, [WARN, WARN])[0][0]
    state = json.loads(json.dumps(policy.to_state()))

    # the condition stays raised: no duplicate firing until the re-notification is due (60 + 300)
    restored = AlertPolicy.from_state(spec, state)
    assert restored.open_alerts() == [FP]
    for i in range(2, 5):
        assert restored.observe([obs(WARN, index=i)], now=(i + 1) * STEP) == []
    [renotify] = restored.observe([obs(WARN, index=5)], now=6 * STEP)
    assert renotify.first_seen == fired.first_seen and renotify.details["notification_seq"] == 1

    # the condition clears: the open alert is resolved, as the same alert
    restored = AlertPolicy.from_state(spec, state)
    [resolved] = restored.observe([obs(CLEAR, index=2)], now=3 * STEP)
    assert resolved.status == "resolved" and resolved.first_seen == fired.first_seen
    assert resolved.alert_id == event_id(FP, fired.first_seen or "", "resolved", 1)

    # same through the per-fingerprint state
    restored = AlertPolicy(spec)
    restored.load(FP, json.loads(json.dumps(policy.state_of(FP))))
    assert [e.status for e in restored.observe([obs(CLEAR, index=2)], now=3 * STEP)] == ["resolved"]


def test_restore_keeps_a_pending_condition() -> None:
    spec = AlertingSpec(for_windows=3)
    policy = AlertPolicy(spec)
    run(policy, [WARN, WARN])
    assert policy.open_alerts() == [] and policy.state_of(FP) is not None
    restored = AlertPolicy.from_state(spec, json.loads(json.dumps(policy.to_state())))
    assert [e.status for e in restored.observe([obs(WARN, index=2)], now=3 * STEP)] == ["firing"]


def test_drain_changes_reports_exactly_the_changed_fingerprints() -> None:
    policy = AlertPolicy(AlertingSpec(for_windows=2, renotify_seconds=0))
    fa, fc = fingerprint("s", "a", "psi"), fingerprint("s", "c", "psi")
    assert policy.drain_changes() == {}

    policy.observe([obs(WARN, feature="a"), obs(CLEAR, feature="b")], now=60.0)
    changes = policy.drain_changes()
    assert set(changes) == {fa}  # b: nothing to remember before or after
    assert changes[fa] == policy.state_of(fa) and changes[fa] is not None
    assert policy.drain_changes() == {}

    policy.observe([obs(WARN, feature="a", index=1), obs(WARN, feature="c", index=1)], now=120.0)
    assert set(policy.drain_changes()) == {fa, fc}  # a fires, c starts counting

    # a stays raised with renotify off: its state is the same except the evidence (newer window)
    policy.observe([obs(WARN, feature="a", index=2)], now=180.0)
    assert set(policy.drain_changes()) == {fa}
    # c is interrupted (deleted) and raised again (re-created identical) before the drain: no change
    policy.observe([obs(BAND, feature="c", index=3)], now=240.0)
    policy.observe([obs(WARN, feature="c", index=4)], now=300.0)
    assert policy.drain_changes() == {}

    # a resolves: deleted
    policy.observe([obs(CLEAR, feature="a", index=5)], now=360.0)
    assert policy.drain_changes() == {fa: None}
    assert policy.open_alerts() == []


def test_state_is_json_and_rejects_other_versions() -> None:
    policy = AlertPolicy(AlertingSpec())
    run(policy, [WARN])
    state = policy.to_state()
    assert json.loads(json.dumps(state)) == state and state["schema_version"] == 1
    with pytest.raises(ValueError, match="version"):
        AlertPolicy.from_state(AlertingSpec(), {**state, "schema_version": 2})
    with pytest.raises(ValueError, match="malformed"):
        AlertPolicy.from_state(AlertingSpec(), {"schema_version": 1, "fingerprints": {FP: {"schema_version": 1}}})
    entry = policy.state_of(FP)
    assert entry is not None
    with pytest.raises(ValueError, match="version"):
        AlertPolicy(AlertingSpec()).load(FP, {**entry, "schema_version": 0})


def test_returned_state_is_a_copy() -> None:
    policy = AlertPolicy(AlertingSpec())
    run(policy, [WARN])
    entry = policy.state_of(FP)
    assert entry is not None
    entry["conditions"]["w"]["evidence"]["details"]["effect_size"] = -1
    assert policy.state_of(FP) != entry


# -- event ids --------------------------------------------------------------------------------


def test_event_ids_are_deterministic() -> None:
    values: list[float | None] = [WARN, WARN, WARN, CRIT, CLEAR, WARN, CLEAR]
    spec = AlertingSpec(renotify_seconds=120)
    a = [e.alert_id for es in run(AlertPolicy(spec), values).values() for e in es]
    b = [e.alert_id for es in run(AlertPolicy(spec), values).values() for e in es]
    # at 60 fire, 180 renotify, 240 escalate, 300 resolve, 360 fire again, 420 resolve
    assert a == b and len(a) == len(set(a)) == 6
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in a)


def test_event_id_depends_on_first_seen_status_and_seq() -> None:
    base = event_id(FP, iso(60), "firing", 0)
    assert base == event_id(FP, iso(60), "firing", 0)
    others = {event_id(FP, iso(120), "firing", 0), event_id(FP, iso(60), "firing", 1),
              event_id(FP, iso(60), "resolved", 0), event_id(fingerprint("s", "y", "psi"), iso(60), "firing", 0)}
    assert base not in others and len(others) == 4
    # the policy's ids are these: receivers can recompute them from the event
    [fired] = AlertPolicy(AlertingSpec()).observe([obs(WARN)], now=60.0)
    assert fired.alert_id == fired.to_event()["alert_id"] == event_id(FP, iso(60), "firing", 0)
    # the same alert starting at another time has another id
    [later] = AlertPolicy(AlertingSpec()).observe([obs(WARN)], now=120.0)
    assert later.alert_id != fired.alert_id


def test_firing_lists_open_alerts_with_their_identity_and_severity() -> None:
    policy = AlertPolicy(AlertingSpec())
    assert policy.firing() == []
    policy.observe([obs(WARN, index=0), obs(CRIT, index=0, feature="y")], now=STEP)
    got = {(a.stream, a.feature, a.check, a.model, a.severity) for a in policy.firing()}
    assert got == {("s", "x", "psi", None, "warning"), ("s", "y", "psi", None, "critical")}
    assert [a.fingerprint for a in policy.firing()] == policy.open_alerts()
    # the identity survives a state round trip (the metrics of a restarted worker show the open alerts)
    restored = AlertPolicy.from_state(AlertingSpec(), json.loads(json.dumps(policy.to_state())))
    assert restored.firing() == policy.firing()
    policy.observe([obs(CLEAR, index=1)], now=2 * STEP)  # x resolves, y still open
    assert [(a.feature, a.severity) for a in policy.firing()] == [("y", "critical")]


def test_state_of_an_earlier_release_is_read_on_one_scale() -> None:
    """A state saved before alert values were put on one scale: no identity, and a drift test's
    evidence with its statistic as value. The restored alert re-notifies with the p-value below alpha
    and learns its identity from its next observation."""
    policy = AlertPolicy(AlertingSpec(renotify_seconds=60))
    test_obs = Observation(stream="s", feature="x", check="ks", value=0.0001, severity="warning", clear=False,
                           threshold=0.01, direction="below", sample_size=500,
                           window={"name": "w", "kind": "count", "index": 0, "start": iso(0), "end": iso(STEP)},
                           reference_version=None, summary="s.x: ks",
                           details={"statistic": 0.2, "p_value": 0.0001, "correction": "bh", "effect_size": 0.5})
    policy.observe([test_obs], now=STEP)
    fp = fingerprint("s", "x", "ks")
    old = policy.state_of(fp)
    assert old is not None
    for k in ("stream", "feature", "check", "model"):
        del old["alert"][k]
    ev = old["conditions"]["w"]["evidence"]
    del ev["direction"]
    ev["value"] = 0.2  # release 1 kept the statistic as the value
    ev["details"] = {"p_value": 0.0001, "effect_size": 0.5}
    restored = AlertPolicy(AlertingSpec(renotify_seconds=60))
    restored.load(fp, json.loads(json.dumps(old)))
    assert [(a.stream, a.check) for a in restored.firing()] == [(None, None)]
    upgraded = restored.state_of(fp)
    assert upgraded is not None
    ev2 = upgraded["conditions"]["w"]["evidence"]
    assert (ev2["value"], ev2["direction"], ev2["details"]["statistic"]) == (0.0001, "below", 0.2)
    # a still-raised window in the hysteresis-free test: the renotification is on the p-value scale
    [event] = restored.observe([test_obs], now=3 * STEP)
    VALIDATOR.validate(event.to_event())
    assert (event.value, event.threshold, event.direction) == (0.0001, 0.01, "below")
    assert [(a.stream, a.feature, a.check) for a in restored.firing()] == [("s", "x", "ks")]
