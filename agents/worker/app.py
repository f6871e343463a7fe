"""Builds the Faust app of a worker: the ingest service, tables, timers, web pages.

The input topics are read by the ingest service (:mod:`agents.worker.ingest`), a service of the app.
Faust settings chosen on purpose (see CONVENTIONS.md, "Known facts"): ``topic_allow_declare=False``
and explicit topic creation (brokers run with auto-create off), ``topic_disable_leader=True`` (no
leader topic needed), ``web_tables_enabled=False`` (table views would expose state), in-memory store
and no tables on the hot path. The alert-state table holds the open alerts (the alert policy's
state, one JSON document per fingerprint), written when a window closes and changes it, and read
back when the worker starts (unless a checkpoint restores the policy), so a restart neither re-fires
an open alert nor forgets one; with a model, the join-state table holds the label join's
checkpoints (:mod:`agents.worker.models`).

At shutdown the ingest service stops first (its last batch and final checkpoint need the tables, the
producer and the notifier), then Faust's own stop runs.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import faust
import orjson
from prometheus_client import CollectorRegistry

from agents.kafka.topics import (
    ALERT_STATE_TABLE,
    JOIN_STATE_TABLE,
    MERGE_STATE_TABLE,
    checkpoint_topic,
    join_state_partitions,
    panes_topic,
)
from agents.notify import Notifier
from agents.settings import Settings
from agents.worker.batch import Origin
from agents.worker.deadletter import deadletter_envelope
from agents.worker.ingest import SESSION_TIMEOUT_MS, Ingest
from agents.worker.merge import MergeStage
from agents.worker.metrics import FaustCollector, IngestCollector, Metrics
from agents.worker.models import ModelRuntime, runtime_table
from agents.worker.status import StatusBoard
from monitor.engine import Monitor
from monitor.records import Rejection
from monitor.reference import ReferenceProfile
from monitor.report import Report
from monitor.spec import MonitorSpec, StreamSpec
from monitor.stream.merge import PartitionUpdate

__all__ = ["WorkerContext", "create_app"]

log = logging.getLogger("streamdq.worker")

#: Partition updates the merge agent takes at once, at most, and how long it waits to fill a batch (seconds).
MERGE_BATCH = 200
MERGE_WITHIN = 0.2


@dataclass
class WorkerContext:
    """What the agents share: the monitor, the metrics, the output topics, the alert state
    table and the notifier (webhooks, Alertmanager)."""

    spec: MonitorSpec
    monitor: Monitor
    metrics: Metrics
    app: faust.App
    notifier: Notifier
    alert_state: Any = None
    alerts_topic: faust.TopicT = field(init=False)
    deadletter_topic: faust.TopicT = field(init=False)
    profiles_topic: faust.TopicT = field(init=False)
    alerts_deadletter_topic: faust.TopicT = field(init=False)
    panes_topic: faust.TopicT = field(init=False)
    started: bool = False
    restored: bool = False
    #: Model runtimes by the name of the predictions or labels stream they read.
    models: dict[str, ModelRuntime] = field(default_factory=dict)
    #: The service reading the input topics (set by :func:`create_app`).
    ingest: Ingest | None = None
    #: The merge agent's work (set by :func:`create_app`).
    merge: MergeStage | None = None
    #: The latest closed windows and open alerts, for ``/status``.
    status: StatusBoard = field(default_factory=StatusBoard)

    def __post_init__(self) -> None:
        out = self.spec.outputs
        raw: dict[str, Any] = {"key_type": bytes, "value_type": bytes, "key_serializer": "raw",
                               "value_serializer": "raw", "partitions": out.partitions}
        self.alerts_topic = self.app.topic(out.alerts_topic, **raw)
        self.deadletter_topic = self.app.topic(out.deadletter_topic, **raw)
        self.profiles_topic = self.app.topic(out.profiles_topic, **raw)
        self.alerts_deadletter_topic = self.app.topic(out.alerts_deadletter_topic, **raw)
        self.panes_topic = self.app.topic(panes_topic(self.spec), **{**raw, "partitions": 1})

    def restore_alerts(self) -> None:
        """Load the open alerts from the table (after Faust recovered it, before the first batch)."""
        if self.restored:
            return
        count = self.reload_alerts()
        self.restored = True
        if count:
            log.info("restored %d open alert(s) from the alert-state table", count)

    def reload_alerts(self) -> int:
        """Take the alert-state table's states into the policy (at start, and when the merge agent moved here:
        its streams' alerts were last written by another worker); returns how many were loaded."""
        if self.alert_state is None:
            return 0
        count = 0
        for fp, state in list(self.alert_state.items()):
            if state is not None:
                self.monitor.policy.load(fp, state)
                count += 1
        self.metrics.open_alerts.set(len(self.monitor.policy.open_alerts()))
        return count

    async def publish(self, report: Report) -> None:
        """Send a closed window's profile (feature or model window) and its alert events; checkpoint
        the alert state."""
        await self.publish_all([report])

    async def publish_all(self, reports: Sequence[Report],
                          dead_letters: Sequence[tuple[StreamSpec, Origin, Rejection]] = (), *,
                          updates: Sequence[PartitionUpdate] = ()) -> None:
        """Send the profiles and alert events of ``reports``, the ``dead_letters`` and the partition ``updates``
        for the merge stage (in order, every one acknowledged by the broker before this returns: an alert must
        not be lost to a crash, nor a pane before its offsets are committed); then notify subscriptions and
        write the alert state."""
        sends: list[tuple[faust.TopicT, bytes, bytes]] = []
        for update in updates:
            sends.append((self.panes_topic, update.stream.encode(), orjson.dumps(update.to_state())))
        events: list[dict[str, Any]] = []
        for report in reports:
            self.metrics.observe(report)
            self.status.observe(report)
            sends.append((self.profiles_topic, report.stream.encode(),
                          orjson.dumps(report.to_dict(), option=orjson.OPT_SERIALIZE_NUMPY)))
            for alert in report.events:
                event = alert.to_event()
                events.append(event)
                sends.append((self.alerts_topic, alert.fingerprint.encode(),
                              orjson.dumps(event, option=orjson.OPT_SERIALIZE_NUMPY)))
                self.metrics.alerts.labels(alert.stream, alert.check, alert.severity, alert.status).inc()
                log.warning("ALERT %s %s %s", alert.status.upper(), alert.severity.upper(), alert.summary)
        for name, model in self.monitor.models.items():
            dropped = model.take_dropped()
            if dropped:  # versions beyond max_versions: their series go
                self.metrics.forget_model_versions(name, dropped)
        for stream, origin, rejection in dead_letters:
            sends.append((self.deadletter_topic, rejection.reason.encode(), deadletter_envelope(
                stream=stream.name, topic=origin.topic, partition=origin.partition, offset=origin.offset,
                timestamp_ms=origin.timestamp_ms, rejection=rejection)))
            self.metrics.records.labels(stream.name, "deadlettered").inc()
            self.metrics.deadletters.labels(stream.name, rejection.reason).inc()
        await send_all(sends)
        for event in events:
            self.notifier.submit(event)  # never blocks: bounded queues, delivered in the background
        if self.alert_state is not None:
            for fp, state in self.monitor.policy.drain_changes().items():
                if state is None:
                    self.alert_state.pop(fp, None)
                else:
                    self.alert_state[fp] = state
        self.metrics.open_alerts.set(len(self.monitor.policy.open_alerts()))

    async def notification_dead_letter(self, event: dict[str, Any], subscription: str, reason: str) -> None:
        """A notification a subscription could not deliver: to the alerts dead-letter topic."""
        body = orjson.dumps({"schema_version": 1, "subscription": subscription, "reason": reason, "event": event},
                            option=orjson.OPT_SERIALIZE_NUMPY)
        await send_acked(self.alerts_deadletter_topic, str(event.get("fingerprint", "")).encode(), body)


