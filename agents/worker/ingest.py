"""The ingest service: the input topics read in batches by a consumer the worker owns.

Why not a Faust agent: measured here, a Faust agent that does nothing drains about 16k
messages/s (its per-event machinery is ~70% of the CPU), a librdkafka batch consumer feeding
the same engine over 200k/s. So the feature, prediction and label topics are read by one
confluent-kafka :class:`~confluent_kafka.Consumer` (fetching runs in librdkafka, outside the
GIL) run as a service of the Faust app: started and stopped with it, beside its web server,
timers and tables.

One batch (:meth:`Ingest.handle`), in order:

1. up to :data:`MAX_BATCH` messages are taken from the consumer (waiting at most
   :data:`POLL_SECONDS` for the first);
2. each message is decoded and checked; rejected records go to the dead-letter topic;
3. each stream's good records go through one :meth:`Monitor.process <monitor.Monitor.process>`
   call; the reports of the windows that closed are published (profiles, alert events);
4. every send of steps 2 and 3 is **acknowledged by the broker** (``acks=all``, retried until it
   is), and only then are the batch's offsets stored for commit.

Delivery: at least once. Offsets are committed (every :data:`COMMIT_SECONDS`, on revocation
and at shutdown) only up to records whose outputs the broker holds, so a crash never loses a
dead letter or an alert event; what was processed after the last commit is read again after a
restart, so its dead letters and events may be sent twice (each keyed: dead letters carry their
source topic, partition and offset, alert events their ``alert_id`` and fingerprint). With
``STREAMDQ_TEST_CRASH_POINT=after_outputs`` (tests only) a worker exits right after a batch's outputs
were acknowledged and before its offsets are stored: the worst moment for delivery, on purpose.

Recovery: the group uses cooperative-sticky assignment and a :data:`SESSION_TIMEOUT_MS` session;
with ``STREAMDQ_INSTANCE_ID`` set (static membership, ``group.instance.id``) a restarted worker
takes its partitions back at once instead of waiting for its old session to expire.

Memory: at most :data:`MAX_BATCH` messages in hand, plus librdkafka's prefetch queue
(:data:`QUEUE_KBYTES` per consumer).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition
from mode import Service

from agents.kafka.connect import client_config
from agents.worker.checkpoint import POSITION_BITS
from monitor.records import ColumnBatch, Rejection, decode_message, encode_original
from monitor.spec import StreamSpec

if TYPE_CHECKING:
    from agents.settings import Settings
    from agents.worker.app import WorkerContext

__all__ = ["COMMIT_SECONDS", "MAX_BATCH", "POLL_SECONDS", "SESSION_TIMEOUT_MS", "Ingest", "Origin",
           "consumer_config"]

log = logging.getLogger("streamdq.worker")

#: Messages taken from the consumer and handed to the engine at once, at most.
MAX_BATCH = 2000
#: Seconds a poll waits for the first message of a batch.
POLL_SECONDS = 0.2
#: Seconds between commits of the offsets of handled batches (and on revocation and shutdown).
COMMIT_SECONDS = 1.0
#: The consumer-group session: how long a worker that died silently holds its partitions.
SESSION_TIMEOUT_MS = 10_000
#: librdkafka's prefetch queue, in kilobytes (bounds what is fetched ahead of processing).
QUEUE_KBYTES = 32 * 1024
#: Exit code of a worker stopped by ``STREAMDQ_TEST_CRASH_POINT`` (as if SIGKILLed).
CRASH_EXIT_CODE = 137
#: Seconds between measurements of the consumer lag (after a batch, or while idle).
LAG_EVERY = 0.1
#: Seconds the service waits for Faust's tables (the open alerts) before it starts reading anyway.
TABLE_RECOVERY_SECONDS = 60.0


def consumer_config(settings: Settings, group_id: str, *, instance_id: str | None = None) -> dict[str, Any]:
    """The ingest consumer's configuration (security settings included).

    >>> from agents.settings import Settings
    >>> c = consumer_config(Settings(bootstrap="127.0.0.1:9092"), "g", instance_id="w-0")
    >>> c["group.instance.id"], c["enable.auto.offset.store"], c["partition.assignment.strategy"]
    ('w-0', False, 'cooperative-sticky')
    """
    extra: dict[str, Any] = {
        "group.id": group_id,
        "auto.offset.reset": "earliest",
        # Offsets are stored by hand once a batch's outputs are acknowledged; the background commit
        # (and the commit on revocation and close) only ever sends those.
        "enable.auto.commit": True,
        "enable.auto.offset.store": False,
        "auto.commit.interval.ms": int(COMMIT_SECONDS * 1000),
        "partition.assignment.strategy": "cooperative-sticky",
        "session.timeout.ms": SESSION_TIMEOUT_MS,
        "heartbeat.interval.ms": SESSION_TIMEOUT_MS // 5,
        "queued.max.messages.kbytes": QUEUE_KBYTES,
        "fetch.wait.max.ms": 100,
        "log_level": 3,
    }
    if instance_id:
        extra["group.instance.id"] = instance_id
    return client_config(settings.bootstrap or "", settings.kafka, extra)


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a record came from: what a dead letter names."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int | None = None

    @classmethod
    def of(cls, message: Message) -> Origin:
        kind, ts = message.timestamp()
        return cls(message.topic() or "", message.partition() or 0, message.offset() or 0,
                   ts if kind != 0 and ts >= 0 else None)  # 0: TIMESTAMP_NOT_AVAILABLE


@dataclass
class _Batch:
    """One stream's good records of a consumer batch, in order, with where each came from (a row batch
    gathers consecutive messages; a columnar message is a batch of its own, already columns)."""

    stream: StreamSpec
    records: list[dict[str, Any]] | ColumnBatch = field(default_factory=list)
    partitions: list[int] = field(default_factory=list)
    positions: list[int] = field(default_factory=list)
    messages: list[Message] = field(default_factory=list)  # per record (the same object for a message's records)

    def add(self, records: Sequence[dict[str, Any]] | ColumnBatch, message: Message) -> None:
        n = len(records)
        if isinstance(records, ColumnBatch):
            self.records = records
        else:
            assert isinstance(self.records, list)
            self.records += records
        p, base = message.partition() or 0, (message.offset() or 0) << POSITION_BITS
        self.partitions += [p] * n
        self.positions += range(base, base + n)
        self.messages += [message] * n


class Ingest(Service):
    """Reads every input topic of the spec in batches and feeds the worker's monitor.

    ``consumer_factory`` builds the consumer from its configuration (tests pass their own).
    """

    def __init__(self, ctx: WorkerContext, settings: Settings, *, group_id: str, instance_id: str | None = None,
                 consumer_factory: Callable[[dict[str, Any]], Any] = Consumer, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.ctx = ctx
        ctx.ingest = self
        self.group_id = group_id
        self.streams: dict[str, StreamSpec] = {(s.topic or s.name): s for s in ctx.spec.streams}
        self.config = consumer_config(settings, group_id, instance_id=instance_id)
        self.config["on_commit"] = self._on_commit
        self.config["error_cb"] = self._on_error
        self._factory = consumer_factory
        self.crash_point = settings.crash_point
        self.consumer: Any = None
        # Every consumer call runs on this one thread: librdkafka's rebalance callbacks are served inside
        # consume(), off the event loop, and never while the loop reads the assignment.
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="streamdq-ingest")
        #: The input partitions this worker holds now, as (topic, partition).
        self.assignment: set[tuple[str, int]] = set()
        self._last_error: dict[int, float] = {}
        #: Batches and messages handled (for the metrics).
        self.batches = 0
        self.messages = 0
        #: Window reports published (profiles and their alert events).
        self.published = 0
        #: Records between each assigned partition's end and this worker's position (measured every :data:`LAG_EVERY`).
        self.lag: dict[tuple[str, int], int] = {}
        self._lag_at = 0.0

    # -- lifecycle --------------------------------------------------------------------------------------

    async def on_start(self) -> None:
        self.consumer = await self._call(self._factory, self.config)
        await self._call(self.consumer.subscribe, sorted(self.streams), on_assign=self._on_assign,
                         on_revoke=self._on_revoke, on_lost=self._on_lost)

    async def on_stop(self) -> None:
        if self.consumer is not None:
            try:
                # Commits the stored offsets (those of handled batches only) and leaves the group.
                await self._call(self.consumer.close)
            except Exception:
                log.exception("closing the ingest consumer failed")
            self.consumer = None
        self._thread.shutdown(wait=False)

    @Service.task
    async def _run(self) -> None:
        await self._wait_for_tables()
        self.ctx.restore_alerts()
        self.ctx.started = True
        while not self.should_stop:
            messages = await self._call(self.consumer.consume, MAX_BATCH, POLL_SECONDS)
            if messages:
                await self.handle(messages)
            if time.monotonic() - self._lag_at >= LAG_EVERY:
                self._measure_lag()

    async def _wait_for_tables(self) -> None:
        """The open alerts are read back from Faust's table before the first batch can change them."""
        recovery = getattr(self.ctx.app.tables, "recovery", None)
        if recovery is None or not self.ctx.app.tables.data:
            return
        deadline = time.monotonic() + TABLE_RECOVERY_SECONDS
        while not recovery.completed.is_set() and not self.should_stop:
            if time.monotonic() > deadline:
                log.error("Faust's table recovery did not finish in %.0fs: reading input without the restored "
                          "alert state", TABLE_RECOVERY_SECONDS)
                return
            await asyncio.sleep(0.1)

    async def _call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._thread, lambda: fn(*args, **kwargs))

    # -- the batch path ---------------------------------------------------------------------------------

    async def handle(self, messages: Sequence[Message]) -> None:
        """Decode, dead-letter, process and publish one consumer batch, then store its offsets for commit."""
        ctx = self.ctx
        published = self.published
        rows: dict[str, _Batch] = {}  # the open row batch of each stream
        order: list[_Batch] = []
        rejected: list[tuple[StreamSpec, Origin, Rejection]] = []
        ends: dict[tuple[str, int], int] = {}
        for message in messages:
            err = message.error()
            if err is not None:
                self._on_error(err)
                continue
            topic, partition = message.topic() or "", message.partition() or 0
            ends[(topic, partition)] = message.offset() or 0
            stream = self.streams.get(topic)
            if stream is None:
                continue
            ok, rejections = decode_message(message.value() or b"", stream)
            if rejections:
                origin = Origin.of(message)
                rejected += [(stream, origin, r) for r in rejections]
            if isinstance(ok, ColumnBatch):
                rows.pop(stream.name, None)  # later rows start a new batch: order is kept
                columnar = _Batch(stream)
                columnar.add(ok, message)
                order.append(columnar)
            elif ok:
                batch = rows.get(stream.name)
                if batch is None:
                    batch = rows[stream.name] = _Batch(stream)
                    order.append(batch)
                batch.add(ok, message)
        sends = [ctx.dead_letter(stream, origin, rejection) for stream, origin, rejection in rejected]
        for batch in order:
            sends += await self._process(batch)
        if sends:
            await asyncio.gather(*sends)  # every output acknowledged by the broker ...
        if self.crash_point == "after_outputs" and (sends or self.published > published):
            log.critical("STREAMDQ_TEST_CRASH_POINT=after_outputs: exiting before the batch's offsets are stored")
            os._exit(CRASH_EXIT_CODE)
        if ends:  # ... before the offsets are stored for commit
            self._store([TopicPartition(t, p, o + 1) for (t, p), o in ends.items()])
        self.batches += 1
        self.messages += len(messages)

    async def _process(self, batch: _Batch) -> list[Any]:
        """One monitor call; returns the sends still to be acknowledged (dead letters of a failed batch)."""
        runtime = self.ctx.models.get(batch.stream.name)
        if runtime is None:
            return await self._run_monitor(batch, partition=0, offsets=None)
        # A predictions or labels stream: joined per input partition, once its join state is restored, under
        # the lock that keeps a checkpoint from covering records whose alerts are unsent.
        await runtime.wait_restored()
        async with runtime.lock:
            return await self._run_monitor(batch, partition=batch.partitions, offsets=batch.positions)

    async def _run_monitor(self, batch: _Batch, *, partition: int | list[int], offsets: list[int] | None) -> list[Any]:
        ctx, stream, records = self.ctx, batch.stream, batch.records
        try:
            reports = ctx.monitor.process(stream.name, records, partition=partition, offsets=offsets)
        except Exception as exc:
            log.exception("the monitor failed on a batch of %d records from %s", len(records), stream.topic)
            rows = records if isinstance(records, list) else records[:]
            detail = f"{type(exc).__name__}: {exc}"
            return [ctx.dead_letter(stream, Origin.of(message),
                                    Rejection("processing_error", detail, encode_original(rec, message.value() or b"")))
                    for rec, message in zip(rows, batch.messages, strict=True)]
        ctx.metrics.records.labels(stream.name, "processed").inc(len(records))
        for report in reports:
            await ctx.publish(report)
        self.published += len(reports)
        return []

    def _measure_lag(self) -> None:
        """Per assigned partition: the end offset librdkafka saw on its last fetch minus our position."""
        self._lag_at = time.monotonic()
        try:
            held = [TopicPartition(t, p) for t, p in sorted(self.assignment)]
            lag = {}
            for tp in self.consumer.position(held) if held else []:
                _, high = self.consumer.get_watermark_offsets(tp, cached=True)
                if tp.offset >= 0 and high >= 0:
                    lag[(tp.topic, tp.partition)] = max(high - tp.offset, 0)
            self.lag = lag
        except KafkaException as exc:  # not fetched yet, or mid-rebalance: measured again next time
            log.debug("consumer lag not measured: %s", exc)

    def _store(self, offsets: list[TopicPartition]) -> None:
        try:
            self.consumer.store_offsets(offsets=offsets)
        except KafkaException as exc:  # a partition revoked meanwhile: its new owner reads it again
            log.info("offsets not stored (%s); the partition's new owner reads them again", exc)

    # -- librdkafka callbacks (on the consumer's thread) -------------------------------------------------

    def _on_assign(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        self.assignment |= {(tp.topic, tp.partition) for tp in partitions}
        log.info("ingest: assigned %s", _names(partitions))

    def _on_revoke(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        self.assignment -= {(tp.topic, tp.partition) for tp in partitions}
        log.info("ingest: revoked %s", _names(partitions))

    def _on_lost(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        self.assignment -= {(tp.topic, tp.partition) for tp in partitions}
        log.warning("ingest: lost %s (the session expired; their new owner reads them again)", _names(partitions))

    def _on_commit(self, error: KafkaError | None, partitions: list[TopicPartition]) -> None:
        if error is not None and error.code() != KafkaError._NO_OFFSET:
            log.warning("committing offsets failed: %s", error.str())

    def _on_error(self, error: KafkaError) -> None:
        now = time.monotonic()
        if now - self._last_error.get(error.code(), -1e9) >= 30.0:  # at most one line per kind per 30 s
            self._last_error[error.code()] = now
            log.warning("Kafka: %s", error.str())


def _names(partitions: list[TopicPartition]) -> str:
    return ", ".join(f"{tp.topic}:{tp.partition}" for tp in partitions) or "nothing"
