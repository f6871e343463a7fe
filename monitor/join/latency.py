"""A fixed, log-spaced histogram of label latencies: bounded, mergeable, JSON state."""

from __future__ import annotations

import math
from bisect import bisect_right
from typing import Any

__all__ = ["LATENCY_BINS_PER_DECADE", "LATENCY_MAX_SECONDS", "LATENCY_MIN_SECONDS", "LatencyHistogram", "join_stats"]

#: Lower edge of the first log-spaced bin (1 ms); smaller non-negative latencies share one bucket.
LATENCY_MIN_SECONDS = 1e-3
#: Upper edge of the last log-spaced bin (1e8 s, about 3 years); larger latencies share one bucket.
LATENCY_MAX_SECONDS = 1e8
#: Bins per factor of ten: each bin spans a ratio of ``10 ** (1 / 20)`` (about 12.2 %).
LATENCY_BINS_PER_DECADE = 20

_DECADES = round(math.log10(LATENCY_MAX_SECONDS / LATENCY_MIN_SECONDS))
_NBINS = _DECADES * LATENCY_BINS_PER_DECADE
_EDGES = [LATENCY_MIN_SECONDS * 10 ** (k / LATENCY_BINS_PER_DECADE) for k in range(_NBINS + 1)]
_EDGES[-1] = LATENCY_MAX_SECONDS
# geometric midpoint of each log bin: within a factor 10 ** (1 / 40) (about 5.9 %) of any value in the bin
_MIDS = [math.sqrt(_EDGES[k] * _EDGES[k + 1]) for k in range(_NBINS)]
# bucket layout: 0 = negative, 1 = [0, LATENCY_MIN_SECONDS), 2 .. _NBINS + 1 = log bins, _NBINS + 2 = overflow
_NEG, _SMALL, _OVER = 0, 1, _NBINS + 2
_NBUCKETS = _NBINS + 3


