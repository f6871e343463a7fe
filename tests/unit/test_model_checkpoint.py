"""The join-state checkpoint protocol of agents/worker/models.py: snapshots, journals, manifests, generations.

The Faust table is a mapping written key by key (its changelog keeps the write order per partition);
a dict stands in for it here, which is what the protocol relies on. The Kafka side (restart, crash,
gap replay) is tested with a real broker in tests/integration/test_model.py.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest

import agents.worker.checkpoint as checkpoint
import agents.worker.models as models
from agents.worker.models import ModelRuntime
from monitor.model import ModelMonitor
from monitor.spec import parse_spec
from monitor.testing.model import ModelScenario, generate, model_spec_dict


def _runtime(table: dict[str, Any]) -> ModelRuntime:
    spec = parse_spec(model_spec_dict(window=500, min_samples=50, ttl_seconds=30.0))
    ctx = SimpleNamespace(spec=spec, app=None, ingest=None)
    rt = ModelRuntime(ctx, spec.stream("predictions"), ModelMonitor(spec, "predictions"), table,  # type: ignore[arg-type]
                      bootstrap="", group_id="g")
    rt.restored = True
    return rt


def _feed(rt: ModelRuntime, preds: list[dict[str, Any]], labels: list[dict[str, Any]], start: int) -> None:
    rt.monitor.add_predictions(preds, offsets=[(start + i) << 24 for i in range(len(preds))])
    rt.monitor.add_labels(labels, offsets=[(start + i) << 24 for i in range(len(labels))])


def _restored(table: dict[str, Any]) -> dict[str, Any]:
    rt = _runtime(table)
    rt._load([0])
    return rt.monitor.store(0).to_state()


def test_journals_between_snapshots_restore_the_exact_state() -> None:
    table: dict[str, Any] = {}
    rt = _runtime(table)
    preds, labels = generate(ModelScenario(n=3000, label_share=0.7), seed=3)
    for k in range(3):  # snapshot, then two journals
        ids = {p["record_id"] for p in preds[k * 1000:(k + 1) * 1000]}
        _feed(rt, preds[k * 1000:(k + 1) * 1000], [lab for lab in labels if lab["record_id"] in ids], k * 1000)
        assert asyncio.run(rt.checkpoint()) == 1
    assert asyncio.run(rt.checkpoint()) == 0  # nothing changed since
    manifest = models.orjson.loads(table["predictions/0"])
    assert manifest["generation"] == 1 and len(manifest["journals"]) == 2
    assert _restored(table) == rt.monitor.store(0).to_state()


def test_a_crash_before_the_manifest_leaves_the_previous_checkpoint_valid() -> None:
    table: dict[str, Any] = {}
    rt = _runtime(table)
    preds, labels = generate(ModelScenario(n=2000), seed=4)
    _feed(rt, preds[:1000], [], 0)
    asyncio.run(rt.checkpoint())
    before = rt.monitor.store(0).to_state()
    manifest = table["predictions/0"]
    _feed(rt, preds[1000:], labels[:500], 1000)
    asyncio.run(rt.checkpoint())
    table["predictions/0"] = manifest  # the new journal's chunks were written, its manifest was not
    assert _restored(table) == before


def test_a_new_snapshot_replaces_the_journals_and_deletes_the_old_generation(monkeypatch: pytest.MonkeyPatch) \
        -> None:
    monkeypatch.setattr(models, "MIN_SNAPSHOT_BYTES", 1)
    table: dict[str, Any] = {}
    rt = _runtime(table)
    preds, labels = generate(ModelScenario(n=4000), seed=5)
    for k in range(4):
        _feed(rt, preds[k * 1000:(k + 1) * 1000], labels[k * 500:(k + 1) * 500], k * 1000)
        asyncio.run(rt.checkpoint())
    manifest = models.orjson.loads(table["predictions/0"])
    assert manifest["generation"] >= 2
    live = {f"predictions/0/{manifest['generation']}/{i}" for i in range(manifest["chunks"])} | {
        f"predictions/0/{manifest['generation']}/j{k}/{i}" for k, n in enumerate(manifest["journals"])
        for i in range(n)} | {"predictions/0"}
    assert set(table) == live  # every older generation's key was deleted
    assert _restored(table) == rt.monitor.store(0).to_state()


def test_journal_chunks_stay_under_the_chunk_size() -> None:
    entries = [(f"id{i}", {"k": "p", "x": "y" * 100}) for i in range(10_000)]
    chunks = checkpoint.journal_chunks(entries)  # type: ignore[arg-type]
    assert len(chunks) > 1 and all(len(c) <= checkpoint.CHUNK_BYTES for c in chunks)
    back = [tuple(item) for c in chunks for item in models.orjson.loads(c)]
    assert back == [(rid, e) for rid, e in entries]


def test_series_of_dropped_model_versions_leave_the_metrics_page() -> None:
    from prometheus_client import CollectorRegistry, generate_latest

    from agents.worker.metrics import Metrics

    spec = parse_spec(model_spec_dict(window=100, min_samples=10, max_versions=1))
    registry = CollectorRegistry()
    metrics = Metrics(spec, registry=registry)
    mm = ModelMonitor(spec, "predictions")
    metrics.watch_model(mm)
    for version in ("v1", "v2"):
        preds = [{"record_id": f"{version}-{i}", "event_time": 1000.0 + i, "model_version": version, "score": 0.8}
                 for i in range(100)]
        for report in mm.add_predictions(preds):
            metrics.observe(report)
        metrics.forget_model_versions("predictions", mm.take_dropped())
    page = generate_latest(registry).decode()
    assert 'version="v2"' in page and 'version="v1"' not in page
