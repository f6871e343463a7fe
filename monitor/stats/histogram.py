"""Fixed-bin histograms whose bins come from a reference profile."""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = ["OTHER", "BinnedCounts", "CategoryCounts"]

#: Bucket for categories the reference never saw (and for overflow past the bound).
OTHER = "__other__"


class BinnedCounts:
    """Counts of numeric values in bins fixed by ``edges`` (interior cut points).

    ``k`` interior edges make ``k + 1`` bins, the outer two open-ended; a value
    ``x`` falls in bin ``bisect_right(edges, x)``. Memory is ``k + 1`` integers.
    Mergeable with ``+=`` when the edges agree.

    Examples
    --------
    >>> h = BinnedCounts([0.0, 1.0])
    >>> for x in [-5, 0.0, 0.5, 1.0, 7]:
    ...     h.update(x)
    >>> h.counts
    [1, 2, 2]
    >>> h.n
    5
    """

    __slots__ = ("_edges", "counts", "edges")

    def __init__(self, edges: Sequence[float]) -> None:
        self.edges = list(edges)
        self._edges = np.asarray(self.edges, dtype=float)
        self.counts = [0] * (len(self.edges) + 1)

    def update(self, x: float) -> None:
        self.counts[bisect_right(self.edges, x)] += 1

    def update_many(self, x: NDArray[np.float64]) -> None:
        """Count a batch of values (``searchsorted`` + ``bincount``)."""
        if x.size:
            idx = np.searchsorted(self._edges, x, side="right")
            add = np.bincount(idx, minlength=len(self.counts))
            self.counts = [a + int(b) for a, b in zip(self.counts, add, strict=True)]

    @property
    def n(self) -> int:
        return sum(self.counts)

    def get(self) -> list[int] | None:
        return list(self.counts) if self.n else None

    def __iadd__(self, other: BinnedCounts) -> BinnedCounts:
        if other.edges != self.edges:
            raise ValueError("cannot merge histograms with different bin edges")
        self.counts = [a + b for a, b in zip(self.counts, other.counts, strict=True)]
        return self

    def to_state(self) -> dict[str, Any]:
        return {"schema_version": 1, "edges": self.edges, "counts": self.counts}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> BinnedCounts:
        h = cls(state["edges"])
        h.counts = [int(c) for c in state["counts"]]
        return h


class CategoryCounts:
    """Counts per category over a fixed vocabulary plus an :data:`OTHER` bucket.

    Values outside ``categories`` are counted under :data:`OTHER`, so memory is
    bounded by ``len(categories) + 1`` counters whatever the stream sends.

    Examples
    --------
    >>> c = CategoryCounts(["a", "b"])
    >>> for v in ["a", "a", "z", "b"]:
    ...     c.update(v)
    >>> c.vector()
    [2, 1, 1]
    """

    __slots__ = ("_index", "categories", "counts")

    def __init__(self, categories: Sequence[str]) -> None:
        self.categories = list(categories)
        self._index = {c: i for i, c in enumerate(self.categories)}
        self.counts = [0] * (len(self.categories) + 1)

    def update(self, value: str) -> None:
        self.counts[self._index.get(value, len(self.categories))] += 1

    def index_of(self, values: Sequence[str]) -> NDArray[np.intp]:
        """Bucket index of each value (``len(categories)`` = :data:`OTHER`)."""
        other = len(self.categories)
        return np.fromiter((self._index.get(v, other) for v in values), dtype=np.intp, count=len(values))

    def add_counts(self, counts: NDArray[np.int64]) -> None:
        """Add a vector of counts in bucket order (as :meth:`vector` returns)."""
        self.counts = [a + int(b) for a, b in zip(self.counts, counts, strict=True)]

    @property
    def n(self) -> int:
        return sum(self.counts)

    def vector(self) -> list[int]:
        """Counts in ``categories`` order, :data:`OTHER` last."""
        return list(self.counts)

    def get(self) -> dict[str, int] | None:
        if not self.n:
            return None
        return dict(zip([*self.categories, OTHER], self.counts, strict=True))

    def __iadd__(self, other: CategoryCounts) -> CategoryCounts:
        if other.categories != self.categories:
            raise ValueError("cannot merge category counts over different vocabularies")
        self.counts = [a + b for a, b in zip(self.counts, other.counts, strict=True)]
        return self

    def to_state(self) -> dict[str, Any]:
        return {"schema_version": 1, "categories": self.categories, "counts": self.counts}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> CategoryCounts:
        c = cls(state["categories"])
        c.counts = [int(x) for x in state["counts"]]
        return c
