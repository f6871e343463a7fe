"""How streamdq authenticates to Kafka and encrypts the connection, for every client it builds.

:class:`KafkaSecurity` is read once from the environment (:meth:`KafkaSecurity.from_env`, called by
:mod:`agents.settings`) and rendered for each client library: a confluent-kafka (librdkafka) config
dict, Faust ``broker_credentials`` (aiokafka), an :class:`ssl.SSLContext`, and kcat ``-X`` arguments.

Secrets (the SASL password, the client key's password) come only from environment variables or
files named by them, never from the monitor spec; they are held as :class:`pydantic.SecretStr`,
so ``repr``, ``str`` and log lines show ``**********``.

| variable | meaning |
|---|---|
| ``STREAMDQ_KAFKA_SECURITY_PROTOCOL`` | ``PLAINTEXT`` (default), ``SSL``, ``SASL_PLAINTEXT`` or ``SASL_SSL`` |
| ``STREAMDQ_KAFKA_SASL_MECHANISM`` | ``PLAIN``, ``SCRAM-SHA-256`` or ``SCRAM-SHA-512`` (SASL protocols) |
| ``STREAMDQ_KAFKA_SASL_USERNAME`` | SASL user |
| ``STREAMDQ_KAFKA_SASL_PASSWORD`` / ``..._FILE`` | SASL password, or a file holding it |
| ``STREAMDQ_KAFKA_SSL_CAFILE`` | PEM file of the CA(s) to trust (default: the system's) |
| ``STREAMDQ_KAFKA_SSL_CERTFILE`` / ``..._KEYFILE`` | client certificate and key (PEM) for mutual TLS |
| ``STREAMDQ_KAFKA_SSL_KEY_PASSWORD`` / ``..._FILE`` | password of an encrypted client key |
| ``STREAMDQ_KAFKA_SSL_CHECK_HOSTNAME`` | ``true`` (default) or ``false``: check the broker's name against its |
| | certificate |

Examples
--------
>>> sec = KafkaSecurity.from_env({"STREAMDQ_KAFKA_SECURITY_PROTOCOL": "sasl_plaintext",
...                               "STREAMDQ_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
...                               "STREAMDQ_KAFKA_SASL_USERNAME": "alice",
...                               "STREAMDQ_KAFKA_SASL_PASSWORD": "s3cret"})
>>> sec.describe()
"SASL_PLAINTEXT, SCRAM-SHA-512 as 'alice'"
>>> "s3cret" in repr(sec) or "s3cret" in str(sec)
False
>>> sec.confluent_config()["sasl.mechanism"], KafkaSecurity().confluent_config()
('SCRAM-SHA-512', {})
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, cast, get_args

from pydantic import SecretStr

from monitor.errors import ConfigError

__all__ = ["ENV_PREFIX", "MECHANISMS", "PLAINTEXT", "PROTOCOLS", "KafkaSecurity", "Mechanism", "Protocol"]

Protocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
Mechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]
PROTOCOLS: tuple[str, ...] = get_args(Protocol)
MECHANISMS: tuple[str, ...] = get_args(Mechanism)
#: Every variable this module reads starts with this.
ENV_PREFIX = "STREAMDQ_KAFKA_"
_V = ENV_PREFIX  # short, for the variable names below
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


@dataclass(frozen=True, slots=True, kw_only=True)
class KafkaSecurity:
    """Security settings of every Kafka client (the default: ``PLAINTEXT``, no authentication).

    ``password_source`` and ``key_password_source`` name where a secret came from (a variable, or
    a file), so error messages can point at it without showing it.

    Examples
    --------
    >>> KafkaSecurity().describe()
    'PLAINTEXT'
    >>> KafkaSecurity(protocol="SASL_SSL", mechanism="PLAIN", username="bob",
    ...               password=SecretStr("pw")).kcat_args()[:4]
    ['-X', 'security.protocol=SASL_SSL', '-X', 'sasl.mechanism=PLAIN']
    """

    protocol: Protocol = "PLAINTEXT"
    mechanism: Mechanism | None = None
    username: str | None = None
    password: SecretStr | None = None
    password_source: str = f"{_V}SASL_PASSWORD"
    cafile: str | None = None
    certfile: str | None = None
    keyfile: str | None = None
    key_password: SecretStr | None = None
    key_password_source: str = f"{_V}SSL_KEY_PASSWORD"
    check_hostname: bool = True

    def __post_init__(self) -> None:
        problems = self._check()
        if problems:
            raise ConfigError("Kafka security settings are invalid", problems)

    @property
    def sasl(self) -> bool:
        """Whether the protocol authenticates with SASL."""
        return self.protocol.startswith("SASL_")

    @property
    def tls(self) -> bool:
        """Whether the protocol encrypts with TLS."""
        return self.protocol in ("SSL", "SASL_SSL")

    # ------------------------------------------------------------------ loading

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> KafkaSecurity:
        """Read the ``STREAMDQ_KAFKA_*`` variables of ``environ``; raise :class:`ConfigError` listing
        every problem (by variable name) when they do not make a usable configuration."""
        problems: list[tuple[str, str]] = []
        protocol = _choice(environ, f"{_V}SECURITY_PROTOCOL", PROTOCOLS, problems) or "PLAINTEXT"
        mechanism = _choice(environ, f"{_V}SASL_MECHANISM", MECHANISMS, problems)
        password, password_source = _secret(environ, f"{_V}SASL_PASSWORD", problems)
        key_password, key_password_source = _secret(environ, f"{_V}SSL_KEY_PASSWORD", problems)
        check_hostname = _flag(environ, f"{_V}SSL_CHECK_HOSTNAME", problems)
        if problems:  # unreadable values: checking how they combine would only add noise
            raise ConfigError("Kafka security settings are invalid", problems)
        return cls(protocol=cast(Protocol, protocol), mechanism=cast(Mechanism | None, mechanism),
                   username=environ.get(f"{_V}SASL_USERNAME") or None, password=password,
                   password_source=password_source, cafile=environ.get(f"{_V}SSL_CAFILE") or None,
                   certfile=environ.get(f"{_V}SSL_CERTFILE") or None, keyfile=environ.get(f"{_V}SSL_KEYFILE") or None,
                   key_password=key_password, key_password_source=key_password_source,
                   check_hostname=check_hostname)

    def _check(self) -> list[tuple[str, str]]:
        """Problems of this combination of settings (empty when usable)."""
        problems: list[tuple[str, str]] = []
        sasl_set = {f"{_V}SASL_MECHANISM": self.mechanism, f"{_V}SASL_USERNAME": self.username,
                    self.password_source: self.password}
        if self.sasl:
            problems += [(name, f"required with security protocol {self.protocol}")
                         for name, value in sasl_set.items() if value is None]
        else:
            problems += [(name, f"set, but the security protocol {self.protocol} does not use SASL "
                          f"(set {_V}SECURITY_PROTOCOL to SASL_SSL or SASL_PLAINTEXT)")
                         for name, value in sasl_set.items() if value is not None]
        tls_set = {f"{_V}SSL_CAFILE": self.cafile, f"{_V}SSL_CERTFILE": self.certfile,
                   f"{_V}SSL_KEYFILE": self.keyfile, self.key_password_source: self.key_password}
        if not self.tls:
            problems += [(name, f"set, but the security protocol {self.protocol} does not use TLS "
                          f"(set {_V}SECURITY_PROTOCOL to SSL or SASL_SSL)")
                         for name, value in tls_set.items() if value is not None]
        if (self.certfile is None) != (self.keyfile is None):
            problems.append((f"{_V}SSL_CERTFILE", f"a client certificate needs both {_V}SSL_CERTFILE and "
                             f"{_V}SSL_KEYFILE"))
        for name, path in ((f"{_V}SSL_CAFILE", self.cafile), (f"{_V}SSL_CERTFILE", self.certfile),
                           (f"{_V}SSL_KEYFILE", self.keyfile)):
            if self.tls and path is not None and not Path(path).is_file():
                problems.append((name, f"{path} is not a readable file"))
        if self.tls and not problems:
            try:
                self.ssl_context()
            except (ssl.SSLError, OSError) as exc:
                problems.append((f"{_V}SSL_*", f"the TLS files cannot be loaded: {exc}"))
        return problems

    # ------------------------------------------------------------------ rendering

    def describe(self) -> str:
        """A one-line, secret-free summary for logs and error messages."""
        if not self.sasl:
            return self.protocol
        return f"{self.protocol}, {self.mechanism} as {self.username!r}"

    def confluent_config(self) -> dict[str, str]:
        """librdkafka properties (confluent-kafka clients); empty for ``PLAINTEXT``."""
        conf: dict[str, str] = {}
        if self.protocol == "PLAINTEXT":
            return conf
        conf["security.protocol"] = self.protocol
        if self.sasl and self.mechanism and self.username and self.password:
            conf.update({"sasl.mechanism": self.mechanism, "sasl.username": self.username,
                         "sasl.password": self.password.get_secret_value()})
        if self.tls:
            conf["ssl.endpoint.identification.algorithm"] = "https" if self.check_hostname else "none"
            for key, value in (("ssl.ca.location", self.cafile), ("ssl.certificate.location", self.certfile),
                               ("ssl.key.location", self.keyfile)):
                if value is not None:
                    conf[key] = value
            if self.key_password is not None:
                conf["ssl.key.password"] = self.key_password.get_secret_value()
        return conf

    def ssl_context(self) -> ssl.SSLContext:
        """The TLS context of aiokafka (Faust): trusted CAs, client certificate, hostname checking."""
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=self.cafile)
        ctx.check_hostname = self.check_hostname
        if self.certfile is not None:
            password = self.key_password.get_secret_value() if self.key_password is not None else None
            ctx.load_cert_chain(self.certfile, self.keyfile, password=password)
        return ctx

    def faust_credentials(self) -> Any:
        """Faust's ``broker_credentials``: ``SASLCredentials`` (with a TLS context for ``SASL_SSL``),
        ``SSLCredentials``, or ``None`` for ``PLAINTEXT``."""
        import faust  # here, not at import time: settings (and the quick CLI commands) do not need Faust

        if self.sasl:
            return faust.SASLCredentials(
                username=self.username, password=self.password.get_secret_value() if self.password else None,
                mechanism=self.mechanism, ssl_context=self.ssl_context() if self.tls else None)
        if self.tls:
            return faust.SSLCredentials(self.ssl_context())
        return None

    def kcat_args(self) -> list[str]:
        """``-X key=value`` arguments for kcat (tests and debugging: a password on a command line is
        visible to other local users in the process list)."""
        return [arg for key, value in self.confluent_config().items() for arg in ("-X", f"{key}={value}")]


def _choice(environ: Mapping[str, str], name: str, allowed: tuple[str, ...],
            problems: list[tuple[str, str]]) -> str | None:
    """The variable's value (upper-cased), if it is one of ``allowed``; ``None`` when unset."""
    raw = environ.get(name, "").strip()
    if not raw:
        return None
    if raw.upper() not in allowed:
        problems.append((name, f"must be one of {', '.join(allowed)}, got {raw!r}"))
        return None
    return raw.upper()


