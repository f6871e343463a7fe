"""The worker benchmark still runs end to end (``--quick``) on the session's broker. No timing is asserted."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson

REPO = Path(__file__).resolve().parents[2]
CONFIGURATIONS = ("raw_consumer", "faust_noop", "streamdq_single", "streamdq_single_checkpoints", "streamdq_array",
                  "streamdq_columnar")


def test_worker_bench_quick(kafka_bootstrap: str, tmp_path: Path) -> None:
    out = tmp_path / "tmp" / "worker.json"
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "worker_bench.py"), "--quick", "--out", str(out)],
                          cwd=REPO, env={**os.environ, "KAFKA_BOOTSTRAP": kafka_bootstrap},
                          capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, f"{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    result = orjson.loads(out.read_bytes())
    assert set(result["configurations"]) == set(CONFIGURATIONS)
    for name in CONFIGURATIONS:
        conf = result["configurations"][name]
        assert conf["records_per_second"] > 0, name
        assert len(conf["runs"]) == 1, name
    assert "workers_scaling" not in result and "recovery" not in result
    assert out.with_suffix(".md").read_text().startswith("# Worker benchmark")
