"""Per-feature, per-window quality accumulators: missing, type, domain, moments, histogram."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the reference package builds on these checks; import only for typing
    from monitor.reference.profile import FeatureProfile
from monitor.spec import FeatureSpec
from monitor.stats import OTHER, BinnedCounts, CategoryCounts, Moments

__all__ = ["MISSING", "FeatureWindow", "FeatureWindowResult"]

MISSING = object()


@dataclass(frozen=True, slots=True)
class FeatureWindowResult:
    """Quality figures of one feature in one closed window.

    Ratios are over ``count`` (records seen); they are ``None`` when the
    window saw no record.
    """

    feature: str
    count: int
    missing: int
    type_violations: int
    out_of_domain: int
    moments: dict[str, float | None] | None
    histogram: list[int] | None
    histogram_labels: list[str] | None = None
    ratios: dict[str, float | None] = field(default_factory=dict)

    @property
    def valid(self) -> int:
        """Values of the right type (in or out of domain)."""
        return self.count - self.missing - self.type_violations

    def to_dict(self) -> dict[str, Any]:
        return {
            "feature": self.feature,
            "count": self.count,
            "missing": self.missing,
            "type_violations": self.type_violations,
            "out_of_domain": self.out_of_domain,
            "moments": self.moments,
            "histogram": self.histogram,
            "histogram_labels": self.histogram_labels,
            **self.ratios,
        }


class FeatureWindow:
    """Accumulates one feature's values over one window.

    A value is *missing* when the key is absent or null; a *type violation*
    when it is present but of the wrong JSON type (a bool is not a number, a
    number is not a category); *out of domain* when the type is right but it
    falls outside the configured range or categories. Values of the right
    type update the moments (numeric) and the reference-binned histogram.
    Memory is constant: a few counters plus one histogram whose size is fixed
    by the reference bins (or the configured categories).

    Examples
    --------
    >>> from monitor.spec import FeatureSpec
    >>> fw = FeatureWindow(FeatureSpec(name="age", type="numeric", range={"min": 0, "max": 120}))
    >>> for v in [30, None, "old", 200, 40.5]:
    ...     fw.update(v)
    >>> r = fw.result()
    >>> r.count, r.missing, r.type_violations, r.out_of_domain, r.moments["max"]
    (5, 1, 1, 1, 200.0)
    >>> r.ratios["missing_ratio"], r.ratios["out_of_domain_ratio"]
    (0.2, 0.2)
    """

    __slots__ = (
        "_allowed",
        "_hi",
        "_labels",
        "_lo",
        "cats",
        "count",
        "hist",
        "missing",
        "moments",
        "out_of_domain",
        "spec",
        "type_violations",
    )

    def __init__(self, spec: FeatureSpec, reference: FeatureProfile | None = None) -> None:
        self.spec = spec
        self.count = 0
        self.missing = 0
        self.type_violations = 0
        self.out_of_domain = 0
        self.moments: Moments | None = None
        self.hist: BinnedCounts | None = None
        self.cats: CategoryCounts | None = None
        self._labels: list[str] | None = None
        rng = spec.range
        self._lo = -math.inf if rng is None or rng.min is None else rng.min
        self._hi = math.inf if rng is None or rng.max is None else rng.max
        self._allowed = None if spec.categories is None else frozenset(spec.categories)
        if spec.type == "numeric":
            self.moments = Moments()
            if reference is not None and reference.bin_edges is not None:
                self.hist = BinnedCounts(reference.bin_edges)
        elif spec.type == "categorical":
            vocab = reference.category_names() if reference is not None else (spec.categories or [])
            self.cats = CategoryCounts(vocab)
        else:
            self.cats = CategoryCounts(reference.category_names() if reference is not None else ["false", "true"])

    def update(self, value: Any) -> None:
        self.count += 1
        if value is None or value is MISSING:
            self.missing += 1
            return
        kind = self.spec.type
        if kind == "numeric":
            if isinstance(value, bool) or not isinstance(value, int | float):
                self.type_violations += 1
                return
            x = float(value)
            if x != x or x in (math.inf, -math.inf):  # NaN/inf (possible from non-JSON sources) = missing
                self.missing += 1
                return
            if x < self._lo or x > self._hi:
                self.out_of_domain += 1
            self.moments.update(x)  # type: ignore[union-attr]
            if self.hist is not None:
                self.hist.update(x)
        elif kind == "categorical":
            if isinstance(value, bool) or not isinstance(value, str | int):
                self.type_violations += 1
                return
            v = value if isinstance(value, str) else str(value)
            if self._allowed is not None and v not in self._allowed:
                self.out_of_domain += 1
            self.cats.update(v)  # type: ignore[union-attr]
        else:
            if not isinstance(value, bool):
                self.type_violations += 1
                return
            self.cats.update("true" if value else "false")  # type: ignore[union-attr]

    def result(self) -> FeatureWindowResult:
        n = self.count
        ratios = {
            "missing_ratio": self.missing / n if n else None,
            "type_violation_ratio": self.type_violations / n if n else None,
            "out_of_domain_ratio": self.out_of_domain / n if n else None,
        }
        if self.hist is not None:
            hist, labels = self.hist.get(), None
        elif self.cats is not None and self.cats.n:
            hist, labels = self.cats.vector(), [*self.cats.categories, OTHER]
        else:
            hist, labels = None, None
        return FeatureWindowResult(
            feature=self.spec.name,
            count=n,
            missing=self.missing,
            type_violations=self.type_violations,
            out_of_domain=self.out_of_domain,
            moments=self.moments.get() if self.moments is not None else None,
            histogram=hist,
            histogram_labels=labels,
            ratios=ratios,
        )
