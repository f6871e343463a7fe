"""deploy/prometheus/rules/: the Prometheus recording and alerting rules over the worker's metrics, generated
by `streamdq rules deploy/monitor.yaml` (agents.ops.rules), and deploy/grafana/: the dashboard (agents.ops.dashboard).

promtool checks and unit-tests the rules; the checked-in files must be what the generators write now; the
metric names rules and panels use must be ones the worker exports, and the levels the rules alert at must
be those of deploy/monitor.yaml (streamdq's own alerting).
"""

from __future__ import annotations

import math
import re
import shutil
import subprocess
from collections import namedtuple
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest
import yaml
from prometheus_client import CollectorRegistry

from agents.ops.dashboard import dashboard_document, panel_queries, render_dashboard
from agents.ops.rules import RULE_GROUPS, render_rules
from agents.worker.metrics import FaustCollector, IngestCollector, Metrics
from monitor.spec import FEATURE_CHECKS, RECORD_CHECKS, MonitorSpec, Threshold, load_spec

REPO = Path(__file__).resolve().parents[2]
PROMETHEUS = REPO / "deploy" / "prometheus"
RULES = PROMETHEUS / "rules"
RULE_FILES = [RULES / "streamdq.rules.yml"]
DASHBOARD = REPO / "deploy" / "grafana" / "dashboards" / "streamdq.json"
RULE_TESTS = RULES / "tests" / "streamdq-rules.test.yml"
SPEC = REPO / "deploy" / "monitor.yaml"

METRIC_NAME = re.compile(r"streamdq_[a-z0-9_]+")
RECORDED_NAME = re.compile(r"[a-z_]+:[a-z0-9_]+:[a-z0-9_]+")


def promtool(*args: str | Path) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("promtool")
    assert exe, "promtool is required (Debian package prometheus; ./dev test installs it)"
    return subprocess.run([exe, *map(str, args)], cwd=REPO, capture_output=True, text=True, timeout=120)


def rules(kind: str) -> list[dict[str, Any]]:
    """Every rule of the rule files that has the key ``kind`` (``record`` or ``alert``)."""
    out = []
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            out.extend(rule for rule in group["rules"] if kind in rule)
    return out


# ------------------------------------------------------------------ promtool


@pytest.mark.parametrize("path", RULE_FILES, ids=lambda p: p.name)
def test_promtool_check_rules(path: Path) -> None:
    res = promtool("check", "rules", path)
    assert res.returncode == 0, res.stdout + res.stderr


def test_promtool_check_config_loads_the_rules() -> None:
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    assert config["rule_files"] == ["rules/*.yml"]
    # the glob picks up the rule file and not the promtool test file
    assert sorted(PROMETHEUS.glob(config["rule_files"][0])) == sorted(RULE_FILES)
    res = promtool("check", "config", PROMETHEUS / "prometheus.yml")
    assert res.returncode == 0, res.stdout + res.stderr
    for path in RULE_FILES:
        assert path.name in res.stdout, res.stdout  # promtool also checked the rule files


def test_promtool_test_rules() -> None:
    res = promtool("test", "rules", RULE_TESTS)
    assert res.returncode == 0, res.stdout + res.stderr


# ------------------------------------------------------------------ generated files are current


def test_the_shipped_rules_are_generated_from_the_deploy_spec() -> None:
    expected = render_rules(load_spec(SPEC), source="deploy/monitor.yaml")
    assert RULE_FILES[0].read_text() == expected, (
        "deploy/prometheus/rules/streamdq.rules.yml is stale: run\n"
        "  streamdq rules deploy/monitor.yaml -o deploy/prometheus/rules/streamdq.rules.yml")


def test_the_shipped_dashboard_is_generated_from_the_deploy_spec() -> None:
    assert DASHBOARD.read_text() == render_dashboard(load_spec(SPEC)), (
        "deploy/grafana/dashboards/streamdq.json is stale: run\n"
        "  streamdq dashboard deploy/monitor.yaml -o deploy/grafana/dashboards/streamdq.json")


