"""Seeded 20-feature record streams with injectable data-quality and drift problems.

The detection benchmark of streamdq: :class:`~monitor.testing.stream.ScenarioStream` yields records of
15 numeric features (normal, lognormal, uniform and integer-count
distributions, each with a ``range`` that clean data practically never leaves)
and 5 categorical ones (3-8 categories with skewed shares; ``country`` has
``IN`` at 10%), plus a unique ``record_id`` and an ISO-8601 UTC ``event_time``
advancing by ``1/rate`` seconds per record (default 100 records/s). ``income``
is missing in 1% of clean records. :func:`monitor_spec_dict` is the matching
monitor spec (one stream, a 2,000-record count window ``w2000`` and a 60 s
event-time window ``t60s``, every other setting at its default).

A :class:`Change` switches one problem on from a given record index; the
factory functions (:func:`mean_shift`, :func:`variance_doubling`,
:func:`gradual_shift`, :func:`category_shift`, :func:`missing_spike`,
:func:`out_of_range_burst`, :func:`unseen_categories`, :func:`wrong_types`,
:func:`duplicate_ids`, :func:`late_records`, :func:`rate_drop`) document each.
Clean values come from one random generator and the changes from another, so
a stream with a change is identical to the clean stream of the same seed
before the change starts.

The generator itself is :class:`monitor.testing.stream.ScenarioStream`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "CATEGORICAL_FEATURES",
    "CHANGES",
    "MISSING_FEATURE",
    "NUMERIC_FEATURES",
    "START_TIME",
    "STREAM",
    "Categorical",
    "Change",
    "ChangeKind",
    "Numeric",
    "category_shift",
    "duplicate_ids",
    "gradual_shift",
    "late_records",
    "mean_shift",
    "missing_spike",
    "monitor_spec_dict",
    "out_of_range_burst",
    "rate_drop",
    "stream_spec_dict",
    "unseen_categories",
    "variance_doubling",
    "wrong_types",
]

#: Name (and topic) of the scenario stream.
STREAM = "events"
#: Event time of the first record: a minute boundary, so 60 s windows start full.
START_TIME = datetime(2024, 1, 1, tzinfo=UTC).timestamp()
#: Share of the affected feature's values (or of records) a burst-style change hits.
BURST_SHARE = 0.05
#: Records a duplicated id is taken from: one of the previous this many records.
DUPLICATE_LOOKBACK = 1000
#: How far behind its neighbours a late record's event time is, in seconds.
LATE_BY_SECONDS = 300.0
#: Event times advance this many times slower per record after a rate drop.
RATE_DROP_FACTOR = 4.0

Float = NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class Numeric:
    """A numeric feature: its distribution, true mean and standard deviation, allowed range."""

    name: str
    dist: str  # normal | lognormal | uniform | poisson | negbin | randint
    a: float
    b: float
    low: float
    high: float
    decimals: int = 3

    @property
    def integer(self) -> bool:
        return self.dist in ("poisson", "negbin", "randint")

    @property
    def mean(self) -> float:
        """The distribution's mean."""
        a, b = self.a, self.b
        if self.dist == "lognormal":
            return math.exp(a + b * b / 2)
        if self.dist in ("uniform", "randint"):
            return (a + b) / 2
        if self.dist == "negbin":
            return a * (1 - b) / b
        return a  # normal, poisson

    @property
    def std(self) -> float:
        """The distribution's standard deviation."""
        a, b = self.a, self.b
        if self.dist == "normal":
            return b
        if self.dist == "lognormal":
            return math.sqrt((math.exp(b * b) - 1) * math.exp(2 * a + b * b))
        if self.dist == "uniform":
            return (b - a) / math.sqrt(12)
        if self.dist == "poisson":
            return math.sqrt(a)
        if self.dist == "negbin":
            return math.sqrt(a * (1 - b)) / b
        return math.sqrt(((b - a + 1) ** 2 - 1) / 12)  # randint

    def draw(self, rng: np.random.Generator, n: int) -> Float:
        a, b = self.a, self.b
        if self.dist == "normal":
            return rng.normal(a, b, n)
        if self.dist == "lognormal":
            return rng.lognormal(a, b, n)
        if self.dist == "uniform":
            return rng.uniform(a, b, n)
        if self.dist == "poisson":
            return rng.poisson(a, n).astype(np.float64)
        if self.dist == "negbin":
            return rng.negative_binomial(a, b, n).astype(np.float64)
        return rng.integers(int(a), int(b), n, endpoint=True).astype(np.float64)


