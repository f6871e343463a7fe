"""streamdq against a secured broker: a local Apache Kafka with a SASL_SSL listener (a test-made CA and
certificate, SCRAM and PLAIN users), started for this module and always stopped.

Every client kind goes over SASL_SSL: confluent-kafka, kcat (an independent client), the Faust worker
(aiokafka) and the CLI. A wrong password or an untrusted CA ends a command with one line and exit 1
within seconds. A worker run with known secrets (SASL password, webhook token, HMAC key) shows none of
them in its log, /metrics, alert events or dead letters, while the webhook proves it received them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from confluent_kafka import Consumer, Producer
from prometheus_client.parser import text_string_to_metric_families

from agents.cli.localkafka import LocalKafka, SaslSslListener
from agents.kafka.connect import client_config
from agents.kafka.security import KafkaSecurity
from agents.kafka.topics import ensure_topics
from monitor.testing.synthetic import Scenario, SyntheticFeatures, bad_messages
from tests.tls import Certificates, make_ca

from .conftest import consume_all, demo_spec, launch_worker, make_reference, wait_for
from .test_notify import Receiver

PASSWORD = f"sasl-{uuid.uuid4().hex}"
#: Seconds a refused login or an untrusted certificate may take to end a command (it takes about one).
FAIL_WITHIN = 20.0


@dataclass
class SecureKafka:
    kafka: LocalKafka
    certs: Certificates
    other_ca: Path  # a CA that did not sign the broker's certificate

    @property
    def bootstrap(self) -> str:
        return self.kafka.sasl_ssl_bootstrap

    def env(self, **over: str) -> dict[str, str]:
        """The ``STREAMDQ_KAFKA_*`` variables of user alice (SCRAM-SHA-512), with ``over`` applied."""
        env = {"STREAMDQ_KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "STREAMDQ_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
               "STREAMDQ_KAFKA_SASL_USERNAME": "alice", "STREAMDQ_KAFKA_SASL_PASSWORD": PASSWORD,
               "STREAMDQ_KAFKA_SSL_CAFILE": str(self.certs.ca_cert)}
        return {**env, **over}

    def security(self, **over: str) -> KafkaSecurity:
        return KafkaSecurity.from_env(self.env(**over))


@pytest.fixture(scope="module")
def secure(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureKafka]:
    work = tmp_path_factory.mktemp("secure-kafka")
    certs = make_ca(work / "tls")
    other = make_ca(work / "other", "untrusted")
    kafka = LocalKafka(sasl_ssl=SaslSslListener(certfile=certs.cert, keyfile=certs.key, users={"alice": PASSWORD}))
    try:
        kafka.start()
        yield SecureKafka(kafka, certs, other.ca_cert)
    finally:
        kafka.stop()


def cli(*args: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("STREAMDQ_KAFKA_") and k != "KAFKA_BOOTSTRAP"}
    return subprocess.run([sys.executable, "-m", "agents.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env={**clean, **env}, stdin=subprocess.DEVNULL)


def sample(metrics: str, name: str, **labels: str) -> float:
    """The value of the sample ``name`` whose labels include ``labels`` (0 when there is none)."""
    return sum(s.value for fam in text_string_to_metric_families(metrics) for s in fam.samples
               if s.name == name and labels.items() <= s.labels.items())


def producer(secure: SecureKafka, **extra: Any) -> Producer:
    # log_level 0: a producer outliving the module's broker would log connection errors at exit.
    return Producer(client_config(secure.bootstrap, secure.security(), {"log_level": 0, **extra}))


def spec_path(tmp_path: Path, uid: str, **extra: Any) -> Path:
    raw = {**demo_spec(uid, None, partitions=1), **extra}
    path = tmp_path / f"spec-{uid}.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


# ------------------------------------------------------------------------------------------------ clients


def test_confluent_round_trip_over_sasl_ssl(secure: SecureKafka) -> None:
    security = secure.security()
    topic = f"sec-rt-{uuid.uuid4().hex[:10]}"
    ensure_topics(secure.bootstrap, {topic: 2}, security=security)
    p = producer(secure, **{"enable.idempotence": True})
    for i in range(20):
        p.produce(topic, orjson.dumps({"i": i}), key=str(i))
    assert p.flush(30) == 0
    consumer = Consumer(client_config(secure.bootstrap, security, {
        "group.id": f"sec-{uuid.uuid4().hex}", "auto.offset.reset": "earliest", "enable.auto.commit": False}))
    consumer.subscribe([topic])
    got: list[int] = []
    deadline = time.monotonic() + 60
    try:
        while len(got) < 20 and time.monotonic() < deadline:
            got += [orjson.loads(m.value())["i"] for m in consumer.consume(100, timeout=1) if m.error() is None]
    finally:
        consumer.close()
    assert sorted(got) == list(range(20))


def test_kcat_over_sasl_ssl(secure: SecureKafka) -> None:
    """kcat, an independent client, produces and consumes over the same listener. It logs in with PLAIN:
    Debian's kcat 1.7.1 (librdkafka 2.0.2) fails SCRAM against this broker, confluent-kafka's does not."""
    kcat = shutil.which("kcat")
    assert kcat, "kcat is required (Debian package kcat; ./dev test installs it)"
    args = [kcat, "-b", secure.bootstrap, *secure.security(STREAMDQ_KAFKA_SASL_MECHANISM="PLAIN").kcat_args()]
    topic = f"sec-kcat-{uuid.uuid4().hex[:10]}"
    ensure_topics(secure.bootstrap, {topic: 1}, security=secure.security())
    lines = [f"line-{i}" for i in range(5)]
    produced = subprocess.run([*args, "-P", "-t", topic], input="\n".join(lines) + "\n", capture_output=True,
                              text=True, timeout=60)
    assert produced.returncode == 0, produced.stderr
    consumed = subprocess.run([*args, "-C", "-t", topic, "-o", "beginning", "-e", "-q"], capture_output=True,
                              text=True, timeout=60)
    assert consumed.returncode == 0, consumed.stderr
    assert consumed.stdout.splitlines() == lines
    refused = subprocess.run([kcat, "-b", secure.bootstrap, "-L", "-m", "5"], capture_output=True, text=True,
                             timeout=60)  # plaintext against the SASL_SSL listener
    assert refused.returncode != 0


def test_cli_over_sasl_ssl(secure: SecureKafka, tmp_path: Path) -> None:
    uid = uuid.uuid4().hex[:10]
    spec = spec_path(tmp_path, uid)
    made = cli("topics", str(spec), "--bootstrap", secure.bootstrap, env=secure.env())
    assert made.returncode == 0, made.stdout + made.stderr
    assert "topic(s) present" in made.stdout
    event = {"alert_id": "a1", "status": "firing", "severity": "critical", "stream": "features", "feature": "age",
             "check": "psi", "value": 0.3, "threshold": 0.25}
    p = producer(secure)
    p.produce(f"alerts-{uid}", orjson.dumps(event))
    assert p.flush(30) == 0
    tail = cli("alerts", "tail", "--spec", str(spec), "--bootstrap", secure.bootstrap, "--from-beginning", "--json",
               "--max-events", "1", "--timeout", "60", env=secure.env())
    assert tail.returncode == 0, tail.stderr
    assert orjson.loads(tail.stdout) == event


@pytest.mark.parametrize("command", ["topics", "worker"])
@pytest.mark.parametrize(("case", "over", "says"), [
    ("wrong password", {"STREAMDQ_KAFKA_SASL_PASSWORD": "not-the-password"},
     "error: Kafka authentication failed for user 'alice' (SCRAM-SHA-512) at {bootstrap}: check "
     "STREAMDQ_KAFKA_SASL_USERNAME, STREAMDQ_KAFKA_SASL_PASSWORD and STREAMDQ_KAFKA_SASL_MECHANISM"),
    ("untrusted CA", {"STREAMDQ_KAFKA_SSL_CAFILE": "{other_ca}"},
     "error: the TLS certificate of Kafka at {bootstrap} is not trusted: check STREAMDQ_KAFKA_SSL_CAFILE "
     "({other_ca}) and that the broker's name matches its certificate"),
])
def test_refused_connection_is_one_line_and_exit_1(secure: SecureKafka, tmp_path: Path, command: str, case: str,
                                                   over: dict[str, str], says: str) -> None:
    fill = {"bootstrap": secure.bootstrap, "other_ca": str(secure.other_ca)}
    env = secure.env(**{k: v.format(**fill) for k, v in over.items()})
    started = time.monotonic()
    res = cli(command, str(spec_path(tmp_path, uuid.uuid4().hex[:10])), "--bootstrap", secure.bootstrap, env=env,
              timeout=FAIL_WITHIN * 3)
    took = time.monotonic() - started
    assert res.returncode == 1, res.stdout + res.stderr
    assert res.stderr.splitlines() == [says.format(**fill)], case
    assert took < FAIL_WITHIN, f"{case}: {took:.1f}s"
    assert PASSWORD not in res.stdout + res.stderr and "KafkaError{" not in res.stderr


# ------------------------------------------------------------------------------------------------ worker and secrets


@pytest.mark.timeout(300)
def test_worker_over_sasl_ssl_keeps_its_secrets(secure: SecureKafka, tmp_path: Path) -> None:
    uid = uuid.uuid4().hex[:10]
    token, hmac_key = f"Bearer tok-{uuid.uuid4().hex}", f"hmac-{uuid.uuid4().hex}"
    key_file = tmp_path / "hmac.key"
    key_file.write_text(hmac_key + "\n")
    secrets = {"SASL password": PASSWORD, "webhook token": token, "HMAC key": hmac_key}
    spec = demo_spec(uid, make_reference(tmp_path / "reference.profile.json"), window=1000, partitions=1)
    spec["outputs"]["alerts_deadletter_topic"] = f"alerts-dl-{uid}"
    hook = {"kind": "webhook", "headers_env": {"Authorization": "STREAMDQ_IT_WEBHOOK_TOKEN"},
            "secret_file": str(key_file)}
    with Receiver(secret=hmac_key.encode()) as rx:
        spec["alerting"]["subscriptions"] = [
            {**hook, "name": "hook", "url": rx.url + "/hook"},
            {**hook, "name": "dead", "url": "http://127.0.0.1:9/never", "max_retries": 0},  # -> dead letters
        ]
        worker = launch_worker(secure.bootstrap, spec, tmp_path, security=secure.security(),
                               env={**secure.env(), "STREAMDQ_IT_WEBHOOK_TOKEN": token, "STREAMDQ_LOG_LEVEL": "debug"})
        try:
            topic = spec["streams"][0]["topic"]
            p = producer(secure, **{"linger.ms": 5})
            gen, bad = SyntheticFeatures(seed=11), bad_messages(seed=5)
            for i in range(4000):
                rec = gen.record(now=time.time(), scenario=Scenario(drift=i >= 2000))
                p.produce(topic, orjson.dumps(rec), key=rec["record_id"])
                if i % 1000 == 500:
                    p.produce(topic, next(bad)[0])
                p.poll(0)
            assert p.flush(30) == 0
            records = "streamdq_records_total"
            wait_for("4,000 records processed and 4 dead-lettered over SASL_SSL",
                     lambda: (sample(worker.metrics(), records, outcome="processed"),
                              sample(worker.metrics(), records, outcome="deadlettered")) == (4000, 4),
                     log=worker.log_tail)
            wait_for("a signed webhook with the token", lambda: rx.verified >= 1, log=worker.log_tail)
            wait_for("a notification dead letter", lambda: sample(worker.metrics(), "streamdq_notifications_total",
                                                                  subscription="dead", outcome="failed"),
                     log=worker.log_tail)
            metrics = worker.metrics()
        finally:
            worker.stop()
    assert all(h.get("Authorization") == token for h in rx.headers)
    outputs = [spec["outputs"][k] for k in ("alerts_topic", "deadletter_topic", "profiles_topic",
                                            "alerts_deadletter_topic")]
    messages = {t: consume_all(secure.kafka.bootstrap, t) for t in outputs}  # the broker's plaintext listener
    assert all(messages.values()), {t: len(m) for t, m in messages.items()}
    shown = {"worker log": worker.log.read_text(errors="replace"), "/metrics": metrics}
    shown |= {t: b"\n".join((m.key() or b"") + b" " + (m.value() or b"") for m in ms).decode(errors="replace")
              for t, ms in messages.items()}
    assert "ALERT FIRING" in shown["worker log"]  # the log holds the run, not nothing
    for where, text in shown.items():
        for what, secret in secrets.items():
            assert secret not in text, f"the {what} appears in {where}"
