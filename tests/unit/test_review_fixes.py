"""Regressions found in review: each test failed before its fix."""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson

from monitor.engine import EVENT_CLOCK, Monitor
from monitor.records import decode_message
from monitor.spec import MonitorSpec
from monitor.times import parse_times


def make(windows: list[dict[str, Any]], features: list[dict[str, Any]] | None = None, **stream: Any) -> MonitorSpec:
    s = {"name": "f", "windows": windows, "features": features or [{"name": "x", "type": "numeric"}], **stream}
    return MonitorSpec.model_validate({"version": 1, "name": "t", "streams": [s]})


def late_counts(windows: list[dict[str, Any]]) -> list[tuple[int, int, int]]:
    recs = [{"record_id": 1, "event_time": 5, "x": 1.0}, {"record_id": 2, "event_time": 12, "x": 1.0},
            {"record_id": 3, "event_time": 3, "x": 1.0}, {"record_id": 4, "event_time": 45, "x": 1.0}]
    e = Monitor(make(windows, time={"allowed_lateness_seconds": 0}), clock=EVENT_CLOCK)
    out = e.process("f", recs[:1]) + e.process("f", recs[1:3]) + e.process("f", recs[3:]) + e.close()
    return [(r.window["index"], r.records["late"], r.records["late_excluded"]) for r in out if r.window["name"] == "b"]


def test_late_records_are_counted_once_with_several_windows() -> None:
    b = {"name": "b", "kind": "time", "seconds": 20}
    alone = late_counts([b])
    assert alone and any(late == 1 for _, late, _ in alone)
    assert late_counts([{"name": "a", "kind": "time", "seconds": 10}, b]) == alone


def test_a_first_record_without_event_time_does_not_make_later_ones_late() -> None:
    spec = make([{"name": "t", "kind": "time", "seconds": 60}], time={"allowed_lateness_seconds": 30})
    recs = [{"record_id": 0, "x": 1.0}] + [{"record_id": i, "event_time": 1_000.0 + i, "x": 1.0} for i in range(1, 9)]
    one_batch = Monitor(spec, clock=EVENT_CLOCK)
    reports = one_batch.process("f", recs) + one_batch.close()
    live = Monitor(spec, clock=lambda: 1_000_000.0)  # a wall clock far ahead of the event times
    reports_live = live.process("f", recs[:1]) + live.process("f", recs[1:]) + live.close()
    for out in (reports, reports_live):
        assert sum(r.records["late"] for r in out) == 0  # the wall clock never became the watermark
    assert sum(r.count for r in reports) == 9  # in one batch the untimed record takes the first event time
    assert sum(r.count for r in reports_live) == 8  # alone, before any event time: only in count windows


def test_out_of_range_event_times_are_invalid_not_a_crash() -> None:
    spec = make([{"name": "t", "kind": "time", "seconds": 60}])
    stream = spec.streams[0]
    for bad in (1_700_000_000_000, -9.2e12, "NaTZ", "2024Z"):
        ok, rejected = decode_message(orjson.dumps([{"record_id": 1, "event_time": bad, "x": 1.0}]), stream)
        assert list(ok) == [] and [r.reason for r in rejected] == ["invalid_event_time"], bad
        ok, rejected = decode_message(orjson.dumps({"record_id": 1, "event_time": bad, "x": 1.0}), stream)
        assert [r.reason for r in rejected] == ["invalid_event_time"], bad
    assert np.isnan(parse_times(["NaTZ"])).all() and np.isnan(parse_times([1.7e12])).all()
    # and if such values reach the engine directly, it still closes its windows
    e = Monitor(spec, clock=EVENT_CLOCK)
    e.process("f", [{"record_id": 1, "event_time": 1.7e12, "x": 1.0}])
    e.close()


def test_null_event_time_is_absent_whatever_the_message_shape() -> None:
    stream = make([{"name": "w", "kind": "count", "size": 10}]).streams[0]
    rec = {"record_id": 1, "event_time": None, "x": 1.0}
    for message in (rec, [rec], [rec, {"x": 1.0}], {"columns": {k: [v] for k, v in rec.items()}}):
        ok, rejected = decode_message(orjson.dumps(message), stream)
        assert len(ok) == 1 and all(r.reason == "missing_id" for r in rejected), message


def test_flush_keeps_the_first_window_partial() -> None:
    spec = make([{"name": "t", "kind": "time", "seconds": 60}], volume={"expected_per_second": 1.0})
    e = Monitor(spec, clock=EVENT_CLOCK)
    recs = [{"record_id": i, "event_time": 55.0 + i, "x": 1.0} for i in range(20)]
    out = e.process("f", recs) + e.close()
    first = next(r for r in out if r.window["index"] == 0)
    assert first.window["partial"] is True and first.records["volume_deviation"] is None
    assert not any(a.check == "volume_deviation" for r in out for a in r.alerts)


def test_drift_that_cannot_be_computed_is_insufficient_data_not_a_verdict() -> None:
    from monitor.reference import build_profile

    spec = make([{"name": "w", "kind": "count", "size": 200}],
                [{"name": "c", "type": "categorical"}], min_samples=10)
    ref = build_profile(spec.streams[0], lambda: [{"record_id": i} for i in range(50)], source={"kind": "t"})
    [report] = Monitor(spec, references={"f": ref}, clock=lambda: 0.0).process(
        "f", [{"record_id": i, "c": "a"} for i in range(200)])
    assert report.drift["c"] and all(d.statistic is None and d.drifted is None for d in report.drift["c"].values())
    assert not [o for o in report.observations if o.feature == "c" and o.check in report.drift["c"]]


def test_an_unreachable_broker_is_a_clear_error_not_a_traceback() -> None:
    import pytest

    from agents.cli.localkafka import free_port
    from agents.kafka.topics import ensure_topics
    from monitor.errors import KafkaUnavailableError, StreamdqError

    with pytest.raises(KafkaUnavailableError, match="cannot reach Kafka") as info:
        ensure_topics(f"127.0.0.1:{free_port()}", {"t": 1}, timeout=1.5)
    assert isinstance(info.value, StreamdqError)  # the CLI turns it into a message and exit 1


def test_http_client_logs_do_not_carry_urls() -> None:
    import logging

    import agents.notify  # noqa: F401 - importing it sets the levels

    assert logging.getLogger("httpx").getEffectiveLevel() >= logging.WARNING


def test_rolling_reference_detects_a_categorical_shift_without_a_fixed_reference() -> None:
    spec = make([{"name": "w", "kind": "count", "size": 200}], [{"name": "c", "type": "categorical"}],
                rolling_reference=1, min_samples=10)
    e = Monitor(spec, clock=lambda: 0.0)
    before = e.process("f", [{"record_id": i, "c": "a"} for i in range(400)])
    after = e.process("f", [{"record_id": 1000 + i, "c": "b"} for i in range(200)])
    assert not any(d.drifted for r in before for d in r.drift.get("c", {}).values())
    [shifted] = after
    assert shifted.drift["c"]["psi@rolling"].drifted is True


def test_open_vocabularies_merge_by_label() -> None:
    from monitor.stats import CategoryCounts

    a, b, whole = (CategoryCounts([], open_limit=3) for _ in range(3))
    # merging equals counting the concatenation while neither side filled its vocabulary alone
    left, right = ["x", "y", "x"], ["z", "y", "w"]
    for v in left:
        a.update(v)
        whole.update(v)
    for v in right:
        b.update(v)
        whole.update(v)
    a += b
    assert a.get() == whole.get() == {"x": 2, "y": 2, "z": 1, "__other__": 1}
