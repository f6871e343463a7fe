"""The JSON Schemas in ``schemas/`` against real objects made by the project's code.

Each published document (input record, alert, dead letter, reference profile,
monitor spec) is produced by the real code path, serialised with orjson as it
is on the wire, parsed back and validated (Draft 2020-12, with format checks).
Negative cases make sure the schemas actually constrain something.
"""

from __future__ import annotations

import base64
import copy
import importlib.util
import itertools
import json
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from jsonschema import Draft202012Validator

from agents.worker.deadletter import MAX_ORIGINAL_BYTES, deadletter_envelope
from monitor.engine import Monitor
from monitor.records import REASONS, Rejection, decode_message
from monitor.reference import ReferenceProfile, build_profile
from monitor.spec import MonitorSpec
from monitor.testing.synthetic import Scenario, SyntheticFeatures, bad_messages

ROOT = Path(__file__).resolve().parents[2]
SCHEMAS = ROOT / "schemas"
DRAFT_2020_12 = "https://json-schema.org/draft/2020-12/schema"
EXPECTED_FILES = {
    "alert.schema.json",
    "deadletter.schema.json",
    "feature_record.schema.json",
    "monitor_spec.schema.json",
    "reference_profile.schema.json",
    "status.schema.json",
}

# jsonschema checks "date-time" only when rfc3339-validator is installed (the test
# extra pins it); without it the format would be silently accepted.
FORMAT_CHECKER = Draft202012Validator.FORMAT_CHECKER
assert "date-time" in FORMAT_CHECKER.checkers, "pip install rfc3339-validator (in the test extra)"


def _load(name: str) -> dict[str, Any]:
    return json.loads((SCHEMAS / name).read_text(encoding="utf-8"))


def _validator(name: str) -> Draft202012Validator:
    return Draft202012Validator(_load(name), format_checker=FORMAT_CHECKER)


def _wire(obj: Any) -> Any:
    """What a consumer sees: the object serialised with orjson and parsed back."""
    return orjson.loads(orjson.dumps(obj))


def _errors(validator: Draft202012Validator, instance: Any) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}"
            for e in validator.iter_errors(instance)]


# --------------------------------------------------------------------------- all files


def test_schema_folder_holds_the_expected_files() -> None:
    assert {p.name for p in SCHEMAS.glob("*.json")} == EXPECTED_FILES


