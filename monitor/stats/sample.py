"""A bounded, deterministic sample of a window's numeric values."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = ["DEFAULT_CAPACITY", "ValueSample"]

#: Values kept per feature per window before systematic thinning starts.
DEFAULT_CAPACITY = 20_000


class ValueSample:
    """Keeps every value until ``capacity``, then every 2nd, 4th, ... (systematic thinning).

    Exact (all values) for windows up to ``capacity`` values, so KS and
    Wasserstein are computed on the window itself; beyond it a deterministic
    1-in-``stride`` sample of at most ``capacity`` values. Memory: at most
    ``capacity`` floats (plus one incoming batch). Deterministic, so a replay
    and a live run compute the same statistics.

    Examples
    --------
    >>> s = ValueSample(capacity=4)
    >>> s.update_many(np.arange(10.0))
    >>> s.n, s.stride, s.values().tolist()
    (10, 4, [0.0, 4.0, 8.0])
    """

    __slots__ = ("_chunks", "_size", "capacity", "n", "stride")

    def __init__(self, *, capacity: int = DEFAULT_CAPACITY) -> None:
        if capacity < 2:
            raise ValueError("capacity must be at least 2")
        self.capacity = capacity
        self.stride = 1
        self.n = 0
        self._chunks: list[NDArray[np.float64]] = []
        self._size = 0

    def update_many(self, x: NDArray[np.float64]) -> None:
        """Add values (no NaN: missing values are counted elsewhere)."""
        if x.size == 0:
            return
        # Keep the values whose position in the whole stream is a multiple of the stride.
        first = (-self.n) % self.stride
        kept = x[first::self.stride]
        self.n += x.size
        if kept.size:
            self._chunks.append(np.array(kept, dtype=float))
            self._size += kept.size
        while self._size > self.capacity:
            self._thin()

    def update(self, x: float) -> None:
        self.update_many(np.array([x], dtype=float))

    def _thin(self) -> None:
        # Keep the values whose stream position is a multiple of the doubled stride.
        allv = self.values()
        self.stride *= 2
        self._chunks = [allv[::2].copy()]
        self._size = self._chunks[0].size

    def values(self) -> NDArray[np.float64]:
        if len(self._chunks) > 1:
            self._chunks = [np.concatenate(self._chunks)]
        return self._chunks[0] if self._chunks else np.empty(0)

    def get(self) -> NDArray[np.float64] | None:
        return self.values() if self.n else None

    def __iadd__(self, other: ValueSample) -> ValueSample:
        """Merge: exact (equal to the concatenation) while the total fits ``capacity``."""
        if other.n == 0:
            return self
        if self.stride == other.stride == 1:
            self.update_many(other.values())
            return self
        # Bring both to the larger stride, then concatenate and thin to capacity.
        stride = max(self.stride, other.stride)
        a = self.values()[:: stride // self.stride]
        b = other.values()[:: stride // other.stride]
        self._chunks, self._size, self.stride = [np.concatenate([a, b])], a.size + b.size, stride
        self.n += other.n
        while self._size > self.capacity:
            self._thin()
        return self

    def to_state(self) -> dict[str, Any]:
        return {"schema_version": 1, "capacity": self.capacity, "stride": self.stride, "n": self.n,
                "values": [float(v) for v in self.values()]}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> ValueSample:
        s = cls(capacity=int(state["capacity"]))
        s.stride, s.n = int(state["stride"]), int(state["n"])
        vals = np.asarray(state["values"], dtype=float)
        s._chunks, s._size = ([vals] if vals.size else []), int(vals.size)
        return s
