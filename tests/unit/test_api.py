"""The Python API: Monitor.from_spec, process_records, process_frame and Results (notebooks, batch jobs)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from monitor import Monitor, Results
from monitor.errors import ConfigError
from monitor.reference import build_profile
from monitor.replay import replay
from monitor.spec import parse_spec

SPEC = {"version": 1, "name": "api", "streams": [{
    "name": "f", "windows": [{"name": "w500", "kind": "count", "size": 500},
                             {"name": "t60", "kind": "time", "seconds": 60}],
    "features": [{"name": "x", "type": "numeric", "range": {"min": -10, "max": 10}},
                 {"name": "c", "type": "categorical"}]}]}


def _rows(n: int, seed: int, shift: float = 0.0) -> list[dict[str, object]]:
    rng = np.random.default_rng(seed)
    return [{"record_id": i, "event_time": 1_700_000_000.0 + i * 0.1, "x": float(rng.normal(shift, 1)),
             "c": str(rng.choice(["a", "b", "c"]))} for i in range(n)]


def test_process_records_equals_replay_of_the_same_records(tmp_path: Path) -> None:
    """One engine, two doors: the API's windows and alerts are exactly what replay writes."""
    spec = parse_spec(SPEC)
    ref = build_profile(spec.streams[0], lambda: _rows(3000, 1), source={"kind": "t"})
    live = _rows(2000, 2) + _rows(2000, 3, shift=1.0)
    for i, r in enumerate(live):
        r["record_id"], r["event_time"] = i, 1_700_000_000.0 + i * 0.1
    live.insert(10, {"x": 1.0})  # no id: rejected by both
    results = Monitor.from_spec(SPEC, reference=ref).process_records(live)
    replay(spec, {"f": live}, tmp_path, references={"f": ref})
    replayed = [yaml.safe_load(line) for line in (tmp_path / "alerts.jsonl").read_text().splitlines()]
    assert [a.to_event()["alert_id"] for a in results.alerts] == [e["alert_id"] for e in replayed]
    assert results.alerts and {a.check for a in results.alerts} >= {"psi"}
    assert results.rejected_by_reason == {"missing_id": 1}
    assert sum(1 for r in results.reports if r.window["name"] == "w500") == 8


def test_process_frame_reads_missing_values_and_datetimes() -> None:
    df = pd.DataFrame({"record_id": [1, 2, 3], "x": [1.0, np.nan, 2.0], "c": ["a", None, "b"],
                       "event_time": pd.to_datetime(["2026-01-01T00:00:00", "2026-01-01T00:00:01", None])})
    results = Monitor.from_spec(SPEC, reference=None).process_frame(df)
    windows = results.windows
    x = windows[(windows.feature == "x") & (windows.window == "w500")].iloc[0]
    assert x["count"] == 3 and x["missing_ratio"] == pytest.approx(1 / 3)
    assert bool(x["partial"])  # closed by the end of input
    stream = windows[windows.feature.isna() & (windows.window == "t60")].iloc[0]
    assert stream["missing_event_time"] == 1 and stream["start"] == "2026-01-01T00:00:00.000Z"


def test_from_spec_takes_a_file_with_its_reference_or_a_training_frame(tmp_path: Path) -> None:
    spec = parse_spec(SPEC)
    ref = build_profile(spec.streams[0], lambda: _rows(2000, 1), source={"kind": "t"})
    raw = {**SPEC, "streams": [{**SPEC["streams"][0], "reference": "f.profile.json"}]}  # type: ignore[dict-item]
    ref.save(tmp_path / "f.profile.json")
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(raw))
    from_file = Monitor.from_spec(tmp_path / "spec.yaml")  # the reference path is relative to the spec
    from_frame = Monitor.from_spec(SPEC, reference=pd.DataFrame(_rows(2000, 1)))
    live = _rows(1000, 4, shift=2.0)
    a, b = from_file.process_records(live), from_frame.process_records(live)
    assert [e.to_event()["value"] for e in a.alerts] == [e.to_event()["value"] for e in b.alerts]
    assert any(e.check == "psi" for e in a.alerts)


def test_from_spec_errors_name_the_fix() -> None:
    two = {**SPEC, "streams": [SPEC["streams"][0], {**SPEC["streams"][0], "name": "g"}]}  # type: ignore[dict-item]
    with pytest.raises(ConfigError, match="several streams"):
        Monitor.from_spec(two, reference=pd.DataFrame(_rows(10, 1)))
    monitor = Monitor.from_spec(two)
    with pytest.raises(ConfigError, match="name one with stream="):
        monitor.process_records([])
    assert isinstance(monitor.process_records([], stream="g"), Results)


def test_a_model_stream_batch_from_several_partitions_is_joined_per_partition() -> None:
    from monitor.testing.model import ModelScenario, generate, model_spec_dict

    monitor = Monitor(parse_spec(model_spec_dict(window=100, min_samples=10, ttl_seconds=600.0)))
    preds, labels = generate(ModelScenario(n=400), seed=5)
    parts = [i % 2 for i in range(len(preds))]
    by_id = {p["record_id"]: k for p, k in zip(preds, parts, strict=True)}
    monitor.process("predictions", preds, partition=parts, offsets=list(range(len(preds))))
    reports = monitor.process("labels", labels, partition=[by_id[y["record_id"]] for y in labels],
                              offsets=list(range(len(labels))))
    model = monitor.models["predictions"]
    assert sorted(model.stores) == [0, 1]
    assert model.join_stats()["joined"] == len(labels)
    assert sum(r.count for r in reports if getattr(r, "basis", None) == "labels") == len(labels) // 100 * 100