def _flag(environ: Mapping[str, str], name: str, problems: list[tuple[str, str]]) -> bool:
    raw = environ.get(name, "").strip().lower()
    if raw in _FALSE:
        return False
    if raw and raw not in _TRUE:
        problems.append((name, f"must be true or false, got {raw!r}"))
    return True


def _secret(environ: Mapping[str, str], name: str,
            problems: list[tuple[str, str]]) -> tuple[SecretStr | None, str]:
    """A secret from variable ``name`` or from the file named by ``name_FILE``, and where it came from."""
    value, path = environ.get(name) or None, environ.get(f"{name}_FILE") or None
    if value is not None and path is not None:
        problems.append((name, f"set both {name} and {name}_FILE; use one"))
        return None, name
    if path is None:
        return (SecretStr(value) if value is not None else None), name
    source = f"{name}_FILE ({path})"
    try:
        text = Path(path).read_text(encoding="utf-8").rstrip("\r\n")
    except (OSError, UnicodeDecodeError) as exc:
        problems.append((f"{name}_FILE", f"cannot read {path}: {type(exc).__name__}"))
        return None, source
    if not text:
        problems.append((f"{name}_FILE", f"{path} is empty"))
        return None, source
    return SecretStr(text), source


#: No TLS, no authentication: the default of every client.
PLAINTEXT = KafkaSecurity()