#: Retry delays of a send the broker did not acknowledge (seconds, doubling up to the last).
SEND_RETRY_DELAYS = (0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0)


async def send_acked(topic: faust.TopicT, key: bytes, value: bytes) -> None:
    """Send and wait for the broker's acknowledgement, retrying until it comes.

    A batch counts as done (and a checkpoint may cover it) only once its outputs are acknowledged, so
    a send that failed must not be given up. Retrying here blocks the stream while the broker cannot
    take writes, which is what at-least-once needs.
    """
    attempt = 0
    while True:
        try:
            fut = await topic.send(key=key, value=value)
            await fut
            return
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - every send failure is retried the same way
            delay = SEND_RETRY_DELAYS[min(attempt, len(SEND_RETRY_DELAYS) - 1)]
            log.warning("send to %s failed (%s: %s); retrying in %.1fs", topic.get_topic_name(),
                        type(exc).__name__, exc, delay)
            attempt += 1
            await asyncio.sleep(delay)


async def send_all(sends: Sequence[tuple[faust.TopicT, bytes, bytes]]) -> None:
    """Queue every send in order, then wait for every acknowledgement: one round trip for a whole batch of
    outputs. From the first send that failed on, every send is made again, one at a time, with
    :func:`send_acked` (retried until acknowledged): a key's messages (an alert's firing, then its resolved
    event) then still end in the order they were made, after duplicates that at-least-once allows."""
    queued: list[Any] = []
    for topic, key, value in sends:
        try:
            queued.append(await topic.send(key=key, value=value))
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - sent again below, with retries and a log line
            queued.append(None)
    failed_at = len(sends)
    for i, fut in enumerate(queued):
        try:
            if fut is None:
                raise RuntimeError("not queued")
            await fut
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - sent again below
            failed_at = min(failed_at, i)
    for topic, key, value in sends[failed_at:]:
        await send_acked(topic, key, value)