@dataclass(frozen=True, slots=True)
class Categorical:
    """A categorical feature: its categories and their shares (summing to 1)."""

    name: str
    categories: tuple[str, ...]
    shares: tuple[float, ...]


#: The 15 numeric features. Normal ones have a range at least 6 standard deviations from the mean.
NUMERIC_FEATURES: tuple[Numeric, ...] = (
    Numeric("temperature_c", "normal", 21.0, 4.0, -40.0, 80.0, 2),
    Numeric("score", "normal", 0.0, 1.0, -8.0, 8.0, 4),
    Numeric("height_cm", "normal", 170.0, 10.0, 100.0, 250.0, 1),
    Numeric("weight_kg", "normal", 75.0, 12.0, 0.0, 300.0, 1),
    Numeric("balance", "normal", 1000.0, 300.0, -2000.0, 5000.0, 2),
    Numeric("latency_ms", "normal", 250.0, 40.0, 0.0, 2000.0, 1),
    Numeric("income", "lognormal", 10.5, 0.5, 0.0, 10_000_000.0, 2),
    Numeric("session_seconds", "lognormal", 5.0, 0.8, 0.0, 1_000_000.0, 1),
    Numeric("basket_value", "lognormal", 3.5, 1.0, 0.0, 1_000_000.0, 2),
    Numeric("discount_rate", "uniform", 0.0, 0.5, 0.0, 1.0, 4),
    Numeric("latitude", "uniform", -60.0, 70.0, -90.0, 90.0, 4),
    Numeric("items", "poisson", 3.0, 0.0, 0.0, 1000.0),
    Numeric("page_views", "poisson", 25.0, 0.0, 0.0, 100_000.0),
    Numeric("support_tickets", "negbin", 2.0, 0.4, 0.0, 1000.0),
    Numeric("tenure_months", "randint", 0.0, 120.0, 0.0, 1200.0),
)

#: The 5 categorical features; ``country`` has ``IN`` at 10%.
CATEGORICAL_FEATURES: tuple[Categorical, ...] = (
    Categorical("country", ("US", "DE", "GB", "IN", "FR", "BR", "JP", "CA"),
                (0.34, 0.16, 0.13, 0.10, 0.09, 0.07, 0.06, 0.05)),
    Categorical("device", ("mobile", "desktop", "tablet"), (0.62, 0.30, 0.08)),
    Categorical("plan", ("free", "basic", "pro", "enterprise"), (0.55, 0.25, 0.15, 0.05)),
    Categorical("channel", ("organic", "search", "email", "social", "referral", "ads"),
                (0.38, 0.22, 0.15, 0.12, 0.08, 0.05)),
    Categorical("payment_method", ("card", "paypal", "bank_transfer", "voucher", "crypto"),
                (0.52, 0.26, 0.12, 0.07, 0.03)),
)

_NUMERIC = {f.name: f for f in NUMERIC_FEATURES}
_CATEGORICAL = {f.name: f for f in CATEGORICAL_FEATURES}
#: The feature missing in 1% of clean records.
MISSING_FEATURE = "income"
BASELINE_MISSING = 0.01


class ChangeKind(StrEnum):
    """The problems a :class:`Change` can inject (see the factory function of each)."""

    MEAN_SHIFT = "mean_shift"
    VARIANCE_DOUBLING = "variance_doubling"
    GRADUAL_SHIFT = "gradual_shift"
    CATEGORY_SHIFT = "category_shift"
    MISSING_SPIKE = "missing_spike"
    OUT_OF_RANGE = "out_of_range"
    UNSEEN_CATEGORY = "unseen_category"
    WRONG_TYPE = "wrong_type"
    DUPLICATE_IDS = "duplicate_ids"
    LATE_RECORDS = "late_records"
    RATE_DROP = "rate_drop"


_DRIFT = ("psi", "wasserstein", "ks", "jensen_shannon", "chi_square", "hellinger")

