"""The worker's Faust app built and driven in-process with Faust's ``test_context``: decode, one monitor
call per batch, reports published, bad records dead-lettered, metrics counted. The output topics are
replaced by in-memory Faust channels; tests/integration runs the same app against a real broker."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from agents.settings import Settings
from agents.worker.app import create_app
from monitor.spec import parse_spec

SPEC = {"version": 1, "name": "tc", "streams": [{
    "name": "f", "windows": [{"name": "w3", "kind": "count", "size": 3}],
    "features": [{"name": "x", "type": "numeric"}]}]}


def _value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    got = registry.get_sample_value(name, labels)
    return 0.0 if got is None else got


def test_the_stream_agent_processes_dead_letters_and_alerts_in_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP", "127.0.0.1:9")  # never contacted: no producer or consumer starts
    registry = CollectorRegistry()
    app, ctx = create_app(parse_spec(SPEC), Settings.from_env(), references={}, registry=registry)
    sent: dict[str, list[tuple[bytes, bytes]]] = {"alerts": [], "deadletter": [], "profiles": []}

    class Recorder:
        """An output topic that records what is sent and acknowledges it at once."""

        def __init__(self, name: str) -> None:
            self.name = name

        async def send(self, *, key: bytes, value: bytes) -> Any:
            sent[self.name].append((key, value))
            done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            done.set_result(None)
            return done

        def get_topic_name(self) -> str:
            return self.name

    ctx.alerts_topic, ctx.deadletter_topic, ctx.profiles_topic = (  # type: ignore[assignment]
        Recorder("alerts"), Recorder("deadletter"), Recorder("profiles"))
    agent = app.agents["streamdq.f"]

    async def run() -> None:
        async with agent.test_context() as ag:
            for value in (b'{"record_id": 1, "x": 1.0}', b'{"record_id": 2}', b"not json",
                          b'{"record_id": 3, "x": 2.0}', b'[{"record_id": 4, "x": 1.0}, {"x": 5}]'):
                await ag.put(value)
            for _ in range(100):  # the agent takes events in batches: wait until it has seen them all
                if ctx.monitor.records_processed["f"] == 4 and len(sent["deadletter"]) == 2:
                    break
                await asyncio.sleep(0.02)

    asyncio.run(run())
    assert ctx.monitor.records_processed == {"f": 4}
    assert [key for key, _ in sent["deadletter"]] == [b"malformed_json", b"missing_id"]
    assert len(sent["profiles"]) == 1 and b'"count":3' in sent["profiles"][0][1]
    assert [b'"check":"missing_ratio"' in value for _, value in sent["alerts"]] == [True]
    assert _value(registry, "streamdq_records_total", stream="f", outcome="processed") == 4
    assert _value(registry, "streamdq_deadletter_records_total", stream="f", reason="malformed_json") == 1
    assert _value(registry, "streamdq_alerts_total", stream="f", check="missing_ratio", severity="critical",
                  status="firing") == 1
    assert _value(registry, "streamdq_open_alerts") == 1
