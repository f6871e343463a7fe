"""Bounded duplicate-id detection."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from monitor.errors import StateError

__all__ = ["DuplicateFilter"]

#: Integers a JSON encoder (orjson) carries as numbers; larger ids are saved as decimal strings.
_INT_RANGE = (-(2**63), 2**64 - 1)


class DuplicateFilter:
    """Flags ids seen before among the last ``capacity`` distinct ids.

    Two generations of ``capacity // 2`` ids each: when the current one is full
    it becomes the previous one and the oldest is dropped, so memory stays
    bounded and an id is remembered for at least ``capacity // 2`` distinct
    ids after it was last new. :meth:`to_state` saves both generations (at most
    ``capacity`` ids), so a restored filter evicts the same ids at the same time.

    Examples
    --------
    >>> d = DuplicateFilter(capacity=100)
    >>> d.check(["a", "b", "a"]).tolist(), d.check(["b", "c"]).tolist()
    ([False, False, True], [True, False])
    >>> e = DuplicateFilter.from_state(d.to_state())
    >>> e.to_state() == d.to_state(), e.check(["c", "d"]).tolist()
    (True, [True, False])
    """

    __slots__ = ("_cur", "_half", "_prev", "capacity")

    def __init__(self, *, capacity: int = 100_000) -> None:
        self.capacity = capacity
        self._half = max(capacity // 2, 1)
        self._cur: set[Hashable] = set()
        self._prev: set[Hashable] = set()

    def check(self, ids: Sequence[Any]) -> NDArray[np.bool_]:
        """Duplicate flag per id, in order; remembers the new ones."""
        n = len(ids)
        batch = set(ids)
        if len(batch) == n and batch.isdisjoint(self._cur) and batch.isdisjoint(self._prev) \
                and len(self._cur) + n < self._half:
            self._cur |= batch  # the common case: all new, no rotation needed
            return np.zeros(n, dtype=bool)
        dup: list[int] = []
        cur, prev, half = self._cur, self._prev, self._half
        for i, rid in enumerate(ids):
            if rid in cur or rid in prev:
                dup.append(i)
                continue
            cur.add(rid)
            if len(cur) >= half:
                self._prev, self._cur = cur, set()
                cur, prev = self._cur, self._prev
        flags = np.zeros(n, dtype=bool)
        flags[dup] = True
        return flags

    def __len__(self) -> int:
        return len(self._cur) + len(self._prev)

    def to_state(self) -> dict[str, Any]:
        """JSON-able state (``schema_version`` 1): the ids of each generation, strings and integers
        apart, each sorted (a set has no order worth keeping, and sorting makes the state the same
        in every process; string hashes are salted per process).

        An integer beyond 64 bits is saved as its decimal string among the integers. An id that is
        neither a string nor an integer raises :class:`~monitor.errors.StateError`.
        """
        return {"schema_version": 1, "capacity": self.capacity,
                "previous": _encode_ids(self._prev), "current": _encode_ids(self._cur)}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> DuplicateFilter:
        """A filter continuing from :meth:`to_state`'s output."""
        if state.get("schema_version") != 1:
            raise StateError(f"unsupported duplicate filter state version {state.get('schema_version')!r} (reads 1)")
        d = cls(capacity=int(state["capacity"]))
        d._prev, d._cur = _decode_ids(state["previous"]), _decode_ids(state["current"])
        if len(d._prev) > d._half or len(d._cur) >= d._half:
            raise StateError(f"duplicate filter state holds more ids than its capacity ({d.capacity}) allows")
        return d


def _encode_ids(ids: set[Hashable]) -> dict[str, list[Any]]:
    strings: list[str] = []
    integers: list[int] = []
    for x in ids:
        if isinstance(x, str):
            strings.append(str(x))
        elif isinstance(x, int | np.integer) and not isinstance(x, bool):
            integers.append(int(x))
        else:
            raise StateError(f"id {x!r} ({type(x).__name__}) cannot be saved: ids are strings or integers")
    strings.sort()
    integers.sort()
    lo, hi = _INT_RANGE
    return {"strings": strings, "integers": [v if lo <= v <= hi else str(v) for v in integers]}


def _decode_ids(state: dict[str, list[Any]]) -> set[Hashable]:
    out: set[Hashable] = set(state["strings"])
    out.update(int(v) for v in state["integers"])
    return out
