"""A Faust app whose one agent does nothing with its events: the framework's own cost, for worker_bench.py.

A minimal ``faust.App`` (memory store, ``topic_allow_declare=False``, no leader topic, no tables) reading
raw bytes from ``--topic`` from the earliest offset, with the consumer settings the streamdq worker uses
(``broker_max_poll_records=1000``, ``consumer_auto_offset_reset="earliest"``). Its agent is
``async for _ in stream`` with one integer increment per event, served as JSON at ``GET /count`` on
``--web-port`` (the bench polls it as it polls the worker's ``/metrics``). Runs until SIGTERM.

Usage: ``python benchmarks/faust_noop.py --bootstrap HOST:PORT --topic T --app-id ID --web-port P --data-dir D``
"""

from __future__ import annotations

import argparse
from typing import Any

import faust


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--app-id", required=True, help="also the consumer group")
    ap.add_argument("--web-port", type=int, required=True)
    ap.add_argument("--data-dir", required=True)
    args = ap.parse_args()

    app = faust.App(
        args.app_id,
        broker=[f"kafka://{h}" for h in args.bootstrap.split(",")],
        autodiscover=False,
        store="memory://",
        datadir=args.data_dir,
        topic_allow_declare=False,
        topic_disable_leader=True,
        consumer_auto_offset_reset="earliest",
        broker_max_poll_records=1000,
        web_enabled=True,
        web_bind="127.0.0.1",
        web_host="127.0.0.1",
        web_port=args.web_port,
        web_tables_enabled=False,
    )
    topic = app.topic(args.topic, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")
    seen = [0]

    @app.agent(topic, name="bench.noop", concurrency=1)
    async def noop(stream: faust.StreamT[bytes]) -> None:
        async for _ in stream:
            seen[0] += 1

    @app.page("/count", name="bench_count")
    async def count(self: faust.web.View, request: faust.web.Request) -> Any:
        return self.json({"count": seen[0]})

    faust.Worker(app, loglevel="warning", quiet=True).execute_from_commandline()


if __name__ == "__main__":
    main()
