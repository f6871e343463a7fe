"""deploy/ and docker-compose.yml stay consistent with the code (no Docker engine is needed)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import yaml

from monitor.spec import load_spec

REPO = Path(__file__).resolve().parents[2]


def test_compose_mounts_exist_and_point_at_the_example_spec() -> None:
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"kafka", "worker", "prometheus"} <= set(services)
    for name, svc in services.items():
        for volume in svc.get("volumes", []):
            host = volume.split(":")[0]
            assert (REPO / host).exists(), f"{name}: mounted path {host} does not exist"
    assert services["kafka"]["environment"]["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    assert (REPO / services["worker"]["build"]["dockerfile"]).is_file()
    load_spec(REPO / "deploy" / "monitor.yaml")


def test_prometheus_config_is_valid() -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool is required (Debian package prometheus; ./dev test installs it)"
    res = subprocess.run([promtool, "check", "config", str(REPO / "deploy" / "prometheus" / "prometheus.yml")],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stdout + res.stderr