def test_rules_follow_the_spec_not_the_demo(tmp_path: Path) -> None:
    """Another spec gets other streams, features and levels (nothing of deploy/monitor.yaml is hard-coded)."""
    raw = yaml.safe_load(SPEC.read_text())
    raw["streams"] = [raw["streams"][0]]
    raw["streams"][0]["name"] = "orders"
    raw["streams"][0]["features"][0]["thresholds"] = {"missing_ratio": {"warning": 0.3}}
    raw["thresholds"]["out_of_domain_ratio"] = {"warning": 0.02, "critical": 0.07}
    raw["thresholds"]["out_of_order_ratio"] = {"warning": 0.1}
    spec_path = tmp_path / "orders.yaml"
    spec_path.write_text(yaml.safe_dump(raw))
    text = render_rules(load_spec(spec_path), source="orders.yaml")
    assert 'stream="features"' not in text
    assert 'streamdq_feature_missing_ratio{stream="orders", feature="age"}) >= 0.3' in text
    assert 'streamdq_feature_out_of_domain_ratio{stream="orders", feature=~' in text and ">= 0.07" in text
    assert "StreamdqOutOfOrderRecords" in text and "StreamdqLabelsExpired" not in text  # no model here
    doc = yaml.safe_load(text)
    assert [g["name"] for g in doc["groups"]] == list(RULE_GROUPS)
    missing = [r["expr"] for g in doc["groups"] for r in g["rules"]
               if r.get("alert") == "StreamdqFeatureMissingRatioHigh"]
    assert len(missing) == 2 and all("coupon_code" not in e for e in missing)  # nullable: no missing-ratio alert
    path = tmp_path / "orders.rules.yml"
    path.write_text(text)
    res = promtool("check", "rules", path)
    assert res.returncode == 0, res.stdout + res.stderr


# ------------------------------------------------------------------ metric names


def exported_metric_names() -> set[str]:
    """Names of the series a worker running deploy/monitor.yaml can export."""
    registry = CollectorRegistry()
    metrics = Metrics(load_spec(SPEC), registry=registry)
    stats = {k: 1 for k in ("predictions", "labels", "joined", "expired_predictions", "expired_orphan_labels",
                            "evicted_pending", "evicted_orphans", "duplicate_predictions", "duplicate_labels",
                            "skipped_predictions", "skipped_labels", "pending", "orphans")}
    stats.update(coverage=0.9, latency={"count": 1, "p50": 1.0, "p95": 2.0, "max": 3.0, "mean": 1.0})
    model = SimpleNamespace(join_stats=lambda: stats, stream=SimpleNamespace(name="predictions"),
                            counters={"unusable_predictions": 0, "unusable_labels": 0})
    metrics.watch_model(cast(Any, model))
    tp = namedtuple("tp", "topic partition")
    monitor = SimpleNamespace(
        messages_received_total=1, messages_sent=1, events_total=1, events_active=0, events_runtime_avg=0.001,
        rebalances=0, tp_end_offsets={tp("features", 0): 10}, tp_read_offsets={tp("features", 0): 5},
        tp_committed_offsets={tp("features", 0): 5})
    registry.register(FaustCollector(cast(Any, SimpleNamespace(monitor=monitor))))
    ingest = SimpleNamespace(messages=10, batches=1, assignment={("features", 0)}, lag={("features", 0): 5},
                             checkpoints=1, checkpoint_bytes=100, checkpoint_time=1.0)
    registry.register(IngestCollector(lambda: ingest))
    names = set()
    for family in registry.collect():
        # labelled series without children have no samples yet; counters are exported as <name>_total
        names.add(f"{family.name}_total" if family.type == "counter" else family.name)
        names.update(sample.name for sample in family.samples)
    return names


