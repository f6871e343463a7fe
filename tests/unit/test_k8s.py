"""deploy/k8s/ validated against the Kubernetes OpenAPI schemas (kubernetes-validate, offline: the schemas
ship in the package) and checked against the code: replicas match the partitions, static membership from the
pod name, probes on /health, scrape annotations, the headless Service, the spec ConfigMap equal to
deploy/monitor.yaml, and the Kafka login from the Secret under the variable names the README documents."""

from __future__ import annotations

import copy
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from monitor.spec import parse_spec

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy" / "k8s"
#: Kubernetes versions the manifests must validate against (the oldest supported and the newest known).
VERSIONS = ("1.30.0", kubernetes_validate.latest_version())
#: Custom resources: their schemas come with their operator, not with Kubernetes.
CRDS = {"PodMonitor"}


def _docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


MANIFESTS = sorted([*K8S.glob("*.yaml"), *(K8S / "examples").glob("*.yaml")])
ALL = {(p.relative_to(K8S).as_posix(), d["kind"]): d for p in MANIFESTS for d in _docs(p)}


def _one(kind: str, *, example: bool = False) -> dict[str, Any]:
    [doc] = [d for (path, k), d in ALL.items() if k == kind and path.startswith("examples/") == example]
    return doc


def _container() -> dict[str, Any]:
    [c] = _one("Deployment")["spec"]["template"]["spec"]["containers"]
    return c


def test_manifests_present() -> None:
    kinds = {k for (path, k) in ALL if not path.startswith("examples/")}
    assert kinds == {"Deployment", "Service", "ConfigMap"}
    assert {k for (path, k) in ALL if path.startswith("examples/")} == {"Secret", "PodMonitor"}


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("key", sorted(k for k in ALL if k[1] not in CRDS), ids=lambda k: f"{k[0]}:{k[1]}")
def test_valid_against_the_kubernetes_schema(key: tuple[str, str], version: str) -> None:
    kubernetes_validate.validate(ALL[key], version, strict=True)


@pytest.mark.parametrize("break_it", [
    lambda d: d["spec"].__setitem__("replicas", "three"),
    lambda d: d["spec"]["template"]["spec"]["containers"][0]["livenessProbe"].__setitem__("httpGett", {}),
    lambda d: d["spec"]["template"]["spec"]["containers"][0]["env"].append({"value": "no name"}),
    lambda d: d["spec"].pop("selector"),
], ids=["wrong-type", "unknown-field", "missing-required", "no-selector"])
def test_the_validator_rejects_a_broken_deployment(break_it: Any) -> None:
    doc = copy.deepcopy(_one("Deployment"))
    break_it(doc)
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(doc, VERSIONS[-1], strict=True)


def test_podmonitor_selects_the_workers_port() -> None:
    pm = _one("PodMonitor", example=True)
    assert pm["apiVersion"] == "monitoring.coreos.com/v1"
    assert pm["spec"]["selector"]["matchLabels"] == _one("Deployment")["spec"]["selector"]["matchLabels"]
    [endpoint] = pm["spec"]["podMetricsEndpoints"]
    assert endpoint["port"] in {p["name"] for p in _container()["ports"]} and endpoint["path"] == "/metrics"