#: Per kind: the default target feature (``None``: the whole record) and the checks that should see it.
_KINDS: dict[ChangeKind, tuple[str | None, tuple[str, ...]]] = {
    ChangeKind.MEAN_SHIFT: ("latency_ms", _DRIFT),
    ChangeKind.VARIANCE_DOUBLING: ("score", _DRIFT),
    ChangeKind.GRADUAL_SHIFT: ("balance", _DRIFT),
    ChangeKind.CATEGORY_SHIFT: ("country", _DRIFT),
    ChangeKind.MISSING_SPIKE: (MISSING_FEATURE, ("missing_ratio",)),
    ChangeKind.OUT_OF_RANGE: ("discount_rate", ("out_of_domain_ratio",)),
    ChangeKind.UNSEEN_CATEGORY: ("channel", ("unseen_category_ratio",)),
    ChangeKind.WRONG_TYPE: ("items", ("type_violation_ratio",)),
    ChangeKind.DUPLICATE_IDS: (None, ("duplicate_ratio",)),
    ChangeKind.LATE_RECORDS: (None, ("late_ratio",)),
    ChangeKind.RATE_DROP: (None, ("volume_deviation",)),
}
_NUMERIC_KINDS = {ChangeKind.MEAN_SHIFT, ChangeKind.VARIANCE_DOUBLING, ChangeKind.GRADUAL_SHIFT,
                  ChangeKind.OUT_OF_RANGE, ChangeKind.WRONG_TYPE}
_CATEGORICAL_KINDS = {ChangeKind.CATEGORY_SHIFT, ChangeKind.UNSEEN_CATEGORY}


@dataclass(frozen=True, slots=True)
class Change:
    """One injected problem, active for every record from index ``start`` on.

    ``feature`` is the affected feature (``None`` picks the kind's default;
    record-level kinds affect whole records and have none). ``ramp`` is the
    number of records over which a gradual shift reaches its full size.
    :attr:`detected_by` names the checks that should alert on it.

    Examples
    --------
    >>> c = Change(ChangeKind.MEAN_SHIFT, start=10_000)
    >>> c.target, c.detected_by[:2]
    ('latency_ms', ('psi', 'wasserstein'))
    >>> Change(ChangeKind.DUPLICATE_IDS).target is None
    True
    >>> Change(ChangeKind.MEAN_SHIFT, feature="country")
    Traceback (most recent call last):
    ...
    ValueError: mean_shift needs a numeric feature, got 'country'
    """

    kind: ChangeKind
    start: int = 0
    feature: str | None = None
    ramp: int = 10_000

    def __post_init__(self) -> None:
        if self.start < 0:
            raise ValueError(f"start must not be negative, got {self.start}")
        if self.ramp < 1:
            raise ValueError(f"ramp must be at least 1, got {self.ramp}")
        default, _ = _KINDS[self.kind]
        if default is None and self.feature is not None:
            raise ValueError(f"{self.kind} affects whole records, not a feature")
        name = self.target
        if self.kind in _NUMERIC_KINDS and name not in _NUMERIC:
            raise ValueError(f"{self.kind} needs a numeric feature, got {name!r}")
        if self.kind in _CATEGORICAL_KINDS and name not in _CATEGORICAL:
            raise ValueError(f"{self.kind} needs a categorical feature, got {name!r}")
        if self.kind is ChangeKind.MISSING_SPIKE and name not in _NUMERIC and name not in _CATEGORICAL:
            raise ValueError(f"unknown feature {name!r}")

    @property
    def target(self) -> str | None:
        """The affected feature, or ``None`` for a record-level change."""
        return self.feature if self.feature is not None else _KINDS[self.kind][0]

    @property
    def detected_by(self) -> tuple[str, ...]:
        """The checks expected to alert on this change."""
        return _KINDS[self.kind][1]


# -- the changes, one factory each ----------------------------------------------------------------


