"""Explicit topic creation with the configured partition counts (brokers run with
``auto.create.topics.enable=false``; an auto-created one-partition topic would
make Faust fail with ``PartitionsMismatch``)."""

from __future__ import annotations

from collections.abc import Callable

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]  # not re-exported in its stub

from agents.kafka.connect import check_connection, client_config
from agents.kafka.security import PLAINTEXT, KafkaSecurity
from monitor.errors import ConfigError, KafkaUnavailableError
from monitor.spec import MonitorSpec

__all__ = ["ALERT_STATE_TABLE", "JOIN_STATE_TABLE", "MERGE_STATE_TABLE", "changelog_topics", "checkpoint_topic",
           "ensure_topics", "internal_topics", "join_state_partitions", "panes_topic", "spec_topics"]


def spec_topics(spec: MonitorSpec) -> dict[str, int]:
    """Every topic the spec reads or writes, with its partition count."""
    out = {s.topic: s.partitions for s in spec.streams}
    for t in (spec.outputs.alerts_topic, spec.outputs.deadletter_topic, spec.outputs.profiles_topic,
              spec.outputs.alerts_deadletter_topic):
        out[t] = spec.outputs.partitions
    return out  # type: ignore[return-value]


#: Name of the Faust table holding open alerts (its changelog topic is created explicitly).
ALERT_STATE_TABLE = "alert-state"


#: Name of the Faust table holding the label-join checkpoints (one partition per input partition).
JOIN_STATE_TABLE = "join-state"


#: Name of the Faust table holding each stream's merge stage (merged open panes, partitions' progress).
MERGE_STATE_TABLE = "merge-state"


def panes_topic(spec: MonitorSpec) -> str:
    """The topic each worker sends its partitions' closed panes and progress to, keyed by stream; the merge
    agent reads it (one partition: one merge owner at a time, see :mod:`agents.worker.merge`)."""
    return f"streamdq-{spec.name}-panes"


def internal_topics(spec: MonitorSpec) -> dict[str, int]:
    """The worker's internal topics that are not compacted: the panes topic (one partition)."""
    return {panes_topic(spec): 1}


def join_state_partitions(spec: MonitorSpec) -> int:
    """Partitions of the join-state table: as many as the widest predictions stream (0: no model)."""
    return max((s.partitions for s in spec.streams if s.model is not None), default=0)


def checkpoint_topic(spec: MonitorSpec) -> str:
    """The compacted topic the workers' checkpoints go to (one partition; see :mod:`agents.worker.snapshots`)."""
    return f"streamdq-{spec.name}-checkpoints"


def changelog_topics(spec: MonitorSpec) -> dict[str, int]:
    """The compacted topics of the worker's state: the checkpoints (one partition), the changelogs of its Faust
    tables: the alert state and the merge state (one partition each) and, with a model, the join state
    (partitioned like the predictions)."""
    out = {checkpoint_topic(spec): 1, f"streamdq-{spec.name}-{ALERT_STATE_TABLE}-changelog": 1,
           f"streamdq-{spec.name}-{MERGE_STATE_TABLE}-changelog": 1}
    if join_state_partitions(spec):
        out[f"streamdq-{spec.name}-{JOIN_STATE_TABLE}-changelog"] = join_state_partitions(spec)
    return out


def ensure_topics(bootstrap: str, topics: dict[str, int], *, log: Callable[[str], None] = lambda _: None,
                  timeout: float = 30.0, compacted: bool = False, security: KafkaSecurity = PLAINTEXT) -> None:
    """Create missing topics; fail if an existing one has fewer partitions than configured.

    Raises :class:`KafkaUnavailableError` (one line) when the cluster cannot be reached or refuses the
    credentials or the creation."""
    check_connection(bootstrap, security, timeout=timeout)
    admin = AdminClient(client_config(bootstrap, security, {"log_level": 0}))
    try:
        md = admin.list_topics(timeout=timeout)
    except KafkaException as exc:
        raise KafkaUnavailableError(f"cannot list the topics of Kafka at {bootstrap}: {exc.args[0].str()}") from None
    problems = []
    missing = []
    for name, partitions in topics.items():
        have = md.topics.get(name)
        if have is None or have.error is not None:
            # Compacted state topics: segments rolled every 10 minutes and cleaned at 10% garbage, so superseded
            # checkpoints and table values go within the hour rather than after a 1 GiB segment fills.
            config = ({"cleanup.policy": "compact", "segment.ms": "600000", "min.cleanable.dirty.ratio": "0.1"}
                      if compacted else {})
            missing.append(NewTopic(name, num_partitions=partitions, replication_factor=-1, config=config))
        elif len(have.partitions) < partitions:
            problems.append(f"topic {name!r} has {len(have.partitions)} partitions, the spec asks for {partitions}")
    if problems:
        raise ConfigError("topic layout does not match the spec: " + "; ".join(problems))
    if not missing:
        return
    for name, fut in admin.create_topics(missing, operation_timeout=timeout).items():
        try:
            fut.result(timeout=timeout)
            log(f"created topic {name}")
        except KafkaException as exc:
            if exc.args[0].name() != "TOPIC_ALREADY_EXISTS":
                raise KafkaUnavailableError(f"Kafka at {bootstrap} refused to create topic {name!r} "
                                            f"({security.describe()}): {exc.args[0].str()}") from None