def unknown_names(expr: str, exported: set[str], recorded: set[str]) -> set[str]:
    """Metric names in ``expr`` that are neither exported by the worker nor recorded by a rule."""
    unknown = {name for name in RECORDED_NAME.findall(expr) if name not in recorded}
    expr = RECORDED_NAME.sub(" ", expr)
    return unknown | {name for name in METRIC_NAME.findall(expr) if name not in exported}


def test_rules_use_only_metrics_the_worker_exports() -> None:
    exported = exported_metric_names()
    # the registry really was read (not an empty set that would make the check vacuous)
    assert {"streamdq_records_total", "streamdq_feature_missing_ratio", "streamdq_feature_drifted",
            "streamdq_consumer_lag_records", "streamdq_ingest_messages_total"} <= exported
    recorded = {rule["record"] for rule in rules("record")}
    exprs = [rule["expr"] for rule in rules("record") + rules("alert")]
    assert sum(len(METRIC_NAME.findall(e)) for e in exprs) > 20
    problems = {name for expr in exprs for name in unknown_names(expr, exported, recorded)}
    assert not problems, f"rules use metrics no worker exports: {sorted(problems)}"


def test_dashboard_uses_only_metrics_the_worker_exports_or_the_rules_record() -> None:
    exported = exported_metric_names() | {"up", "ALERTS"}
    recorded = {rule["record"] for rule in rules("record")}
    queries = [q for _, q in panel_queries(dashboard_document(load_spec(SPEC)))]
    assert len(queries) > 40
    names = {n for q in queries for n in METRIC_NAME.findall(q)}
    assert {"streamdq_consumer_lag_records", "streamdq_checkpoint_timestamp_seconds", "streamdq_feature_drift_score",
            "streamdq_model_performance", "streamdq_deadletter_records_total"} <= names
    problems = {name for q in queries for name in unknown_names(q, exported, recorded)}
    assert not problems, f"panels use metrics no worker exports: {sorted(problems)}"


def test_unknown_metric_names_are_found() -> None:
    exported = {"streamdq_records_total"}
    recorded = {"stream:streamdq_records:rate5m"}
    assert unknown_names("sum(rate(streamdq_records_total[5m])) / stream:streamdq_records:rate5m",
                         exported, recorded) == set()
    assert unknown_names("rate(streamdq_records[5m]) > 0 and streamdq_feature_nope_ratio > 0",
                         exported, recorded) == {"streamdq_records", "streamdq_feature_nope_ratio"}
    assert unknown_names("stream:streamdq_nope:rate5m > 1", exported, recorded) == {"stream:streamdq_nope:rate5m"}


# ------------------------------------------------------------------ conventions


def test_rules_follow_the_conventions() -> None:
    for rule in rules("record"):
        assert re.fullmatch(r"[a-z_]+:streamdq_[a-z0-9_]+:[a-z0-9_]+", rule["record"]), rule["record"]
    alerts = rules("alert")
    assert len(alerts) >= 15
    for rule in alerts:
        name = rule["alert"]
        assert name.startswith("Streamdq"), name
        assert rule["labels"]["severity"] in ("warning", "critical"), name
        assert re.fullmatch(r"\d+m", rule.get("for", "")), f"{name}: needs a for: duration"
        assert {"summary", "description"} <= set(rule["annotations"]), name
        assert "$labels." in rule["annotations"]["summary"], name


def test_rule_unit_tests_evaluate_recording_rules_first() -> None:
    # promtool evaluates groups missing from group_eval_order in no fixed order: alerts on recorded series
    # would then start one evaluation early or late from run to run.
    groups = [g["name"] for path in RULE_FILES for g in yaml.safe_load(path.read_text())["groups"]]
    order = yaml.safe_load(RULE_TESTS.read_text())["group_eval_order"]
    assert sorted(order) == sorted(groups)
    assert order[0] == "streamdq.recording"


# ------------------------------------------------------------------ levels = the spec's


