"""The worker's web pages: ``/metrics`` (Prometheus text format), ``/health`` and ``/status`` (JSON: streams,
last closed windows, features' latest quality and drift, open alerts; what ``streamdq status`` shows)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import faust
import orjson
from aiohttp.web import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

if TYPE_CHECKING:
    from agents.worker.app import WorkerContext

__all__ = ["register"]


def register(app: faust.App, ctx: WorkerContext, registry: CollectorRegistry) -> None:
    @app.page("/metrics", name="streamdq_metrics")
    async def metrics(self: faust.web.View, request: faust.web.Request) -> Any:
        return Response(body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    def worker_state() -> tuple[bool, dict[str, Any]]:
        ingest = ctx.ingest
        assignment = sorted(ingest.assignment) if ingest is not None else []
        tables = sorted((tp.topic, tp.partition) for tp in app.consumer.assignment()) if app.consumer else []
        live, ready, reasons = ingest.health() if ingest is not None else (True, False, ["no ingest service"])
        if not ctx.started:
            ready, reasons = False, ["starting"]
        return ready, {
            "status": "ok" if ready else ("starting" if not ctx.started else "unavailable"),
            "live": live,
            "reasons": reasons,
            "app": app.conf.id,
            "assigned_partitions": [f"{t}:{p}" for t, p in assignment],  # input topics (the ingest service)
            "table_partitions": [f"{t}:{p}" for t, p in tables],  # the tables' changelogs (Faust's consumer)
            "records_processed": ctx.monitor.records_processed,
        }

    @app.page("/health", name="streamdq_health")
    async def health(self: faust.web.View, request: faust.web.Request) -> Any:
        """Readiness: 200 once consuming its partitions with a reachable broker and progress; 503 with the
        reasons otherwise (also at /health/ready)."""
        ready, body = worker_state()
        return Response(body=orjson.dumps(body), status=200 if ready else 503,
                        headers={"Content-Type": "application/json"})

    @app.page("/health/ready", name="streamdq_ready")
    async def ready(self: faust.web.View, request: faust.web.Request) -> Any:
        ready, body = worker_state()
        return Response(body=orjson.dumps(body), status=200 if ready else 503,
                        headers={"Content-Type": "application/json"})

    @app.page("/health/live", name="streamdq_live")
    async def live(self: faust.web.View, request: faust.web.Request) -> Any:
        """Liveness: 200 while the ingest loop runs (a broker outage is not a reason to restart a worker)."""
        _, body = worker_state()
        return Response(body=orjson.dumps({"live": body["live"], "reasons": body["reasons"]}),
                        status=200 if body["live"] else 503, headers={"Content-Type": "application/json"})

    @app.page("/status", name="streamdq_status")
    async def status(self: faust.web.View, request: faust.web.Request) -> Any:
        _, state = worker_state()
        del state["records_processed"]  # per stream in the document
        body = ctx.status.status(ctx.monitor, spec=ctx.spec.name, **state)
        return Response(body=orjson.dumps(body), status=200, headers={"Content-Type": "application/json"})