class LatencyHistogram:
    """Counts of latencies (seconds) in fixed log-spaced bins, plus exact count, sum, min and max.

    The bins are the same for every instance (no parameters), so any two
    histograms merge exactly with ``+=``: a sum over partitions or workers.
    There are ``20`` bins per decade between :data:`LATENCY_MIN_SECONDS` (1 ms)
    and :data:`LATENCY_MAX_SECONDS` (1e8 s) and three open buckets: negative
    latencies (a label stamped before its prediction: clock skew), ``[0, 1 ms)``
    and ``>= 1e8 s``. Memory is fixed: 223 integers and four floats.

    Quantiles are those of ``numpy.percentile(x, 100 * q, method="inverted_cdf")``
    (the smallest value ``v`` with at least ``q`` of the values ``<= v``) up to the
    bin resolution: the smallest and largest values are exact, any other estimate is
    the geometric midpoint of the bin holding that value, clamped to ``[min, max]``,
    so it is within a factor ``10 ** (1 / 40)``
    (5.9 %) of the exact quantile for values in the log-spaced range. Values in
    ``[0, 1 ms)`` are reported as 0 (absolute error under 1 ms), and the
    negative and overflow buckets are reported as the mean of the values in them.

    Examples
    --------
    >>> h = LatencyHistogram()
    >>> for x in [1.0, 2.0, 3.0, 4.0, 100.0]:
    ...     h.add(x)
    >>> h.count, h.mean, h.max
    (5, 22.0, 100.0)
    >>> round(h.quantile(0.5), 2)  # exact: 3.0, bin [2.82, 3.16)
    2.99
    >>> h.quantile(1.0)
    100.0
    >>> other = LatencyHistogram()
    >>> other.add(0.0)
    >>> h += other
    >>> h.count, h.min, h.quantile(0.0)
    (6, 0.0, 0.0)
    >>> LatencyHistogram.from_state(h.to_state()).to_state() == h.to_state()
    True
    """

    __slots__ = ("count", "counts", "max", "min", "neg_sum", "over_sum", "total")

    def __init__(self) -> None:
        self.counts = [0] * _NBUCKETS
        self.count = 0
        self.total = 0.0
        self.min = math.inf
        self.max = -math.inf
        self.neg_sum = 0.0
        self.over_sum = 0.0

    @staticmethod
    def bucket(x: float) -> int:
        """Index of the bucket holding ``x`` (0 negative, 1 below 1 ms, last overflow)."""
        if x < 0.0:
            return _NEG
        if x < LATENCY_MIN_SECONDS:
            return _SMALL
        if x >= LATENCY_MAX_SECONDS:
            return _OVER
        return bisect_right(_EDGES, x) + 1  # _EDGES[0] <= x < _EDGES[-1] -> 2 .. _NBINS + 1

    def add(self, x: float) -> None:
        """Count one latency (a finite float, seconds)."""
        if not math.isfinite(x):
            raise ValueError(f"latency must be finite, got {x!r}")
        b = self.bucket(x)
        self.counts[b] += 1
        self.count += 1
        self.total += x
        if b == _NEG:
            self.neg_sum += x
        elif b == _OVER:
            self.over_sum += x
        if x < self.min:
            self.min = x
        if x > self.max:
            self.max = x

    @property
    def mean(self) -> float | None:
        return self.total / self.count if self.count else None

    def quantile(self, q: float) -> float | None:
        """Estimated ``q`` quantile (``0 <= q <= 1``), ``None`` when empty (see the class notes)."""
        if not 0.0 <= q <= 1.0:
            raise ValueError(f"quantile must be in [0, 1], got {q!r}")
        if not self.count:
            return None
        rank = max(1, math.ceil(q * self.count))  # 1-based rank of the order statistic
        if rank == 1:
            return self.min
        if rank >= self.count:
            return self.max
        b = seen = 0
        while seen + self.counts[b] < rank:
            seen += self.counts[b]
            b += 1
        if b == _NEG:
            est = self.neg_sum / self.counts[_NEG]
        elif b == _SMALL:
            est = 0.0
        elif b == _OVER:
            est = self.over_sum / self.counts[_OVER]
        else:
            est = _MIDS[b - 2]
        return min(max(est, self.min), self.max)

    def summary(self) -> dict[str, Any]:
        """``count``, ``mean``, ``min``, ``p50``, ``p95``, ``max`` (``None`` when empty)."""
        empty = not self.count
        return {"count": self.count, "mean": self.mean, "min": None if empty else self.min,
                "p50": self.quantile(0.5), "p95": self.quantile(0.95), "max": None if empty else self.max}

    def __iadd__(self, other: LatencyHistogram) -> LatencyHistogram:
        self.counts = [a + b for a, b in zip(self.counts, other.counts, strict=True)]
        self.count += other.count
        self.total += other.total
        self.neg_sum += other.neg_sum
        self.over_sum += other.over_sum
        self.min = min(self.min, other.min)
        self.max = max(self.max, other.max)
        return self

    def to_state(self) -> dict[str, Any]:
        """JSON-able state (``schema_version`` 1); the counts are sparse ``[bucket, count]`` pairs."""
        empty = not self.count
        return {"schema_version": 1, "bins_per_decade": LATENCY_BINS_PER_DECADE,
                "range": [LATENCY_MIN_SECONDS, LATENCY_MAX_SECONDS], "count": self.count, "sum": self.total,
                "min": None if empty else self.min, "max": None if empty else self.max,
                "neg_sum": self.neg_sum, "over_sum": self.over_sum,
                "counts": [[b, c] for b, c in enumerate(self.counts) if c]}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> LatencyHistogram:
        if state.get("schema_version") != 1:
            raise ValueError(f"unsupported LatencyHistogram state version {state.get('schema_version')!r}")
        if state.get("bins_per_decade") != LATENCY_BINS_PER_DECADE or \
                list(state.get("range", ())) != [LATENCY_MIN_SECONDS, LATENCY_MAX_SECONDS]:
            raise ValueError("LatencyHistogram state has different bins")
        h = cls()
        for b, c in state["counts"]:
            h.counts[int(b)] = int(c)
        h.count = int(state["count"])
        if h.count != sum(h.counts):
            raise ValueError("LatencyHistogram state is inconsistent: count != sum of bucket counts")
        h.total = float(state["sum"])
        h.neg_sum = float(state["neg_sum"])
        h.over_sum = float(state["over_sum"])
        if h.count:
            h.min, h.max = float(state["min"]), float(state["max"])
        return h


def join_stats(counters: dict[str, int], latency: LatencyHistogram, pending: int, orphans: int) -> dict[str, Any]:
    """A store's (or several stores') statistics: its counters, sizes, label coverage and latency summary."""
    decided = counters["joined"] + counters["expired_predictions"]
    return {**counters, "pending": pending, "orphans": orphans,
            "coverage": counters["joined"] / decided if decided else None, "latency": latency.summary()}
