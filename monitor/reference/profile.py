"""Reference profiles: the statistics of the data a model was trained on.

A profile holds statistics, never raw rows: per feature the count, missing
count, moments, and either fixed histogram bins (numeric: interior cut points
at reference quantiles plus their counts) or category counts. It is saved as
versioned JSON (``schema_version`` is the file format, ``profile_version`` a
content hash), records its source and creation time, and is validated against
``schemas/reference_profile.schema.json``.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from monitor.errors import ConfigError, ProfileError
from monitor.performance import merge_performance_states
from monitor.spec import MonitorSpec, StreamSpec
from monitor.stats import OTHER, Moments, QuantileSummary

__all__ = ["PROFILE_SCHEMA_VERSION", "FeatureProfile", "ReferenceProfile", "load_references"]

PROFILE_SCHEMA_VERSION = 1


@dataclass(frozen=True)
class FeatureProfile:
    """Reference statistics of one feature.

    Numeric: ``bin_edges`` (interior cut points, ascending) and ``bin_counts``
    (one more than the edges). Categorical/boolean: ``category_counts``.
    """

    name: str
    type: str
    count: int
    missing: int
    mean: float | None = None
    std: float | None = None
    min: float | None = None
    max: float | None = None
    bin_edges: list[float] | None = None
    bin_counts: list[int] | None = None
    category_counts: dict[str, int] | None = None
    quantiles: list[float] | None = None

    @functools.cached_property
    def _summary(self) -> QuantileSummary | None:
        # Built once per profile (every window's KS and Wasserstein use it).
        if self.quantiles is None:
            return None
        valid = self.count - self.missing
        return QuantileSummary.from_state({"n": max(valid, 1), "levels": len(self.quantiles),
                                           "values": self.quantiles})

    def quantile_summary(self) -> QuantileSummary | None:
        """The reference distribution as a :class:`QuantileSummary` (numeric features)."""
        return self._summary

    def category_names(self) -> list[str]:
        """Reference categories, most frequent first (ties by name), without OTHER."""
        if self.type == "boolean":  # fixed order, the same as the window's histogram
            return ["false", "true"]
        counts = self.category_counts or {}
        return sorted((c for c in counts if c != OTHER), key=lambda c: (-counts[c], c))

    def expected_histogram(self) -> list[int] | None:
        """Reference counts aligned with the window histogram's bins."""
        if self.bin_counts is not None:
            return list(self.bin_counts)
        if self.category_counts is not None:
            counts = self.category_counts
            return [counts.get(c, 0) for c in self.category_names()] + [counts.get(OTHER, 0)]
        return None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"type": self.type, "count": self.count, "missing": self.missing}
        if self.type == "numeric":
            d.update(mean=self.mean, std=self.std, min=self.min, max=self.max,
                     bin_edges=self.bin_edges, bin_counts=self.bin_counts, quantiles=self.quantiles)
        else:
            d["category_counts"] = self.category_counts
        return d


