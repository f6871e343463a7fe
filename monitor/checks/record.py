"""Per-window record-level state: duplicates, schema changes, lateness, freshness, volume."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from monitor.stats import ValueSample

__all__ = ["MAX_FIELD_NAMES", "RecordFlags", "RecordState"]

#: Unexpected field names remembered per window (the rest are only counted).
MAX_FIELD_NAMES = 20


@dataclass(slots=True)
class RecordFlags:
    """Per-record facts of a batch, computed once and sliced per window pane."""

    duplicate: NDArray[np.bool_]
    unexpected: NDArray[np.bool_]
    late: NDArray[np.bool_]
    out_of_order: NDArray[np.bool_]
    has_time: NDArray[np.bool_]
    lag: NDArray[np.float64]          # clock - event time (freshness), NaN without a time
    time: NDArray[np.float64]         # event time used for the record
    unexpected_names: list[tuple[str, ...]]  # per layout code
    layout: NDArray[np.int32]
    head: NDArray[np.float64]         # the stream's latest event time once the record arrived

    def take(self, rows: slice | NDArray[np.intp]) -> RecordFlags:
        return RecordFlags(self.duplicate[rows], self.unexpected[rows], self.late[rows], self.out_of_order[rows],
                           self.has_time[rows], self.lag[rows], self.time[rows], self.unexpected_names,
                           self.layout[rows], self.head[rows])

    def __len__(self) -> int:
        return len(self.duplicate)


class RecordState:
    """Record-level counts of one window (or pane); mergeable with ``+=``.

    ``count`` records were accepted into the window; ``late_excluded`` late
    records were seen while it was open but kept out (time windows). Memory:
    counters, at most :data:`MAX_FIELD_NAMES` field names and a lag sample of
    at most ``lag_capacity`` values.

    Examples
    --------
    >>> s = RecordState()
    >>> s.count, s.result()["duplicate_ratio"]
    (0, None)
    """

    __slots__ = (
        "count",
        "duplicates",
        "lags",
        "late",
        "late_excluded",
        "max_lag",
        "missing_time",
        "out_of_order",
        "t_max",
        "t_min",
        "unexpected",
        "unexpected_fields",
    )

    def __init__(self, *, lag_capacity: int = 5_000) -> None:
        self.count = self.duplicates = self.late = self.late_excluded = 0
        self.out_of_order = self.unexpected = self.missing_time = 0
        self.unexpected_fields: Counter[str] = Counter()
        self.lags = ValueSample(capacity=lag_capacity)
        self.max_lag = -np.inf
        self.t_min = np.inf
        self.t_max = -np.inf

    def update(self, f: RecordFlags) -> None:
        n = len(f)
        if n == 0:
            return
        self.count += n
        self.duplicates += int(np.count_nonzero(f.duplicate))
        self.late += int(np.count_nonzero(f.late))
        self.out_of_order += int(np.count_nonzero(f.out_of_order))
        self.missing_time += n - int(np.count_nonzero(f.has_time))
        nu = int(np.count_nonzero(f.unexpected))
        if nu:
            self.unexpected += nu
            for code, k in zip(*np.unique(f.layout[f.unexpected], return_counts=True), strict=True):
                for name in f.unexpected_names[int(code)]:
                    if name in self.unexpected_fields or len(self.unexpected_fields) < MAX_FIELD_NAMES:
                        self.unexpected_fields[name] += int(k)
        lag = f.lag[f.has_time]
        if lag.size:
            self.lags.update_many(lag)
            self.max_lag = max(self.max_lag, float(lag.max()))
        t = f.time[f.has_time]
        if t.size:
            self.t_min = min(self.t_min, float(t.min()))
            self.t_max = max(self.t_max, float(t.max()))

    def __iadd__(self, other: RecordState) -> RecordState:
        for name in ("count", "duplicates", "late", "late_excluded", "out_of_order", "unexpected", "missing_time"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for name, k in other.unexpected_fields.items():
            if name in self.unexpected_fields or len(self.unexpected_fields) < MAX_FIELD_NAMES:
                self.unexpected_fields[name] += k
        self.lags += other.lags
        self.max_lag = max(self.max_lag, other.max_lag)
        self.t_min, self.t_max = min(self.t_min, other.t_min), max(self.t_max, other.t_max)
        return self

    _COUNTERS = ("count", "duplicates", "late", "late_excluded", "out_of_order", "unexpected", "missing_time")

    def to_state(self) -> dict[str, Any]:
        """JSON-able state (``schema_version`` 1); infinities are stored as null."""
        state: dict[str, Any] = {"schema_version": 1}
        state.update({k: getattr(self, k) for k in self._COUNTERS})
        state["unexpected_fields"] = dict(self.unexpected_fields)
        state["lags"] = self.lags.to_state()
        for k in ("max_lag", "t_min", "t_max"):
            v = getattr(self, k)
            state[k] = None if np.isinf(v) else v
        return state

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> RecordState:
        if state.get("schema_version") != 1:
            raise ValueError("not a version-1 record state")
        rs = cls(lag_capacity=int(state["lags"]["capacity"]))
        for k in cls._COUNTERS:
            setattr(rs, k, int(state[k]))
        rs.unexpected_fields = Counter(state["unexpected_fields"])
        rs.lags = ValueSample.from_state(state["lags"])
        rs.max_lag = -np.inf if state["max_lag"] is None else float(state["max_lag"])
        rs.t_min = np.inf if state["t_min"] is None else float(state["t_min"])
        rs.t_max = -np.inf if state["t_max"] is None else float(state["t_max"])
        return rs

    def result(self) -> dict[str, Any]:
        n = self.count
        seen = n + self.late_excluded
        lags = self.lags.get()
        return {
            "records": n,
            "late_excluded": self.late_excluded,
            "duplicates": self.duplicates,
            "duplicate_ratio": self.duplicates / n if n else None,
            "late": self.late + self.late_excluded,
            # Time windows keep late records out (late_excluded); count windows keep them (late).
            "late_ratio": (self.late + self.late_excluded) / seen if seen else None,
            "out_of_order_ratio": self.out_of_order / n if n else None,
            "unexpected_field_ratio": self.unexpected / n if n else None,
            "unexpected_fields": dict(self.unexpected_fields.most_common()),
            "missing_event_time": self.missing_time,
            "freshness_p95_seconds": float(np.percentile(lags, 95)) if lags is not None and lags.size else None,
            "freshness_max_seconds": self.max_lag if lags is not None and lags.size else None,
            "freshness_mean_seconds": float(lags.mean()) if lags is not None and lags.size else None,
            "event_time_min": None if self.t_min == np.inf else self.t_min,
            "event_time_max": None if self.t_max == -np.inf else self.t_max,
        }