def probe_alerts_test(spec: MonitorSpec) -> dict[str, Any]:
    """A promtool test feeding each threshold check of ``spec`` values at and just below each of its
    levels (and far above), expecting the rules to fire exactly the severities streamdq would raise
    (``value >= level``; both rules fire at the critical level)."""
    series: list[dict[str, str]] = []
    expected: dict[tuple[str, str], list[dict[str, Any]]] = {}

    def probe(check: str, metric: str, labels: dict[str, str], threshold: Threshold | None,
              severities: tuple[str, ...]) -> None:
        stream = labels["stream"]
        levels = [threshold.level(s) for s in ("warning", "critical")
                  if threshold is not None and getattr(threshold, s) is not None]
        values = {1e6} | set(levels) | {math.nextafter(v, -math.inf) for v in levels if v > 0}
        exp = expected.setdefault((stream, check), [])
        for value in sorted(values):
            window = f"probe{len(series)}"
            selector = ", ".join(f'{k}="{v}"' for k, v in {**labels, "window": window}.items())
            series.append({"series": f"{metric}{{{selector}}}", "values": " ".join([repr(value)] * 11)})
            for severity in severities:
                if threshold is not None and getattr(threshold, severity) is not None \
                        and value >= threshold.level(severity):
                    alert = {"stream": stream, "feature": labels.get("feature"), "window": window,
                             "check": check, "severity": severity}
                    text = ", ".join(f'{k}="{v}"' for k, v in alert.items() if v is not None)
                    exp.append({"labels": f"{{{text}}}", "value": 1})

    for stream in spec.streams:
        for feature in stream.features:
            base = {"stream": stream.name, "feature": feature.name}
            for check in FEATURE_CHECKS:
                probe(check, f"streamdq_feature_{check}", base, spec.threshold_for(stream, feature, check),
                      ("warning", "critical"))
            # PSI's warning level is streamdq's drift decision (streamdq_feature_drifted); the rules add critical,
            # where drift runs (the labels stream of deploy/monitor.yaml has drift: {methods: []}).
            if stream.drift.methods == [] or feature.type == "string":
                continue
            probe("psi", "streamdq_feature_drift_score", {**base, "method": "psi"},
                  spec.threshold_for(stream, feature, "psi"), ("critical",))
        for check in RECORD_CHECKS:
            metric = "streamdq_freshness_lag_p95_seconds" if check == "freshness_p95_seconds" else f"streamdq_{check}"
            probe(check, metric, {"stream": stream.name}, spec.threshold_for(stream, None, check),
                  ("warning", "critical"))

    # The longest `for:` of these rules is 5m; one query per stream and check keeps failures readable.
    return {
        "rule_files": [str(p) for p in RULE_FILES],
        "evaluation_interval": "1m",
        "tests": [{
            "name": f"levels of {SPEC.name}",
            "interval": "1m",
            "input_series": series,
            "promql_expr_test": [{
                "expr": f'count by (stream, feature, window, check, severity) '
                        f'(ALERTS{{alertstate="firing", stream="{stream}", check="{check}"}})',
                "eval_time": "10m",
                "exp_samples": exp,
            } for (stream, check), exp in expected.items()],
        }],
    }


def test_rules_alert_at_the_levels_of_the_deploy_spec(tmp_path: Path) -> None:
    test = probe_alerts_test(load_spec(SPEC))
    queries = test["tests"][0]["promql_expr_test"]
    checks = {q["expr"].split('check="')[1].split('"')[0] for q in queries}
    assert {"missing_ratio", "out_of_domain_ratio", "psi", "late_ratio", "volume_deviation"} <= checks
    assert sum(len(q["exp_samples"]) for q in queries) > 50
    path = tmp_path / "levels.test.yml"
    path.write_text(yaml.safe_dump(test, sort_keys=False))
    res = promtool("test", "rules", path)
    assert res.returncode == 0, (
        "the rules do not alert at the levels of deploy/monitor.yaml (README defaults and the per-feature "
        "settings); see agents/ops/rules.py\n" + res.stdout + res.stderr)
