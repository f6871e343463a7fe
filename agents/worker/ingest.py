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
3. each stream partition's good records go through one :meth:`Monitor.update <monitor.Monitor.update>`
   call: the partition's panes are updated, and the panes that closed go to the panes topic for the
   merge agent (:mod:`agents.worker.merge`, which evaluates each stream window once); a predictions or
   labels stream's model windows are evaluated here and published (profiles, alert events);
4. every send of steps 2 and 3 is **acknowledged by the broker** (``acks=all``, retried until it
   is); only then does the batch count as done (its partitions' next offsets move on).

Between batches, every :data:`TICK_SECONDS` the service closes processing-time panes, tells the merge
agent each partition's progress and which partitions are idle (no records for
``time.idle_timeout_seconds``), and ages a model's pending predictions; every ``checkpoint_seconds`` it
**checkpoints** (:mod:`agents.worker.snapshots`): each partition's state is written to the checkpoints
topic, then the offsets they cover are committed with a pointer to them. Offsets are committed nowhere
else, so the committed offset never passes the checkpoint. A checkpoint is also taken when partitions
are revoked and at shutdown.

Assignment (a start, a restart, a rebalance): each partition given to this worker continues from the
state its commit's checkpoint holds for it at that offset, so every window counts each record once
through a crash or a move; otherwise it starts new windows there (see :meth:`Checkpointer.restore
<agents.worker.snapshots.Checkpointer.restore>`).

Delivery: at least once. A crash never loses a dead letter or an alert event; what was processed
after the last checkpoint is processed again, so its dead letters and events may be sent twice (each
keyed: dead letters carry their source topic, partition and offset, alert events their ``alert_id``
and fingerprint). With ``STREAMDQ_TEST_CRASH_POINT=after_outputs`` (tests only) a worker exits right
after a batch's outputs were acknowledged and before the batch counts as done: the worst moment for
delivery, on purpose.

Recovery: the group uses cooperative-sticky assignment and a :data:`SESSION_TIMEOUT_MS` session;
with ``STREAMDQ_INSTANCE_ID`` set (static membership, ``group.instance.id``) a restarted worker
takes its partitions back at once instead of waiting for its old session to expire.

