"""Kafka security settings and secrets hygiene without a broker: environment parsing, rendering for
confluent-kafka / Faust / kcat, one-line connection errors, webhook secrets from the environment or a
file, the local broker's SASL_SSL properties; and that no secret shows in a repr, str, error or log."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import time
from pathlib import Path
from typing import Any

import faust
import httpx
import pytest
from confluent_kafka import KafkaError
from prometheus_client import CollectorRegistry

from agents.cli.localkafka import LocalKafka, SaslSslListener
from agents.kafka.connect import ErrorLog, check_connection, client_config, explain
from agents.kafka.security import PLAINTEXT, KafkaSecurity
from agents.notify import Notifier, verify_signature
from agents.settings import Settings
from monitor.errors import ConfigError, KafkaLauncherError, KafkaUnavailableError
from monitor.spec import SubscriptionSpec
from tests.tls import Certificates, make_ca

PASSWORD = "pw-Sekr1t-4711"
KEY_PASSWORD = "keypw-Sekr1t-0815"


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_ca(tmp_path_factory.mktemp("tls"))


def sasl_env(**over: str) -> dict[str, str]:
    env = {"STREAMDQ_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "STREAMDQ_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
           "STREAMDQ_KAFKA_SASL_USERNAME": "alice", "STREAMDQ_KAFKA_SASL_PASSWORD": PASSWORD}
    return {k: v for k, v in {**env, **over}.items() if v}


def problems(env: dict[str, str]) -> dict[str, str]:
    with pytest.raises(ConfigError) as info:
        KafkaSecurity.from_env(env)
    assert PASSWORD not in str(info.value)
    return dict(info.value.problems)


# ------------------------------------------------------------------------------------------------ parsing


def test_default_is_plaintext_and_changes_no_client_config() -> None:
    sec = KafkaSecurity.from_env({})
    assert sec == PLAINTEXT and sec.protocol == "PLAINTEXT"
    assert sec.confluent_config() == {} and sec.kcat_args() == [] and sec.faust_credentials() is None
    assert client_config("b:1", sec, {"log_level": 0}) == {"bootstrap.servers": "b:1", "log_level": 0}
    assert Settings.from_env(environ={}).kafka == PLAINTEXT


def test_sasl_plaintext_from_env() -> None:
    sec = KafkaSecurity.from_env(sasl_env(STREAMDQ_KAFKA_SECURITY_PROTOCOL="sasl_plaintext",
                                          STREAMDQ_KAFKA_SASL_MECHANISM="scram-sha-256"))
    assert (sec.protocol, sec.mechanism, sec.username) == ("SASL_PLAINTEXT", "SCRAM-SHA-256", "alice")
    assert sec.password is not None and sec.password.get_secret_value() == PASSWORD
    assert sec.confluent_config() == {"security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "SCRAM-SHA-256",
                                      "sasl.username": "alice", "sasl.password": PASSWORD}


def test_password_from_a_file(tmp_path: Path) -> None:
    path = tmp_path / "pw"
    path.write_text(PASSWORD + "\n")
    sec = KafkaSecurity.from_env(sasl_env(STREAMDQ_KAFKA_SASL_PASSWORD="", STREAMDQ_KAFKA_SASL_PASSWORD_FILE=str(path)))
    assert sec.password is not None and sec.password.get_secret_value() == PASSWORD  # trailing newline dropped
    assert sec.password_source == f"STREAMDQ_KAFKA_SASL_PASSWORD_FILE ({path})"


@pytest.mark.parametrize(("env", "variable", "says"), [
    ({"STREAMDQ_KAFKA_SECURITY_PROTOCOL": "SASL"}, "STREAMDQ_KAFKA_SECURITY_PROTOCOL", "must be one of"),
    (sasl_env(STREAMDQ_KAFKA_SASL_MECHANISM="GSSAPI"), "STREAMDQ_KAFKA_SASL_MECHANISM", "must be one of"),
    (sasl_env(STREAMDQ_KAFKA_SASL_USERNAME=""), "STREAMDQ_KAFKA_SASL_USERNAME", "required"),
    (sasl_env(STREAMDQ_KAFKA_SASL_PASSWORD=""), "STREAMDQ_KAFKA_SASL_PASSWORD", "required"),
    (sasl_env(STREAMDQ_KAFKA_SASL_MECHANISM=""), "STREAMDQ_KAFKA_SASL_MECHANISM", "required"),
    (sasl_env(STREAMDQ_KAFKA_SASL_PASSWORD_FILE="/nonexistent/pw"), "STREAMDQ_KAFKA_SASL_PASSWORD", "use one"),
    (sasl_env(STREAMDQ_KAFKA_SECURITY_PROTOCOL=""), "STREAMDQ_KAFKA_SASL_USERNAME", "does not use SASL"),
    (sasl_env(STREAMDQ_KAFKA_SSL_CAFILE="/x.pem"), "STREAMDQ_KAFKA_SSL_CAFILE", "does not use TLS"),
    ({"STREAMDQ_KAFKA_SECURITY_PROTOCOL": "SSL", "STREAMDQ_KAFKA_SSL_CAFILE": "/nonexistent/ca.pem"},
     "STREAMDQ_KAFKA_SSL_CAFILE", "not a readable file"),
    ({"STREAMDQ_KAFKA_SECURITY_PROTOCOL": "SSL", "STREAMDQ_KAFKA_SSL_CHECK_HOSTNAME": "maybe"},
     "STREAMDQ_KAFKA_SSL_CHECK_HOSTNAME", "true or false"),
])
def test_bad_settings_name_the_variable(env: dict[str, str], variable: str, says: str) -> None:
    found = problems(env)
    assert variable in found and says in found[variable], found


def test_unreadable_and_empty_password_files(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.write_text("\n")
    for path, says in ((tmp_path / "missing", "cannot read"), (empty, "is empty")):
        found = problems(sasl_env(STREAMDQ_KAFKA_SASL_PASSWORD="", STREAMDQ_KAFKA_SASL_PASSWORD_FILE=str(path)))
        assert says in found["STREAMDQ_KAFKA_SASL_PASSWORD_FILE"]


def test_settings_errors_reach_the_caller_as_config_errors() -> None:
    with pytest.raises(ConfigError, match="Kafka security settings are invalid"):
        Settings.from_env(environ={"STREAMDQ_KAFKA_SECURITY_PROTOCOL": "TLS"})


def test_client_certificate_needs_cert_and_key(certs: Certificates) -> None:
    found = problems({"STREAMDQ_KAFKA_SECURITY_PROTOCOL": "SSL", "STREAMDQ_KAFKA_SSL_CERTFILE": str(certs.cert)})
    assert "STREAMDQ_KAFKA_SSL_KEYFILE" in found["STREAMDQ_KAFKA_SSL_CERTFILE"]


def test_unloadable_tls_files_are_a_config_error(tmp_path: Path) -> None:
    bogus = tmp_path / "ca.pem"
    bogus.write_text("not a certificate")
    found = problems({"STREAMDQ_KAFKA_SECURITY_PROTOCOL": "SSL", "STREAMDQ_KAFKA_SSL_CAFILE": str(bogus)})
    assert "cannot be loaded" in found["STREAMDQ_KAFKA_SSL_*"]


# ------------------------------------------------------------------------------------------------ rendering


def sasl_ssl(certs: Certificates, **over: str) -> KafkaSecurity:
    return KafkaSecurity.from_env(sasl_env(STREAMDQ_KAFKA_SECURITY_PROTOCOL="SASL_SSL",
                                           STREAMDQ_KAFKA_SSL_CAFILE=str(certs.ca_cert), **over))


def test_sasl_ssl_renders_for_confluent_and_kcat(certs: Certificates) -> None:
    sec = sasl_ssl(certs)
    expected = {"security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-512", "sasl.username": "alice",
                "sasl.password": PASSWORD, "ssl.endpoint.identification.algorithm": "https",
                "ssl.ca.location": str(certs.ca_cert)}
    assert sec.confluent_config() == expected
    assert sec.kcat_args() == [a for k, v in expected.items() for a in ("-X", f"{k}={v}")]
    assert client_config("h:9", sec, {"group.id": "g"}) == {"bootstrap.servers": "h:9", **expected, "group.id": "g"}


def test_sasl_ssl_renders_faust_credentials(certs: Certificates) -> None:
    creds = sasl_ssl(certs).faust_credentials()
    assert isinstance(creds, faust.SASLCredentials)
    assert (creds.protocol.value, creds.mechanism.value) == ("SASL_SSL", "SCRAM-SHA-512")
    assert (creds.username, creds.password) == ("alice", PASSWORD)
    assert creds.ssl_context is not None and creds.ssl_context.check_hostname
    assert PASSWORD not in repr(creds)
    plain = KafkaSecurity.from_env(sasl_env(STREAMDQ_KAFKA_SASL_MECHANISM="PLAIN")).faust_credentials()
    assert plain.protocol.value == "SASL_PLAINTEXT" and plain.ssl_context is None


def test_mutual_tls_with_an_encrypted_key(certs: Certificates, tmp_path: Path) -> None:
    key = tmp_path / "client.key"
    subprocess.run(["openssl", "pkey", "-in", str(certs.key), "-out", str(key), "-aes256", "-passout",
                    f"pass:{KEY_PASSWORD}"], check=True, capture_output=True)
    pwfile = tmp_path / "keypw"
    pwfile.write_text(KEY_PASSWORD)
    sec = KafkaSecurity.from_env({"STREAMDQ_KAFKA_SECURITY_PROTOCOL": "ssl", "STREAMDQ_KAFKA_SSL_CAFILE":
                                  str(certs.ca_cert), "STREAMDQ_KAFKA_SSL_CERTFILE": str(certs.cert),
                                  "STREAMDQ_KAFKA_SSL_KEYFILE": str(key),
                                  "STREAMDQ_KAFKA_SSL_KEY_PASSWORD_FILE": str(pwfile),
                                  "STREAMDQ_KAFKA_SSL_CHECK_HOSTNAME": "false"})
    conf = sec.confluent_config()
    assert conf["ssl.certificate.location"] == str(certs.cert) and conf["ssl.key.location"] == str(key)
    assert conf["ssl.key.password"] == KEY_PASSWORD and conf["ssl.endpoint.identification.algorithm"] == "none"
    creds = sec.faust_credentials()
    assert isinstance(creds, faust.SSLCredentials) and not creds.context.check_hostname
    assert KEY_PASSWORD not in repr(sec)
    wrong = tmp_path / "wrong"
    wrong.write_text("nope")
    found = problems({"STREAMDQ_KAFKA_SECURITY_PROTOCOL": "SSL", "STREAMDQ_KAFKA_SSL_CERTFILE": str(certs.cert),
                      "STREAMDQ_KAFKA_SSL_KEYFILE": str(key), "STREAMDQ_KAFKA_SSL_KEY_PASSWORD_FILE": str(wrong)})
    assert "cannot be loaded" in found["STREAMDQ_KAFKA_SSL_*"]


# ------------------------------------------------------------------------------------------------ secrets


def test_secrets_never_in_repr_str_or_logs(certs: Certificates, caplog: pytest.LogCaptureFixture) -> None:
    sec = sasl_ssl(certs)
    settings = Settings.from_env(environ={"KAFKA_BOOTSTRAP": "h:1", **sasl_env(STREAMDQ_KAFKA_SECURITY_PROTOCOL=
                                                                               "SASL_SSL"),
                                          "STREAMDQ_KAFKA_SSL_CAFILE": str(certs.ca_cert)})
    log = logging.getLogger("streamdq.test")
    with caplog.at_level(logging.DEBUG):
        log.info("security %s %r settings %s %r", sec, sec, settings, settings)
        log.info("described %s", sec.describe())
    shown = caplog.text + repr(sec) + str(sec) + repr(settings) + sec.describe()
    assert "alice" in shown and "**********" in shown
    assert PASSWORD not in shown


def test_explain_gives_one_actionable_line_without_secrets(certs: Certificates) -> None:
    sec = sasl_ssl(certs)
    cases = [  # a list: KafkaErrors with equal codes are equal
        (KafkaError(KafkaError._AUTHENTICATION, "sasl_ssl://h:1/bootstrap: SASL authentication error: Authentication "
                   "failed during authentication due to invalid credentials with SASL mechanism SCRAM-SHA-512 "
                   "(after 310ms in state AUTH_REQ)"),
            "Kafka authentication failed for user 'alice' (SCRAM-SHA-512) at h:1: check STREAMDQ_KAFKA_SASL_USERNAME, "
            "STREAMDQ_KAFKA_SASL_PASSWORD and STREAMDQ_KAFKA_SASL_MECHANISM"),
        (KafkaError(KafkaError._SSL, "sasl_ssl://h:1/bootstrap: SSL handshake failed: error:0A000086:SSL routines::"
                   "certificate verify failed: broker certificate could not be verified (after 5ms in state "
                   "SSL_HANDSHAKE)"),
            f"the TLS certificate of Kafka at h:1 is not trusted: check STREAMDQ_KAFKA_SSL_CAFILE ({certs.ca_cert}) "
            "and that the broker's name matches its certificate"),
        (KafkaError(KafkaError._SSL, "ssl://h:1/bootstrap: SSL handshake failed: unexpected eof (after 1ms in state "
                   "SSL_HANDSHAKE)"),
            "TLS handshake with Kafka at h:1 failed (SSL handshake failed: unexpected eof): check the "
            "STREAMDQ_KAFKA_SSL_* settings"),
        (KafkaError(KafkaError._TRANSPORT, "sasl_ssl://h:1/bootstrap: Connect to ipv4#10.0.0.1:1 failed: Connection "
                   "refused (after 0ms in state CONNECT)"),
            "cannot reach Kafka at h:1 (SASL_SSL, SCRAM-SHA-512 as 'alice'): Connect to ipv4#10.0.0.1:1 failed: "
            "Connection refused; check KAFKA_BOOTSTRAP and STREAMDQ_KAFKA_SECURITY_PROTOCOL"),
        (None, "cannot reach Kafka at h:1 (SASL_SSL, SCRAM-SHA-512 as 'alice'): no broker answered; check "
               "KAFKA_BOOTSTRAP and STREAMDQ_KAFKA_SECURITY_PROTOCOL"),
    ]
    for error, line in cases:
        got = explain(error, bootstrap="h:1", security=sec)
        assert got == line
        assert "\n" not in got and "KafkaError{" not in got and PASSWORD not in got


def test_the_error_log_keeps_the_first_permanent_error() -> None:
    errors = ErrorLog()
    auth = KafkaError(KafkaError._AUTHENTICATION, "first")
    for e in (KafkaError(KafkaError._TRANSPORT, "t"), auth, KafkaError(KafkaError._AUTHENTICATION, "second"),
              KafkaError(KafkaError._ALL_BROKERS_DOWN, "1/1 brokers are down")):
        errors(e)
    assert errors.permanent is auth and errors.last is not None and errors.last.str() == "t"


def test_unreachable_broker_fails_in_bounded_time_with_one_line() -> None:
    from agents.cli.localkafka import free_port

    started = time.monotonic()
    with pytest.raises(KafkaUnavailableError) as info:
        check_connection(f"127.0.0.1:{free_port()}", PLAINTEXT, timeout=2)
    assert time.monotonic() - started < 10
    message = str(info.value)
    assert message.startswith("cannot reach Kafka at 127.0.0.1:") and "Connection refused" in message
    assert "\n" not in message and "KafkaError{" not in message


# ------------------------------------------------------------------------------------------------ webhook secrets


def hook(**kw: Any) -> SubscriptionSpec:
    return SubscriptionSpec.model_validate({"name": "hook", "kind": "webhook", "url": "http://127.0.0.1:9/x", **kw})


def deliver(sub: SubscriptionSpec, environ: dict[str, str]) -> httpx.Request:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200)

    async def main() -> None:
        n = Notifier([sub], registry=CollectorRegistry(), environ=environ, transport=httpx.MockTransport(handler))
        await n.start()
        try:
            result = await n.deliver_once(sub.name, {"alert_id": "a1", "status": "firing"})
            assert result.ok, result
        finally:
            await n.stop(timeout=0)

    asyncio.run(main())
    return seen[0]


def test_headers_env_and_secret_file(tmp_path: Path) -> None:
    key = tmp_path / "hmac.key"
    key.write_bytes(b"hmac-Sekr1t\n")
    sub = hook(headers={"X-Team": "ml"}, headers_env={"Authorization": "HOOK_TOKEN"}, secret_file=str(key))
    request = deliver(sub, {"HOOK_TOKEN": "Bearer tok-Sekr1t"})
    assert request.headers["Authorization"] == "Bearer tok-Sekr1t" and request.headers["X-Team"] == "ml"
    assert verify_signature(b"hmac-Sekr1t", request.headers["X-Streamdq-Timestamp"], request.content,
                            request.headers["X-Streamdq-Signature"])


def test_alertmanager_gets_headers_env() -> None:
    sub = SubscriptionSpec.model_validate({"name": "am", "kind": "alertmanager", "url": "http://127.0.0.1:9",
                                           "headers_env": {"Authorization": "AM_TOKEN"}})

    def handler(request: httpx.Request) -> httpx.Response:
        assert request.headers["Authorization"] == "Basic am-Sekr1t"
        return httpx.Response(200)

    async def main() -> None:
        n = Notifier([sub], registry=CollectorRegistry(), environ={"AM_TOKEN": "Basic am-Sekr1t"},
                     transport=httpx.MockTransport(handler))
        await n.start()
        event = {"alert_id": "a", "check": "psi", "stream": "s", "severity": "warning", "fingerprint": "f",
                 "first_seen": "2024-05-01T10:00:00Z", "last_seen": "2024-05-01T10:00:00Z", "status": "firing"}
        assert (await n.deliver_once("am", event)).ok
        await n.stop(timeout=0)

    asyncio.run(main())


def test_missing_webhook_secrets_are_named_not_shown(tmp_path: Path) -> None:
    empty = tmp_path / "empty.key"
    empty.write_text("")
    subs = [hook(name="a", headers_env={"Authorization": "HOOK_TOKEN"}),
            hook(name="b", secret_file=str(tmp_path / "missing.key")), hook(name="c", secret_file=str(empty))]
    n = Notifier(subs, registry=CollectorRegistry(), environ={})
    with pytest.raises(ConfigError) as info:
        n.check_secrets()
    found = dict(info.value.problems)
    assert "HOOK_TOKEN is not set" in found["alerting.subscriptions.a.headers_env.Authorization"]
    assert "cannot read the secret file" in found["alerting.subscriptions.b.secret_file"]
    assert "is empty" in found["alerting.subscriptions.c.secret_file"]


@pytest.mark.parametrize(("kw", "says"), [
    ({"secret_env": "A", "secret_file": "/k"}, "once"),
    ({"headers": {"Authorization": "x"}, "headers_env": {"authorization": "TOKEN"}}, "both"),
    ({"headers_env": {"Authorization": "not a var"}}, "environment variable names"),
])
def test_webhook_secret_fields_are_validated(kw: dict[str, Any], says: str) -> None:
    with pytest.raises(ValueError, match=says):
        hook(**kw)
    with pytest.raises(ValueError, match="webhooks only"):
        SubscriptionSpec.model_validate({"name": "am", "kind": "alertmanager", "url": "http://h",
                                         "secret_file": "/k"})


# ------------------------------------------------------------------------------------------------ local broker


def test_local_broker_properties_with_and_without_sasl_ssl(certs: Certificates, tmp_path: Path) -> None:
    plain = LocalKafka(work_dir=tmp_path)
    plain.port, plain.controller_port = 9092, 9093
    props = plain._properties()
    assert "SASL" not in props and "listeners=PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093\n" in props

    listener = SaslSslListener(certfile=certs.cert, keyfile=certs.key, users={"alice": "alice-pw"})
    kafka = LocalKafka(work_dir=tmp_path, sasl_ssl=listener)
    kafka.port, kafka.controller_port, kafka.sasl_ssl_port = 9092, 9093, 9094
    props = kafka._properties()
    lines = dict(line.split("=", 1) for line in props.splitlines())
    assert lines["listeners"].endswith(",SASL_SSL://127.0.0.1:9094")
    assert lines["advertised.listeners"] == "PLAINTEXT://127.0.0.1:9092,SASL_SSL://127.0.0.1:9094"
    assert lines["listener.security.protocol.map"].endswith(",SASL_SSL:SASL_SSL")
    assert lines["listener.name.sasl_ssl.ssl.keystore.key"].startswith("-----BEGIN PRIVATE KEY-----\\n")
    assert 'user_alice="alice-pw"' in lines["listener.name.sasl_ssl.plain.sasl.jaas.config"]
    assert kafka.sasl_ssl_bootstrap == "127.0.0.1:9094"
    assert listener.scram_args() == ['--add-scram=SCRAM-SHA-256=[name="alice",password="alice-pw"]',
                                     '--add-scram=SCRAM-SHA-512=[name="alice",password="alice-pw"]']
    assert "alice-pw" not in repr(listener)
    with pytest.raises(KafkaLauncherError):
        SaslSslListener(certfile=certs.cert, keyfile=certs.key, users={"bob": 'with"quote'})
