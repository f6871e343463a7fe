"""Architecture rules: the engine never imports Kafka/Faust, and the packages' public API is pinned."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

FORBIDDEN = ("faust", "mode", "aiokafka", "confluent_kafka", "agents")

PROBE = textwrap.dedent("""
    import importlib, json, pkgutil, sys
    {extra}
    import monitor
    names = ["monitor"]
    for info in pkgutil.walk_packages(monitor.__path__, "monitor."):
        importlib.import_module(info.name)
        names.append(info.name)
    forbidden = {forbidden!r}
    leaked = sorted(m for m in sys.modules if m.split(".")[0] in forbidden)
    print(json.dumps({{"imported": names, "leaked": leaked}}))
""")


def run_probe(extra: str = "") -> dict[str, list[str]]:
    code = PROBE.format(extra=extra, forbidden=FORBIDDEN)
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_monitor_imports_no_kafka_or_faust() -> None:
    out = run_probe()
    # the walk really imported the whole engine (not a vacuous empty walk)
    for name in ("monitor.engine", "monitor.records", "monitor.spec", "monitor.testing.synthetic",
                 "monitor.stats.moments", "monitor.reference.build", "monitor.evaluation.rules",
                 "monitor.windows.track", "monitor.drift.psi", "monitor.checks.feature"):
        assert name in out["imported"]
    assert out["leaked"] == []


def test_probe_detects_a_forbidden_import() -> None:
    # the same probe must notice when one of the forbidden packages is loaded
    out = run_probe(extra="import agents")
    assert "agents" in out["leaked"]


PUBLIC_API = {
    "monitor.stats": {"DEFAULT_CAPACITY", "DEFAULT_LEVELS", "OTHER", "BinnedCounts", "Cardinality", "CategoryCounts",
                      "Moments", "QuantileSummary", "ValueSample"},
    "monitor.drift": {"CHI_SQUARE_FLOOR", "METHODS", "PSI_EPSILON", "DriftResult", "MethodInfo", "adjust",
                      "adjusted_p_values", "benjamini_hochberg", "bonferroni", "chi_square", "default_methods",
                      "hellinger", "js_distance", "ks_test", "linf", "psi", "wasserstein", "wasserstein_normed"},
    "monitor.checks": {"MISSING", "DuplicateFilter", "FeatureState", "FeatureWindowResult", "RecordFlags",
                       "RecordState"},
    "monitor.alerts": {"ALERT_SCHEMA_VERSION", "SEVERITIES", "Alert", "AlertPolicy", "Observation", "OpenAlert",
                       "fingerprint"},
    "monitor.evaluation": {"evaluate_drift", "evaluate_window", "observe_model_window", "observe_window"},
    "monitor.report": {"ESTIMATED_METRICS", "Change", "ModelWindowReport", "Report", "WindowReport", "WindowSummary"},
    "monitor.stream": {"EVENT_CLOCK", "MICRO_BATCH", "SNAPSHOT_VERSION", "FeatureEngine"},
    "monitor.model": {"DEFAULT_VERSION", "ModelMonitor"},
    "monitor": {"Monitor", "Results"},
    "monitor.reference": {"MAX_CATEGORIES", "PROFILE_SCHEMA_VERSION", "FeatureProfile", "ReferenceAudit",
                          "ReferenceProfile", "build_profile", "build_profile_from_file", "load_references",
                          "read_records",
                          "read_rows"},
    "monitor.windows": {"MAX_EMPTY_WINDOWS", "ClosedWindow", "CountTrack", "TimeTrack"},
    "monitor.join": {"COUNTERS", "JOIN_STATE_VERSION", "JoinedExample", "LATENCY_BINS_PER_DECADE",
                     "LATENCY_MAX_SECONDS", "LATENCY_MIN_SECONDS", "LabelJoinStore", "LatencyHistogram", "META_KEY",
                     "PendingPrediction", "combined_stats"},
    "monitor.performance": {"BinaryPerformance", "CBPEstimator", "DEFAULT_ECE_BINS", "DEFAULT_SCORE_BINS",
                            "DEFAULT_THRESHOLD", "IsotonicCalibrator", "LOG_LOSS_EPS", "Label",
                            "MulticlassPerformance", "Performance", "ReferenceBuilder", "RegressionPerformance",
                            "calibrator_from", "label_key", "merge_performance_states", "reference_metrics"},
}


@pytest.mark.parametrize("package", sorted(PUBLIC_API))
def test_public_api_is_pinned(package: str) -> None:
    mod = importlib.import_module(package)
    exported = list(mod.__all__)
    assert len(exported) == len(set(exported)), "duplicate names in __all__"
    assert set(exported) == PUBLIC_API[package]
    missing = [name for name in exported if not hasattr(mod, name)]
    assert missing == []


@pytest.mark.parametrize("package", sorted(PUBLIC_API))
def test_star_import_works(package: str) -> None:
    namespace: dict[str, object] = {}
    exec(f"from {package} import *", namespace)
    assert PUBLIC_API[package] <= set(namespace)


def test_layers_contract_holds_without_exceptions() -> None:
    """The import-linter contracts of pyproject.toml (agents above monitor; the CLI above the worker; the
    engine's layers from stats and drift up to the facade and replay) hold, and none allows an exception."""
    import tomllib

    root = Path(__file__).resolve().parents[2]
    config = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["importlinter"]
    assert {c["type"] for c in config["contracts"]} == {"layers"}
    assert not any("ignore_imports" in c or "unmatched_ignore_imports_alerting" in c for c in config["contracts"])
    lint = Path(sys.executable).with_name("lint-imports")
    res = subprocess.run([str(lint), "--no-cache"], cwd=root, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    assert f"Contracts: {len(config['contracts'])} kept, 0 broken." in res.stdout