@dataclass(frozen=True, slots=True)
class ReferenceProfile:
    """The reference profile of one stream.

    Examples
    --------
    >>> p = ReferenceProfile(stream="f", source={"kind": "file", "path": "r.csv"}, created_at="2026-01-01T00:00:00Z",
    ...     rows=2, features={"c": FeatureProfile(name="c", type="categorical", count=2, missing=0,
    ...     category_counts={"a": 1, "b": 1})})
    >>> ReferenceProfile.from_dict(p.to_dict()) == p
    True
    >>> len(p.profile_version)
    12
    """

    stream: str
    source: dict[str, Any]
    created_at: str
    rows: int
    features: dict[str, FeatureProfile] = field(default_factory=dict)
    rate_per_second: float | None = None
    #: Predictions streams whose reference rows carry labels: the model's reference performance,
    #: ``{"task": ..., "performance": <BinaryPerformance/MulticlassPerformance/RegressionPerformance
    #: state>}`` (mergeable; a binary model's CBPE calibration map is fitted from it).
    model: dict[str, Any] | None = None

    @property
    def profile_version(self) -> str:
        """Content hash of the statistics (same data and settings, same version)."""
        content: dict[str, Any] = {k: v.to_dict() for k, v in sorted(self.features.items())}
        if self.model is not None:  # profiles without a model keep the hash they always had
            content = {"features": content, "model": self.model}
        body = orjson.dumps(content, option=orjson.OPT_SORT_KEYS)
        return hashlib.sha256(body).hexdigest()[:12]

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": PROFILE_SCHEMA_VERSION,
            "profile_version": self.profile_version,
            "stream": self.stream,
            "created_at": self.created_at,
            "source": self.source,
            "rows": self.rows,
            "rate_per_second": self.rate_per_second,
            "features": {k: v.to_dict() for k, v in self.features.items()},
            **({"model": self.model} if self.model is not None else {}),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ReferenceProfile:
        if not isinstance(d, dict) or d.get("schema_version") != PROFILE_SCHEMA_VERSION:
            got = d.get("schema_version") if isinstance(d, dict) else type(d).__name__
            raise ProfileError(f"unsupported reference profile schema_version {got!r} "
                               f"(this release reads {PROFILE_SCHEMA_VERSION})")
        try:
            feats = {name: FeatureProfile(name=name, **fd) for name, fd in d["features"].items()}
            profile = cls(stream=d["stream"], source=d["source"], created_at=d["created_at"],
                          rows=int(d["rows"]), features=feats, rate_per_second=d.get("rate_per_second"),
                          model=d.get("model"))
        except (KeyError, TypeError, AttributeError) as exc:
            raise ProfileError(f"reference profile is missing or has a bad field: {exc}") from None
        declared = d.get("profile_version")
        if declared is not None and declared != profile.profile_version:
            raise ProfileError(f"reference profile content does not match its profile_version "
                               f"{declared!r} (edited by hand?)")
        return profile

    def merge(self, other: ReferenceProfile) -> ReferenceProfile:
        """The profile of both inputs together (e.g. one profile per day, merged into a week).

        Counts, missing counts, category counts and moments merge exactly; the
        quantile summaries merge approximately (mixture CDF on the grid); bin
        counts add when the bin edges agree and are re-estimated on this
        profile's edges from the merged quantiles when they do not.

        Examples
        --------
        >>> from monitor.reference import build_profile
        >>> from monitor.spec import StreamSpec
        >>> s = StreamSpec.model_validate({"name": "f", "windows": [{"name": "w", "kind": "count", "size": 9}],
        ...     "features": [{"name": "x", "type": "numeric"}, {"name": "c", "type": "categorical"}]})
        >>> a = build_profile(s, lambda: [{"x": float(i), "c": "a"} for i in range(100)], source={"kind": "t"})
        >>> b = build_profile(s, lambda: [{"x": float(i), "c": "b"} for i in range(100, 200)], source={"kind": "t"})
        >>> m = a.merge(b)
        >>> m.rows, m.features["x"].mean, m.features["c"].category_counts
        (200, 99.5, {'a': 100, 'b': 100})
        """
        if other.stream != self.stream:
            raise ProfileError(f"cannot merge profiles of streams {self.stream!r} and {other.stream!r}")
        features = {}
        for name, fa in self.features.items():
            fb = other.features.get(name)
            if fb is None or fb.type != fa.type:
                raise ProfileError(f"cannot merge: feature {name!r} is missing or of another type in one profile")
            features[name] = _merge_feature(fa, fb)
        rate = None
        if self.rate_per_second and other.rate_per_second:
            rate = (self.rows + other.rows) / (self.rows / self.rate_per_second + other.rows / other.rate_per_second)
        return ReferenceProfile(stream=self.stream, source={"kind": "merged", "sources": [self.source, other.source]},
                                created_at=max(self.created_at, other.created_at), rows=self.rows + other.rows,
                                features=features, rate_per_second=rate, model=_merge_model(self.model, other.model))

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_bytes(orjson.dumps(self.to_dict(), option=orjson.OPT_INDENT_2))
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> ReferenceProfile:
        path = Path(path)
        try:
            data = orjson.loads(path.read_bytes())
        except OSError as exc:
            raise ProfileError(f"cannot read reference profile {path}: {exc.strerror or exc}") from None
        except orjson.JSONDecodeError as exc:
            raise ProfileError(f"reference profile {path} is not valid JSON: {exc}") from None
        return cls.from_dict(data)

    def check_against(self, stream: StreamSpec) -> None:
        """Raise :class:`ProfileError` unless every spec feature is profiled with its type."""
        problems = []
        for f in stream.features:
            fp = self.features.get(f.name)
            if fp is None:
                problems.append(f"feature {f.name!r} is not in the profile")
            elif fp.type != f.type:
                problems.append(f"feature {f.name!r} is {f.type} in the spec but {fp.type} in the profile")
        if problems:
            raise ProfileError(f"reference profile (stream {self.stream!r}, version "
                               f"{self.profile_version}) does not match stream {stream.name!r}: "
                               + "; ".join(problems))


