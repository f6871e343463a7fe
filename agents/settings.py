"""Runtime settings, read from the environment in this one module only.

| variable | default | meaning |
|---|---|---|
| ``KAFKA_BOOTSTRAP`` | (unset: the demo and tests start a local broker) | ``host:port[,host:port]`` |
| ``STREAMDQ_WEB_PORT`` | ``6066`` | port of ``/metrics`` and ``/health`` |
| ``STREAMDQ_WEB_BIND`` | ``127.0.0.1`` | interface the web server binds |
| ``STREAMDQ_DATA_DIR`` | ``<tmp>/streamdq-<app>`` | Faust's data folder |
| ``STREAMDQ_LOG_LEVEL`` | ``info`` | worker log level |
| ``STREAMDQ_INSTANCE_ID`` | (unset: dynamic membership) | a worker's unique name in its group (static membership) |
| ``STREAMDQ_CHECKPOINT_SECONDS`` | ``5`` | seconds between checkpoints of the window state |
| ``STREAMDQ_TEST_CRASH_POINT`` | (unset) | tests only: ``after_outputs`` (see :mod:`agents.worker.ingest`) |
| ``STREAMDQ_KAFKA_*`` | (``PLAINTEXT``) | TLS and SASL of every Kafka client: see :mod:`agents.kafka.security` |
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, replace
from typing import Any

from agents.kafka.security import PLAINTEXT, KafkaSecurity
from monitor.errors import ConfigError

__all__ = ["Settings"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    """Where the worker connects and serves. Build with :meth:`from_env`.

    Examples
    --------
    >>> Settings.from_env(environ={}, web_port=7000).web_port
    7000
    >>> Settings.from_env(environ={"KAFKA_BOOTSTRAP": "a:1,b:2"}).broker_urls
    ['kafka://a:1', 'kafka://b:2']
    >>> Settings.from_env(environ={"STREAMDQ_KAFKA_SECURITY_PROTOCOL": "SSL"}).kafka.describe()
    'SSL'
    """

    bootstrap: str | None = None
    web_port: int = 6066
    web_bind: str = "127.0.0.1"
    data_dir: str | None = None
    log_level: str = "info"
    instance_id: str | None = None
    crash_point: str | None = None
    checkpoint_seconds: float = 5.0
    kafka: KafkaSecurity = PLAINTEXT

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, **overrides: Any) -> Settings:
        env = os.environ if environ is None else environ
        try:
            port = int(env.get("STREAMDQ_WEB_PORT", "6066"))
        except ValueError:
            raise ConfigError(f"STREAMDQ_WEB_PORT must be an integer, got {env['STREAMDQ_WEB_PORT']!r}") from None
        try:
            every = float(env.get("STREAMDQ_CHECKPOINT_SECONDS", "5"))
        except ValueError:
            every = -1.0
        if not 0 < every <= 3600:
            raise ConfigError(f"STREAMDQ_CHECKPOINT_SECONDS must be a number of seconds in (0, 3600], got "
                              f"{env.get('STREAMDQ_CHECKPOINT_SECONDS')!r}")
        s = cls(
            bootstrap=env.get("KAFKA_BOOTSTRAP") or None,
            web_port=port,
            web_bind=env.get("STREAMDQ_WEB_BIND", "127.0.0.1"),
            data_dir=env.get("STREAMDQ_DATA_DIR") or None,
            log_level=env.get("STREAMDQ_LOG_LEVEL", "info"),
            instance_id=env.get("STREAMDQ_INSTANCE_ID") or None,
            crash_point=env.get("STREAMDQ_TEST_CRASH_POINT") or None,
            checkpoint_seconds=every,
            kafka=KafkaSecurity.from_env(env),
        )
        return replace(s, **{k: v for k, v in overrides.items() if v is not None})

    @property
    def broker_urls(self) -> list[str]:
        if not self.bootstrap:
            raise ConfigError("no Kafka cluster: set KAFKA_BOOTSTRAP or pass --bootstrap")
        return [f"kafka://{h.strip()}" for h in self.bootstrap.split(",") if h.strip()]

    def data_dir_for(self, app_id: str) -> str:
        return self.data_dir or os.path.join(tempfile.gettempdir(), f"streamdq-{app_id}")
