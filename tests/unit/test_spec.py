"""The monitor spec: loading, validation errors with dotted paths, thresholds, the CLI."""

from __future__ import annotations

import copy
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from monitor.errors import ConfigError
from monitor.spec import DEFAULT_THRESHOLDS, MonitorSpec, Threshold, format_loc, load_spec, parse_spec

REPO = Path(__file__).resolve().parents[2]
DEPLOY_SPEC = REPO / "deploy" / "monitor.yaml"

BASE: dict[str, Any] = {
    "version": 1,
    "name": "t",
    "streams": [{
        "name": "s",
        "windows": [{"name": "w", "kind": "count", "size": 10}],
        "features": [{"name": "a", "type": "numeric"}, {"name": "b", "type": "categorical"}],
    }],
}


def problems_of(data: Any) -> list[tuple[str, str]]:
    with pytest.raises(ConfigError) as info:
        parse_spec(data)
    assert info.value.problems, "a ConfigError must list its problems"
    return info.value.problems


def mutated(fn) -> dict[str, Any]:
    d = copy.deepcopy(BASE)
    fn(d)
    return d


def paths(problems: list[tuple[str, str]]) -> list[str]:
    return [p for p, _ in problems]


# ---------------------------------------------------------------- the shipped spec


def test_deploy_spec_loads() -> None:
    spec = load_spec(DEPLOY_SPEC)
    assert spec.name == "shop-recommender"
    stream, predictions, labels = spec.streams
    assert (predictions.kind, labels.kind) == ("predictions", "labels")
    assert predictions.model is not None and predictions.model.labels == "labels"
    assert predictions.model.detectors == ["ddm", "adwin"]  # the classifier default
    assert stream.name == "features" and stream.topic == "features"
    assert [w.name for w in stream.windows] == ["w2000", "t30s"]
    assert stream.windows[0].size == 2000 and stream.windows[1].seconds == 30
    names = [f.name for f in stream.features]
    assert names == ["age", "income", "tenure_months", "basket_value", "session_seconds",
                     "country", "device", "is_returning", "coupon_code"]
    assert stream.min_samples == 200 and stream.psi_bins == 10 and stream.partitions == 3
    assert stream.feature("country").categories == ["US", "DE", "FR", "GB", "IN"]
    # relative reference resolved against deploy/
    assert Path(stream.reference) == (DEPLOY_SPEC.parent / "reference" / "features.profile.json").resolve()


def test_base_spec_is_valid() -> None:
    # the fixtures below mutate BASE; it must itself be valid so each failure is the mutation's
    spec = parse_spec(copy.deepcopy(BASE))
    assert isinstance(spec, MonitorSpec)


# ---------------------------------------------------------------- error paths


def test_bad_feature_type_path() -> None:
    d = mutated(lambda d: d["streams"][0]["features"][1].__setitem__("type", "nmeric"))
    problems = problems_of(d)
    assert paths(problems) == ["streams[0].features[1].type"]
    assert "numeric" in problems[0][1]


def test_window_without_size_path() -> None:
    d = mutated(lambda d: d["streams"][0]["windows"][0].pop("size"))
    problems = problems_of(d)
    assert paths(problems) == ["streams[0].windows[0]"]
    assert "size" in problems[0][1]


def test_time_window_with_size_path() -> None:
    d = mutated(lambda d: d["streams"][0]["windows"].append(
        {"name": "t", "kind": "time", "seconds": 5, "size": 3}))
    assert paths(problems_of(d)) == ["streams[0].windows[1]"]


def test_threshold_order_path() -> None:
    d = mutated(lambda d: d.__setitem__("thresholds", {"psi": {"warning": 0.5, "critical": 0.2}}))
    problems = problems_of(d)
    assert paths(problems) == ["thresholds.psi"]
    assert "warning" in problems[0][1] and "critical" in problems[0][1]


def test_empty_threshold_path() -> None:
    d = mutated(lambda d: d.__setitem__("thresholds", {"missing_ratio": {}}))
    assert paths(problems_of(d)) == ["thresholds.missing_ratio"]


def test_unknown_check_name_path() -> None:
    d = mutated(lambda d: d.__setitem__("thresholds", {"psy": {"warning": 0.1}}))
    assert paths(problems_of(d)) == ["thresholds.psy"]