def _merge_feature(a: FeatureProfile, b: FeatureProfile) -> FeatureProfile:
    count, missing = a.count + b.count, a.missing + b.missing
    if a.type != "numeric":
        counts = dict(a.category_counts or {})
        for k, v in (b.category_counts or {}).items():
            counts[k] = counts.get(k, 0) + v
        return FeatureProfile(name=a.name, type=a.type, count=count, missing=missing,
                              category_counts=dict(sorted(counts.items())))
    na, nb = sum(a.bin_counts or []), sum(b.bin_counts or [])
    n = na + nb
    mean = std = None
    if a.mean is not None and b.mean is not None and n:
        pooled = _moments(na, a.mean, a) + _moments(nb, b.mean, b)
        mean, std = pooled.mean, pooled.std
    qa, qb = a.quantile_summary(), b.quantile_summary()
    summary = qa.merge(qb) if qa is not None and qb is not None else (qa or qb)
    edges = a.bin_edges or []
    if a.bin_edges == b.bin_edges:
        bins = [x + y for x, y in zip(a.bin_counts or [], b.bin_counts or [], strict=True)]
    elif summary is not None:
        cdf = np.concatenate([[0.0], summary.cdf(np.asarray(edges, dtype=float)), [1.0]])
        bins = [round(float(n * p)) for p in np.diff(cdf)]
    else:
        bins = list(a.bin_counts or [])
    return FeatureProfile(
        name=a.name, type=a.type, count=count, missing=missing, mean=mean, std=std,
        min=min(x for x in (a.min, b.min) if x is not None) if a.min is not None or b.min is not None else None,
        max=max(x for x in (a.max, b.max) if x is not None) if a.max is not None or b.max is not None else None,
        bin_edges=edges, bin_counts=bins,
        quantiles=[float(v) for v in summary.values] if summary is not None else None)


def _moments(n: int, mean: float, f: FeatureProfile) -> Moments:
    """A numeric profile's moments (``mean`` is its mean) as the state of ``n`` values."""
    return Moments.of(n=n, mean=mean, std=f.std, lo=mean if f.min is None else f.min,
                      hi=mean if f.max is None else f.max)


def _merge_model(a: dict[str, Any] | None, b: dict[str, Any] | None) -> dict[str, Any] | None:
    """Reference performances add (they are mergeable accumulators); a side without one contributes nothing."""
    if a is None or b is None:
        return a if b is None else b
    if a.get("task") != b.get("task"):
        raise ProfileError(f"cannot merge: the profiles' models differ in task ({a.get('task')} vs {b.get('task')})")
    return {**a, "performance": merge_performance_states(a["task"], a["performance"], b["performance"]),
            "examples": int(a.get("examples", 0)) + int(b.get("examples", 0))}


def load_references(spec: MonitorSpec, streams: Collection[str] | None = None) -> dict[str, ReferenceProfile]:
    """The reference profiles the spec's streams name (only of ``streams``, when given), each checked
    against its stream. A missing file is a :class:`~monitor.errors.ConfigError` saying how to build it."""
    refs = {}
    for s in spec.streams:
        if s.reference is None or (streams is not None and s.name not in streams):
            continue
        if not Path(s.reference).is_file():
            raise ConfigError(f"stream {s.name!r}: reference profile {s.reference} does not exist "
                              f"(build it with: streamdq reference build SPEC --input FILE --out {s.reference})")
        ref = ReferenceProfile.load(s.reference)
        ref.check_against(s)
        refs[s.name] = ref
    return refs
