"""The feature-stream agent: decode, validate, one engine call, send."""

from __future__ import annotations

import logging

import faust
import orjson

from monitor.records import Rejection, decode_message
from monitor.spec import StreamSpec

__all__ = ["register"]

log = logging.getLogger("streamdq.worker")


def register(app: faust.App, ctx: WorkerContext, stream: StreamSpec) -> faust.types.AgentT:  # noqa: F821
    """Attach an agent consuming ``stream.topic`` to ``app``."""
    topic = app.topic(stream.topic, key_type=bytes, value_type=bytes, key_serializer="raw",
                      value_serializer="raw", partitions=stream.partitions)
    processed = ctx.metrics.records.labels(stream.name, "processed")

    async def consume(events: faust.StreamT) -> None:
        ctx.started = True
        async for event in events.events():
            message = event.message
            records, rejections = decode_message(message.value, stream)
            for rejection in rejections:
                await ctx.dead_letter(stream, message, rejection)
            if not records:
                continue
            try:
                reports = ctx.engine.process(stream.name, records)
            except Exception as exc:  # a bug must not stop the stream: dead-letter and go on
                log.exception("engine failed on %s[%s]@%s", message.topic, message.partition, message.offset)
                for i, rec in enumerate(records):
                    await ctx.dead_letter(stream, message, Rejection(
                        "processing_error", f"{type(exc).__name__}: {exc}", orjson.dumps(rec),
                        index=i if len(records) > 1 else None))
                continue
            processed.inc(len(records))
            for report in reports:
                await ctx.publish(report)

    consume.__name__ = f"consume_{stream.name}".replace(".", "_").replace("-", "_")
    return app.agent(topic, name=f"streamdq.{stream.name}", concurrency=1)(consume)
