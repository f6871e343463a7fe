"""``streamdq demo`` end to end (on the session's broker, so no second JVM starts)."""

from __future__ import annotations

import os
import re
import subprocess
import sys


def _worker_pids() -> set[int]:
    out = subprocess.run(["pgrep", "-f", "agents.cli worker .*streamdq-demo-"], capture_output=True, text=True)
    return {int(p) for p in out.stdout.split()}


def test_demo_prints_drift_alerts_and_dead_letters_and_exits_cleanly(kafka_bootstrap: str) -> None:
    before = _worker_pids()
    env = {**os.environ, "KAFKA_BOOTSTRAP": kafka_bootstrap, "COLUMNS": "200"}
    res = subprocess.run([sys.executable, "-m", "agents.cli", "demo", "--duration", "24", "--rate", "1500"],
                         capture_output=True, text=True, timeout=240, env=env, stdin=subprocess.DEVNULL)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out
    assert re.search(r"ALERT CRITICAL .*features\.(age|country): distribution drifted", out), out
    assert re.search(r"ALERT \w+ +features\.income: .*missing values", out), out
    assert "DEAD LETTER" in out and "malformed_json" in out, out
    # the model section: windows of labelled examples with the label-free estimate beside, and model alerts
    assert re.search(r"MODEL buy-propensity:v1 perf1k#\d+ labelled 1000: accuracy 0\.\d+ \(estimated without labels "
                     r"0\.\d+", out), out
    assert re.search(r"ALERT \w+ +predictions model buy-propensity:v1: (estimated )?accuracy", out), out
    assert "model windows over labelled examples" in out, out
    assert re.search(r"Metrics: http://127\.0\.0\.1:\d+/metrics", out), out
    m = re.search(r"malformed messages sent: (\d+)", out)
    d = re.search(r"dead letters received: (\d+)", out)
    assert m and d and int(m.group(1)) > 0 and d.group(1) == m.group(1), out
    assert "worker stopped" in out
    assert _worker_pids() - before == set(), "the demo left a worker process behind"
