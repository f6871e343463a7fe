"""A real, local, single-node Apache Kafka (KRaft) for the demo and the tests.

The broker jars come from Maven Central through ``deploy/kafka/pom.xml`` into a
cache folder git ignores; the broker runs as a plain JVM child process on two
free loopback ports and is stopped with SIGTERM (SIGKILL after a timeout).
Nothing here is a fake: it is the Apache Kafka broker.

Examples
--------
>>> kafka = LocalKafka()                       # doctest: +SKIP
>>> with kafka:                                 # doctest: +SKIP
...     print(kafka.bootstrap)                  # 127.0.0.1:<port>

With ``sasl_ssl=SaslSslListener(...)`` the broker also listens for SASL_SSL clients on a third port
(:attr:`LocalKafka.sasl_ssl_bootstrap`), with the given certificate and SCRAM/PLAIN users; the
plaintext listener stays (readiness checks and the broker's own traffic use it).
"""

from __future__ import annotations

import base64
import contextlib
import ctypes
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from monitor.errors import KafkaLauncherError

__all__ = ["KAFKA_VERSION", "LocalKafka", "SaslSslListener", "cache_dir", "fetch_jars", "free_port", "new_cluster_id",
           "wait_for_broker"]

#: The Apache Kafka release the launcher fetches (the line Faust is tested against).
KAFKA_VERSION = "4.0.2"
_REPO = Path(__file__).resolve().parents[2]
_POM = _REPO / "deploy" / "kafka" / "pom.xml"
_LOG4J = _REPO / "deploy" / "kafka" / "log4j2.properties"

Log = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


def cache_dir() -> Path:
    """Where jars and run state live: ``$STREAMDQ_CACHE_DIR`` or ``<repo>/.cache``."""
    env = os.environ.get("STREAMDQ_CACHE_DIR")
    return Path(env) if env else _REPO / ".cache"


def free_port() -> int:
    """A currently free TCP port on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def fetch_jars(*, version: str = KAFKA_VERSION, log: Log = _quiet, timeout: float = 900) -> Path:
    """Fetch the broker jars with Maven (once; later calls reuse the cache)."""
    libs = cache_dir() / f"kafka-{version}" / "libs"
    marker = libs / ".complete"
    if marker.is_file() and marker.read_text().strip() == version:
        return libs
    for tool in ("mvn", "java"):
        if shutil.which(tool) is None:
            raise KafkaLauncherError(f"'{tool}' is not on PATH; the local Kafka needs Java 17+ and Maven")
    if not _POM.is_file():
        raise KafkaLauncherError(f"{_POM} is missing; run streamdq from a checkout of the repository")
    log(f"Fetching Apache Kafka {version} jars from Maven Central (first run only) ...")
    tmp = libs.with_name("libs.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    cmd = ["mvn", "-q", "-B", "-f", str(_POM), f"-Dkafka.version={version}",
           "dependency:copy-dependencies", f"-DoutputDirectory={tmp}"]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise KafkaLauncherError(f"Maven did not finish fetching Kafka within {timeout:.0f}s") from None
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-25:])
        raise KafkaLauncherError(f"Maven failed to fetch Kafka {version} (exit {proc.returncode}):\n{tail}")
    if not any(tmp.glob("kafka_2.13-*.jar")):
        raise KafkaLauncherError(f"Maven finished but {tmp} holds no kafka_2.13 jar")
    shutil.rmtree(libs, ignore_errors=True)
    tmp.rename(libs)
    marker.write_text(version)
    log(f"Kafka {version}: {sum(1 for _ in libs.glob('*.jar'))} jars in {libs}")
    return libs


def new_cluster_id(random_bytes: Callable[[], bytes] = lambda: uuid.uuid4().bytes) -> str:
    """A KRaft cluster id as Kafka's own ``Uuid.randomUuid()`` makes one.

    22 characters of URL-safe base64 of 16 random bytes. Like Kafka, it never
    starts with ``-`` (one id in 64 would, and ``kafka-storage format -t -X...``
    then reads it as an option and fails) and is never all zeros.
    """
    while True:
        raw = random_bytes()
        cluster_id = base64.urlsafe_b64encode(raw).decode().rstrip("=")
        if not cluster_id.startswith("-") and any(raw):
            return cluster_id


def wait_for_broker(bootstrap: str, *, timeout: float = 60.0, alive: Callable[[], bool] | None = None) -> None:
    """Block until a metadata round trip to ``bootstrap`` lists a broker."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    config: dict[str, Any] = {"bootstrap.servers": bootstrap, "socket.connection.setup.timeout.ms": 2000,
                              "log_level": 0, "logger": _NullLogger()}
    admin = AdminClient(config)
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if alive is not None and not alive():
            raise KafkaLauncherError("the broker process exited while starting")
        try:
            md = admin.list_topics(timeout=2)
            if md.brokers:
                return
        except KafkaException as exc:  # while the broker boots
            last = str(exc)
        time.sleep(0.25)
    raise KafkaLauncherError(f"Kafka at {bootstrap} not ready after {timeout:.0f}s ({last})")


