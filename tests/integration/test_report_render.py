"""``streamdq report`` rendered in a real headless Chromium (the Debian package, driven by Playwright).

A seeded scenario on the demo spec (``deploy/monitor.yaml``): feature records that are clean, then drift
(``age`` +8, ``country`` towards IN), then miss ``income`` in 30% of records; a binary model whose scores
flatten and whose labels then disagree. Both are replayed with the real CLI (a features backtest and a
model backtest), the report is written from the two replay folders, opened from disk in Chromium, and
every figure must have rendered (an SVG with its traces), the console must hold no error and the page
must request nothing but itself. The screenshot goes to the test's folder; with
``STREAMDQ_UPDATE_DOCS=1`` also to ``docs/report.png`` (the one README shows).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from monitor.reference import build_profile
from monitor.spec import parse_spec
from monitor.testing.model import ModelScenario, generate, labelled
from monitor.testing.synthetic import Scenario, SyntheticFeatures

REPO = Path(__file__).resolve().parents[2]
START = datetime(2024, 3, 1, tzinfo=UTC).timestamp()
RATE = 100.0  # records per second of event time
PHASE = 3000  # records per phase: clean, drift, missing-value spike
MODEL = "buy-propensity"

# Every plot is a plotly div with its SVG and as many trace groups as the figure has traces.
PLOTS_JS = """() => [...document.querySelectorAll('section.plot')].map(s => {
    const div = s.querySelector('.js-plotly-plot');
    return {id: s.dataset.plot, div: !!div, svg: !!(div && div.querySelector('svg.main-svg')),
            traces: div && div.data ? div.data.length : 0,
            drawn: div ? div.querySelectorAll('g.trace').length : 0,
            names: div && div.data ? div.data.map(t => t.name || '') : [],
            points: div && div.data ? div.data.reduce((n, t) => n + (t.x ? t.x.length : 0), 0) : 0};
})"""


def _chromium() -> str:
    path = shutil.which("chromium")
    if path is None:
        pytest.fail("the Debian package chromium is not installed (./dev test and ./dev setup install it)")
    return path


def _jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    return path


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    res = subprocess.run([sys.executable, "-m", "agents.cli", *args], cwd=REPO, capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    return res


def _scenario(tmp: Path) -> tuple[Path, dict[str, Any]]:
    """The demo spec with references built here, its records replayed by the CLI into two folders."""
    raw = yaml.safe_load((REPO / "deploy" / "monitor.yaml").read_text())
    spec = parse_spec(raw)
    clean = SyntheticFeatures(seed=1)
    train = [clean.record(now=START - 3600 + i / RATE) for i in range(5000)]
    features_ref = build_profile(spec.stream("features"), lambda: iter(train), source={"kind": "synthetic"})
    ref_p, ref_l = generate(ModelScenario(n=4000, start=START - 3600, model=MODEL), seed=31)
    predictions_ref = build_profile(spec.stream("predictions"), lambda: labelled(ref_p, ref_l),
                                    source={"kind": "synthetic"})
    raw["streams"][0]["reference"] = str(features_ref.save(tmp / "features.profile.json"))
    raw["streams"][1]["reference"] = str(predictions_ref.save(tmp / "predictions.profile.json"))
    spec_path = tmp / "monitor.yaml"
    spec_path.write_text(yaml.safe_dump(raw))

    gen = SyntheticFeatures(seed=2)
    phases = (Scenario(), Scenario(drift=True), Scenario(missing_spike=True))
    live = [gen.record(now=START + (k * PHASE + i) / RATE, scenario=sc)
            for k, sc in enumerate(phases) for i in range(PHASE)]
    preds, labels = generate(ModelScenario(n=4000, start=START, rate=RATE / 2, model=MODEL, score_shift_at=1500,
                                           concept_drift_at=2500, drift_flip=0.35), seed=32)
    _cli("replay", str(spec_path), "--input", str(_jsonl(tmp / "features.jsonl", live)), "--out", str(tmp / "bt"))
    _cli("replay", str(spec_path), "--stream", "predictions", "--input", str(_jsonl(tmp / "preds.jsonl", preds)),
         "--labels", str(_jsonl(tmp / "labels.jsonl", labels)), "--out", str(tmp / "bt-model"))
    return spec_path, raw


def test_report_renders_every_plot_in_headless_chromium(tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    chromium = _chromium()
    spec_path, raw = _scenario(tmp_path)
    out = tmp_path / "report.html"
    res = _cli("report", str(tmp_path / "bt"), str(tmp_path / "bt-model"), "--spec", str(spec_path), "-o", str(out))
    assert "wrote" in res.stdout
    page_html = out.read_text()

    n_features = sum(len(s["features"]) for s in raw["streams"])
    expected = {"alert-timeline", "model-0", *(f"stream-{i}" for i in range(3))}
    console: list[tuple[str, str]] = []
    errors: list[str] = []
    requests: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1900})
            page.on("console", lambda m: console.append((m.type, m.text)))
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("request", lambda r: requests.append(r.url))
            page.goto(out.as_uri(), wait_until="load", timeout=240_000)
            page.wait_for_function("() => [...document.querySelectorAll('section.plot')]"
                                   ".every(s => s.querySelector('svg.main-svg'))", timeout=120_000)
            plots = page.evaluate(PLOTS_JS)
            page.screenshot(path=str(tmp_path / "report.png"))
        finally:
            browser.close()

    assert errors == [], errors
    assert [m for m in console if m[0] in ("error", "warning")] == [], console
    assert requests == [out.as_uri()], requests  # nothing fetched: the page is self-contained
    ids = [p["id"] for p in plots]
    assert expected <= set(ids) and len(ids) == len(expected) + n_features, ids
    for p in plots:
        assert p["div"] and p["svg"], p
        assert p["traces"] > 0 and p["drawn"] >= p["traces"] and p["points"] > 0, p
    by_id = {p["id"]: p for p in plots}
    # What the scenario put in is what the page shows: the drifted and spiking features first, with
    # their reference distribution; the model's realised beside its estimated performance.
    first = by_id["feature-0-0"]["names"]  # the features stream's most alerting feature
    assert {"reference", "psi"} <= set(first) and any(n.endswith("(most drifted)") for n in first), first
    assert {"realised (labels)", "estimated (CBPE, no labels)"} <= set(by_id["model-0"]["names"])
    for needle in ("features.age", "features.income", "features.country", f"{MODEL}:v1"):
        assert needle in page_html, needle
    alerts = [orjson.loads(x) for x in (tmp_path / "bt" / "alerts.jsonl").read_bytes().splitlines()]
    fired = {(a["feature"], a["check"]) for a in alerts if a["status"] == "firing"}
    assert {("age", "psi"), ("income", "missing_ratio")} <= fired, fired
    assert (tmp_path / "report.png").stat().st_size > 50_000
    if os.environ.get("STREAMDQ_UPDATE_DOCS") == "1":
        shutil.copyfile(tmp_path / "report.png", REPO / "docs" / "report.png")
