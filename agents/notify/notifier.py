"""Alert notifications: deliver alert events to webhooks and Alertmanagers, off the hot path.

The stream calls :meth:`Notifier.submit` for every alert event it publishes. ``submit`` never
awaits: it applies each subscription's filter and puts the event on that subscription's bounded
queue (a full queue dead-letters the event at once). One background task per subscription
delivers its queue in order, retrying transient failures (connection errors, timeouts, HTTP 5xx,
408, 429) with capped exponential backoff and full jitter; what cannot be delivered within the
retry budget goes to the ``dead_letter`` callback. A slow or dead receiver therefore delays only
its own subscription and never the stream.

Webhooks get the event JSON (``schemas/alert.schema.json``) as a POST with an ``Idempotency-Key``
(the alert id) and, when the subscription has a ``secret_env`` or ``secret_file``, an HMAC-SHA256
signature over ``"<timestamp>." + body``; receivers check it with :func:`verify_signature`.
Alertmanagers get the v2 API form of the alert (:func:`alertmanager_payload`). Both get the
subscription's ``headers`` plus its ``headers_env`` (values read from environment variables).
Secrets are read once, at :meth:`Notifier.start`, and appear in no log line, metric or dead letter.

Examples
--------
>>> secret, ts, body = b"s3cret", "1700000000", b'{"alert_id": "x"}'
>>> verify_signature(secret, ts, body, signature(secret, ts, body))
True
>>> verify_signature(secret, "1700000001", body, signature(secret, ts, body))
False
>>> backoff_delay(0, 0.5, 30), backoff_delay(3, 0.5, 30), backoff_delay(10, 0.5, 30)
(0.5, 4.0, 30.0)
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import os
import random
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from monitor.errors import ConfigError
from monitor.spec import AlertFilter, SubscriptionSpec

__all__ = [
    "OUTCOMES",
    "RETRYABLE_STATUS",
    "SEVERITY_RANK",
    "DeadLetter",
    "DeliveryResult",
    "Notifier",
    "alertmanager_payload",
    "backoff_delay",
    "matches",
    "retry_delay",
    "rfc3339",
    "signature",
    "verify_signature",
    "webhook_request",
]

log = logging.getLogger("streamdq.notify")
# httpx logs every request URL at INFO; webhook URLs often carry tokens, Alertmanager URLs credentials.
logging.getLogger("httpx").setLevel(logging.WARNING)
logging.getLogger("httpcore").setLevel(logging.WARNING)

#: Severity order of :attr:`monitor.spec.AlertFilter.min_severity`.
SEVERITY_RANK = {"info": 0, "warning": 1, "critical": 2}
_SEVERITY_ORDER = sorted(SEVERITY_RANK, key=SEVERITY_RANK.__getitem__)
#: Values of the ``outcome`` label of ``streamdq_notifications_total``.
OUTCOMES = ("delivered", "failed", "dropped")
#: HTTP statuses worth retrying besides 5xx.
RETRYABLE_STATUS = frozenset({408, 429})
#: Buckets of the submit-to-delivered histogram: retries with backoff can take minutes.
DELIVERY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)

#: ``dead_letter(event, subscription name, reason)``: called for every notification given up on.
DeadLetter = Callable[[dict[str, Any], str, str], Awaitable[None]]


# ---------------------------------------------------------------------------------------------- filters


def matches(flt: AlertFilter, event: Mapping[str, Any]) -> bool:
    """Whether a subscription with filter ``flt`` receives ``event``.

    Every list means "any of" and an omitted list means "all". A ``features`` list excludes
    stream-level alerts (feature null). An unknown severity ranks as critical, so a malformed
    event is never filtered out silently.

    >>> flt = AlertFilter(features=["age"], min_severity="warning")
    >>> matches(flt, {"stream": "s", "feature": "age", "check": "psi", "severity": "critical"})
    True
    >>> matches(flt, {"stream": "s", "feature": "age", "check": "psi", "severity": "info"})
    False
    >>> matches(flt, {"stream": "s", "feature": None, "check": "late_ratio", "severity": "critical"})
    False
    """
    if flt.streams is not None and event.get("stream") not in flt.streams:
        return False
    if flt.features is not None and event.get("feature") not in flt.features:
        return False
    if flt.checks is not None and event.get("check") not in flt.checks:
        return False
    rank = SEVERITY_RANK.get(str(event.get("severity")), max(SEVERITY_RANK.values()))
    return rank >= SEVERITY_RANK[flt.min_severity]


# ---------------------------------------------------------------------------------------------- backoff


def backoff_delay(retry: int, base: float, cap: float) -> float:
    """Upper bound of the wait before retry number ``retry`` (0-based): ``base * 2**retry``, at most ``cap``."""
    if retry < 0:
        raise ValueError("retry must be >= 0")
    return float(min(cap, base * 2.0 ** min(retry, 64)))


def retry_delay(retry: int, base: float, cap: float, *, rng: random.Random | None = None) -> float:
    """The actual wait before retry ``retry``: full jitter, uniform in ``[0, backoff_delay(...)]``."""
    return (rng or random).uniform(0.0, backoff_delay(retry, base, cap))


# ---------------------------------------------------------------------------------------------- webhooks


def signature(secret: bytes, timestamp: str, body: bytes) -> str:
    """The ``X-Streamdq-Signature`` value: ``sha256=<hex HMAC-SHA256(secret, "<timestamp>." + body)>``."""
    mac = hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"sha256={mac.hexdigest()}"


def verify_signature(secret: bytes, timestamp: str, body: bytes, header: str, *,
                     max_age_seconds: float | None = None, now: float | None = None) -> bool:
    """Check a webhook's ``X-Streamdq-Signature`` header (constant-time compare).

    ``timestamp`` is the ``X-Streamdq-Timestamp`` header and ``body`` the raw request body.
    With ``max_age_seconds``, a timestamp further than that from ``now`` (default: the
    current time) is rejected too, which stops replays of old requests.
    """
    if max_age_seconds is not None:
        try:
            age = abs((time.time() if now is None else now) - float(timestamp))
        except ValueError:
            return False
        if age > max_age_seconds:
            return False
    expected = signature(secret, timestamp, body).encode()
    return hmac.compare_digest(expected, header.encode("utf-8", "replace"))


def webhook_request(sub: SubscriptionSpec, event: Mapping[str, Any], *, secret: bytes | None,
                    timestamp: int | None = None,
                    secret_headers: Mapping[str, str] | None = None) -> tuple[bytes, httpx.Headers]:
    """Body and headers of the webhook POST of ``event``.

    The subscription's extra ``headers`` and ``secret_headers`` (its ``headers_env``, resolved) come
    first; the protocol headers (content type, idempotency key, event, timestamp, signature) always
    win over them.
    """
    body = orjson.dumps(event, option=orjson.OPT_SERIALIZE_NUMPY)
    ts = str(int(time.time()) if timestamp is None else timestamp)
    headers = httpx.Headers({**sub.headers, **(secret_headers or {})})
    headers["Content-Type"] = "application/json"
    headers["Idempotency-Key"] = str(event.get("alert_id", ""))
    headers["X-Streamdq-Event"] = str(event.get("status", ""))
    headers["X-Streamdq-Timestamp"] = ts
    if secret is not None:
        headers["X-Streamdq-Signature"] = signature(secret, ts, body)
    return body, headers


# ---------------------------------------------------------------------------------------------- Alertmanager


def rfc3339(value: str | datetime) -> str:
    """An ISO-8601 time as RFC 3339 UTC with milliseconds (naive times are taken as UTC).

    >>> rfc3339("2024-05-01T10:00:00+02:00")
    '2024-05-01T08:00:00.000Z'
    """
    dt = value if isinstance(value, datetime) else _parse_time(value)
    return dt.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _parse_time(value: str) -> datetime:
    dt = datetime.fromisoformat(value)
    return dt if dt.tzinfo is not None else dt.replace(tzinfo=UTC)


def _num(value: Any) -> str:
    return format(value, ".6g") if isinstance(value, float) else str(value)


def alertmanager_payload(event: Mapping[str, Any], resolve_timeout_seconds: float) -> list[dict[str, Any]]:
    """The Alertmanager v2 ``POST /api/v2/alerts`` body for one alert event.

    Labels identify the alert in Alertmanager (``alertname`` = ``streamdq_<check>``, stream,
    check, severity, fingerprint, and feature/model when set). Annotations: summary, value,
    threshold and direction (``above``/``below``: which side of the threshold is bad; a drift
    test's value is its corrected p-value against alpha), window, alert_id, reference_version,
    and for drift checks the statistic, p_value (tests) and effect_size from the details. A firing alert ends at
    ``last_seen + resolve_timeout_seconds`` unless it is sent again; a resolved one ends at
    its ``last_seen``. Raises ``ValueError`` when the event's times are not ISO-8601.
    """
    check = str(event["check"])
    labels = {"alertname": f"streamdq_{check}", "stream": str(event["stream"]), "check": check,
              "severity": str(event["severity"]), "fingerprint": str(event["fingerprint"])}
    for key in ("feature", "model"):
        if event.get(key) is not None:
            labels[key] = str(event[key])
    window = event.get("window") or {}
    if window.get("name") is not None and window.get("index") is not None:
        where = f"{window['name']}#{window['index']}"
    else:
        where = str(window.get("start", ""))
    annotations = {"summary": str(event.get("summary", "")), "value": _num(event.get("value")),
                   "threshold": _num(event.get("threshold")), "direction": str(event.get("direction", "above")),
                   "window": where, "alert_id": str(event.get("alert_id", ""))}
    details = event.get("details") or {}
    for key in ("statistic", "p_value", "effect_size"):  # drift checks: the numbers behind the value
        if details.get(key) is not None:
            annotations[key] = _num(details[key])
    if event.get("reference_version") is not None:
        annotations["reference_version"] = str(event["reference_version"])
    first, last = _parse_time(str(event["first_seen"])), _parse_time(str(event["last_seen"]))
    if event.get("status") == "resolved":
        ends = last
    else:
        # Event time may lag the wall clock (a worker catching up on a backlog): never send a
        # firing alert whose end has already passed, Alertmanager would take it as resolved.
        ends = max(last, datetime.now(UTC)) + timedelta(seconds=resolve_timeout_seconds)
    out = [{"labels": labels, "annotations": annotations, "startsAt": rfc3339(min(first, ends)),
            "endsAt": rfc3339(ends)}]
    if event.get("status") != "resolved" and details.get("notification_reason") == "escalated":
        # severity is a label (routing uses it), so the escalated alert is a new Alertmanager alert:
        # end the lower-severity copies now instead of letting them linger until their endsAt.
        now = rfc3339(datetime.now(UTC))
        severity = str(event["severity"])
        for lower in _SEVERITY_ORDER[: _SEVERITY_ORDER.index(severity)] if severity in SEVERITY_RANK else []:
            out.append({"labels": {**labels, "severity": lower}, "annotations": annotations,
                        "startsAt": rfc3339(first), "endsAt": now})
    return out


# ---------------------------------------------------------------------------------------------- the notifier


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    """The outcome of one delivery attempt."""

    subscription: str
    kind: str
    ok: bool
    status: int | None  #: HTTP status, None when no response arrived
    error: str | None  #: why it failed, None on success
    latency_seconds: float
    retryable: bool = False


@dataclass(slots=True)
class _Pending:
    event: dict[str, Any]
    submitted: float  # time.monotonic() at submit


class Notifier:
    """Delivers alert events to the spec's subscriptions in the background.

    Create it anywhere, call :meth:`start` on the event loop that will call :meth:`submit`,
    and :meth:`stop` before that loop ends. Events submitted before ``start`` wait in the queues.
    """

    def __init__(self, subscriptions: Sequence[SubscriptionSpec], *, registry: CollectorRegistry,
                 dead_letter: DeadLetter | None = None, environ: Mapping[str, str] = os.environ,
                 transport: httpx.AsyncBaseTransport | None = None, rng: random.Random | None = None) -> None:
        names = [s.name for s in subscriptions]
        if len(set(names)) != len(names):
            raise ConfigError(f"duplicate subscription names: {names}")
        self.subscriptions: dict[str, SubscriptionSpec] = {s.name: s for s in subscriptions}
        self._dead_letter = dead_letter
        self._environ = environ
        self._transport = transport
        self._rng = rng or random.Random()
        self._queues: dict[str, asyncio.Queue[_Pending]] = {
            s.name: asyncio.Queue(maxsize=s.queue_size) for s in subscriptions}
        self._inflight: dict[str, _Pending | None] = dict.fromkeys(names)
        self._secrets: dict[str, bytes | None] = {}
        self._secret_headers: dict[str, dict[str, str]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._background: set[asyncio.Task[None]] = set()
        self._client: httpx.AsyncClient | None = None
        self._closing = False

        self.notifications = Counter(
            "streamdq_notifications", "Alert notifications by subscription and outcome (delivered; failed: "
            "retry budget spent or rejected; dropped: queue full or shut down before delivery).",
            ["subscription", "outcome"], registry=registry)
        self.attempts = Counter("streamdq_notification_attempts", "HTTP delivery attempts of alert notifications, "
                                "retries included.", ["subscription"], registry=registry)
        self.queue_depth = Gauge("streamdq_notification_queue_depth", "Alert notifications waiting for delivery.",
                                 ["subscription"], registry=registry)
        self.delivery_seconds = Histogram(
            "streamdq_notification_delivery_seconds", "Time from submit to successful delivery of an alert "
            "notification, retries included.", ["subscription"], registry=registry, buckets=DELIVERY_BUCKETS)
        for name, queue in self._queues.items():
            for outcome in OUTCOMES:
                self.notifications.labels(name, outcome)
            self.attempts.labels(name)
            self.delivery_seconds.labels(name)
            self.queue_depth.labels(name).set_function(queue.qsize)

    # ------------------------------------------------------------------ lifecycle

    @property
    def started(self) -> bool:
        return self._client is not None

    def check_secrets(self) -> None:
        """Raise :class:`ConfigError` when a subscription's ``secret_env`` or ``headers_env`` variable is
        unset or empty, or its ``secret_file`` unreadable or empty (the worker calls this before it
        starts consuming). The messages name variables and files, never values."""
        missing: list[tuple[str, str]] = []
        for s in self.subscriptions.values():
            where = f"alerting.subscriptions.{s.name}"
            if s.secret_env and not self._environ.get(s.secret_env):
                missing.append((f"{where}.secret_env", f"environment variable {s.secret_env} is not set"))
            missing += [(f"{where}.headers_env.{header}", f"environment variable {var} is not set")
                        for header, var in s.headers_env.items() if not self._environ.get(var)]
            if s.secret_file:
                try:
                    _read_secret_file(s.secret_file)
                except ConfigError as exc:
                    missing.append((f"{where}.secret_file", str(exc)))
        if missing:
            raise ConfigError("alert subscriptions: secrets missing", missing)

    async def start(self) -> None:
        """Read the signing secrets, open the HTTP client and start one delivery task per subscription.

        Raises :class:`ConfigError` when a secret is missing (see :meth:`check_secrets`).
        """
        if self._client is not None:
            return
        self.check_secrets()
        self._secrets = {name: self._signing_secret(s) for name, s in self.subscriptions.items()}
        self._secret_headers = {name: {header: self._environ[var] for header, var in s.headers_env.items()}
                                for name, s in self.subscriptions.items()}
        self._closing = False
        self._client = httpx.AsyncClient(transport=self._transport, follow_redirects=False,
                                         headers={"User-Agent": "streamdq-notifier"})
        self._tasks = [asyncio.create_task(self._run(sub), name=f"streamdq-notify-{sub.name}")
                       for sub in self.subscriptions.values()]
        log.info("notifier started: %d subscription(s)", len(self._tasks))

    def _signing_secret(self, sub: SubscriptionSpec) -> bytes | None:
        if sub.secret_env:
            return self._environ[sub.secret_env].encode()
        if sub.secret_file:
            return _read_secret_file(sub.secret_file)
        return None

    async def stop(self, timeout: float = 10.0) -> None:
        """Deliver what can be delivered within ``timeout`` seconds, then cancel the rest.

        Notifications still queued or in flight when the time is up are dead-lettered with
        reason ``shutdown`` and counted as dropped. Later :meth:`submit` calls drop their events.
        """
        self._closing = True
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(timeout, 0.0)
        if self._tasks:
            joins = [asyncio.ensure_future(q.join()) for q in self._queues.values()]
            _, pending = await asyncio.wait(joins, timeout=max(timeout, 0.0))
            for fut in pending:
                fut.cancel()
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            self._tasks = []
        leftovers: list[tuple[str, _Pending]] = []
        for name, queue in self._queues.items():
            item = self._inflight[name]
            if item is not None:
                leftovers.append((name, item))
                self._inflight[name] = None
            while not queue.empty():
                leftovers.append((name, queue.get_nowait()))
                queue.task_done()
        for name, item in leftovers:
            self.notifications.labels(name, "dropped").inc()
            self._schedule_dead_letter(item.event, name, "shutdown: not delivered before the notifier stopped")
        if self._background:
            # Dead letters get at least a few seconds, even when the drain used up the timeout.
            _, stuck = await asyncio.wait(list(self._background), timeout=max(deadline - loop.time(), 5.0))
            for task in stuck:  # a hanging sink must not outlive the notifier
                task.cancel()
            if stuck:
                log.error("notifier stopped: %d dead letter(s) could not be written in time", len(stuck))
                await asyncio.gather(*stuck, return_exceptions=True)
        if self._client is not None:
            await self._client.aclose()
            self._client = None
        if leftovers:
            log.warning("notifier stopped: %d notification(s) not delivered", len(leftovers))

    # ------------------------------------------------------------------ the hot path

    def submit(self, event: dict[str, Any]) -> None:
        """Queue ``event`` for every subscription whose filter it matches. Never blocks or awaits.

        A full queue (or a stopped notifier) dead-letters the event at once with reason
        ``queue_full`` (``notifier_stopped``) and counts it as dropped.
        """
        now = time.monotonic()
        for name, sub in self.subscriptions.items():
            if not matches(sub.filter, event):
                continue
            if self._closing:
                reason = "notifier_stopped"
            else:
                try:
                    self._queues[name].put_nowait(_Pending(event, now))
                    continue
                except asyncio.QueueFull:
                    reason = "queue_full"
            self.notifications.labels(name, "dropped").inc()
            log.warning("notification %s to %s dropped: %s", event.get("alert_id"), name, reason)
            self._schedule_dead_letter(event, name, reason)

    # ------------------------------------------------------------------ delivery

    async def deliver_once(self, sub_name: str, event: dict[str, Any]) -> DeliveryResult:
        """One delivery attempt of ``event`` to subscription ``sub_name``: no filter, no retries, no queue.

        Needs :meth:`start` (for the HTTP client and the secrets).
        """
        try:
            sub = self.subscriptions[sub_name]
        except KeyError:
            raise ConfigError(f"no subscription named {sub_name!r} "
                              f"(subscriptions: {', '.join(self.subscriptions) or 'none'})") from None
        return await self._attempt(sub, event)

    async def _run(self, sub: SubscriptionSpec) -> None:
        queue = self._queues[sub.name]
        while True:
            item = await queue.get()
            self._inflight[sub.name] = item
            try:
                await self._deliver(sub, item)
            except Exception:  # a bug must not end this subscription's deliveries (logged with its traceback)
                log.exception("delivering notification %s to %s failed", item.event.get("alert_id"), sub.name)
                self._inflight[sub.name] = None
                self.notifications.labels(sub.name, "failed").inc()
                await self._call_dead_letter(item.event, sub.name, "internal error (see the worker log)")
            else:
                self._inflight[sub.name] = None
            finally:
                # On cancellation (stop) the item stays in _inflight: stop() dead-letters it.
                queue.task_done()

    async def _deliver(self, sub: SubscriptionSpec, item: _Pending) -> None:
        error = "no attempt made"
        for attempt in range(sub.max_retries + 1):
            if attempt:
                await asyncio.sleep(retry_delay(attempt - 1, sub.backoff_seconds, sub.max_backoff_seconds,
                                                rng=self._rng))
            result = await self._attempt(sub, item.event)
            if result.ok:
                self.notifications.labels(sub.name, "delivered").inc()
                self.delivery_seconds.labels(sub.name).observe(time.monotonic() - item.submitted)
                return
            error = result.error or f"HTTP {result.status}"
            log.info("notification %s to %s: attempt %d failed: %s", item.event.get("alert_id"), sub.name,
                     attempt + 1, error)
            if not result.retryable:
                break
        self._inflight[sub.name] = None  # from here on it is the dead letter's, not stop()'s
        self.notifications.labels(sub.name, "failed").inc()
        log.warning("notification %s to %s failed: %s", item.event.get("alert_id"), sub.name, error)
        await self._call_dead_letter(item.event, sub.name, error)

    async def _attempt(self, sub: SubscriptionSpec, event: dict[str, Any]) -> DeliveryResult:
        if self._client is None:
            raise RuntimeError("Notifier.start() has not been called")
        self.attempts.labels(sub.name).inc()
        started = time.monotonic()

        def result(ok: bool, status: int | None, error: str | None, retryable: bool = False) -> DeliveryResult:
            return DeliveryResult(sub.name, sub.kind, ok, status, error, time.monotonic() - started, retryable)

        try:
            if sub.kind == "webhook":
                url = sub.url
                body, headers = webhook_request(sub, event, secret=self._secrets.get(sub.name),
                                                secret_headers=self._secret_headers.get(sub.name))
            else:
                url = sub.url.rstrip("/") + "/api/v2/alerts"
                body = orjson.dumps(alertmanager_payload(event, sub.resolve_timeout_seconds))
                headers = httpx.Headers({**sub.headers, **self._secret_headers.get(sub.name, {})})
                headers["Content-Type"] = "application/json"
        except (TypeError, ValueError, KeyError) as exc:  # a malformed event: no retry can fix it
            return result(False, None, f"invalid event: {type(exc).__name__}: {exc}")
        try:
            async with asyncio.timeout(sub.timeout_seconds), self._client.stream(
                    "POST", url, content=body, headers=headers, timeout=sub.timeout_seconds) as response:
                status = response.status_code
                head = b""
                if not 200 <= status < 300:  # keep at most 2 KiB of an error body, however large it is
                    async for part in response.aiter_bytes():
                        head += part
                        if len(head) >= 2048:
                            break
        except (TimeoutError, httpx.TimeoutException):
            return result(False, None, f"timeout after {sub.timeout_seconds:g} s", True)
        except httpx.TransportError as exc:
            return result(False, None, f"{type(exc).__name__}: {exc or 'connection failed'}", True)
        except Exception as exc:  # noqa: BLE001 - a delivery task must survive anything a request raises
            return result(False, None, f"{type(exc).__name__}: {exc}")
        if 200 <= status < 300:
            return result(True, status, None)
        text = head.decode("utf-8", "replace").strip().replace("\n", " ")[:200]
        error = f"HTTP {status}" + (f": {text}" if text else "")
        return result(False, status, error, status >= 500 or status in RETRYABLE_STATUS)

    # ------------------------------------------------------------------ dead letters

    def _schedule_dead_letter(self, event: dict[str, Any], name: str, reason: str) -> None:
        try:
            task = asyncio.get_running_loop().create_task(self._call_dead_letter(event, name, reason))
        except RuntimeError:  # no running loop (submit from plain code): nothing to schedule on
            log.error("notification %s to %s lost (%s): no event loop for the dead letter",
                      event.get("alert_id"), name, reason)
            return
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _call_dead_letter(self, event: dict[str, Any], name: str, reason: str) -> None:
        if self._dead_letter is None:
            log.error("notification %s to %s not delivered (%s); no dead-letter sink", event.get("alert_id"),
                      name, reason)
            return
        try:
            await self._dead_letter(event, name, reason)
        except Exception:  # a failing sink must not kill the delivery task (logged with its traceback)
            log.exception("dead letter of notification %s to %s failed", event.get("alert_id"), name)



def _read_secret_file(path: str) -> bytes:
    """A signing secret from ``path`` (one trailing newline dropped); :class:`ConfigError` naming the file
    (never its content) when it is unreadable or empty."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read the secret file {path}: {exc.strerror or type(exc).__name__}") from None
    data = data.removesuffix(b"\n").removesuffix(b"\r")
    if not data:
        raise ConfigError(f"the secret file {path} is empty")
    return data
