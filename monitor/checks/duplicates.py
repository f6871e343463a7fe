"""Bounded duplicate-id detection."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = ["DuplicateFilter"]


class DuplicateFilter:
    """Flags ids seen before among the last ``capacity`` distinct ids.

    Two generations of ``capacity // 2`` ids each: when the current one is full
    it becomes the previous one and the oldest is dropped, so memory stays
    bounded and an id is remembered for at least ``capacity // 2`` distinct
    ids after it was last new.

    Examples
    --------
    >>> d = DuplicateFilter(capacity=100)
    >>> d.check(["a", "b", "a"]).tolist(), d.check(["b", "c"]).tolist()
    ([False, False, True], [True, False])
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
