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
                 "monitor.stats.moments", "monitor.reference.build", "monitor.alerts.rules",
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
                      "benjamini_hochberg", "bonferroni", "chi_square", "default_methods", "hellinger",
                      "js_distance", "ks_test", "linf", "psi", "wasserstein", "wasserstein_normed"},
    "monitor.checks": {"MISSING", "DuplicateFilter", "FeatureState", "FeatureWindowResult", "RecordFlags",
                       "RecordState"},
    "monitor.alerts": {"ALERT_SCHEMA_VERSION", "QUALITY_CHECKS", "SEVERITIES", "Alert", "AlertPolicy", "Observation",
                       "evaluate_window", "fingerprint", "observe_window"},
    "monitor.reference": {"MAX_CATEGORIES", "PROFILE_SCHEMA_VERSION", "FeatureProfile", "ReferenceAudit",
                          "ReferenceProfile", "build_profile", "build_profile_from_file", "read_records",
                          "read_rows"},
    "monitor.windows": {"MAX_EMPTY_WINDOWS", "ClosedWindow", "CountTrack", "TimeTrack"},
    "monitor.join": {"COUNTERS", "JOIN_STATE_VERSION", "JoinedExample", "LATENCY_BINS_PER_DECADE",
                     "LATENCY_MAX_SECONDS", "LATENCY_MIN_SECONDS", "LabelJoinStore", "LatencyHistogram", "META_KEY",
                     "PendingPrediction", "combined_stats"},
    "monitor.performance": {"BinaryPerformance", "CBPEstimator", "DEFAULT_ECE_BINS", "DEFAULT_SCORE_BINS",
                            "DEFAULT_THRESHOLD", "IsotonicCalibrator", "LOG_LOSS_EPS", "Label",
                            "MulticlassPerformance", "RegressionPerformance"},
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
