"""Read a bounded range of a Kafka topic (for ``replay --topic`` and ``reference build --topic``)."""

from __future__ import annotations

import heapq
import math
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from confluent_kafka import OFFSET_END, Consumer, KafkaError, KafkaException, TopicPartition

from agents.kafka.connect import check_connection, client_config
from agents.kafka.security import PLAINTEXT, KafkaSecurity
from monitor.errors import ConfigError, KafkaUnavailableError
from monitor.records import FromPartition, Rejection, decode_message, event_time_seconds
from monitor.spec import StreamSpec

__all__ = ["parse_position", "partitioned_records", "read_range", "read_topic", "topic_partitions", "topic_records"]


def parse_position(text: str | None) -> int | float | None:
    """``None``, an offset (integer, applied to every partition) or a time (ISO-8601 -> epoch seconds).

    >>> parse_position("42"), parse_position("1970-01-01T00:00:10Z"), parse_position(None)
    (42, 10.0, None)
    """
    if text is None:
        return None
    if text.strip().lstrip("-").isdigit():
        return int(text)
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"--from/--to must be an offset or an ISO-8601 time, got {text!r}") from None
    return (dt if dt.tzinfo else dt.replace(tzinfo=UTC)).timestamp()


def _reader(bootstrap: str, security: KafkaSecurity) -> Consumer:
    return Consumer(client_config(bootstrap, security, {
        "group.id": f"streamdq-read-{uuid.uuid4().hex}", "enable.auto.commit": False, "auto.offset.reset": "earliest",
        "log_level": 0, "enable.partition.eof": True, "queued.max.messages.kbytes": 8192}))


def _ranges(consumer: Consumer, bootstrap: str, topic: str, start: int | float | None, end: int | float | None,
            timeout: float) -> tuple[int, list[tuple[int, int, int]]]:
    """The topic's partition count and the non-empty (partition, low, high) ranges to read."""
    try:
        md = consumer.list_topics(topic, timeout=timeout)
    except KafkaException as exc:
        raise KafkaUnavailableError(f"cannot read the metadata of {topic!r} at {bootstrap}: "
                                    f"{exc.args[0].str()}") from None
    tmeta = md.topics.get(topic)
    if tmeta is None or tmeta.error is not None or not tmeta.partitions:
        raise ConfigError(f"topic {topic!r} does not exist on {bootstrap}")
    ranges = []
    for p in sorted(tmeta.partitions):
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout)
        lo = _resolve(consumer, topic, p, start, low, high, timeout)
        hi = _resolve(consumer, topic, p, end, low, high, timeout) if end is not None else high
        if hi > lo:
            ranges.append((p, lo, hi))
    return len(tmeta.partitions), ranges


def read_topic(bootstrap: str, topic: str, *, start: int | float | None = None, end: int | float | None = None,
               timeout: float = 30.0, security: KafkaSecurity = PLAINTEXT) -> Iterator[Any]:
    """Yield the messages of ``topic`` from ``start`` (inclusive) to ``end`` (exclusive), partition by partition.

    Offsets are per partition; float positions are times (epoch seconds, resolved
    with ``offsets_for_times``). Without ``end`` the range stops at the end
    offsets seen when reading starts, so the read always terminates.
    """
    check_connection(bootstrap, security, timeout=timeout)
    consumer = _reader(bootstrap, security)
    try:
        _, ranges = _ranges(consumer, bootstrap, topic, start, end, timeout)
        for p, lo, hi in ranges:
            yield from read_range(consumer, topic, p, lo, hi, timeout=timeout)
    finally:
        consumer.close()


def topic_partitions(bootstrap: str, topic: str, *, timeout: float = 30.0,
                     security: KafkaSecurity = PLAINTEXT) -> int:
    """How many partitions ``topic`` has."""
    check_connection(bootstrap, security, timeout=timeout)
    consumer = _reader(bootstrap, security)
    try:
        return _ranges(consumer, bootstrap, topic, None, None, timeout)[0]
    finally:
        consumer.close()


def read_range(consumer: Consumer, topic: str, partition: int, lo: int, hi: int, *,
               timeout: float = 30.0) -> Iterator[Any]:
    """The messages of one partition from offset ``lo`` (inclusive) to ``hi`` (exclusive), read with
    ``consumer`` (assigned to it here); stops early at the partition's end (transaction markers,
    compaction gaps)."""
    consumer.assign([TopicPartition(topic, partition, lo)])
    pos = lo
    while pos < hi:
        # Never ask for more than the range holds: consume() waits until it has them all or times out.
        batch = consumer.consume(num_messages=min(1000, hi - pos), timeout=timeout)
        if not batch:
            raise ConfigError(f"no message from {topic}[{partition}] at offset {pos} within {timeout:.0f}s")
        for msg in batch:
            error, offset = msg.error(), msg.offset()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    pos = hi
                    break
                continue
            if offset is None:  # only error events lack an offset
                continue
            if offset >= hi:
                pos = hi
                break
            pos = offset + 1
            yield msg


def _resolve(consumer: Consumer, topic: str, partition: int, pos: int | float | None, low: int, high: int,
             timeout: float) -> int:
    if pos is None:
        return low
    if isinstance(pos, int):
        return min(max(pos, low), high)
    found = consumer.offsets_for_times([TopicPartition(topic, partition, int(pos * 1000))], timeout=timeout)[0]
    return high if found.offset in (OFFSET_END, -1) else max(found.offset, low)


def topic_records(bootstrap: str, stream: StreamSpec, topic: str, *, start: int | float | None = None,
                  end: int | float | None = None,
                  security: KafkaSecurity = PLAINTEXT) -> Iterator[dict[str, Any] | Rejection]:
    """Decoded records (and rejections) of a topic range, as the worker would decode them, partition by partition
    (for a reference build, where order does not matter)."""
    for msg in read_topic(bootstrap, topic, start=start, end=end, security=security):
        ok, bad = decode_message(msg.value(), stream)
        yield from bad
        yield from ok


def partitioned_records(bootstrap: str, stream: StreamSpec, topic: str, *, start: int | float | None = None,
                        end: int | float | None = None, timeout: float = 30.0,
                        security: KafkaSecurity = PLAINTEXT) -> Iterator[FromPartition]:
    """Decoded records (and rejections) of a topic range, each with its partition, the partitions read side by
    side and merged by event time (as a worker that keeps up reads them; within a partition, in offset order):
    what ``replay --topic`` feeds the monitor, whose windows then hold what a worker's would. One reader per
    partition, each prefetching at most 8 MiB."""
    check_connection(bootstrap, security, timeout=timeout)
    probe = _reader(bootstrap, security)
    try:
        _, ranges = _ranges(probe, bootstrap, topic, start, end, timeout)
    finally:
        probe.close()

    def one(partition: int, lo: int, hi: int) -> Iterator[tuple[float, int, int, FromPartition]]:
        consumer = _reader(bootstrap, security)
        last, n = -math.inf, 0
        try:
            for msg in read_range(consumer, topic, partition, lo, hi, timeout=timeout):
                ok, bad = decode_message(msg.value(), stream)
                items: list[Any] = [*bad, *ok]
                for item in items:
                    if not isinstance(item, Rejection):
                        t = event_time_seconds(item.get(stream.time_field))
                        if t is not None:
                            last = max(last, t)
                    yield last, partition, n, FromPartition(partition, item)
                    n += 1
        finally:
            consumer.close()

    for *_, item in heapq.merge(*(one(p, lo, hi) for p, lo, hi in ranges)):
        yield item
