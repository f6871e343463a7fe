"""docker-compose.yml checked without a Docker engine: every image pinned, every mounted file in the
repository, host ports unique and on loopback, every dependency defined, the workers scraped, and each
service's config checked by its own tool (``promtool check config``, ``amtool check-config``)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from monitor.spec import load_spec

REPO = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((REPO / "docker-compose.yml").read_text())
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
WORKERS = sorted(n for n, s in SERVICES.items() if s.get("command", [None])[0] == "worker")


def _mounts(svc: dict[str, Any]) -> list[tuple[str, str]]:
    """(source, target) of every volume of a service (short syntax)."""
    out = []
    for v in svc.get("volumes", []):
        source, target, *_ = v.split(":")
        out.append((source, target))
    return out


def _mounted(service: str, target: str) -> Path:
    [source] = [s for s, t in _mounts(SERVICES[service]) if t == target]
    return REPO / source


def _tool(name: str) -> str:
    path = shutil.which(name)
    assert path, f"{name} is required (Debian packages prometheus / prometheus-alertmanager; ./dev test installs them)"
    return path


def test_the_full_stack_is_there() -> None:
    assert {"kafka", "references", "producer", "prometheus", "alertmanager", "grafana"} <= set(SERVICES)
    assert WORKERS == ["worker-1", "worker-2"]
    assert SERVICES["kafka"]["image"].startswith("apache/kafka:")
    assert SERVICES["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"  # KRaft, no ZooKeeper
    assert SERVICES["kafka"]["environment"]["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    assert SERVICES["producer"]["command"][:2] == ["demo", "--producer-only"]


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_image_pinned(name: str) -> None:
    svc = SERVICES[name]
    image = svc.get("image")
    assert image, f"{name}: no image"
    if "build" in svc:  # built here from the repository: the Dockerfile's base image must be pinned too
        dockerfile = REPO / svc["build"]["context"] / svc["build"]["dockerfile"]
        assert dockerfile.is_file(), dockerfile
        bases = re.findall(r"^FROM\s+(\S+)", dockerfile.read_text(), flags=re.M)
        assert bases and all(":" in b and not b.endswith(":latest") for b in bases), bases
        return
    assert "@sha256:" in image or re.fullmatch(r"[\w./-]+:[\w.-]+", image), f"{name}: {image} has no tag"
    tag = image.rsplit(":", 1)[1]
    assert tag != "latest" and re.search(r"\d", tag), f"{name}: {image} is not pinned to a version"


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_mounts_exist(name: str) -> None:
    for source, target in _mounts(SERVICES[name]):
        if source.startswith("."):
            assert (REPO / source).exists(), f"{name}: {source} (mounted at {target}) is not in the repository"
        else:
            assert source in (COMPOSE.get("volumes") or {}), f"{name}: named volume {source} is not declared"


def test_host_ports_unique_and_on_loopback() -> None:
    seen: dict[str, str] = {}
    for name, svc in SERVICES.items():
        for port in svc.get("ports", []):
            ip, host, _container = port.split(":")
            assert ip == "127.0.0.1", f"{name}: {port} listens beyond loopback"
            assert host not in seen, f"host port {host} of {name} is taken by {seen.get(host)}"
            seen[host] = name


def test_dependencies_exist_and_can_be_met() -> None:
    for name, svc in SERVICES.items():
        deps = svc.get("depends_on", {})
        items = deps.items() if isinstance(deps, dict) else ((d, {}) for d in deps)
        for dep, how in items:
            assert dep in SERVICES, f"{name} depends on {dep}, which is not a service"
            condition = how.get("condition", "service_started")
            if condition == "service_healthy":
                assert "healthcheck" in SERVICES[dep], f"{name} waits for {dep} to be healthy; it has no healthcheck"
            elif condition == "service_completed_successfully":
                assert SERVICES[dep].get("restart", "no") == "no", f"{dep} runs once: it must not restart"
            else:
                assert condition == "service_started", condition


def test_workers_read_the_spec_and_the_references_the_references_service_writes() -> None:
    spec = load_spec(_mounted("worker-1", "/etc/streamdq/monitor.yaml"))
    writes = SERVICES["references"]["command"][SERVICES["references"]["command"].index("--write-references") + 1]
    [(volume, _)] = [(s, t) for s, t in _mounts(SERVICES["references"]) if t == writes]
    for worker in WORKERS:
        svc = SERVICES[worker]
        assert svc["environment"]["KAFKA_BOOTSTRAP"] == "kafka:19092"
        assert svc["environment"]["STREAMDQ_INSTANCE_ID"] == worker  # static membership, unique per worker
        # The spec's `reference: reference/x.profile.json` keys resolve next to the mounted spec.
        assert (volume, "/etc/streamdq/reference") in _mounts(svc)
    raw = yaml.safe_load(_mounted("worker-1", "/etc/streamdq/monitor.yaml").read_text())
    refs = [s["reference"] for s in raw["streams"] if s.get("reference")]
    assert refs and all(r.startswith("reference/") for r in refs), refs  # demo --write-references uses these names
    assert len(refs) == len([s for s in spec.streams if s.reference])
    assert "19092" in SERVICES["kafka"]["environment"]["KAFKA_ADVERTISED_LISTENERS"]


def test_prometheus_config_checked_by_promtool_and_scrapes_every_worker() -> None:
    config = _mounted("prometheus", "/etc/prometheus/prometheus.yml")
    res = subprocess.run([_tool("promtool"), "check", "config", str(config)], capture_output=True, text=True,
                         timeout=60)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "rule files found" in res.stdout + res.stderr
    # The rules promtool found next to the config are the ones mounted beside it in the container.
    assert _mounted("prometheus", "/etc/prometheus/rules") == config.parent / "rules"
    doc = yaml.safe_load(config.read_text())
    targets = {t for job in doc["scrape_configs"] for sc in job["static_configs"] for t in sc["targets"]}
    assert targets == {f"{w}:6066" for w in WORKERS}
    [am] = [t for a in doc["alerting"]["alertmanagers"] for sc in a["static_configs"] for t in sc["targets"]]
    assert am == "alertmanager:9093" and "alertmanager" in SERVICES


def test_alertmanager_config_checked_by_amtool() -> None:
    config = _mounted("alertmanager", "/etc/alertmanager/alertmanager.yml")
    assert f"--config.file={'/etc/alertmanager/alertmanager.yml'}" in SERVICES["alertmanager"]["command"]
    res = subprocess.run([_tool("amtool"), "check-config", str(config)], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0 and "SUCCESS" in res.stdout, res.stdout + res.stderr


def test_a_broken_config_fails_the_tools(tmp_path: Path) -> None:
    """The checks above can fail: each tool rejects a broken file."""
    bad = tmp_path / "prometheus.yml"
    bad.write_text("scrape_configs:\n  - job_name: x\n    scrape_interval: soon\n")
    assert subprocess.run([_tool("promtool"), "check", "config", str(bad)], capture_output=True).returncode != 0
    bad_am = tmp_path / "alertmanager.yml"
    bad_am.write_text("route:\n  receiver: nobody\nreceivers: []\n")
    assert subprocess.run([_tool("amtool"), "check-config", str(bad_am)], capture_output=True).returncode != 0


def test_grafana_is_provisioned_with_the_prometheus_of_the_stack() -> None:
    provisioning = _mounted("grafana", "/etc/grafana/provisioning")
    assert _mounted("grafana", "/var/lib/grafana/dashboards").is_dir()
    sources = [s for f in sorted((provisioning / "datasources").glob("*.yml"))
               for s in yaml.safe_load(f.read_text())["datasources"]]
    [prom] = [s for s in sources if s["type"] == "prometheus"]
    assert prom["url"] == "http://prometheus:9090"
    assert "127.0.0.1:9090:9090" in SERVICES["prometheus"]["ports"]
