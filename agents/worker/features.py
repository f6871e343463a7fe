"""The stream agent: decode, validate, one monitor call per batch, send every report.

Events are taken in batches (up to :data:`MAX_BATCH` messages or
:data:`BATCH_WITHIN` seconds, whichever comes first) so the engine works
column-wise; Faust acknowledges a batch's offsets only after the body below
has finished with it (dead letters and alerts acknowledged by the broker),
which keeps delivery at-least-once.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast

import faust

from agents.worker.checkpoint import positions
from monitor.records import ColumnBatch, Rejection, decode_message, encode_original
from monitor.spec import StreamSpec

if TYPE_CHECKING:
    from agents.worker.app import WorkerContext

__all__ = ["BATCH_WITHIN", "MAX_BATCH", "register"]

#: Messages handed to the engine at once, at most.
MAX_BATCH = 1000
#: Seconds to wait for a batch to fill before processing what has arrived.
BATCH_WITHIN = 0.1

log = logging.getLogger("streamdq.worker")


def register(app: faust.App, ctx: WorkerContext, stream: StreamSpec) -> Any:
    """Attach an agent consuming ``stream.topic`` to ``app``."""
    topic = app.topic(stream.topic or stream.name, key_type=bytes, value_type=bytes, key_serializer="raw",
                      value_serializer="raw", partitions=stream.partitions)
    processed = ctx.metrics.records.labels(stream.name, "processed")

    async def consume(events: faust.StreamT[bytes]) -> None:
        ctx.started = True
        # take_events is on faust.Stream (what an agent gets), not on the StreamT protocol
        async for batch in cast("faust.Stream[bytes]", events).take_events(MAX_BATCH, within=BATCH_WITHIN):
            ctx.restore_alerts()  # tables are recovered before the first batch is handed over
            # Row records of consecutive messages are processed together; a columnar message is
            # processed as it is (already columns). Order is kept either way.
            rows: list[dict[str, Any]] = []
            origins: list[Any] = []
            for event in batch:
                message = event.message
                ok, rejections = decode_message(message.value, stream)
                for rejection in rejections:
                    await ctx.dead_letter(stream, message, rejection)
                if isinstance(ok, ColumnBatch):
                    await process(rows, origins)
                    rows, origins = [], []
                    await process(ok, [message] * len(ok))
                elif ok:
                    rows += ok
                    origins += [message] * len(ok)
            await process(rows, origins)

    async def process(records: Sequence[dict[str, Any]], origins: list[Any]) -> None:
        if not records:
            return
        runtime = ctx.models.get(stream.name)
        if runtime is None:
            await run(records, origins, partition=0, offsets=None)
            return
        # A predictions or labels stream: joined per input partition, once its join state is restored, under
        # the lock that keeps a checkpoint from covering records whose alerts are unsent.
        await runtime.wait_restored()
        async with runtime.lock:
            await run(records, origins, partition=[m.partition for m in origins], offsets=positions(origins))

    async def run(records: Sequence[dict[str, Any]], origins: Sequence[Any], *, partition: int | list[int],
                  offsets: list[int] | None) -> None:
        try:
            reports = ctx.monitor.process(stream.name, records, partition=partition, offsets=offsets)
        except Exception as exc:
            log.exception("the monitor failed on a batch of %d records from %s", len(records), stream.topic)
            for rec, message in zip(records, origins, strict=True):
                await ctx.dead_letter(stream, message, Rejection(
                    "processing_error", f"{type(exc).__name__}: {exc}", encode_original(rec, message.value)))
            return
        processed.inc(len(records))
        for report in reports:
            await ctx.publish(report)

    consume.__name__ = f"consume_{stream.name}".replace(".", "_").replace("-", "_")
    return app.agent(topic, name=f"streamdq.{stream.name}", concurrency=1)(consume)
