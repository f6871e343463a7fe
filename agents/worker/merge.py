"""The merge agent: every partition's panes merged, each stream window evaluated once, by one worker.

The ingest service of every worker sends what its partitions' windows hold to the panes topic
(:func:`~agents.kafka.topics.panes_topic`), keyed by stream: a :class:`~monitor.stream.merge.PartitionUpdate`
per partition and batch that closed panes, its progress (watermark, count panes filled) at least once a
second, and ``idle`` once a partition has had no records for ``time.idle_timeout_seconds``. This Faust
agent reads that topic (one partition: one owner at a time, moved by Faust on rebalance) and runs the
monitor's merge stage: a stream window closes once every partition that is not idle has passed it, is
evaluated once (checks, drift, change detectors, alert rules, the alert policy) and its profile and alert
events are published, whatever the number of workers.

State: the merge stage of each stream is written to the merge-state table (changelog-backed) after each
batch of updates: each pane under its own key (``<stream>|<window>/o/<pane>/<partition>`` for a
partition's open pane, ``<stream>|<window>/c/<pane>`` for a closed one a sliding window still needs),
written once and deleted when it is no longer needed, and under ``<stream>`` the rest (each partition's
progress, the panes' keys); so no table message grows with the number of partitions or open panes (each
stays below Kafka's 1 MiB message limit as long as one pane does). The open alerts go to the alert-state
table. A worker that takes the agent over reads both back before its first update. Panes sent twice (a
partition read again from its checkpoint after a crash) are merged once: the merge keeps the highest pane
index received per partition and window.

An idle partition's time is taken to follow the wall clock from where the stream stood when it went idle
(:meth:`StreamWindows.horizon <monitor.stream.merge.StreamWindows.horizon>`); a timer re-evaluates every
second, so a stream whose every partition is idle (it stopped dead) has its time windows closed on the
wall clock: the last window closes and its volume and freshness are judged (an empty window raises the
volume alert).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import orjson

from monitor.errors import StateError, StreamdqError
from monitor.report import Report
from monitor.stream.panes import Pane

if TYPE_CHECKING:
    from agents.worker.app import WorkerContext

__all__ = ["MergeStage"]

log = logging.getLogger("streamdq.worker")


class MergeStage:
    """The merge agent's work, apart from Faust's plumbing (:func:`agents.worker.app.create_app` wires it)."""

    def __init__(self, ctx: WorkerContext, table: Any) -> None:
        self.ctx = ctx
        self.table = table
        self.loaded: set[str] = set()
        #: By stream: the pane keys in the table (a pane is written once; see the module docstring).
        self.written: dict[str, set[str]] = {}
        self.updates = 0

    def forget(self) -> None:
        """After a rebalance: the state is read back from the tables before the next update."""
        self.loaded.clear()
        self.written.clear()

    def _load(self, stream: str) -> None:
        if stream in self.loaded:
            return
        features = self.ctx.monitor.features
        saved = self.table.get(stream) if self.table is not None else None

        def load(key: Any) -> dict[str, Any]:
            state = self.table.get(f"{stream}|{key}")
            if not isinstance(state, dict):
                raise StateError(f"pane {key} of stream {stream} is missing from the merge-state table")
            return state

        try:
            features.load_merge(stream, saved if isinstance(saved, dict) else None, load)
            self.written[stream] = set(_keys(saved)) if isinstance(saved, dict) else set()
        except StreamdqError as exc:  # a spec or reference change since: new windows
            log.warning("merge state of stream %s does not fit this spec (%s): starting new windows", stream, exc)
            features.load_merge(stream, None)
            self.written[stream] = set(_keys(saved)) if isinstance(saved, dict) else set()  # deleted at the next save
        self.ctx.reload_alerts()
        self.loaded.add(stream)

    async def handle(self, values: list[bytes]) -> None:
        """Merge a batch of updates; publish the windows they closed; save the merge state."""
        features = self.ctx.monitor.features
        reports: list[Report] = []
        touched: set[str] = set()
        for value in values:
            try:
                state = orjson.loads(value)
                stream = state["stream"]
                if stream not in self.ctx.monitor.records_processed:
                    raise KeyError(stream)
                self._load(stream)
                update = features.decode_update(state)
                reports += features.merge(update)
            except (StreamdqError, KeyError, TypeError, ValueError) as exc:  # not ours to crash on: logged, skipped
                log.error("skipping a partition update the merge stage cannot read: %s", exc)
                continue
            touched.add(stream)
        self.updates += len(values)
        if reports:
            await self.ctx.publish_all(reports)
        self._save(touched)

    def _save(self, streams: set[str]) -> None:
        if self.table is None:
            return
        features = self.ctx.monitor.features
        for stream in streams:
            written = self.written.setdefault(stream, set())
            now: set[str] = set()

            def save(key: str, pane: Pane, stream: str = stream, written: set[str] = written,
                     now: set[str] = now) -> str:
                now.add(key)
                # A pane is written once: a partition's closed pane and a merged closed pane never change;
                # the pane holding late counts (partition -1) does.
                if key not in written or key.endswith("/-1"):
                    self.table[f"{stream}|{key}"] = pane.to_state()
                return key

            self.table[stream] = features.merge_state(stream, save)
            for key in written - now:
                self.table.pop(f"{stream}|{key}", None)
            self.written[stream] = now

    async def tick(self) -> None:
        """Evaluate what the wall clock closed: windows held back only by idle partitions (whose time follows
        the wall clock), among them every window of a stream that stopped dead."""
        features = self.ctx.monitor.features
        reports: list[Report] = []
        touched: set[str] = set()
        for stream in sorted(self.loaded):
            if not any(p.idle for p in features.merge_stage(stream).progress.values()):
                continue
            closed = features.advance(stream)
            if closed:
                reports += closed
                touched.add(stream)
        if reports:
            await self.ctx.publish_all(reports)
        self._save(touched)


def _keys(state: dict[str, Any]) -> list[str]:
    """The pane keys a saved merge state names."""
    out: list[str] = []
    for w in state.get("windows", []):
        for _, parts in w.get("open", []):
            out += [k for k in parts.values() if isinstance(k, str)]
        out += [k for _, k, _ in w.get("closed", []) if isinstance(k, str)]
    return out