class _NullLogger:
    """librdkafka logs connection refusals while the broker boots; drop them."""

    def log(self, *args: object, **kwargs: object) -> None:
        pass

    def __getattr__(self, name: str) -> Callable[..., None]:
        return self.log


def _die_with_parent() -> None:
    # Linux PR_SET_PDEATHSIG: the broker gets SIGTERM if the Python process dies
    # (even by SIGKILL), so a crashed test run never leaves a JVM behind.
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)


#: Characters allowed in local SASL user names and passwords: they are written into JAAS options and
#: ``kafka-storage format --add-scram`` arguments unquoted.
_SAFE_CREDENTIAL = re.compile(r"[A-Za-z0-9._~+-]+")


@dataclass(frozen=True, slots=True, kw_only=True)
class SaslSslListener:
    """An extra SASL_SSL listener of a :class:`LocalKafka` (for tests of secured clients).

    ``certfile`` is the broker's PEM certificate (chain), ``keyfile`` its unencrypted PKCS#8 PEM key
    (``BEGIN PRIVATE KEY``); both are passed to the broker as a PEM keystore. ``users`` (name ->
    password, letters, digits and ``._~+-`` only) can log in with SCRAM-SHA-256, SCRAM-SHA-512 and
    PLAIN: the SCRAM credentials are written when the storage is formatted.
    """

    certfile: Path
    keyfile: Path
    users: Mapping[str, str] = field(repr=False)

    def __post_init__(self) -> None:
        bad = [name for name, pw in self.users.items() if not (_SAFE_CREDENTIAL.fullmatch(name)
                                                                and _SAFE_CREDENTIAL.fullmatch(pw))]
        if bad or not self.users:
            raise KafkaLauncherError(f"SASL users need names and passwords of [A-Za-z0-9._~+-] (bad: {bad or 'none'})")

    def properties(self) -> dict[str, str]:
        """The broker properties of the listener named ``SASL_SSL`` (added to the plaintext ones)."""
        prefix = "listener.name.sasl_ssl."
        scram = "org.apache.kafka.common.security.scram.ScramLoginModule required;"
        plain_users = " ".join(f'user_{name}="{pw}"' for name, pw in self.users.items())
        return {
            "sasl.enabled.mechanisms": "SCRAM-SHA-512,SCRAM-SHA-256,PLAIN",
            f"{prefix}ssl.keystore.type": "PEM",
            f"{prefix}ssl.keystore.certificate.chain": Path(self.certfile).read_text().strip(),
            f"{prefix}ssl.keystore.key": Path(self.keyfile).read_text().strip(),
            f"{prefix}scram-sha-512.sasl.jaas.config": scram,
            f"{prefix}scram-sha-256.sasl.jaas.config": scram,
            f"{prefix}plain.sasl.jaas.config": f"org.apache.kafka.common.security.plain.PlainLoginModule required "
                                                f"{plain_users};",
        }

    def scram_args(self) -> list[str]:
        """``kafka-storage format`` arguments creating every user's SCRAM credentials."""
        return [f"--add-scram={mech}=[name=\"{name}\",password=\"{pw}\"]"
                for name, pw in self.users.items() for mech in ("SCRAM-SHA-256", "SCRAM-SHA-512")]