def test_spec_configmap_is_deploy_monitor_yaml() -> None:
    res = subprocess.run([sys.executable, str(K8S / "configmap.py"), "--check"], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    text = _one("ConfigMap")["data"]["monitor.yaml"]
    assert text == (REPO / "deploy" / "monitor.yaml").read_text()
    parse_spec(yaml.safe_load(text))


def test_replicas_match_the_partitions() -> None:
    spec = parse_spec(yaml.safe_load(_one("ConfigMap")["data"]["monitor.yaml"]))
    deployment = _one("Deployment")
    assert deployment["spec"]["replicas"] == max(s.partitions for s in spec.streams)
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxSurge"] == 0  # never a worker without partitions


def test_static_membership_from_the_pod_name() -> None:
    env = {e["name"]: e for e in _container()["env"]}
    assert env["STREAMDQ_INSTANCE_ID"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert env["STREAMDQ_WEB_BIND"]["value"] == "0.0.0.0"


def test_probes_and_scraping_on_the_web_port() -> None:
    container = _container()
    [port] = container["ports"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert int(env["STREAMDQ_WEB_PORT"]) == port["containerPort"] == 6066
    assert container["readinessProbe"]["httpGet"] == {"path": "/health", "port": port["name"]}
    assert container["livenessProbe"]["httpGet"] == {"path": "/health/live", "port": port["name"]}
    annotations = _one("Deployment")["spec"]["template"]["metadata"]["annotations"]
    assert annotations == {"prometheus.io/scrape": "true", "prometheus.io/port": str(port["containerPort"]),
                           "prometheus.io/path": "/metrics"}


def test_headless_service_selects_the_worker_pods() -> None:
    service, deployment = _one("Service"), _one("Deployment")
    assert service["spec"]["clusterIP"] == "None"
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert deployment["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    [port] = service["spec"]["ports"]
    assert port["targetPort"] == _container()["ports"][0]["name"]


def test_kafka_login_from_the_secret_under_the_readme_names() -> None:
    readme = (REPO / "README.md").read_text()
    security = readme[readme.index("## Security"):]
    documented = set(re.findall(r"`(STREAMDQ_KAFKA_[A-Z_]+)`", security))
    container = _container()
    kafka_env = {e["name"]: e for e in container["env"] if e["name"].startswith("STREAMDQ_KAFKA_")}
    assert kafka_env and set(kafka_env) <= documented, set(kafka_env) - documented
    secret = _one("Secret", example=True)
    assert kafka_env["STREAMDQ_KAFKA_SASL_USERNAME"]["valueFrom"]["secretKeyRef"] == {
        "name": secret["metadata"]["name"], "key": "username"}
    assert "STREAMDQ_KAFKA_SASL_PASSWORD" not in kafka_env  # the password comes as a file, not a variable
    volumes = {v["name"]: v for v in _one("Deployment")["spec"]["template"]["spec"]["volumes"]}
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    for var in ("STREAMDQ_KAFKA_SASL_PASSWORD_FILE", "STREAMDQ_KAFKA_SSL_CAFILE"):
        path = Path(kafka_env[var]["value"])
        mount = mounts[str(path.parent)]
        source = volumes[mount["name"]]["secret"]
        assert source["secretName"] == secret["metadata"]["name"]
        [item] = [i for i in source["items"] if i["path"] == path.name]
        assert item["key"] in secret["stringData"]


def test_spec_and_references_are_mounted_where_the_spec_looks() -> None:
    container = _container()
    assert container["args"] == ["worker", "/etc/streamdq/monitor.yaml"]
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in _one("Deployment")["spec"]["template"]["spec"]["volumes"]}
    spec_mount = mounts["/etc/streamdq/monitor.yaml"]
    assert spec_mount["subPath"] == "monitor.yaml"
    assert volumes[spec_mount["name"]]["configMap"]["name"] == _one("ConfigMap")["metadata"]["name"]
    raw = yaml.safe_load(_one("ConfigMap")["data"]["monitor.yaml"])
    for stream in raw["streams"]:
        if stream.get("reference"):
            folder = "/etc/streamdq/" + str(Path(stream["reference"]).parent)
            assert folder in mounts, f"{stream['reference']} resolves to {folder}, which is not mounted"
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert any(env["STREAMDQ_DATA_DIR"].startswith(m) for m in mounts)  # writable: the root filesystem is not


def test_image_pinned() -> None:
    image = _container()["image"]
    assert ":" in image and not image.endswith(":latest")


def test_the_worker_reads_the_pod_environment(tmp_path: Path) -> None:
    """The container's environment, with the example Secret's values and files (its CA placeholder replaced by
    a real one), is what Settings accepts."""
    from agents.settings import Settings
    from tests.tls import make_ca

    secret = dict(_one("Secret", example=True)["stringData"])
    secret["ca.pem"] = make_ca(tmp_path / "ca").ca_cert.read_text()
    volumes = {v["name"]: v for v in _one("Deployment")["spec"]["template"]["spec"]["volumes"]}
    files: dict[str, Path] = {}
    for m in _container()["volumeMounts"]:
        source = volumes[m["name"]].get("secret")
        for item in (source or {}).get("items", []):
            local = tmp_path / item["path"]
            local.write_text(secret[item["key"]])
            files[f"{m['mountPath']}/{item['path']}"] = local
    env: dict[str, str] = {}
    for e in _container()["env"]:
        if "value" in e:
            env[e["name"]] = str(files.get(e["value"], e["value"]))
        elif "secretKeyRef" in e["valueFrom"]:
            env[e["name"]] = secret[e["valueFrom"]["secretKeyRef"]["key"]]
        else:
            env[e["name"]] = "streamdq-worker-5d8f7b9c4-x2x7k"  # metadata.name of a Deployment's pod
    settings = Settings.from_env(environ=env)
    assert settings.instance_id == "streamdq-worker-5d8f7b9c4-x2x7k" and settings.web_port == 6066
    assert settings.bootstrap == env["KAFKA_BOOTSTRAP"]
    kafka = settings.kafka
    assert (kafka.protocol, kafka.mechanism, kafka.username) == ("SASL_SSL", "SCRAM-SHA-512", "streamdq")
    assert kafka.password is not None and kafka.password.get_secret_value() == secret["password"]
    assert kafka.cafile == str(files["/run/secrets/kafka/ca.pem"])
