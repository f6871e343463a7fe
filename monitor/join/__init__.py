"""Joining a label stream to predictions by record id, with a time-to-live.

:class:`LabelJoinStore` is the per-partition store (bounded, checkpointable by
chunked snapshots and a change journal); :class:`LatencyHistogram` the
mergeable label-latency summary it keeps.
"""

from monitor.join.combined import combined_stats
from monitor.join.entries import COUNTERS, JOIN_STATE_VERSION, META_KEY, JoinedExample, PendingPrediction
from monitor.join.latency import (
    LATENCY_BINS_PER_DECADE,
    LATENCY_MAX_SECONDS,
    LATENCY_MIN_SECONDS,
    LatencyHistogram,
)
from monitor.join.store import LabelJoinStore

__all__ = [
    "COUNTERS",
    "JOIN_STATE_VERSION",
    "LATENCY_BINS_PER_DECADE",
    "LATENCY_MAX_SECONDS",
    "LATENCY_MIN_SECONDS",
    "META_KEY",
    "JoinedExample",
    "LabelJoinStore",
    "LatencyHistogram",
    "PendingPrediction",
    "combined_stats",
]
