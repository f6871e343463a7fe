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

#: Up to this many bin edges, batches are binned by comparisons against every edge.
_COMPARE_EDGES = 64


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
        """Count a batch of values (NaN goes to the last bin, as ``bisect_right`` puts it)."""
        n = x.size
        if not n:
            return
        nan = n - int(np.count_nonzero(x == x))
        self.update_finite(x[x == x] if nan else x)
        if nan:
            self.counts[-1] += nan

    def update_finite(self, x: NDArray[np.float64]) -> None:
        """Count a batch of values without NaN.

        With few edges, each edge's count of values at or past it (a branch-free
        comparison) gives the bins by differences: several times faster than a binary
        search per value, whose branches a CPU cannot predict on real data.
        """
        n = x.size
        if not n:
            return
        if len(self.edges) > _COMPARE_EDGES:
            add = np.bincount(np.searchsorted(self._edges, x, side="right"), minlength=len(self.counts)).tolist()
            self.counts = [a + b for a, b in zip(self.counts, add, strict=True)]
            return
        self.add_at_or_past(n, np.count_nonzero(x >= self._edges[:, None], axis=1).tolist())

    def add_at_or_past(self, n: int, at_or_past: list[int]) -> None:
        """Add ``n`` values given, per edge, how many of them are at or past it (``>= edge``)."""
        bounds = [n, *at_or_past, 0]
        counts = self.counts
        self.counts = [counts[k] + bounds[k] - bounds[k + 1] for k in range(len(counts))]

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
    """Counts per category over a vocabulary plus an :data:`OTHER` bucket.

    With a fixed vocabulary, values outside ``categories`` are counted under
    :data:`OTHER`. With ``open_limit > 0`` (no reference or configured
    categories to go by) new values join the vocabulary as they are seen, up to
    ``open_limit`` categories; later new values go to :data:`OTHER`. Either way
    memory is bounded by ``max(len(categories), open_limit) + 1`` counters.
    Open vocabularies merge by label; the merge equals counting the
    concatenation as long as neither side filled its vocabulary on its own.

    Examples
    --------
    >>> c = CategoryCounts(["a", "b"])
    >>> for v in ["a", "a", "z", "b"]:
    ...     c.update(v)
    >>> c.vector()
    [2, 1, 1]
    >>> o = CategoryCounts([], open_limit=2)
    >>> for v in ["x", "y", "z", "x"]:
    ...     o.update(v)
    >>> o.get()
    {'x': 2, 'y': 1, '__other__': 1}
    """

    __slots__ = ("_index", "categories", "counts", "open_limit")

    def __init__(self, categories: Sequence[str], *, open_limit: int = 0) -> None:
        self.categories = list(categories)
        self._index = {c: i for i, c in enumerate(self.categories)}
        self.counts = [0] * (len(self.categories) + 1)
        self.open_limit = open_limit

    def _learn(self, value: str) -> int | None:
        """Add ``value`` to an open vocabulary (if there is room); its index, or None."""
        if len(self.categories) >= self.open_limit:
            return None
        j = len(self.categories)
        self.categories.append(value)
        self._index[value] = j
        self.counts.insert(j, 0)  # OTHER stays last
        return j

    def update(self, value: str) -> None:
        j = self._index.get(value)
        if j is None and self.open_limit:
            j = self._learn(value)
        self.counts[len(self.categories) if j is None else j] += 1

    def index_of(self, values: Sequence[str]) -> NDArray[np.intp]:
        """Bucket index of each value (``len(categories)`` = :data:`OTHER`); an open vocabulary
        learns the new values first."""
        if self.open_limit:
            for v in values:
                if v not in self._index and self._learn(v) is None:
                    break
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
        if other.categories == self.categories:
            self.counts = [a + b for a, b in zip(self.counts, other.counts, strict=True)]
            return self
        if not (self.open_limit or other.open_limit):
            raise ValueError("cannot merge category counts over different vocabularies")
        self.open_limit = max(self.open_limit, other.open_limit)
        for label, count in zip(other.categories, other.counts, strict=False):  # merge by label
            j = self._index.get(label)
            if j is None:
                j = self._learn(label)
            self.counts[len(self.categories) if j is None else j] += count
        self.counts[-1] += other.counts[-1]
        return self

    def to_state(self) -> dict[str, Any]:
        return {"schema_version": 1, "categories": self.categories, "counts": self.counts,
                "open_limit": self.open_limit}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> CategoryCounts:
        c = cls(state["categories"], open_limit=int(state.get("open_limit", 0)))
        c.counts = [int(x) for x in state["counts"]]
        return c
