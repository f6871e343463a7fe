"""``streamdq kafka start|status|stop``: a real broker in the background, then nothing left."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import orjson

from agents.cli.localkafka import KAFKA_VERSION, _pid_alive, fetch_jars


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "agents.cli", "kafka", *args], capture_output=True, text=True,
                          timeout=180, env=env, stdin=subprocess.DEVNULL)


def test_start_status_stop(tmp_path: Path) -> None:
    # A private cache dir (sharing the fetched jars) so a developer's own background broker is untouched.
    jars = fetch_jars().parent  # a no-op when ./dev or the broker fixture fetched them already
    (tmp_path / f"kafka-{KAFKA_VERSION}").symlink_to(jars)
    env = {k: v for k, v in os.environ.items() if k != "KAFKA_BOOTSTRAP"}
    env["STREAMDQ_CACHE_DIR"] = str(tmp_path)
    started = _cli("start", env=env)
    state_file = tmp_path / "kafka-run" / "state.json"
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        assert re.search(r"export KAFKA_BOOTSTRAP=127\.0\.0\.1:\d+", started.stdout)
        state = orjson.loads(state_file.read_bytes())
        assert _pid_alive(state["pid"])
        status = _cli("status", env=env)
        assert status.returncode == 0 and status.stdout.startswith("up:"), status.stdout
    finally:
        stopped = _cli("stop", env=env)
    assert stopped.returncode == 0 and "stopped" in stopped.stdout
    assert not _pid_alive(state["pid"]), "the broker is still running after stop"
    assert not state_file.exists()
    assert _cli("status", env=env).returncode == 1


def test_start_is_a_no_op_with_kafka_bootstrap(tmp_path: Path) -> None:
    env = {**os.environ, "KAFKA_BOOTSTRAP": "127.0.0.1:1", "STREAMDQ_CACHE_DIR": str(tmp_path)}
    res = _cli("start", env=env)
    assert res.returncode == 0 and "not starting a local broker" in res.stdout
    assert not (tmp_path / "kafka-run").exists()