def mean_shift(start: int = 0, feature: str = "latency_ms") -> Change:
    """The mean of a numeric feature moves up by 0.5 of its standard deviation.

    >>> from monitor.testing.stream import ScenarioStream

    >>> clean = ScenarioStream(seed=3).columns(4000)["latency_ms"]
    >>> shifted = ScenarioStream(seed=3, changes=[mean_shift()]).columns(4000)["latency_ms"]
    >>> round(float(np.mean(shifted) - np.mean(clean)) / 40.0, 3)  # latency_ms has sd 40
    0.5
    """
    return Change(ChangeKind.MEAN_SHIFT, start, feature)


def variance_doubling(start: int = 0, feature: str = "score") -> Change:
    """A numeric feature's variance doubles around its mean (deviations scaled by sqrt 2).

    >>> from monitor.testing.stream import ScenarioStream

    >>> x = ScenarioStream(seed=3, changes=[variance_doubling(start=5000)]).columns(10_000)["score"]
    >>> round(float(np.var(x[5000:]) / np.var(x[:5000])), 1)
    2.0
    """
    return Change(ChangeKind.VARIANCE_DOUBLING, start, feature)


def gradual_shift(start: int = 0, feature: str = "balance", ramp: int = 10_000) -> Change:
    """A numeric feature's mean rises linearly from +0 to +1 standard deviation over ``ramp`` records
    (default 10,000: five 2,000-record windows), then stays at +1 sd.

    >>> from monitor.testing.stream import ScenarioStream

    >>> x = ScenarioStream(seed=3, changes=[gradual_shift()]).columns(12_000)["balance"]
    >>> [round((float(np.mean(x[i:i + 2000])) - 1000.0) / 300.0, 1) for i in range(0, 12_000, 2000)]
    [0.1, 0.3, 0.5, 0.7, 0.9, 1.0]
    """
    return Change(ChangeKind.GRADUAL_SHIFT, start, feature, ramp)


def category_shift(start: int = 0, feature: str = "country") -> Change:
    """The category with a ~10% share (``IN`` of ``country``) rises to 30%; the others shrink
    proportionally. For another feature, its category nearest to a 10% share is the one moved.

    >>> from monitor.testing.stream import ScenarioStream

    >>> codes = ScenarioStream(seed=3, changes=[category_shift()]).columns(10_000)["country"]
    >>> round(float(np.mean(codes == "IN")), 2)
    0.3
    """
    return Change(ChangeKind.CATEGORY_SHIFT, start, feature)


def missing_spike(start: int = 0, feature: str = MISSING_FEATURE) -> Change:
    """Missing values (``null``) of a feature jump to 20% (``income``: from its usual 1%).

    >>> from monitor.testing.stream import ScenarioStream

    >>> recs = ScenarioStream(seed=3, changes=[missing_spike(start=5000)]).records(10_000)
    >>> before, after = (sum(r["income"] is None for r in part) / 5000 for part in (recs[:5000], recs[5000:]))
    >>> 0.005 < before < 0.015, 0.18 < after < 0.22
    (True, True)
    """
    return Change(ChangeKind.MISSING_SPIKE, start, feature)


def out_of_range_burst(start: int = 0, feature: str = "discount_rate") -> Change:
    """5% of a numeric feature's values fall outside its range (above the maximum, by up to its width).

    >>> from monitor.testing.stream import ScenarioStream

    >>> x = ScenarioStream(seed=3, changes=[out_of_range_burst()]).columns(10_000)["discount_rate"]
    >>> round(float(np.mean((x < 0.0) | (x > 1.0))), 2)
    0.05
    """
    return Change(ChangeKind.OUT_OF_RANGE, start, feature)


def unseen_categories(start: int = 0, feature: str = "channel") -> Change:
    """5% of a categorical feature's values become a category never seen before (``<feature>_new``).

    >>> from monitor.testing.stream import ScenarioStream

    >>> codes = ScenarioStream(seed=3, changes=[unseen_categories()]).columns(10_000)["channel"]
    >>> round(float(np.mean(codes == "channel_new")), 2)
    0.05
    """
    return Change(ChangeKind.UNSEEN_CATEGORY, start, feature)


def wrong_types(start: int = 0, feature: str = "items") -> Change:
    """5% of a numeric feature's values arrive as strings (the number's text, e.g. ``"3"``).

    >>> from monitor.testing.stream import ScenarioStream

    >>> recs = ScenarioStream(seed=3, changes=[wrong_types()]).records(10_000)
    >>> round(sum(isinstance(r["items"], str) for r in recs) / 10_000, 2)
    0.05
    """
    return Change(ChangeKind.WRONG_TYPE, start, feature)


