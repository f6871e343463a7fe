"""A reference made of recent windows (the "rolling reference")."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from monitor.reference.profile import FeatureProfile, ReferenceProfile
from monitor.spec import StreamSpec
from monitor.stats import OTHER, Moments, QuantileSummary
from monitor.stats.quantiles import quantiles

if TYPE_CHECKING:
    from monitor.checks import FeatureState

__all__ = ["rolling_profile"]


def rolling_profile(stream: StreamSpec, windows: Sequence[dict[str, FeatureState]], *,
                    fixed: ReferenceProfile | None) -> ReferenceProfile:
    """A profile of the union of ``windows`` (each a feature -> state mapping).

    Numeric features get quantiles and moments from the merged states; their
    PSI bins are the fixed reference's when there is one (so the window
    histograms line up), else cut at the rolling quantiles. Categories come
    from the merged category counts.
    """
    features = {}
    for f in stream.features:
        states = [w[f.name] for w in windows if f.name in w]
        if not states:
            continue
        count = sum(s.count for s in states)
        missing = sum(s.missing for s in states)
        if f.type == "numeric":
            samples = [s.sample.get() for s in states if s.sample is not None and s.sample.n]
            if not samples:
                continue
            values = np.concatenate([x for x in samples if x is not None])
            n_valid = sum(s.moments.n for s in states if s.moments is not None)
            moments = Moments()
            for s in states:
                if s.moments is not None:
                    moments += s.moments
            fixed_f = fixed.features.get(f.name) if fixed is not None else None
            if fixed_f is not None and fixed_f.bin_edges is not None:
                edges = list(fixed_f.bin_edges)
            else:
                qs = quantiles(values, np.linspace(0.0, 1.0, stream.psi_bins + 1)[1:-1])
                edges = sorted({float(q) for q in qs})
            counts = np.bincount(np.searchsorted(np.asarray(edges), values, side="right"), minlength=len(edges) + 1)
            summary = QuantileSummary.from_values(values, n=n_valid)
            features[f.name] = FeatureProfile(
                name=f.name, type=f.type, count=count, missing=missing, mean=moments.mean, std=moments.std,
                min=moments.min, max=moments.max, bin_edges=edges, bin_counts=[int(c) for c in counts],
                quantiles=[float(v) for v in summary.values])
        elif f.type in ("categorical", "boolean"):
            totals: dict[str, int] = {}
            for s in states:
                if s.cats is None:
                    continue
                for label, c in zip([*s.cats.categories, OTHER], s.cats.counts, strict=True):
                    totals[label] = totals.get(label, 0) + c
            features[f.name] = FeatureProfile(name=f.name, type=f.type, count=count, missing=missing,
                                              category_counts=totals)
    return ReferenceProfile(stream=stream.name, source={"kind": "rolling", "windows": len(windows)},
                            created_at="", rows=sum(next(iter(w.values())).count for w in windows if w),
                            features=features)