@pytest.mark.parametrize(
    ("mutate", "path"),
    [
        (lambda d: d.__setitem__("nmae", "x"), "nmae"),
        (lambda d: d["streams"][0].__setitem__("bogus", 1), "streams[0].bogus"),
        (lambda d: d["streams"][0]["features"][1].__setitem__("rnage", {}), "streams[0].features[1].rnage"),
        (lambda d: d["streams"][0]["windows"][0].__setitem__("sise", 3), "streams[0].windows[0].sise"),
        (lambda d: d.__setitem__("thresholds", {"psi": {"warning": 0.1, "extra": 1}}), "thresholds.psi.extra"),
        (lambda d: d.__setitem__("outputs", {"alert_topic": "x"}), "outputs.alert_topic"),
        (lambda d: d["streams"][0]["features"][0].__setitem__("range", {"min": 0, "mx": 1}),
         "streams[0].features[0].range.mx"),
    ],
)
def test_unknown_key_reported_at_its_path(mutate, path) -> None:
    problems = problems_of(mutated(mutate))
    assert paths(problems) == [path]
    assert "unknown key" in problems[0][1]


def test_unknown_key_starting_with_model_dash_reported_at_its_path() -> None:
    problems = problems_of(mutated(lambda d: d.__setitem__("model-name", "x")))
    assert paths(problems) == ["model-name"]


def test_several_problems_all_reported() -> None:
    def mutate(d):
        d["streams"][0]["features"][1]["type"] = "text"
        d["streams"][0]["windows"][0]["size"] = 0
        d["extra"] = True

    assert sorted(paths(problems_of(mutated(mutate)))) == sorted(
        ["streams[0].features[1].type", "streams[0].windows[0].size", "extra"])


def test_missing_required_key() -> None:
    problems = problems_of(mutated(lambda d: d["streams"][0].pop("features")))
    assert problems == [("streams[0].features", "required key is missing")]


def test_duplicate_feature_names() -> None:
    d = mutated(lambda d: d["streams"][0]["features"].append({"name": "a", "type": "boolean"}))
    problems = problems_of(d)
    assert paths(problems) == ["streams[0]"]
    assert "duplicate feature name(s): a" in problems[0][1]


def test_duplicate_stream_names() -> None:
    d = mutated(lambda d: d["streams"].append(copy.deepcopy(d["streams"][0])))
    problems = problems_of(d)
    assert paths(problems) == ["(top level)"]
    assert "duplicate stream name(s): s" in problems[0][1]


def test_range_min_greater_than_max() -> None:
    d = mutated(lambda d: d["streams"][0]["features"][0].__setitem__("range", {"min": 5, "max": 1}))
    problems = problems_of(d)
    assert paths(problems) == ["streams[0].features[0].range"]
    assert "'min' (5.0) must not exceed 'max' (1.0)" in problems[0][1]


def test_range_min_equal_max_is_allowed() -> None:
    d = mutated(lambda d: d["streams"][0]["features"][0].__setitem__("range", {"min": 1, "max": 1}))
    assert parse_spec(d).streams[0].features[0].range.min == 1


def test_categories_on_numeric_feature() -> None:
    d = mutated(lambda d: d["streams"][0]["features"][0].__setitem__("categories", ["x"]))
    problems = problems_of(d)
    assert paths(problems) == ["streams[0].features[0]"]
    assert "categorical features only" in problems[0][1]


def test_range_on_categorical_feature() -> None:
    d = mutated(lambda d: d["streams"][0]["features"][1].__setitem__("range", {"min": 0}))
    assert paths(problems_of(d)) == ["streams[0].features[1]"]


def test_duplicate_categories() -> None:
    d = mutated(lambda d: d["streams"][0]["features"][1].__setitem__("categories", ["x", "x"]))
    problems = problems_of(d)
    assert paths(problems) == ["streams[0].features[1]"]
    assert "duplicates" in problems[0][1]


def test_feature_name_clashes_with_id_field() -> None:
    d = mutated(lambda d: d["streams"][0]["features"].append({"name": "record_id", "type": "numeric"}))
    assert "clash" in problems_of(d)[0][1]


@pytest.mark.parametrize("data", [[1, 2], "just text", None, 42])
def test_non_mapping_top_level(data) -> None:
    problems = problems_of(data)
    assert problems[0][0] == "(top level)"
    assert "expected a mapping" in problems[0][1]
    assert type(data).__name__ in problems[0][1]