Memory: at most :data:`MAX_BATCH` messages in hand, plus librdkafka's prefetch queue
(:data:`QUEUE_KBYTES` per consumer), plus one checkpoint document while it is written (its size is
bounded by the spec: pane states and duplicate filters, see :meth:`FeatureEngine.partition_state
<monitor.stream.FeatureEngine.partition_state>`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import orjson
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition
from mode import Service

from agents.kafka.connect import client_config
from agents.worker.batch import Batch, Origin
from agents.worker.snapshots import Checkpointer, CheckpointStore
from monitor.records import ColumnBatch, Rejection, decode_message, decode_messages, encode_original, future_rows
from monitor.report import Report
from monitor.spec import StreamSpec
from monitor.stream.merge import PartitionUpdate

if TYPE_CHECKING:
    from agents.settings import Settings
    from agents.worker.app import WorkerContext

__all__ = ["CRASH_EXIT_CODE", "MAX_BATCH", "MAX_PART_BYTES", "POLL_SECONDS", "SESSION_TIMEOUT_MS", "TICK_SECONDS",
           "Ingest", "Origin", "consumer_config"]

log = logging.getLogger("streamdq.worker")

#: How often librdkafka reports the brokers' states (for /health), in ms.
STATS_MS = 2000
#: /health: the ingest loop is stalled (liveness) after this long without an iteration; the worker is not
#: ready when no broker was reachable, or records were waiting and its positions did not move, for this long.
STALL_SECONDS = 60.0
UNREACHABLE_SECONDS = 10.0
NO_PROGRESS_SECONDS = 120.0

#: Messages taken from the consumer at once, at most.
MAX_BATCH = 2000
#: Bytes of messages decoded and handed to the engine at once, at most: a batch of messages carrying arrays or
#: columns is handled in parts (about 20,000 records of 200 bytes), so decoded records stay bounded.
MAX_PART_BYTES = 4 * 1024 * 1024
#: Seconds to wait before trying a checkpoint again after one failed.
CHECKPOINT_RETRY_SECONDS = 5.0
#: Seconds a poll waits for the first message of a batch.
POLL_SECONDS = 0.2
#: Seconds between closing processing-time windows (and ageing pending predictions).
TICK_SECONDS = 1.0
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
    >>> c["group.instance.id"], c["enable.auto.commit"], c["partition.assignment.strategy"]
    ('w-0', False, 'cooperative-sticky')
    """
    extra: dict[str, Any] = {
        "group.id": group_id,
        "auto.offset.reset": "earliest",
        # Offsets are committed only with a checkpoint (agents.worker.snapshots), pointing to it.
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "partition.assignment.strategy": "cooperative-sticky",
        "session.timeout.ms": SESSION_TIMEOUT_MS,
        "heartbeat.interval.ms": SESSION_TIMEOUT_MS // 5,
        "queued.max.messages.kbytes": QUEUE_KBYTES,
        "fetch.wait.max.ms": 100,
        "log_level": 3,
        # librdkafka's statistics say whether any broker is reachable (for /health), every few seconds.
        "statistics.interval.ms": STATS_MS,
    }
    if instance_id:
        extra["group.instance.id"] = instance_id
    return client_config(settings.bootstrap or "", settings.kafka, extra)


class Ingest(Service):
    """Reads every input topic of the spec in batches and feeds the worker's monitor.

    ``consumer_factory`` builds the consumer from its configuration (tests pass their own);
    ``checkpoint_topic`` is where checkpoints go (``None``: none are taken, offsets are never committed);
    ``legacy_group`` is a group whose input offsets the first start adopts (see :meth:`_adopt_legacy_offsets`).
    """

    def __init__(self, ctx: WorkerContext, settings: Settings, *, group_id: str, instance_id: str | None = None,
                 checkpoint_topic: str | None = None, legacy_group: str | None = None,
                 consumer_factory: Callable[[dict[str, Any]], Any] = Consumer, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.ctx = ctx
        ctx.ingest = self
        self.group_id = group_id
        self.streams: dict[str, StreamSpec] = {(s.topic or s.name): s for s in ctx.spec.streams}
        self.config = consumer_config(settings, group_id, instance_id=instance_id)
        self.config["on_commit"] = self._on_commit
        self.config["error_cb"] = self._on_error
        self.config["stats_cb"] = self._on_stats
        self._factory = consumer_factory
        #: The consumer group whose input offsets a first start adopts (the Faust group of earlier releases).
        self.legacy_group = legacy_group
        self.crash_point = settings.crash_point
        self.checkpoint_seconds = settings.checkpoint_seconds
        self.checkpointer: Checkpointer | None = None
        if checkpoint_topic is not None:
            store = CheckpointStore(client_config(settings.bootstrap or "", settings.kafka), checkpoint_topic)
            self.checkpointer = Checkpointer(ctx.monitor, store, token=uuid.uuid4().hex[:12],
                                             streams={t: s.name for t, s in self.streams.items()})
        #: Per input partition held: the offset of the next record to process (what a checkpoint covers).
        self.positions: dict[tuple[str, int], int] = {}
        self._changed = False  # the monitor moved since the last checkpoint
        self._in_batch = False  # a batch is in the monitor but not done: no checkpoint may cover it
        self._checkpoint_at = time.monotonic()
        self._tick_at = time.monotonic()
        self._loop_done = asyncio.Event()  # set when the loop ended
        self._clean_exit = False  # ... between batches (not by an error)
        self._fatal: KafkaError | None = None
        #: Checkpoints written (for the metrics) and the last one's size in bytes.
        self.checkpoints = 0
        self.checkpoint_bytes = 0
        self.checkpoint_time: float | None = None  # epoch seconds of the last one
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
        #: Records between each assigned partition's end and this worker's position (measured every :data:`LAG_EVERY`).
        self.lag: dict[tuple[str, int], int] = {}
        self._lag_at = 0.0
        #: Per (stream, partition) held: when its last record came (monotonic), and whether the merge stage was
        #: told it is idle; the latest progress of each not sent yet (sent with the next tick).
        self._last_data: dict[tuple[str, int], float] = {}
        self._idle: set[tuple[str, int]] = set()
        self._progress: dict[tuple[str, int], PartitionUpdate] = {}
        #: Partition updates sent to the merge stage (for the metrics).
        self.updates_sent = 0
        #: For /health (monotonic clocks): the loop's last iteration; since when no broker is reachable (``None``:
        #: one is); the last time the positions moved or nothing was waiting.
        self.loop_at = time.monotonic()
        self.unreachable_since: float | None = None
        self.progress_at = time.monotonic()

    # -- lifecycle --------------------------------------------------------------------------------------

    async def on_start(self) -> None:
        self.consumer = await self._call(self._factory, self.config)
        if self.legacy_group:
            await self._call(self._adopt_legacy_offsets)
        await self._call(self.consumer.subscribe, sorted(self.streams), on_assign=self._on_assign,
                         on_revoke=self._on_revoke, on_lost=self._on_lost)

    def _adopt_legacy_offsets(self) -> None:
        """On the first start of a worker upgraded from a release whose Faust agents read the inputs: the ingest
        group has no offsets yet, so it takes the offsets those agents committed (under :attr:`legacy_group`)
        instead of reading every input topic from its beginning. Never blocks the start: problems are logged."""
        try:
            metadata = self.consumer.list_topics(timeout=30.0)
            partitions = [TopicPartition(t, p) for t in sorted(self.streams) if t in metadata.topics
                          for p in sorted(metadata.topics[t].partitions)]
            if not partitions or any(tp.offset >= 0 for tp in self.consumer.committed(partitions, timeout=30.0)):
                return  # the ingest group has offsets (or nothing to read): nothing to adopt
            skip = ("on_commit", "error_cb", "group.instance.id")
            legacy = self._factory({**{k: v for k, v in self.config.items() if k not in skip},
                                    "group.id": self.legacy_group})
            try:
                found = [tp for tp in legacy.committed(partitions, timeout=30.0) if tp.offset >= 0]
            finally:
                legacy.close()
            if found:
                self.consumer.commit(offsets=[TopicPartition(tp.topic, tp.partition, tp.offset) for tp in found],
                                     asynchronous=False)
                log.info("ingest: took %d offset(s) committed by the Faust group %s (an upgrade): reading on from "
                         "there", len(found), self.legacy_group)
        except Exception:
            log.exception("ingest: the offsets of the Faust group %s could not be adopted", self.legacy_group)

    async def on_stop(self) -> None:
        if self.consumer is not None:
            try:
                # The loop ends at its next check (a poll lasts POLL_SECONDS): no batch is cut in half.
                await asyncio.wait_for(self._loop_done.wait(), timeout=60.0)
                if self._clean_exit:
                    await self.checkpoint()  # the last one: a restart resumes exactly here
            except TimeoutError:
                log.error("the ingest loop did not stop between batches within 60s: no final checkpoint (a restart "
                          "resumes at the previous one)")
            except Exception:
                log.exception("the final checkpoint failed (a restart resumes at the previous one)")
            try:
                await self._call(self.consumer.close)
            except Exception:
                log.exception("closing the ingest consumer failed")
            self.consumer = None
        if self.checkpointer is not None:
            await self._call(self.checkpointer.store.close)
        self._thread.shutdown(wait=False)

    @Service.task
    async def _run(self) -> None:
        try:
            await self._wait_for_tables()
            self.ctx.restore_alerts()
            self.ctx.started = True
            while not self.should_stop:
                self.loop_at = time.monotonic()
                messages = await self._call(self.consumer.consume, MAX_BATCH, POLL_SECONDS)
                if self._fatal is not None:  # e.g. another worker took this STREAMDQ_INSTANCE_ID: stop, loudly
                    raise KafkaException(self._fatal)
                if messages:
                    await self.handle(messages)
                now = time.monotonic()
                if now - self._tick_at >= TICK_SECONDS:
                    self._tick_at = now
                    await self.tick()
                if self._changed and now - self._checkpoint_at >= self.checkpoint_seconds:
                    try:
                        await self.checkpoint()
                    except Exception:  # logged; the commits stay at the previous checkpoint, tried again later
                        log.exception("checkpoint failed; trying again in %.0fs", CHECKPOINT_RETRY_SECONDS)
                        self._checkpoint_at = now + CHECKPOINT_RETRY_SECONDS - self.checkpoint_seconds
                if now - self._lag_at >= LAG_EVERY:
                    self._measure_lag()
            self._clean_exit = True  # between batches: a final checkpoint covers exactly what was done
        finally:
            self._loop_done.set()

    async def tick(self) -> None:
        """Close processing-time windows; age pending predictions; finish a model's join restore."""
        ctx = self.ctx
        runtimes = list({id(r): r for r in ctx.models.values()}.values())
        self._in_batch = True  # what changes the monitor here is covered by a checkpoint once published
        try:
            await self._tick(runtimes)
        finally:
            self._in_batch = False

    async def _tick(self, runtimes: list[Any]) -> None:
        ctx = self.ctx
        for runtime in runtimes:
            if not runtime.restored and self.assignment:
                try:
                    await runtime.ensure_restored()  # publishes what the gap replay closed
                    self._changed = True
                except Exception:  # logged; retried on the next tick or batch
                    log.exception("restoring the join state of %s failed", runtime.stream.name)
            if runtime.restored and not runtime.monitor.event_mode:
                async with runtime.lock:  # processing time: predictions age even when nothing arrives
                    runtime.monitor.expire()
        try:
            updates = ctx.monitor.features.tick_updates()
        except Exception:  # a bug must not stop the worker: log it, the next tick tries again
            log.exception("closing processing-time windows failed")
            return
        updates += self._idle_updates()
        for u in updates:
            self._progress.pop((u.stream, u.partition), None)  # superseded by this one
        updates += self._progress.values()
        self._progress = {}
        if updates:
            self._changed = self._changed or any(u.panes for u in updates)
            await ctx.publish_all([], updates=updates)
            self.updates_sent += len(updates)

    def _idle_updates(self) -> list[PartitionUpdate]:
        """Partitions without records for ``time.idle_timeout_seconds``: the merge stage is told once."""
        now, out = time.monotonic(), []
        features = self.ctx.monitor.features
        for (topic, partition) in sorted(self.assignment):
            stream = self.streams.get(topic)
            if stream is None:
                continue
            key = (stream.name, partition)
            last = self._last_data.setdefault(key, now)
            if key not in self._idle and now - last >= stream.time.idle_timeout_seconds:
                self._idle.add(key)
                out.append(features.progress(stream.name, partition, idle=True))
        return out

    async def checkpoint(self) -> None:
        """Checkpoint the monitor and commit the offsets it covers (on the consumer's thread)."""
        self._checkpoint_at = time.monotonic()
        if self.checkpointer is None or not self._changed or self._in_batch or not self.positions:
            return
        positions = dict(self.positions)
        data = self.checkpointer.take(positions)  # here, between batches: nothing changes the monitor
        self._changed = False
        try:
            await self._call(self._save, data, positions)
        except Exception:
            self._changed = True  # tried again at the next interval; the commits stay at the previous one
            raise

    def _save(self, data: bytes, positions: dict[tuple[str, int], int]) -> None:
        assert self.checkpointer is not None
        t0 = time.monotonic()
        pointer = self.checkpointer.save(self.consumer, data, positions)
        self.checkpoints += 1
        self.checkpoint_bytes = len(data)
        self.checkpoint_time = time.time()
        log.debug("checkpoint %s: %d bytes, %d partition(s), %.0f ms", pointer.key, len(data), len(positions),
                  (time.monotonic() - t0) * 1000)

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
        """Decode, dead-letter, process and publish one consumer batch; then its partitions' next offsets move on.

        A batch is handled in parts of at most :data:`MAX_PART_BYTES` (messages may carry arrays or
        columns), so the records decoded at once stay bounded; the event loop runs between parts."""
        start, size = 0, 0
        for i, message in enumerate(messages):
            size += len(message.value() or b"")
            if size >= MAX_PART_BYTES:
                await self._handle_part(messages[start:i + 1])
                await asyncio.sleep(0)  # heartbeats and /metrics between parts
                start, size = i + 1, 0
        if start < len(messages):
            await self._handle_part(messages[start:])
        self.batches += 1

    async def _handle_part(self, messages: Sequence[Message]) -> None:
        ctx = self.ctx
        rows: dict[tuple[str, int], Batch] = {}  # the open row batch of each stream and partition
        columns: dict[tuple[str, int], Batch] = {}  # the open columnar batch of each stream and partition
        order: list[Batch] = []
        rejected: list[tuple[StreamSpec, Origin, Rejection]] = []
        ends: dict[tuple[str, int], int] = {}
        run: list[Message] = []  # consecutive single-record candidates of one stream and partition, decoded together
        run_stream: StreamSpec | None = None
        run_key: tuple[str, int] | None = None

        def row_batch(stream: StreamSpec, partition: int) -> Batch:
            key = (stream.name, partition)
            batch = rows.get(key)
            if batch is None:
                columns.pop(key, None)  # later columns start a new batch: order is kept
                batch = rows[key] = Batch(stream, partition)
                order.append(batch)
            return batch

        def one(message: Message, stream: StreamSpec) -> None:
            ok, rejections = decode_message(message.value() or b"", stream)
            if rejections:
                origin = Origin.of(message)
                rejected.extend((stream, origin, r) for r in rejections)
            partition = message.partition() or 0
            key = (stream.name, partition)
            if isinstance(ok, ColumnBatch):
                rows.pop(key, None)  # later rows start a new batch: order is kept
                columnar = columns.get(key)
                if columnar is None or not columnar.takes_columns(ok):
                    columnar = columns[key] = Batch(stream, partition)
                    order.append(columnar)
                columnar.add(ok, message)  # consecutive columnar messages: one engine call
            elif ok:
                row_batch(stream, partition).add(ok, message)

        def flush() -> None:
            if run_stream is None or not run:
                return
            together = decode_messages([m.value() or b"" for m in run], run_stream)
            if together is not None:
                row_batch(run_stream, run[0].partition() or 0).add_singles(together, list(run))
            else:  # some message is not one valid record: each decoded on its own says which and why
                for m in run:
                    one(m, run_stream)
            run.clear()

        now = time.monotonic()
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
            value = message.value() or b""
            if (stream.name, partition) != run_key:
                flush()
                run_stream, run_key = stream, (stream.name, partition)
            if value[:1] == b"{" and not value.startswith(b'{"columns"'):  # likely one record
                run.append(message)
            else:
                flush()
                one(message, stream)
        flush()
        for (t, p) in ends:  # when each partition last had records (idle partitions, see _idle_updates)
            if t in self.streams:
                self._last_data[(self.streams[t].name, p)] = now
        self._in_batch = self._changed = True
        reports: list[Report] = []
        updates: list[PartitionUpdate] = []
        for batch in order:
            rejected += await self._process(batch, reports, updates)
        # Panes go to the merge stage now; progress alone waits for the next tick (the latest one is sent).
        send = [u for u in updates if u.panes or u.final]
        for u in updates:
            key = (u.stream, u.partition)
            if key in self._idle and u.records:
                self._idle.discard(key)  # active again: the update says so (idle=False)
            if not u.panes:
                self._progress[key] = u
        # Every output acknowledged by the broker before the batch counts as done.
        await ctx.publish_all(reports, rejected, updates=send)
        self.updates_sent += len(send)
        if self.crash_point == "after_outputs" and (reports or rejected):
            log.critical("STREAMDQ_TEST_CRASH_POINT=after_outputs: exiting before the batch counts as done")
            os._exit(CRASH_EXIT_CODE)
        for (t, p), o in ends.items():
            if (t, p) in self.assignment:  # a partition revoked meanwhile: its new owner reads it again
                self.positions[(t, p)] = o + 1
        self.progress_at = time.monotonic()
        self._in_batch = False
        self.messages += len(messages)

    async def _process(self, batch: Batch, reports: list[Report],
                       updates: list[PartitionUpdate]) -> list[tuple[StreamSpec, Origin, Rejection]]:
        """One monitor call (the partition step, and the model stage of a predictions or labels stream), its
        reports added to ``reports`` and its partition updates to ``updates``; returns the dead letters of a
        failed batch."""
        runtime = self.ctx.models.get(batch.stream.name)
        if runtime is None:
            return self._run_monitor(batch, reports, updates, offsets=None)
        # A predictions or labels stream: joined per input partition, once its join state is restored, under
        # the lock that keeps a join checkpoint from covering records whose alerts are unsent.
        await runtime.wait_restored()
        async with runtime.lock:
            failed = self._run_monitor(batch, reports, updates, offsets=batch.positions())
            await self.ctx.publish_all(reports)
            reports.clear()
            return failed

    def _run_monitor(self, batch: Batch, reports: list[Report], updates: list[PartitionUpdate], *,
                     offsets: list[int] | None) -> list[tuple[StreamSpec, Origin, Rejection]]:
        ctx, stream, records = self.ctx, batch.stream, batch.payload()
        messages: Sequence[Message] = batch.messages
        future: list[tuple[StreamSpec, Origin, Rejection]] = []
        far = future_rows(records, stream, time.time())
        if far:  # dead-lettered: one such record would move its partition's watermark into the future
            rows = records if isinstance(records, list) else records[:]
            drop = set(far)
            future = [(stream, Origin.of(messages[i]), Rejection(
                "event_time_in_future", f"field {stream.time_field!r} = {rows[i].get(stream.time_field)!r:.80} is more "
                f"than {stream.time.max_future_seconds:g}s ahead of the worker's clock",
                encode_original(rows[i], messages[i].value() or b""))) for i in far]
            records = [r for i, r in enumerate(rows) if i not in drop]
            messages = [m for i, m in enumerate(messages) if i not in drop]
            offsets = None if offsets is None else [o for i, o in enumerate(offsets) if i not in drop]
            if not records:
                return future
        try:
            done, model_reports = ctx.monitor.update(stream.name, records, partition=batch.partition, offsets=offsets)
            updates += done
            reports += model_reports
        except Exception as exc:
            log.exception("the monitor failed on a batch of %d records from %s", len(records), stream.topic)
            rows = records if isinstance(records, list) else records[:]
            detail = f"{type(exc).__name__}: {exc}"
            return future + [(stream, Origin.of(message),
                              Rejection("processing_error", detail, encode_original(rec, message.value() or b"")))
                             for rec, message in zip(rows, messages, strict=True)]
        ctx.metrics.records.labels(stream.name, "processed").inc(len(records))
        return future

    def _measure_lag(self) -> None:
        """Per assigned partition: the end offset librdkafka saw on its last fetch minus our position."""
        self._lag_at = time.monotonic()
        try:  # a metric: nothing here may stop the loop
            held = [TopicPartition(t, p) for t, p in sorted(self.assignment)]
            lag = {}
            for tp in self.consumer.position(held) if held else []:
                _, high = self.consumer.get_watermark_offsets(tp, cached=True)
                if tp.offset >= 0 and high >= 0:
                    lag[(tp.topic, tp.partition)] = max(high - tp.offset, 0)
            self.lag = lag
            if not any(lag.values()):
                self.progress_at = self._lag_at  # nothing waiting: not stuck
        except Exception as exc:  # noqa: BLE001 - not fetched yet, or mid-rebalance: measured again next time
            log.debug("consumer lag not measured: %s", exc)

    # -- librdkafka callbacks (on the consumer's thread) -------------------------------------------------

    def _on_assign(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        log.info("ingest: assigned %s", _names(partitions))
        try:
            committed = consumer.committed(partitions, timeout=30.0) if partitions else []
        except KafkaException as exc:
            log.warning("committed offsets of %s not read (%s): they start where the group left them",
                        _names(partitions), exc)
            committed = []
        if self.checkpointer is not None and partitions:
            # Each partition continues from the checkpoint its commit names (new windows if none fits).
            try:
                self.checkpointer.restore(committed)
            except Exception:  # logged: new windows, from the committed offsets (nothing is lost)
                log.exception("restoring the checkpoints of %s failed: new windows there", _names(partitions))
                self.checkpointer.drop((tp.topic, tp.partition) for tp in partitions)
        # A partition with a commit resumes there; what the next checkpoint covers starts there too.
        for tp in committed:
            if tp.offset is not None and tp.offset >= 0:
                self.positions[(tp.topic, tp.partition)] = tp.offset
                self._changed = True  # the next checkpoint names these partitions too
        self.assignment |= {(tp.topic, tp.partition) for tp in partitions}

    def _on_revoke(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        log.info("ingest: revoked %s", _names(partitions))
        # Inside a poll: the loop is between batches, so the monitor holds exactly what positions covers.
        if self.checkpointer is not None and self._changed and not self._in_batch and self.positions:
            try:
                positions = dict(self.positions)
                self._save(self.checkpointer.take(positions), positions)
                self._changed = False
            except Exception:  # the new owner resumes at the previous checkpoint's offsets
                log.exception("the checkpoint before giving up %s failed", _names(partitions))
        self._forget(partitions)

    def _on_lost(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        log.warning("ingest: lost %s (the session expired; their new owner reads them again from the last "
                    "checkpoint)", _names(partitions))
        self._forget(partitions)  # what they held past the last checkpoint is counted by their next owner

    def _forget(self, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            self.assignment.discard((tp.topic, tp.partition))
            self.positions.pop((tp.topic, tp.partition), None)
            stream = self.streams.get(tp.topic)
            if stream is not None:
                key = (stream.name, tp.partition)
                self._last_data.pop(key, None)
                self._idle.discard(key)
                self._progress.pop(key, None)
        if self.checkpointer is not None:
            self.checkpointer.drop((tp.topic, tp.partition) for tp in partitions)

    def _on_commit(self, error: KafkaError | None, partitions: list[TopicPartition]) -> None:
        if error is not None and error.code() != KafkaError._NO_OFFSET:
            log.warning("committing offsets failed: %s", error.str())

    def _on_stats(self, stats: str) -> None:
        """librdkafka's statistics (on the consumer's thread): is any broker reachable?"""
        try:
            brokers = orjson.loads(stats).get("brokers", {})
        except orjson.JSONDecodeError:
            return
        # While the cluster is away librdkafka lists only the bootstrap servers (state INIT, CONNECT, ...).
        if any(b.get("state") == "UP" for b in brokers.values()):
            self.unreachable_since = None
        elif brokers and self.unreachable_since is None:
            self.unreachable_since = time.monotonic()

    def health(self) -> tuple[bool, bool, list[str]]:
        """(live, ready, reasons): live unless the loop stalled; ready when consuming and none of the reasons."""
        now, reasons = time.monotonic(), []
        live = now - self.loop_at < STALL_SECONDS
        if not live:
            reasons.append(f"the ingest loop has not run for {now - self.loop_at:.0f}s")
        if self._fatal is not None:
            reasons.append(f"fatal Kafka error: {self._fatal.str()}")
        if self.unreachable_since is not None and now - self.unreachable_since >= UNREACHABLE_SECONDS:
            reasons.append(f"no Kafka broker reachable for {now - self.unreachable_since:.0f}s")
        if not self.assignment:
            reasons.append("no input partition assigned")
        elif now - self.progress_at >= NO_PROGRESS_SECONDS and any(self.lag.values()):
            reasons.append(f"no progress for {now - self.progress_at:.0f}s with {sum(self.lag.values())} records "
                           "waiting")
        return live, live and not reasons, reasons

    def _on_error(self, error: KafkaError) -> None:
        if error.fatal():
            self._fatal = error
            log.critical("Kafka: fatal consumer error: %s", error.str())
            return
        now = time.monotonic()
        if now - self._last_error.get(error.code(), -1e9) >= 30.0:  # at most one line per kind per 30 s
            self._last_error[error.code()] = now
            log.warning("Kafka: %s", error.str())


def _names(partitions: list[TopicPartition]) -> str:
    return ", ".join(f"{tp.topic}:{tp.partition}" for tp in partitions) or "nothing"
