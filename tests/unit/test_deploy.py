"""deploy/ stays consistent with the code (docker-compose.yml and its configs: test_compose.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.spec import load_spec

REPO = Path(__file__).resolve().parents[2]


def test_a_window_without_a_value_removes_the_gauge_series() -> None:
    from prometheus_client import CollectorRegistry, generate_latest

    from agents.worker.metrics import Metrics
    from monitor.engine import Monitor

    spec = load_spec(REPO / "deploy" / "monitor.yaml")
    registry = CollectorRegistry()
    metrics = Metrics(spec, registry=registry)
    engine = Monitor(spec, clock=lambda: 0.0)
    records = [{"record_id": i, "age": 30.0 + i % 7} for i in range(2000)]
    [report] = [r for r in engine.process("features", records) if r.window["name"] == "w2000"]
    metrics.observe(report)
    page = generate_latest(registry).decode()
    assert 'streamdq_feature_missing_ratio{feature="age",stream="features",window="w2000"} 0.0' in page
    # a window with no record leaves no ratio to show: the series goes away instead of going stale
    from monitor.report import WindowReport, WindowSummary

    empty = WindowReport(summary=WindowSummary(
        stream=report.stream, window=report.window, count=0,
        features={n: f.__class__(feature=n, count=0, missing=0, type_violations=0, out_of_domain=0, moments=None,
                                 histogram=None, ratios={c: None for c in f.ratios})
                  for n, f in report.features.items()},
        records={}, reference_version=None), drift={})
    metrics.observe(empty)
    assert 'streamdq_feature_missing_ratio{feature="age"' not in generate_latest(registry).decode()


def test_the_build_info_says_whether_the_compiled_kernels_are_in_use(monkeypatch: pytest.MonkeyPatch) -> None:
    from prometheus_client import CollectorRegistry, generate_latest

    import monitor.columns as columns
    from agents.worker.metrics import Metrics

    spec = load_spec(REPO / "deploy" / "monitor.yaml")
    registry = CollectorRegistry()
    Metrics(spec, registry=registry)
    assert 'kernels="compiled"' in generate_latest(registry).decode()
    monkeypatch.setattr(columns, "_kernels", None)
    registry = CollectorRegistry()
    Metrics(spec, registry=registry)
    line = [x for x in generate_latest(registry).decode().splitlines() if x.startswith("streamdq_build_info{")]
    assert len(line) == 1 and 'kernels="python"' in line[0] and line[0].endswith(" 1.0")