def duplicate_ids(start: int = 0) -> Change:
    """5% of records reuse the id of one of the previous 1,000 records.

    >>> from monitor.testing.stream import ScenarioStream

    >>> recs = ScenarioStream(seed=3, changes=[duplicate_ids(start=1000)]).records(11_000)
    >>> ids = [r["record_id"] for r in recs]
    >>> len(set(ids[:1000])), round((len(ids) - len(set(ids))) / 10_000, 2)  # repeats among the last 10,000
    (1000, 0.05)
    """
    return Change(ChangeKind.DUPLICATE_IDS, start)


def late_records(start: int = 0) -> Change:
    """5% of records carry an event time 5 minutes behind the stream's.

    >>> from monitor.testing.stream import ScenarioStream

    >>> from monitor.times import parse_times
    >>> recs = ScenarioStream(seed=3, changes=[late_records()]).records(10_000)
    >>> t = parse_times([r["event_time"] for r in recs])
    >>> behind = np.maximum.accumulate(t) - t
    >>> round(float(np.mean(behind > 60)), 2), round(float(behind.max()))
    (0.05, 300)
    """
    return Change(ChangeKind.LATE_RECORDS, start)


def rate_drop(start: int = 0) -> Change:
    """The record rate drops to a quarter: event times advance 4x slower per record
    (25 records/s instead of 100).

    >>> from monitor.testing.stream import ScenarioStream

    >>> from monitor.times import parse_times
    >>> recs = ScenarioStream(seed=3, changes=[rate_drop(start=100)]).records(200)
    >>> t = parse_times([r["event_time"] for r in recs])
    >>> round(float(t[99] - t[0]), 2), round(float(t[199] - t[100]), 2)
    (0.99, 3.96)
    """
    return Change(ChangeKind.RATE_DROP, start)


#: Every change kind's factory.
CHANGES: dict[ChangeKind, Callable[..., Change]] = {
    ChangeKind.MEAN_SHIFT: mean_shift,
    ChangeKind.VARIANCE_DOUBLING: variance_doubling,
    ChangeKind.GRADUAL_SHIFT: gradual_shift,
    ChangeKind.CATEGORY_SHIFT: category_shift,
    ChangeKind.MISSING_SPIKE: missing_spike,
    ChangeKind.OUT_OF_RANGE: out_of_range_burst,
    ChangeKind.UNSEEN_CATEGORY: unseen_categories,
    ChangeKind.WRONG_TYPE: wrong_types,
    ChangeKind.DUPLICATE_IDS: duplicate_ids,
    ChangeKind.LATE_RECORDS: late_records,
    ChangeKind.RATE_DROP: rate_drop,
}


# -- the spec ---------------------------------------------------------------------------------------


def stream_spec_dict(*, name: str = STREAM) -> dict[str, Any]:
    """The stream's spec: the 20 features (numeric ones with their ``range``), windows ``w2000``
    (2,000 records) and ``t60s`` (60 s of event time), everything else at its default.

    >>> from monitor.spec import StreamSpec
    >>> s = StreamSpec.model_validate(stream_spec_dict())
    >>> s.feature("discount_rate").range.max, s.time.mode, s.time.allowed_lateness_seconds
    (1.0, 'event', 30.0)
    """
    features: list[dict[str, Any]] = [
        {"name": f.name, "type": "numeric", "range": {"min": f.low, "max": f.high}} for f in NUMERIC_FEATURES]
    features += [{"name": f.name, "type": "categorical"} for f in CATEGORICAL_FEATURES]
    return {
        "name": name,
        "windows": [{"name": "w2000", "kind": "count", "size": 2000},
                    {"name": "t60s", "kind": "time", "seconds": 60}],
        "features": features,
    }


def monitor_spec_dict(*, name: str = "scenarios") -> dict[str, Any]:
    """A whole monitor spec (``version: 1``) with the one stream of :func:`stream_spec_dict`."""
    return {"version": 1, "name": name, "streams": [stream_spec_dict()]}
