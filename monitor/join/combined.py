"""Join statistics over several stores (every partition of a worker)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from monitor.join.entries import COUNTERS
from monitor.join.latency import LatencyHistogram, join_stats
from monitor.join.store import LabelJoinStore

__all__ = ["combined_stats"]


def combined_stats(stores: Iterable[LabelJoinStore]) -> dict[str, Any]:
    """:meth:`LabelJoinStore.stats` over several stores (e.g. all partitions): counters summed, histograms merged.

    ``oldest_pending_age`` is left out (each store has its own clock).

    Examples
    --------
    >>> from monitor.join import PendingPrediction
    >>> a = LabelJoinStore(10, 10, 10)
    >>> b = LabelJoinStore(10, 10, 10)
    >>> _ = a.add_prediction(PendingPrediction("x", "m", "1", 0.0), now=0.0)
    >>> _ = b.add_prediction(PendingPrediction("y", "m", "1", 0.0), now=0.0)
    >>> _ = a.add_label("x", 1, 2.0, now=2.0)
    >>> _ = b.expire(now=20.0)
    >>> s = combined_stats([a, b])
    >>> s["predictions"], s["joined"], s["coverage"], s["latency"]["count"]
    (2, 1, 0.5, 1)
    """
    counters = dict.fromkeys(COUNTERS, 0)
    latency = LatencyHistogram()
    pending = orphans = 0
    for s in stores:
        for k in COUNTERS:
            counters[k] += s.counters[k]
        latency += s.latency
        pending += s.n_pending
        orphans += s.n_orphans
    return join_stats(counters, latency, pending, orphans)
