"""The engine benchmark runs and writes its figures (no timing is asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_engine_benchmark_writes_its_figures(tmp_path: Path) -> None:
    out = tmp_path / "engine.json"
    res = subprocess.run([sys.executable, str(REPO / "benchmarks" / "engine_bench.py"), "--records", "20000",
                          "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    figures = json.loads(out.read_text())
    for key in ("batch", "columnar", "single", "river_yardstick"):
        assert figures[key]["records"] >= 20000 or key == "river_yardstick", key
    assert figures["batch"]["engine_records_per_second"] > 0
    assert set(figures["batch"]["rss_bytes_after"]) == {"20000"}
    assert out.with_suffix(".md").read_text().startswith("# Engine benchmark")