def test_config_error_is_value_error_and_str_lists_problems() -> None:
    d = mutated(lambda d: d["streams"][0]["features"][1].__setitem__("type", "nmeric"))
    with pytest.raises(ValueError) as info:
        parse_spec(d, source="my.yaml")
    text = str(info.value)
    assert text.startswith("my.yaml: invalid monitor spec")
    assert "streams[0].features[1].type:" in text


def test_format_loc() -> None:
    assert format_loc(("streams", 0, "features", 2, "type")) == "streams[0].features[2].type"
    assert format_loc(()) == "(top level)"
    assert format_loc(("thresholds", "psy", "[key]")) == "thresholds.psy"


# ---------------------------------------------------------------- files


def write(tmp_path: Path, text: str, name: str = "spec.yaml") -> Path:
    p = tmp_path / name
    p.write_text(textwrap.dedent(text), encoding="utf-8")
    return p


def test_yaml_syntax_error_reports_line(tmp_path: Path) -> None:
    p = write(tmp_path, """\
        version: 1
        name: t
        streams: [
          {name: s
        bad: : :
        """)
    with pytest.raises(ConfigError) as info:
        load_spec(p)
    assert "not valid YAML" in info.value.args[0]
    [(where, _msg)] = info.value.problems
    assert where.startswith("line ") and ", column " in where


def test_yaml_syntax_error_line_number_is_right(tmp_path: Path) -> None:
    p = write(tmp_path, "version: 1\nname: t\nkey: [unclosed\n")
    with pytest.raises(ConfigError) as info:
        load_spec(p)
    line = int(info.value.problems[0][0].split(",")[0].removeprefix("line "))
    assert line in (3, 4)  # the flow sequence opened on line 3 runs into the end of the file


