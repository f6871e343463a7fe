"""The worker's Faust app built in-process and its ingest service handed consumer batches: decode, one monitor
call per stream partition per batch, panes to the merge stage and its reports published, bad records
dead-lettered, metrics counted, offsets stored only after every output was acknowledged. The output topics
record what is sent; the messages are confluent-kafka look-alikes. tests/integration runs the same app against
a real broker."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson
import pytest
from prometheus_client import CollectorRegistry

from agents.settings import Settings
from agents.worker.app import create_app
from agents.worker.ingest import Ingest
from monitor.spec import parse_spec

SPEC = {"version": 1, "name": "tc", "streams": [{
    "name": "f", "windows": [{"name": "w3", "kind": "count", "size": 3}], "min_samples": 3,
    "features": [{"name": "x", "type": "numeric"}]}]}


def _value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    got = registry.get_sample_value(name, labels)
    return 0.0 if got is None else got


class Message:
    """The parts of a ``confluent_kafka.Message`` the ingest service reads."""

    def __init__(self, offset: int, value: bytes, topic: str = "f", partition: int = 0) -> None:
        self._offset, self._value, self._topic, self._partition = offset, value, topic, partition

    def error(self) -> None:
        return None

    def topic(self) -> str:
        return self._topic

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def value(self) -> bytes:
        return self._value

    def timestamp(self) -> tuple[int, int]:
        return (1, 1_700_000_000_000 + self._offset)


def test_the_ingest_service_processes_dead_letters_and_alerts_in_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP", "127.0.0.1:9")  # never contacted: no producer or consumer starts
    registry = CollectorRegistry()
    _app, ctx = create_app(parse_spec(SPEC), Settings.from_env(), references={}, registry=registry)
    sent: dict[str, list[tuple[bytes, bytes]]] = {"alerts": [], "deadletter": [], "profiles": [], "panes": []}

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

    ctx.alerts_topic, ctx.deadletter_topic, ctx.profiles_topic, ctx.panes_topic = (  # type: ignore[assignment]
        Recorder("alerts"), Recorder("deadletter"), Recorder("profiles"), Recorder("panes"))
    values = (b'{"record_id": 1, "x": 1.0}', b'{"record_id": 2}', b"not json", b'{"record_id": 3, "x": 2.0}',
              b'[{"record_id": 4, "x": 1.0}, {"x": 5}]')

    async def run() -> None:
        ingest = Ingest(ctx, Settings.from_env(), group_id="g")
        ingest.assignment = {("f", 0)}
        assert ctx.ingest is ingest
        await ingest.handle([Message(i + 10, v) for i, v in enumerate(values)])  # type: ignore[misc]
        assert ingest.positions == {("f", 0): 15}  # the next offset to read: what a checkpoint would cover
        # The partition's closed pane went to the merge stage (the panes topic), which the merge agent reads.
        assert [key for key, _ in sent["panes"]] == [b"f"] and not sent["profiles"]
        assert ctx.merge is not None
        await ctx.merge.handle([value for _, value in sent["panes"]])

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


def test_offsets_are_stored_only_after_a_failed_dead_letter_send_was_retried_and_acknowledged(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP", "127.0.0.1:9")
    monkeypatch.setattr("agents.worker.app.SEND_RETRY_DELAYS", (0.01,))
    _app, ctx = create_app(parse_spec(SPEC), Settings.from_env(), references={}, registry=CollectorRegistry())
    sent: dict[str, list[tuple[bytes, bytes]]] = {"deadletter": []}
    failures = [RuntimeError("broker away"), RuntimeError("broker away")]

    class Flaky:
        async def send(self, *, key: bytes, value: bytes) -> Any:
            if failures:
                raise failures.pop()
            sent["deadletter"].append((key, value))
            done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            done.set_result(None)
            return done

        def get_topic_name(self) -> str:
            return "deadletter"

    ctx.deadletter_topic = Flaky()  # type: ignore[assignment]
    seen: list[tuple[dict[tuple[str, int], int], int]] = []

    async def run() -> None:
        ingest = Ingest(ctx, Settings.from_env(), group_id="g")
        ingest.assignment = {("f", 0)}
        task = asyncio.create_task(ingest.handle([Message(0, b'{"record_id": 1, "x": 1.0}'),  # type: ignore[list-item]
                                                  Message(1, b"{oops")]))
        while not task.done():  # the batch counts as done only once the dead letter is acknowledged
            seen.append((dict(ingest.positions), len(sent["deadletter"])))
            await asyncio.sleep(0.001)
        await task
        seen.append((dict(ingest.positions), len(sent["deadletter"])))

    asyncio.run(run())
    assert not failures and len(sent["deadletter"]) == 1
    assert all(pos == {} for pos, n in seen if n == 0) and seen[-1] == ({("f", 0): 2}, 1)


def test_consecutive_columnar_messages_are_one_engine_call_and_order_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP", "127.0.0.1:9")
    _app, ctx = create_app(parse_spec(SPEC), Settings.from_env(), references={}, registry=CollectorRegistry())
    calls: list[tuple[str, int]] = []
    update = ctx.monitor.update

    def spy(stream: str, records: Any, **kw: Any) -> Any:
        calls.append((type(records).__name__, len(records)))
        return update(stream, records, **kw)

    monkeypatch.setattr(ctx.monitor, "update", spy)

    async def send(**_: Any) -> Any:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done

    for name in ("alerts_topic", "deadletter_topic", "profiles_topic", "panes_topic"):
        monkeypatch.setattr(getattr(ctx, name), "send", send)
    values = [b'{"columns": {"record_id": [1, 2], "x": [1.0, 2.0]}}', b'{"columns": {"x": [3.0], "record_id": [3]}}',
              b'{"record_id": 4, "x": 4.0}', b'{"columns": {"record_id": [5], "x": [5.0]}}',
              b'{"columns": {"record_id": [6], "x": [6.0], "y": [1]}}']

    async def run() -> None:
        ingest = Ingest(ctx, Settings.from_env(), group_id="g")
        ingest.assignment = {("f", 0)}
        await ingest.handle([Message(i, v) for i, v in enumerate(values)])  # type: ignore[misc]

    asyncio.run(run())
    # two columnar messages with the same columns: one call; then the row, then columns again, then other columns
    assert calls == [("ColumnBatch", 3), ("RecordBatch", 1), ("ColumnBatch", 1), ("ColumnBatch", 1)]
    assert ctx.monitor.records_processed == {"f": 6}


def test_an_event_time_far_in_the_future_is_dead_lettered_and_moves_no_watermark(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP", "127.0.0.1:9")
    _app, ctx = create_app(parse_spec(SPEC), Settings.from_env(), references={}, registry=CollectorRegistry())
    sent: dict[str, list[tuple[bytes, bytes]]] = {"deadletter": []}

    async def send(**kw: Any) -> Any:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done

    async def dead_letter(*, key: bytes, value: bytes) -> Any:
        sent["deadletter"].append((key, value))
        return await send()

    for name in ("alerts_topic", "profiles_topic", "panes_topic"):
        monkeypatch.setattr(getattr(ctx, name), "send", send)
    monkeypatch.setattr(ctx.deadletter_topic, "send", dead_letter)
    now = time.time()
    values = [orjson.dumps({"record_id": 1, "x": 1.0, "event_time": now}),
              orjson.dumps({"record_id": 2, "x": 1.0, "event_time": "2300-01-01T00:00:00Z"}),  # ~274 years ahead
              orjson.dumps({"record_id": 3, "x": 1.0, "event_time": now + 60})]  # a minute ahead: fine

    async def run() -> None:
        ingest = Ingest(ctx, Settings.from_env(), group_id="g")
        ingest.assignment = {("f", 0)}
        await ingest.handle([Message(i, v) for i, v in enumerate(values)])  # type: ignore[misc]

    asyncio.run(run())
    assert [key for key, _ in sent["deadletter"]] == [b"event_time_in_future"]
    assert b"2300-01-01" in sent["deadletter"][0][1]
    assert ctx.monitor.records_processed == {"f": 2}
    assert ctx.monitor.watermark("f") == pytest.approx(now + 60)
