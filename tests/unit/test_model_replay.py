"""Offline replay of a model's predictions and labels (``streamdq replay --stream predictions --labels FILE``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import yaml

from monitor.reference import build_profile
from monitor.spec import parse_spec
from monitor.testing.model import ModelScenario, generate, labelled, model_spec_dict

REPO = Path(__file__).resolve().parents[2]


def _write_jsonl(path: Path, rows: list[dict]) -> Path:  # type: ignore[type-arg]
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    return path


def _setup(tmp_path: Path) -> tuple[Path, Path, Path]:
    raw = model_spec_dict(window=1000, min_samples=100, ttl_seconds=600.0)
    spec = parse_spec(raw)
    ref_p, ref_l = generate(ModelScenario(n=8000), seed=31)
    ref = build_profile(spec.stream("predictions"), lambda: labelled(ref_p, ref_l), source={"kind": "synthetic"})
    raw["streams"][0]["reference"] = str(ref.save(tmp_path / "predictions.profile.json"))
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(yaml.safe_dump(raw))
    preds, labels = generate(ModelScenario(n=8000, concept_drift_at=4000, drift_flip=0.35), seed=32)
    labels = [*labels[:100], {"record_id": "broken"}, *labels[100:]]  # no label value: not joinable, not fatal
    return (spec_path, _write_jsonl(tmp_path / "predictions.jsonl", preds),
            _write_jsonl(tmp_path / "labels.jsonl", labels))


def _replay(spec: Path, preds: Path, labels: Path, out: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "agents.cli", "replay", str(spec), "--stream", "predictions",
                           "--input", str(preds), "--labels", str(labels), "--out", str(out)],
                          capture_output=True, text=True, timeout=120, cwd=REPO)


def test_model_replay_writes_model_windows_and_alerts_deterministically(tmp_path: Path) -> None:
    spec, preds, labels = _setup(tmp_path)
    first = _replay(spec, preds, labels, tmp_path / "a")
    assert first.returncode == 0, first.stdout + first.stderr
    second = _replay(spec, preds, labels, tmp_path / "b")
    assert second.returncode == 0, second.stderr
    for name in ("alerts.jsonl", "windows.jsonl", "deadletters.jsonl"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    alerts = [orjson.loads(x) for x in (tmp_path / "a" / "alerts.jsonl").read_bytes().splitlines()]
    windows = [orjson.loads(x) for x in (tmp_path / "a" / "windows.jsonl").read_bytes().splitlines()]
    model_windows = [w for w in windows if "basis" in w]
    labelled_windows = [w for w in model_windows if w["basis"] == "labels"]
    assert sum(w["count"] for w in labelled_windows) == 8000  # every label joined (the broken one is not a label)
    assert {w["stream"] for w in windows if "basis" not in w} == {"predictions", "labels"}  # quality and drift too
    drops = [a for a in alerts if a["check"] == "accuracy_drop" and a["status"] == "firing"]
    assert drops and drops[0]["model"] == "churn:v1"
    first_drift_window = next(w for w in labelled_windows if w["realised"]["accuracy"] < 0.8)
    assert drops[0]["window"]["index"] <= first_drift_window["window"]["index"] + 1
    assert "churn:v1" in first.stdout  # the summary table names the model
    # the header counts each input: 8,000 predictions and 8,001 labels (not 16,001 "records")
    header = " ".join(first.stdout.split())
    assert "8,000 predictions, 8,001 labels, " in header and "16,001" not in header


def test_labels_option_needs_a_predictions_stream(tmp_path: Path) -> None:
    spec, _, labels = _setup(tmp_path)
    res = subprocess.run([sys.executable, "-m", "agents.cli", "replay", str(spec), "--stream", "labels",
                          "--input", str(labels), "--labels", str(labels), "--out", str(tmp_path / "x")],
                         capture_output=True, text=True, timeout=120, cwd=REPO)
    assert res.returncode == 2 and "--labels goes with a kind: predictions --stream" in res.stderr + res.stdout


def test_replay_needs_only_the_replayed_streams_references(tmp_path: Path) -> None:
    spec, preds, labels = _setup(tmp_path)
    raw = yaml.safe_load(spec.read_text())
    raw["streams"][0]["reference"] = str(tmp_path / "not-built-yet.profile.json")  # the predictions stream's
    spec.write_text(yaml.safe_dump(raw))

    def run(stream: str, data: Path, *more: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "agents.cli", "replay", str(spec), "--stream", stream,
                               "--input", str(data), "--out", str(tmp_path / stream), *more],
                              capture_output=True, text=True, timeout=120, cwd=REPO)

    res = run("labels", labels)
    assert res.returncode == 0, res.stdout + res.stderr
    res = run("predictions", preds, "--labels", str(labels))  # its own reference is missing: an error
    assert res.returncode == 2 and "not-built-yet.profile.json does not exist" in res.stdout + res.stderr
    res = run("predictions", preds)  # without its labels: says what to give
    assert res.returncode == 2 and "replay it together with its labels stream 'labels'" in res.stdout + res.stderr