class _App(faust.App):
    """A Faust app that stops the ingest service before anything else stops (Faust's ``on_stop`` stops its
    consumer, runs ``on_before_shutdown`` and flushes the producer before it stops its services)."""

    ingest_first: WorkerContext | None = None

    async def on_stop(self) -> None:
        ctx = self.ingest_first
        if ctx is not None and ctx.ingest is not None:
            try:
                await ctx.ingest.stop()
            except Exception:
                log.exception("stopping the ingest service failed")
        await super().on_stop()


def create_app(spec: MonitorSpec, settings: Settings, *, references: dict[str, ReferenceProfile],
               registry: CollectorRegistry | None = None) -> tuple[faust.App, WorkerContext]:
    """A configured Faust app plus the context its agents share."""
    from agents.worker import web

    app_id = f"streamdq-{spec.name}"
    app = _App(
        app_id,
        broker=settings.broker_urls,
        broker_credentials=settings.kafka.faust_credentials(),
        autodiscover=False,
        store="memory://",
        datadir=settings.data_dir_for(app_id),
        topic_allow_declare=False,
        topic_disable_leader=True,
        consumer_auto_offset_reset="earliest",
        web_enabled=True,
        web_bind=settings.web_bind,
        web_host=settings.web_bind,
        web_port=settings.web_port,
        web_tables_enabled=False,
        producer_acks=-1,
        broker_max_poll_records=1000,
        # Faust's own group (the tables' changelogs) recovers as fast as the ingest group: a worker that died
        # silently holds the tables SESSION_TIMEOUT_MS at most, and none with static membership. Faust's
        # assignor requires a static member to come back with the web address it had: the port is part of
        # the instance id, so a restart on another port joins as a new member (after one session).
        broker_session_timeout=SESSION_TIMEOUT_MS / 1000,
        broker_heartbeat_interval=SESSION_TIMEOUT_MS / 5000,
        consumer_group_instance_id=f"{settings.instance_id}-{settings.web_port}" if settings.instance_id else None,
    )
    registry = registry if registry is not None else CollectorRegistry()
    metrics = Metrics(spec, registry=registry)
    registry.register(FaustCollector(app))
    holder: list[WorkerContext] = []

    async def dead_letter(event: dict[str, Any], subscription: str, reason: str) -> None:
        await holder[0].notification_dead_letter(event, subscription, reason)

    notifier = Notifier(spec.alerting.subscriptions, registry=registry, dead_letter=dead_letter)
    ctx = WorkerContext(spec=spec, monitor=Monitor(spec, references=references,
                                                   partitions={s.name: s.partitions for s in spec.streams}),
                        metrics=metrics, app=app, notifier=notifier)
    holder.append(ctx)
    metrics.watch(ctx.monitor)
    app.ingest_first = ctx
    registry.register(IngestCollector(lambda: ctx.ingest))
    # Written only when a window changes the alert state (never per record); use_partitioner lets the
    # timer and the batch loop write it outside a single event's context.
    table = app.Table(ALERT_STATE_TABLE, default=None, partitions=1, use_partitioner=True, key_type=str)
    # One changelog partition: every write goes to partition 0. (With use_partitioner Faust would ask the
    # producer to hash the key, which fails before the producer has metadata for the changelog topic.)
    table.partition_for_key = lambda key: 0  # type: ignore[method-assign]
    ctx.alert_state = table
    # The merge stage of every stream, one JSON document per stream, written after each batch of partition
    # updates; one partition, like the panes topic its agent reads (so the same worker owns both).
    merge_table = app.Table(MERGE_STATE_TABLE, default=None, partitions=1, use_partitioner=True, key_type=str)
    merge_table.partition_for_key = lambda key: 0  # type: ignore[method-assign]
    merge = ctx.merge = MergeStage(ctx, merge_table)

    @app.agent(ctx.panes_topic, name="streamdq.merge")
    async def _merge(stream: Any) -> None:
        async for values in stream.take(MERGE_BATCH, within=MERGE_WITHIN):
            await merge.handle(list(values))

    @app.timer(interval=1.0, name="streamdq.merge_stalled")
    async def _stalled() -> None:
        try:
            await merge.tick()
        except Exception:  # logged; the next tick tries again
            log.exception("closing the windows of stalled streams failed")

    @app.on_partitions_revoked.connect
    async def _moved(sender: Any, /, *args: Any, **kwargs: Any) -> None:
        merge.forget()  # whoever owns the merge next reads its state back from the table
    join_table = None
    if join_state_partitions(spec):
        join_table = runtime_table(app, JOIN_STATE_TABLE, join_state_partitions(spec))
    ingest_group = f"{app_id}-ingest"
    for name, monitor in ctx.monitor.models.items():
        stream = spec.stream(name)
        runtime = ModelRuntime(ctx, stream, monitor, join_table, bootstrap=settings.bootstrap or "",
                               group_id=ingest_group, security=settings.kafka)
        ctx.models[stream.name] = ctx.models[monitor.model.labels] = runtime
        metrics.watch_model(monitor)

    @app.service
    class _Ingest(Ingest):  # started and stopped with the app; Faust instantiates it (it sets ctx.ingest)
        def __init__(self, **kwargs: Any) -> None:
            super().__init__(ctx, settings, group_id=ingest_group, instance_id=settings.instance_id,
                             checkpoint_topic=checkpoint_topic(spec), legacy_group=app_id, **kwargs)
    runtimes = list({id(r): r for r in ctx.models.values()}.values())
    if runtimes:
        every = min(r.stream.model.join.checkpoint_seconds for r in runtimes if r.stream.model is not None)

        @app.timer(interval=every, name="streamdq.join_checkpoint")
        async def _checkpoint() -> None:
            for runtime in runtimes:
                try:
                    await runtime.checkpoint()
                except Exception:  # logged; the next checkpoint tries again
                    log.exception("checkpointing the join state of %s failed", runtime.stream.name)

        @app.on_before_shutdown.connect
        async def _last_checkpoint(sender: Any, /, *args: Any, **kwargs: Any) -> None:
            for runtime in runtimes:
                try:
                    await runtime.checkpoint()
                except Exception:
                    log.exception("final join checkpoint of %s failed", runtime.stream.name)

    @app.task
    async def _notifications() -> None:
        await notifier.start()

    @app.on_before_shutdown.connect
    async def _stop_notifications(sender: Any, /, *args: Any, **kwargs: Any) -> None:
        # Sent after the ingest service and Faust's consumer stopped and before the producer is flushed and
        # stopped, so what is still queued is delivered or dead-lettered through a working producer.
        await notifier.stop(timeout=10)

    web.register(app, ctx, registry)
    return app, ctx
