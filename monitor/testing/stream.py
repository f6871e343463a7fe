"""The seeded scenario stream: records of :mod:`monitor.testing.scenarios`' 20 features, with its changes.

Examples
--------
>>> stream = ScenarioStream(seed=7)
>>> first, second = stream.records(2)
>>> first["record_id"], first["event_time"], second["event_time"]
('s7-00000000', '2024-01-01T00:00:00.000Z', '2024-01-01T00:00:00.010Z')
>>> len(NUMERIC_FEATURES), len(CATEGORICAL_FEATURES), len(first) - 2
(15, 5, 20)
>>> from monitor.spec import MonitorSpec
>>> from monitor.testing.scenarios import monitor_spec_dict
>>> spec = MonitorSpec.model_validate(monitor_spec_dict())
>>> [w.name for w in spec.streams[0].windows]
['w2000', 't60s']
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from monitor.testing.scenarios import (
    _NUMERIC,
    BASELINE_MISSING,
    BURST_SHARE,
    CATEGORICAL_FEATURES,
    DUPLICATE_LOOKBACK,
    LATE_BY_SECONDS,
    MISSING_FEATURE,
    NUMERIC_FEATURES,
    RATE_DROP_FACTOR,
    START_TIME,
    Change,
    ChangeKind,
)

__all__ = ["ScenarioStream"]


# -- the generator ----------------------------------------------------------------------------------


def _iso(ms: NDArray[np.int64]) -> list[str]:
    out: list[str] = np.datetime_as_string(ms.astype("datetime64[ms]"), unit="ms", timezone="UTC").tolist()
    return out


class ScenarioStream:
    """Endless seeded stream of scenario records; successive calls continue it.

    Clean values are drawn from ``seed`` and the changes' randomness from a
    second generator derived from it, so the records before a change's
    ``start`` equal the clean stream's. :attr:`now` is the latest (non-late)
    event time generated so far, in epoch seconds: a replay clock.

    Examples
    --------
    >>> from monitor.testing.scenarios import mean_shift
    >>> a = ScenarioStream(seed=5).records(3000)
    >>> b = ScenarioStream(seed=5, changes=[mean_shift(start=2000)]).records(3000)
    >>> a[:2000] == b[:2000], a[2000]["latency_ms"] < b[2000]["latency_ms"]
    (True, True)
    >>> s = ScenarioStream(seed=5)
    >>> _ = s.records(100)
    >>> s.index, round(s.now - START_TIME, 2)
    (100, 0.99)
    """

    def __init__(self, *, seed: int, changes: Sequence[Change] = (), rate: float = 100.0,
                 start_time: float = START_TIME) -> None:
        if not rate > 0:
            raise ValueError(f"rate must be positive, got {rate}")
        self.seed = seed
        self.changes = tuple(changes)
        self.rate = rate
        self.start_time = start_time
        self.index = 0
        self.now = -math.inf
        self._rng = np.random.default_rng(seed)
        self._crng = np.random.default_rng([seed, 1])

    def _active(self, change: Change, idx: NDArray[np.int64]) -> NDArray[np.bool_]:
        out: NDArray[np.bool_] = idx >= change.start
        return out

    def _burst(self, change: Change, idx: NDArray[np.int64]) -> NDArray[np.bool_]:
        out: NDArray[np.bool_] = self._active(change, idx) & (self._crng.random(len(idx)) < BURST_SHARE)
        return out

    def columns(self, n: int) -> dict[str, Any]:
        """The next ``n`` records as columns: numpy arrays per feature (object arrays when a
        change puts strings or missing values in), plus ``record_id`` and ``event_time`` lists."""
        if n < 0:
            raise ValueError(f"n must not be negative, got {n}")
        idx = np.arange(self.index, self.index + n, dtype=np.int64)
        self.index += n
        rng = self._rng
        cols: dict[str, Any] = {}
        # Clean draws, in a fixed order (changes use the other generator).
        for f in NUMERIC_FEATURES:
            cols[f.name] = f.draw(rng, n)
        uniforms = {f.name: rng.random(n) for f in CATEGORICAL_FEATURES}
        missing = rng.random(n) < BASELINE_MISSING
        # Distribution changes of numeric features.
        for c in self.changes:
            name = c.target
            if name not in _NUMERIC:
                continue
            spec, x = _NUMERIC[name], cols[name]
            on = self._active(c, idx)
            if c.kind is ChangeKind.MEAN_SHIFT:
                x[on] += 0.5 * spec.std
            elif c.kind is ChangeKind.VARIANCE_DOUBLING:
                x[on] = spec.mean + (x[on] - spec.mean) * math.sqrt(2.0)
            elif c.kind is ChangeKind.GRADUAL_SHIFT:
                x[on] += spec.std * np.minimum((idx[on] - c.start) / c.ramp, 1.0)
            elif c.kind is ChangeKind.OUT_OF_RANGE:
                hit = self._burst(c, idx)
                x[hit] = spec.high + (spec.high - spec.low) * self._crng.uniform(0.01, 1.0, int(hit.sum()))
        for f in NUMERIC_FEATURES:
            x = cols[f.name]
            cols[f.name] = np.round(x) if f.integer else np.round(x, f.decimals)
        # Categorical draws (shares may be shifted).
        for cf in CATEGORICAL_FEATURES:
            cum = np.cumsum(cf.shares)
            cum[-1] = 1.0
            u = uniforms[cf.name]
            codes = np.searchsorted(cum, u, side="right")
            for c in self.changes:
                if c.kind is ChangeKind.CATEGORY_SHIFT and c.target == cf.name:
                    on = self._active(c, idx)
                    shifted = np.cumsum(_shifted_shares(cf.shares))
                    shifted[-1] = 1.0
                    codes[on] = np.searchsorted(shifted, u[on], side="right")
            values = np.asarray(cf.categories, dtype=object)[codes]
            for c in self.changes:
                if c.kind is ChangeKind.UNSEEN_CATEGORY and c.target == cf.name:
                    values[self._burst(c, idx)] = f"{cf.name}_new"
            cols[cf.name] = values
        # Missing values and wrong types (object columns from here on).
        spike = {c.target for c in self.changes if c.kind is ChangeKind.MISSING_SPIKE and c.target is not None}
        for name in {MISSING_FEATURE} | spike:
            rate = np.full(n, BASELINE_MISSING if name == MISSING_FEATURE else 0.0)
            for c in self.changes:
                if c.kind is ChangeKind.MISSING_SPIKE and c.target == name:
                    rate[self._active(c, idx)] = 0.20
            if name == MISSING_FEATURE:
                # The clean draw decides the first 1%; a spike adds the rest from the change generator.
                extra = (self._crng.random(n) < (rate - BASELINE_MISSING) / (1 - BASELINE_MISSING))
                gone = missing | extra
            else:
                gone = self._crng.random(n) < rate
            col = _objects(cols[name], name)
            col[gone] = None
            cols[name] = col
        for c in self.changes:
            if c.kind is ChangeKind.WRONG_TYPE and c.target is not None:
                col = _objects(cols[c.target], c.target)
                hit = self._burst(c, idx)
                col[hit] = [str(v) for v in col[hit]]
                cols[c.target] = col
        # Ids and event times.
        src = idx.copy()
        offset = idx / self.rate
        late = np.zeros(n, dtype=bool)
        for c in self.changes:
            if c.kind is ChangeKind.DUPLICATE_IDS:
                hit = self._burst(c, idx) & (idx > 0)
                back = self._crng.integers(1, DUPLICATE_LOOKBACK, n, endpoint=True)
                src[hit] = np.maximum(idx[hit] - back[hit], 0)
            elif c.kind is ChangeKind.RATE_DROP:
                offset += (RATE_DROP_FACTOR - 1.0) * np.maximum(idx - c.start, 0) / self.rate
            elif c.kind is ChangeKind.LATE_RECORDS:
                late |= self._burst(c, idx)
        if n:
            self.now = max(self.now, self.start_time + float(offset.max()))
        offset[late] -= LATE_BY_SECONDS
        ms = np.round((self.start_time + offset) * 1000.0).astype(np.int64)
        cols["record_id"] = [f"s{self.seed}-{i:08d}" for i in src.tolist()]
        cols["event_time"] = _iso(ms)
        return cols

    def records(self, n: int) -> list[dict[str, Any]]:
        """The next ``n`` records as JSON-like dicts: ``record_id``, ``event_time``, then the 20 features."""
        cols = self.columns(n)
        names = ["record_id", "event_time", *(f.name for f in NUMERIC_FEATURES),
                 *(f.name for f in CATEGORICAL_FEATURES)]
        lists = [_to_python(cols[k], k) for k in names]
        return [dict(zip(names, row, strict=True)) for row in zip(*lists, strict=True)]


def _shifted_shares(shares: Sequence[float], to: float = 0.30) -> list[float]:
    """Move the share nearest 10% to ``to``, scaling the others to keep the total at 1."""
    k = min(range(len(shares)), key=lambda i: abs(shares[i] - 0.10))
    rest = 1.0 - shares[k]
    return [to if i == k else s * (1.0 - to) / rest for i, s in enumerate(shares)]


def _objects(col: Any, name: str) -> NDArray[np.object_]:
    """A column as an object array of Python values (ints for integer features)."""
    arr = np.asarray(col)
    if arr.dtype == object:
        out: NDArray[np.object_] = arr.copy()
        return out
    integer = name in _NUMERIC and _NUMERIC[name].integer
    return np.array(arr.astype(np.int64).tolist() if integer else arr.tolist(), dtype=object)


def _to_python(col: Any, name: str) -> list[Any]:
    if isinstance(col, list):
        return col
    arr = np.asarray(col)
    if arr.dtype == object:
        out: list[Any] = arr.tolist()
        return out
    if name in _NUMERIC and _NUMERIC[name].integer:
        ints: list[Any] = arr.astype(np.int64).tolist()
        return ints
    floats: list[Any] = arr.tolist()
    return floats