@pytest.mark.parametrize("path", sorted(SCHEMAS.glob("*.json")), ids=lambda p: p.name)
def test_schema_file_is_a_valid_draft_2020_12_schema(path: Path) -> None:
    schema = json.loads(path.read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == DRAFT_2020_12
    assert schema["$id"] == f"https://streamdq.dev/schemas/{path.name}"
    assert isinstance(schema["title"], str) and schema["title"]
    assert isinstance(schema["description"], str) and schema["description"]


def test_date_time_format_is_enforced() -> None:
    checker_validator = Draft202012Validator({"format": "date-time"}, format_checker=FORMAT_CHECKER)
    assert checker_validator.is_valid("2026-01-01T00:00:00.000Z")
    assert checker_validator.is_valid("2026-01-01T00:00:00+00:00")
    assert not checker_validator.is_valid("2026-13-01T00:00:00Z")
    assert not checker_validator.is_valid("t0")


# --------------------------------------------------------------------------- feature records


@pytest.fixture(scope="module")
def record_validator() -> Draft202012Validator:
    return _validator("feature_record.schema.json")


@pytest.fixture(scope="module")
def stream_spec():
    return MonitorSpec.model_validate(_spec_dict()).streams[0]


def test_feature_record_schema_documents_configurable_field_names() -> None:
    schema = _load("feature_record.schema.json")
    desc = schema["description"]
    assert "id_field" in desc and "time_field" in desc and "default" in desc
    assert schema["$defs"]["record"]["required"] == ["record_id"]
    assert {"record_id", "event_time", "schema_version"} <= set(schema["$defs"]["record"]["properties"])


@pytest.mark.parametrize("scenario", [Scenario(), Scenario(drift=True, missing_spike=True)],
                         ids=["clean", "drift+missing"])
def test_synthetic_records_validate(record_validator, stream_spec, scenario) -> None:
    records = SyntheticFeatures(seed=3).records(300, now=1_700_000_000.5, scenario=scenario)
    assert any(r["income"] is None for r in records)  # nulls are exercised
    for rec in records:
        msg = orjson.dumps(rec)
        assert _errors(record_validator, orjson.loads(msg)) == []
        assert decode_message(msg, stream_spec) == ([orjson.loads(msg)], [])


def test_synthetic_batch_validates(record_validator, stream_spec) -> None:
    batch = _wire(SyntheticFeatures(seed=4).records(50, now=1_700_000_000.0))
    assert isinstance(batch, list) and len(batch) == 50
    assert _errors(record_validator, batch) == []
    ok, bad = decode_message(orjson.dumps(batch), stream_spec)
    assert len(ok) == 50 and bad == []


def test_empty_batch_and_batch_with_a_bad_element_are_rejected(record_validator) -> None:
    assert not record_validator.is_valid([])
    good = _wire(SyntheticFeatures(seed=5).record(now=0.0))
    assert record_validator.is_valid([good])
    assert not record_validator.is_valid([good, {"age": 30}])


def _json_bad_messages() -> list[tuple[bytes, str]]:
    out = []
    for msg, reason in itertools.islice(bad_messages(seed=0), 12):
        try:
            orjson.loads(msg)
        except orjson.JSONDecodeError:
            continue  # malformed / NaN: not JSON, nothing for a schema to say
        out.append((msg, reason))
    return out


BAD_JSON_MESSAGES = _json_bad_messages()


def test_bad_messages_cover_the_envelope_reasons() -> None:
    assert {reason for _, reason in BAD_JSON_MESSAGES} == {
        "missing_id", "not_an_object", "unsupported_schema_version"}


@pytest.mark.parametrize(("message", "reason"), BAD_JSON_MESSAGES,
                         ids=[f"{r}-{i}" for i, (_, r) in enumerate(BAD_JSON_MESSAGES)])
def test_bad_json_messages_are_rejected(record_validator, stream_spec, message, reason) -> None:
    data = orjson.loads(message)
    assert not record_validator.is_valid(data)
    assert not record_validator.is_valid([data])
    # ... and the monitor agrees, with the reason the generator promises.
    ok, bad = decode_message(message, stream_spec)
    assert ok == [] and [b.reason for b in bad] == [reason]


# Records on which the schema and the monitor's envelope check must agree.
# ``None`` = accepted.
ENVELOPE_CASES: list[tuple[str, dict[str, Any], str | None]] = [
    ("int-id", {"record_id": 7, "age": 1.5}, None),
    ("negative-int-id", {"record_id": -7}, None),
    ("max-u64-id", {"record_id": 2**64 - 1}, None),
    ("min-i64-id", {"record_id": -(2**63)}, None),
    ("epoch-seconds", {"record_id": "a", "event_time": 1_700_000_000.25}, None),
    ("epoch-seconds-int", {"record_id": "a", "event_time": 1_700_000_000}, None),
    ("iso-z", {"record_id": "a", "event_time": "2026-03-01T12:00:00Z"}, None),
    ("iso-offset", {"record_id": "a", "event_time": "2026-03-01T12:00:00.123+02:00"}, None),
    ("schema-version-1", {"schema_version": 1, "record_id": "a"}, None),
    ("all-value-types", {"record_id": "a", "n": 1, "f": 2.5, "s": "x", "b": False, "z": None}, None),
    ("null-id", {"record_id": None, "age": 3}, "missing_id"),
    ("empty-string-id", {"record_id": ""}, "invalid_id"),
    ("bool-id", {"record_id": True}, "invalid_id"),
    ("float-id", {"record_id": 1.5}, "invalid_id"),
    ("list-id", {"record_id": [1]}, "invalid_id"),
    ("beyond-u64-id", {"record_id": 2**64}, "invalid_id"),
    ("beyond-i64-id", {"record_id": -(2**63) - 1}, "invalid_id"),
    ("object-id", {"record_id": {"a": 1}}, "invalid_id"),
    ("null-event-time", {"record_id": "a", "event_time": None}, None),  # null = absent
    ("epoch-millis-event-time", {"record_id": "a", "event_time": 1_700_000_000_000}, "invalid_event_time"),
    ("bool-event-time", {"record_id": "a", "event_time": True}, "invalid_event_time"),
    ("word-event-time", {"record_id": "a", "event_time": "yesterday"}, "invalid_event_time"),
    ("list-event-time", {"record_id": "a", "event_time": [1]}, "invalid_event_time"),
    ("schema-version-2", {"schema_version": 2, "record_id": "a"}, "unsupported_schema_version"),
    ("schema-version-null", {"schema_version": None, "record_id": "a"}, "unsupported_schema_version"),
    ("schema-version-string", {"schema_version": "1", "record_id": "a"}, "unsupported_schema_version"),
    ("array-element", [1, 2], "not_an_object"),
]


@pytest.mark.parametrize(("record", "reason"), [c[1:] for c in ENVELOPE_CASES],
                         ids=[c[0] for c in ENVELOPE_CASES])
def test_schema_agrees_with_envelope_check(record_validator, stream_spec, record, reason) -> None:
    # json, not orjson: orjson cannot even encode integers beyond 64 bits.
    _ok, bad = decode_message(json.dumps(record).encode(), stream_spec)
    got = [b.reason for b in bad]
    if reason is None:
        assert got == [] and _errors(record_validator, record) == []
    else:
        assert reason in got
        assert not record_validator.is_valid(record)


def test_nested_feature_values_are_outside_the_schema(record_validator) -> None:
    assert not record_validator.is_valid({"record_id": "a", "age": {"v": 1}})
    assert not record_validator.is_valid({"record_id": "a", "tags": ["x"]})


# --------------------------------------------------------------------------- alerts

NOW = 1_700_000_000.0


def _spec_dict() -> dict[str, Any]:
    return {
        "version": 1,
        "name": "schema-test",
        "streams": [{
            "name": "features",
            "min_samples": 100,
            "windows": [{"name": "w500", "kind": "count", "size": 500}],
            "features": [
                {"name": "age", "type": "numeric", "range": {"min": 18, "max": 100}},
                {"name": "income", "type": "numeric", "range": {"min": 0}},
                {"name": "country", "type": "categorical", "categories": ["US", "DE", "FR", "GB", "IN"]},
            ],
        }],
    }


@pytest.fixture(scope="module")
def spec() -> MonitorSpec:
    return MonitorSpec.model_validate(_spec_dict())


@pytest.fixture(scope="module")
def profile(spec) -> ReferenceProfile:
    stream = spec.stream("features")
    clean = SyntheticFeatures(seed=1).records(3000, now=NOW - 86400)
    return build_profile(stream, lambda: clean, source={"kind": "test"})


@pytest.fixture(scope="module")
def alert_events(spec, profile) -> list[dict[str, Any]]:
    engine = Monitor(spec, references={"features": profile}, clock=lambda: NOW)
    drifted = SyntheticFeatures(seed=2).records(
        1000, now=NOW, scenario=Scenario(drift=True, missing_spike=True))
    reports = engine.process("features", drifted)
    assert len(reports) == 2  # two w500 windows closed
    return [_wire(a.to_event()) for r in reports for a in r.alerts]


def test_engine_produces_the_expected_alerts(alert_events) -> None:
    kinds = {(e["feature"], e["check"]) for e in alert_events}
    assert ("age", "psi") in kinds
    assert ("country", "psi") in kinds
    assert ("income", "missing_ratio") in kinds
    # one scale: a test's corrected p-value below alpha, a distance or ratio at or above its level
    tests = [e for e in alert_events if e["check"] in ("ks", "chi_square")]
    assert ("age", "ks") in kinds and tests
    for e in alert_events:
        if e["check"] in ("ks", "chi_square"):
            assert e["direction"] == "below" and e["value"] <= e["threshold"] == 0.01
            d = e["details"]
            assert d["p_value"] <= e["value"] and d["statistic"] > 0 and d["correction"] == "bh", e
        else:
            assert e["direction"] == "above" and e["value"] >= e["threshold"], e


def test_real_alerts_validate(alert_events) -> None:
    validator = _validator("alert.schema.json")
    assert alert_events
    for event in alert_events:
        assert _errors(validator, event) == [], event


def test_alert_schema_requires_every_field_of_the_event(alert_events) -> None:
    schema = _load("alert.schema.json")
    assert set(schema["required"]) == set(alert_events[0])
    assert set(schema["properties"]) == set(alert_events[0])
    assert schema["additionalProperties"] is False


@pytest.mark.parametrize(("path", "value"), [
    (("status",), "open"),
    (("severity",), "error"),
    (("fingerprint",), "ABCDEF0123456789"),
    (("fingerprint",), "0123"),
    (("alert_id",), "0" * 31),
    (("value",), None),
    (("sample_size",), 1.5),
    (("stream",), None),
    (("window", "kind"), "sliding"),
    (("window", "index"), "3"),
    (("window", "start"), "t0"),
    (("reference_version",), "not-a-hash"),
    (("first_seen",), "2026-01-01"),
    (("details",), []),
    (("direction",), "sideways"),
    (("direction",), None),
    (("details", "correction"), "holm"),
    (("details", "p_value"), 1.5),
    (("schema_version",), 1),
    (("unexpected",), 1),
], ids=lambda v: "/".join(v) if isinstance(v, tuple) else repr(v))
def test_tampered_alert_is_rejected(alert_events, path, value) -> None:
    validator = _validator("alert.schema.json")
    event = copy.deepcopy(alert_events[0])
    target = event
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    assert not validator.is_valid(event)


@pytest.mark.parametrize("key", ["window", "summary", "reference_version", "direction"])
def test_alert_without_a_required_field_is_rejected(alert_events, key) -> None:
    event = copy.deepcopy(alert_events[0])
    del event[key]
    assert not _validator("alert.schema.json").is_valid(event)


def test_nullable_alert_fields(alert_events) -> None:
    event = copy.deepcopy(alert_events[0])
    event.update(feature=None, model=None, reference_version=None, status="resolved", severity="info")
    assert _errors(_validator("alert.schema.json"), event) == []


# --------------------------------------------------------------------------- dead letters


def _envelope(reason: str, original: bytes = b'{"x": 1}', index: int | None = None,
              timestamp_ms: int | None = 1_700_000_000_123) -> dict[str, Any]:
    body = deadletter_envelope(stream="features", topic="features", partition=2, offset=41,
                               timestamp_ms=timestamp_ms,
                               rejection=Rejection(reason, f"detail of {reason}", original, index))
    return orjson.loads(body)


def test_deadletter_reason_enum_is_exactly_the_reason_codes() -> None:
    enum = _load("deadletter.schema.json")["properties"]["reason"]["enum"]
    assert len(enum) == len(set(enum))
    assert set(enum) == set(REASONS)


@pytest.mark.parametrize("reason", sorted(REASONS))
def test_deadletter_envelope_validates_for_each_reason(reason) -> None:
    validator = _validator("deadletter.schema.json")
    for env in (_envelope(reason), _envelope(reason, b"", index=3, timestamp_ms=None)):
        assert _errors(validator, env) == [], env
        assert env["reason"] == reason


def test_deadletter_envelopes_of_real_rejections_validate(stream_spec) -> None:
    validator = _validator("deadletter.schema.json")
    messages = [m for m, _ in itertools.islice(bad_messages(seed=1), 6)]
    messages += [b"", b"[]", b'[{"record_id": 1}, 5, {"x": 1}]', b"x" * (stream_spec.max_message_bytes + 1)]
    seen = set()
    for offset, msg in enumerate(messages):
        _, rejections = decode_message(msg, stream_spec)
        assert rejections
        for rej in rejections:
            env = orjson.loads(deadletter_envelope(stream="features", topic="features", partition=0,
                                                   offset=offset, timestamp_ms=None, rejection=rej))
            assert _errors(validator, env) == [], env
            seen.add(rej.reason)
    assert {"empty_message", "empty_batch", "oversized", "not_an_object", "missing_id"} <= seen


def test_truncated_original_validates_and_decodes() -> None:
    original = bytes(range(256)) * (MAX_ORIGINAL_BYTES // 256 + 10)
    env = _envelope("oversized", original)
    assert env["original_truncated"] is True and env["original_size"] == len(original)
    assert _errors(_validator("deadletter.schema.json"), env) == []
    assert base64.b64decode(env["original_b64"], validate=True) == original[:MAX_ORIGINAL_BYTES]


def test_deadletter_original_is_declared_base64() -> None:
    prop = _load("deadletter.schema.json")["properties"]["original_b64"]
    assert prop["contentEncoding"] == "base64"


def test_deadletter_with_unknown_reason_is_rejected() -> None:
    env = _envelope("cosmic_rays")
    assert env["reason"] == "cosmic_rays"
    assert not _validator("deadletter.schema.json").is_valid(env)


@pytest.mark.parametrize(("key", "value"), [
    ("original_b64", "not base64!"),
    ("original_b64", "abc"),
    ("detail", "x" * 1001),
    ("array_index", -1),
    ("deadlettered_at", "now"),
    ("schema_version", 2),
    ("extra", True),
])
def test_tampered_deadletter_is_rejected(key, value) -> None:
    env = _envelope("missing_id")
    env[key] = value
    assert not _validator("deadletter.schema.json").is_valid(env)


# --------------------------------------------------------------------------- reference profiles


def test_real_profile_validates(profile) -> None:
    doc = _wire(profile.to_dict())
    assert {f["type"] for f in doc["features"].values()} == {"numeric", "categorical"}
    assert _errors(_validator("reference_profile.schema.json"), doc) == []
    assert ReferenceProfile.from_dict(doc) == profile


def test_profile_with_every_feature_type_validates() -> None:
    full = MonitorSpec.model_validate(yaml.safe_load((ROOT / "deploy" / "monitor.yaml").read_text()))
    stream = full.streams[0]
    rows = SyntheticFeatures(seed=9).records(1000)
    doc = _wire(build_profile(stream, lambda: rows, source={"kind": "synthetic", "seed": 9}).to_dict())
    assert {f["type"] for f in doc["features"].values()} == {"numeric", "categorical", "boolean"}
    assert _errors(_validator("reference_profile.schema.json"), doc) == []


@pytest.mark.parametrize("mutation", [
    "negative_bin_count", "float_bin_count", "numeric_without_bins", "numeric_with_categories",
    "categorical_without_counts", "categorical_with_moments", "negative_category_count",
    "bad_profile_version", "unknown_type", "extra_feature_key",
])
def test_tampered_profile_is_rejected(profile, mutation) -> None:
    doc = _wire(profile.to_dict())
    age, country = doc["features"]["age"], doc["features"]["country"]
    match mutation:
        case "negative_bin_count":
            age["bin_counts"][0] = -1
        case "float_bin_count":
            age["bin_counts"][0] = 0.5
        case "numeric_without_bins":
            del age["bin_edges"]
        case "numeric_with_categories":
            age["category_counts"] = {"a": 1}
        case "categorical_without_counts":
            del country["category_counts"]
        case "categorical_with_moments":
            country["mean"] = 1.0
        case "negative_category_count":
            country["category_counts"]["US"] = -3
        case "bad_profile_version":
            doc["profile_version"] = "xyz"
        case "unknown_type":
            country["type"] = "text"
        case "extra_feature_key":
            age["median"] = 40.0
    assert not _validator("reference_profile.schema.json").is_valid(doc)


# --------------------------------------------------------------------------- monitor spec


def _generator():
    mod_spec = importlib.util.spec_from_file_location("streamdq_schemas_generate", SCHEMAS / "generate.py")
    assert mod_spec is not None and mod_spec.loader is not None
    module = importlib.util.module_from_spec(mod_spec)
    mod_spec.loader.exec_module(module)
    return module


def test_monitor_spec_schema_is_up_to_date() -> None:
    gen = _generator()
    expected = gen.render(gen.monitor_spec_schema())
    current = (SCHEMAS / "monitor_spec.schema.json").read_text(encoding="utf-8")
    assert current == expected, (
        "schemas/monitor_spec.schema.json is out of date with monitor/spec.py; "
        "regenerate it with: .venv/bin/python schemas/generate.py")


def test_monitor_spec_schema_is_the_pydantic_schema() -> None:
    schema = _load("monitor_spec.schema.json")
    assert schema.pop("$schema") == DRAFT_2020_12
    assert schema.pop("$id") == "https://streamdq.dev/schemas/monitor_spec.schema.json"
    schema.pop("title")
    expected = MonitorSpec.model_json_schema()
    expected.pop("title")
    assert schema == expected


def test_deploy_spec_validates() -> None:
    data = yaml.safe_load((ROOT / "deploy" / "monitor.yaml").read_text(encoding="utf-8"))
    assert _errors(_validator("monitor_spec.schema.json"), data) == []


@pytest.mark.parametrize("where", ["top", "stream", "feature", "window", "outputs"])
def test_spec_with_unknown_key_is_rejected(where) -> None:
    data = yaml.safe_load((ROOT / "deploy" / "monitor.yaml").read_text(encoding="utf-8"))
    target = {"top": data, "stream": data["streams"][0], "feature": data["streams"][0]["features"][0],
              "window": data["streams"][0]["windows"][0], "outputs": data["outputs"]}[where]
    target["colour"] = "blue"
    assert not _validator("monitor_spec.schema.json").is_valid(data)
    with pytest.raises(ValueError):  # pydantic rejects it too
        MonitorSpec.model_validate(data)


# --------------------------------------------------------------------------- model alerts and profiles


@pytest.fixture(scope="module")
def model_run() -> tuple[Any, list[dict[str, Any]]]:
    from monitor.model import ModelMonitor
    from monitor.testing.model import ModelScenario, generate, labelled, model_spec_dict

    mspec = MonitorSpec.model_validate(model_spec_dict(window=1000, min_samples=100, ttl_seconds=60.0, thresholds={
        "label_expired_ratio": {"warning": 0.2, "critical": 0.5}}))
    ref_preds, ref_labels = generate(ModelScenario(n=5000), seed=1)
    reference = build_profile(mspec.stream("predictions"), lambda: labelled(ref_preds, ref_labels),
                              source={"kind": "synthetic"})
    preds, labels = generate(ModelScenario(n=6000, concept_drift_at=2000, score_shift_at=3000, label_share=0.5),
                             seed=2)
    mm = ModelMonitor(mspec, "predictions", reference=reference)
    reports = mm.add_predictions(preds) + mm.add_labels(labels)
    mm.expire(now=preds[-1]["event_time"] + 3600)
    reports += mm.close()
    return reference, [_wire(e.to_event()) for r in reports for e in r.events]


def test_model_alerts_validate(model_run) -> None:
    _, events = model_run
    checks = {e["check"] for e in events}
    assert {"accuracy_drop", "estimated_accuracy_drop"} <= checks, checks
    validator = _validator("alert.schema.json")
    for event in events:
        assert _errors(validator, event) == [], event
        assert event["model"] == "churn:v1" and event["window"]["basis"] in ("labels", "predictions")


def test_profile_with_a_model_section_validates_and_round_trips(model_run) -> None:
    reference, _ = model_run
    doc = _wire(reference.to_dict())
    assert doc["model"]["task"] == "binary" and doc["model"]["examples"] == 5000
    assert _errors(_validator("reference_profile.schema.json"), doc) == []
    assert ReferenceProfile.from_dict(doc) == reference
    doc["model"]["surprise"] = 1
    assert not _validator("reference_profile.schema.json").is_valid(doc)