def test_yaml_list_top_level(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_spec(write(tmp_path, "- a\n- b\n"))
    assert info.value.problems[0][0] == "(top level)"


def test_empty_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_spec(write(tmp_path, ""))
    assert info.value.problems[0][0] == "(top level)"


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read monitor spec"):
        load_spec(tmp_path / "nope.yaml")


SPEC_WITH_REF = """\
    version: 1
    name: t
    streams:
      - name: clicks
        reference: refs/clicks.json
        windows: [{name: w, kind: count, size: 5}]
        features: [{name: a, type: numeric}]
      - name: views
        topic: web.views
        reference: /abs/views.json
        windows: [{name: w, kind: count, size: 5}]
        features: [{name: a, type: numeric}]
      - name: other
        windows: [{name: w, kind: count, size: 5}]
        features: [{name: a, type: numeric}]
    """


def test_topic_defaults_to_stream_name_and_reference_resolved(tmp_path: Path) -> None:
    sub = tmp_path / "conf"
    sub.mkdir()
    spec = load_spec(write(sub, SPEC_WITH_REF))
    clicks, views, other = spec.streams
    assert clicks.topic == "clicks"
    assert views.topic == "web.views"
    assert Path(clicks.reference) == (sub / "refs" / "clicks.json").resolve()
    assert Path(clicks.reference).is_absolute()
    assert views.reference == "/abs/views.json"
    assert other.reference is None


def test_reference_resolved_against_spec_folder_not_cwd(tmp_path: Path, monkeypatch) -> None:
    sub = tmp_path / "conf"
    sub.mkdir()
    write(sub, SPEC_WITH_REF)
    monkeypatch.chdir(tmp_path)
    spec = load_spec(Path("conf") / "spec.yaml")
    assert Path(spec.streams[0].reference) == (sub / "refs" / "clicks.json").resolve()


def test_duplicate_topics_rejected() -> None:
    d = mutated(lambda d: d["streams"].append({**copy.deepcopy(d["streams"][0]), "name": "s2", "topic": "s"}))
    assert "duplicate stream topic" in problems_of(d)[0][1]


# ---------------------------------------------------------------- thresholds


def test_threshold_precedence() -> None:
    spec = parse_spec({
        "version": 1, "name": "t",
        "thresholds": {"psi": {"warning": 0.2, "critical": 0.4}, "missing_ratio": {"critical": 0.3}},
        "streams": [{
            "name": "s", "windows": [{"name": "w", "kind": "count", "size": 10}],
            "features": [
                {"name": "own", "type": "numeric", "thresholds": {"psi": {"warning": 0.3}}},
                {"name": "plain", "type": "numeric"},
                {"name": "opt", "type": "categorical", "nullable": True},
                {"name": "opt_set", "type": "categorical", "nullable": True,
                 "thresholds": {"missing_ratio": {"warning": 0.5}}},
            ],
        }],
    })
    s = spec.streams[0]
    own, plain, opt, opt_set = s.features
    # feature override > spec thresholds > DEFAULT_THRESHOLDS
    assert spec.threshold_for(s, own, "psi") == Threshold(warning=0.3)
    assert spec.threshold_for(s, plain, "psi") == Threshold(warning=0.2, critical=0.4)
    assert spec.threshold_for(s, plain, "type_violation_ratio") == DEFAULT_THRESHOLDS["type_violation_ratio"]
    assert spec.threshold_for(s, own, "out_of_domain_ratio") is DEFAULT_THRESHOLDS["out_of_domain_ratio"]
    assert spec.threshold_for(s, plain, "missing_ratio") == Threshold(critical=0.3)
    # nullable: no missing_ratio check (not even the spec-wide one) unless the feature sets it
    assert spec.threshold_for(s, opt, "missing_ratio") is None
    assert spec.threshold_for(s, opt_set, "missing_ratio") == Threshold(warning=0.5)
    # nullable only switches off missing_ratio
    assert spec.threshold_for(s, opt, "psi") == Threshold(warning=0.2, critical=0.4)


def test_default_thresholds_used_without_spec_thresholds() -> None:
    spec = parse_spec(copy.deepcopy(BASE))
    s = spec.streams[0]
    for check, thr in DEFAULT_THRESHOLDS.items():
        assert spec.threshold_for(s, s.features[0], check) is thr
    assert DEFAULT_THRESHOLDS["psi"] == Threshold(warning=0.10, critical=0.25)


def test_deploy_spec_thresholds() -> None:
    spec = load_spec(DEPLOY_SPEC)
    s = spec.streams[0]
    assert spec.threshold_for(s, s.feature("coupon_code"), "psi") == Threshold(warning=0.2, critical=0.5)
    assert spec.threshold_for(s, s.feature("coupon_code"), "missing_ratio") is None
    assert spec.threshold_for(s, s.feature("age"), "psi") == Threshold(warning=0.1, critical=0.25)


@pytest.mark.parametrize(
    ("thr", "value", "severity"),
    [(Threshold(warning=0.1, critical=0.25), 0.05, None),
     (Threshold(warning=0.1, critical=0.25), 0.1, "warning"),
     (Threshold(warning=0.1, critical=0.25), 0.25, "critical"),
     (Threshold(critical=0.25), 0.2, None),
     (Threshold(warning=0.1), 5.0, "warning")],
)
def test_threshold_severity(thr: Threshold, value: float, severity: str | None) -> None:
    assert thr.severity(value) == severity


# ---------------------------------------------------------------- CLI


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "agents.cli", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=60)


BROKEN = """\
    version: 1
    name: t
    streams:
      - name: s
        windows: [{name: w, kind: count, size: 10}]
        features:
          - {name: a, type: numeric}
          - {name: b, type: nmeric}
        bogus: 1
    """


def test_cli_validate_broken_spec(tmp_path: Path) -> None:
    result = run_cli("validate", str(write(tmp_path, BROKEN)))
    assert result.returncode == 2, result.stderr
    assert "streams[0].features[1].type" in result.stderr
    assert "streams[0].bogus" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_cli_validate_yaml_error(tmp_path: Path) -> None:
    result = run_cli("validate", str(write(tmp_path, "version: 1\nname: [x\n")))
    assert result.returncode == 2
    assert "line " in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_cli_validate_missing_file(tmp_path: Path) -> None:
    result = run_cli("validate", str(tmp_path / "absent.yaml"))
    assert result.returncode != 0
    assert "Traceback" not in result.stderr + result.stdout


def test_cli_validate_deploy_spec() -> None:
    result = run_cli("validate", str(DEPLOY_SPEC))
    assert result.returncode == 0, result.stderr
    assert "valid" in result.stdout
    assert "Traceback" not in result.stderr + result.stdout