def _property_value(value: str) -> str:
    """``value`` escaped for a Java properties file (PEM blocks span lines)."""
    return value.replace("\\", "\\\\").replace("\n", "\\n")


class LocalKafka:
    """Start and stop one single-node KRaft broker on loopback.

    ``work_dir`` holds the config, data and ``kafka.log`` (a fresh temporary
    folder by default, removed on stop). ``tie_to_parent`` makes the broker
    exit when this Python process dies; ``streamdq kafka start`` turns it off
    to leave a broker running in the background.
    """

    def __init__(self, *, version: str = KAFKA_VERSION, work_dir: Path | None = None,
                 heap: str = "1g", log: Log = _quiet, tie_to_parent: bool = True,
                 sasl_ssl: SaslSslListener | None = None) -> None:
        self.version = version
        self.sasl_ssl = sasl_ssl
        self.sasl_ssl_port: int | None = None
        self.heap = heap
        self.log = log
        self.tie_to_parent = tie_to_parent
        self._own_dir = work_dir is None
        self.work_dir = Path(work_dir) if work_dir else None
        self.proc: subprocess.Popen[bytes] | None = None
        self.port: int | None = None
        self.controller_port: int | None = None

    @property
    def bootstrap(self) -> str:
        if self.port is None:
            raise KafkaLauncherError("the broker is not started")
        return f"127.0.0.1:{self.port}"

    @property
    def sasl_ssl_bootstrap(self) -> str:
        """The SASL_SSL listener's address (only with ``sasl_ssl``)."""
        if self.sasl_ssl_port is None:
            raise KafkaLauncherError("the broker is not started with a SASL_SSL listener")
        return f"127.0.0.1:{self.sasl_ssl_port}"

    @property
    def log_file(self) -> Path | None:
        return self.work_dir / "kafka.log" if self.work_dir else None

    def _properties(self) -> str:
        assert self.work_dir is not None and self.port and self.controller_port
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@127.0.0.1:{self.controller_port}",
            "listeners": f"PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": str(self.work_dir / "data"),
            "num.partitions": "1",
            "auto.create.topics.enable": "false",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "4",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "4",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            "log.retention.hours": "24",
            "log.segment.bytes": str(64 * 1024 * 1024),
            "message.max.bytes": str(8 * 1024 * 1024),
        }
        if self.sasl_ssl is not None and self.sasl_ssl_port:
            listener = f"SASL_SSL://127.0.0.1:{self.sasl_ssl_port}"
            props["listeners"] += f",{listener}"
            props["advertised.listeners"] += f",{listener}"
            props["listener.security.protocol.map"] += ",SASL_SSL:SASL_SSL"
            props.update(self.sasl_ssl.properties())
        return "".join(f"{k}={_property_value(v)}\n" for k, v in props.items())

    def start(self, *, timeout: float = 90.0) -> str:
        """Fetch (if needed), format and start the broker; return its bootstrap address."""
        if self.proc is not None:
            return self.bootstrap
        libs = fetch_jars(version=self.version, log=self.log)
        if self.work_dir is None:
            self.work_dir = Path(tempfile.mkdtemp(prefix="streamdq-kafka-"))
        self.work_dir.mkdir(parents=True, exist_ok=True)
        if self.port is None or self.controller_port is None:  # a restart (stop(keep_data=True)) keeps its ports
            self.port, self.controller_port = free_port(), free_port()
            while self.controller_port == self.port:
                self.controller_port = free_port()
        if self.sasl_ssl is not None and self.sasl_ssl_port is None:
            self.sasl_ssl_port = free_port()
            while self.sasl_ssl_port in (self.port, self.controller_port):
                self.sasl_ssl_port = free_port()
        conf = self.work_dir / "server.properties"
        conf.write_text(self._properties())
        classpath = f"{libs}/*"
        java = [shutil.which("java") or "java", "-Xms256m", f"-Xmx{self.heap}", "-XX:+UseG1GC",
                "-Djava.awt.headless=true", f"-Dlog4j2.configurationFile=file:{_LOG4J}", "-cp", classpath]
        self._cluster_id = getattr(self, "_cluster_id", None) or new_cluster_id()  # a restart keeps its storage
        fmt = subprocess.run([*java, "kafka.tools.StorageTool", "format", f"--cluster-id={self._cluster_id}",
                              "-c", str(conf), "--ignore-formatted",
                              *(self.sasl_ssl.scram_args() if self.sasl_ssl is not None else [])],
                             capture_output=True, text=True, timeout=120, check=False)
        if fmt.returncode != 0:
            raise KafkaLauncherError(f"formatting KRaft storage failed:\n{fmt.stdout}{fmt.stderr}")
        log_file = self.work_dir / "kafka.log"
        self.log(f"Starting Apache Kafka {self.version} on {self.bootstrap} (log: {log_file})")
        logfh = open(log_file, "ab")  # noqa: SIM115 - owned by the child for its lifetime
        try:
            self.proc = subprocess.Popen(
                [*java, "kafka.Kafka", str(conf)], stdout=logfh, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True,
                preexec_fn=_die_with_parent if self.tie_to_parent else None,
            )
        finally:
            logfh.close()
        try:
            proc = self.proc
            wait_for_broker(self.bootstrap, timeout=timeout, alive=lambda: proc.poll() is None)
        except KafkaLauncherError as exc:
            tail = self._log_tail()
            self.stop()
            raise KafkaLauncherError(f"{exc}\n--- last lines of kafka.log ---\n{tail}") from None
        self.log(f"Kafka ready at {self.bootstrap}")
        return self.bootstrap

    def _log_tail(self, lines: int = 30) -> str:
        try:
            if self.log_file is None:
                return ""
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self, *, timeout: float = 20.0, keep_data: bool = False) -> None:
        """SIGTERM the broker, wait up to ``timeout``, then SIGKILL; remove a temporary work dir (unless
        ``keep_data``: then :meth:`start` brings the same broker back, on the same ports, e.g. to test an
        outage)."""
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        if self._own_dir and self.work_dir is not None and not keep_data:
            shutil.rmtree(self.work_dir, ignore_errors=True)

    def __enter__(self) -> LocalKafka:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- background mode (streamdq kafka start|stop|status) -------------------

    @staticmethod
    def state_file() -> Path:
        return cache_dir() / "kafka-run" / "state.json"

    def write_state(self) -> None:
        assert self.proc is not None
        path = self.state_file()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(orjson.dumps({"pid": self.proc.pid, "bootstrap": self.bootstrap,
                                       "work_dir": str(self.work_dir), "version": self.version}))

    @classmethod
    def read_state(cls) -> dict[str, object] | None:
        try:
            return orjson.loads(cls.state_file().read_bytes())  # type: ignore[no-any-return]
        except (OSError, orjson.JSONDecodeError):
            return None

    @classmethod
    def stop_background(cls, *, timeout: float = 20.0) -> bool:
        """Stop a broker started by ``streamdq kafka start``; ``False`` if none was running."""
        state = cls.read_state()
        if state is None:
            return False
        pid = int(state["pid"])  # type: ignore[call-overload]
        # After a reboot or a crash the PID may belong to another process: only signal our broker.
        running = _pid_alive(pid) and _is_our_broker(pid, str(state["work_dir"]))
        if running:
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while _pid_alive(pid) and time.monotonic() < deadline:
                time.sleep(0.2)
            if _pid_alive(pid):
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(str(state["work_dir"]), ignore_errors=True)
        cls.state_file().unlink(missing_ok=True)
        return running


def _is_our_broker(pid: int, work_dir: str) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return False
    return "kafka.Kafka" in cmdline and work_dir in cmdline


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child still answers kill(0); check /proc for the state.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return True
