"""Builds the Faust app of a worker: topics, agents, timers, web pages.

Faust settings chosen on purpose (see CONVENTIONS.md, "Known facts"):
``topic_allow_declare=False`` and explicit topic creation (brokers run with
auto-create off), ``topic_disable_leader=True`` (no leader topic needed),
``web_tables_enabled=False`` (table views would expose state), agents with
``concurrency=1`` (faust-streaming #606), in-memory store and no tables on
the hot path.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import faust
import orjson
from prometheus_client import CollectorRegistry

from agents.deadletter import deadletter_envelope
from agents.metrics import FaustCollector, Metrics
from agents.settings import Settings
from monitor.engine import Engine, WindowReport
from monitor.records import Rejection
from monitor.reference import ReferenceProfile
from monitor.spec import MonitorSpec, StreamSpec

__all__ = ["WorkerContext", "create_app"]

log = logging.getLogger("streamdq.worker")


@dataclass
class WorkerContext:
    """What the agents share: the engine, the metrics and the output topics."""

    spec: MonitorSpec
    engine: Engine
    metrics: Metrics
    app: faust.App
    alerts_topic: faust.TopicT = field(init=False)
    deadletter_topic: faust.TopicT = field(init=False)
    profiles_topic: faust.TopicT = field(init=False)
    started: bool = False

    def __post_init__(self) -> None:
        out = self.spec.outputs
        raw = {"key_type": bytes, "value_type": bytes, "key_serializer": "raw", "value_serializer": "raw",
               "partitions": out.partitions}
        self.alerts_topic = self.app.topic(out.alerts_topic, **raw)
        self.deadletter_topic = self.app.topic(out.deadletter_topic, **raw)
        self.profiles_topic = self.app.topic(out.profiles_topic, **raw)

    async def publish(self, report: WindowReport) -> None:
        """Send a closed window's summary and its alerts; update metrics."""
        self.metrics.observe_window(report)
        await self.profiles_topic.send(key=report.stream.encode(),
                                       value=orjson.dumps(report.to_dict(), option=orjson.OPT_SERIALIZE_NUMPY))
        for alert in report.alerts:
            event = alert.to_event()
            # Await the broker's ack: an alert must not be lost to a crash after commit.
            fut = await self.alerts_topic.send(key=alert.fingerprint.encode(),
                                               value=orjson.dumps(event, option=orjson.OPT_SERIALIZE_NUMPY))
            await fut
            self.metrics.alerts.labels(alert.stream, alert.check, alert.severity).inc()
            log.warning("ALERT %s %s", alert.severity.upper(), alert.summary)

    async def dead_letter(self, stream: StreamSpec, message: faust.types.Message, rejection: Rejection) -> None:
        """Send one rejected record to the dead-letter topic and wait for the ack."""
        body = deadletter_envelope(stream=stream.name, topic=message.topic, partition=message.partition,
                                   offset=message.offset, timestamp_ms=_ts_ms(message), rejection=rejection)
        fut = await self.deadletter_topic.send(key=rejection.reason.encode(), value=body)
        await fut
        self.metrics.records.labels(stream.name, "deadlettered").inc()
        self.metrics.deadletters.labels(stream.name, rejection.reason).inc()


def _ts_ms(message: faust.types.Message) -> int | None:
    ts = getattr(message, "timestamp", None)
    return None if ts is None else int(ts * 1000)


def create_app(spec: MonitorSpec, settings: Settings, *, references: dict[str, ReferenceProfile],
               registry: CollectorRegistry | None = None) -> tuple[faust.App, WorkerContext]:
    """A configured Faust app plus the context its agents share."""
    from agents import features, web  # one module per stream kind, plus the web pages

    app_id = f"streamdq-{spec.name}"
    app = faust.App(
        app_id,
        broker=settings.broker_urls,
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
    )
    registry = registry if registry is not None else CollectorRegistry()
    metrics = Metrics(spec, registry=registry)
    registry.register(FaustCollector(app))
    ctx = WorkerContext(spec=spec, engine=Engine(spec, references=references), metrics=metrics, app=app)
    for stream in spec.streams:
        features.register(app, ctx, stream)

    @app.timer(interval=1.0, name="streamdq.tick")
    async def _tick() -> None:
        for report in ctx.engine.tick():
            await ctx.publish(report)

    web.register(app, ctx, registry)
    return app, ctx
