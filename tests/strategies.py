"""Hypothesis strategies shared by the test suite (the only place they live)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

__all__ = [
    "BAD_RECORDS",
    "SplitRun",
    "any_finite_floats",
    "batch_sizes",
    "bin_edges",
    "boolean_values",
    "categorical_values",
    "category_values",
    "extreme_float_lists",
    "feature_records",
    "finite_floats",
    "float_lists",
    "good_record",
    "histogram_pair",
    "histograms",
    "mixed_records",
    "numeric_values",
    "record_flag_rows",
    "record_ids",
    "split_runs",
    "string_values",
    "vocabulary",
]

#: Finite floats of a sane magnitude (no NaN/inf; squares stay finite).
finite_floats = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)


def float_lists(*, min_size: int = 0, max_size: int = 200) -> st.SearchStrategy[list[float]]:
    """Lists of finite floats, sometimes all clustered around a large offset."""
    plain = st.lists(finite_floats, min_size=min_size, max_size=max_size)
    offset = st.tuples(
        st.sampled_from([1e3, -1e5, 1e6]),
        st.lists(st.floats(min_value=-1.0, max_value=1.0), min_size=min_size, max_size=max_size),
    ).map(lambda t: [t[0] + d for d in t[1]])
    return st.one_of(plain, offset)


#: Every finite float64: huge (to +-1.8e308), subnormal (down to 5e-324), zero, and the extremes named.
any_finite_floats = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([1.7e308, -1.7e308, 1.7976931348623157e308, -1.7976931348623157e308, 1e155, -1e155,
                     5e-324, -5e-324, 2.2250738585072014e-308, 0.0, -0.0]),
)


def extreme_float_lists(*, min_size: int = 0, max_size: int = 60) -> st.SearchStrategy[list[float]]:
    """Lists of any finite floats, often ordinary values with a few extreme ones mixed in."""
    mixed = st.tuples(st.lists(finite_floats, min_size=min_size, max_size=max_size),
                      st.lists(any_finite_floats, min_size=1, max_size=3), st.randoms(use_true_random=False)).map(
        lambda t: t[2].sample(t[0] + t[1], len(t[0]) + len(t[1])))
    return st.one_of(st.lists(any_finite_floats, min_size=min_size, max_size=max_size), mixed)


#: Interior bin edges: strictly increasing finite floats (0 to 12 of them).
bin_edges = st.lists(
    st.floats(min_value=-1e3, max_value=1e3, allow_nan=False), min_size=0, max_size=12, unique=True
).map(sorted)

#: A category vocabulary: distinct short strings.
vocabulary = st.lists(st.text(alphabet="abcdefgh", min_size=1, max_size=3), min_size=1, max_size=8,
                      unique=True)

#: Category values, partly from a small alphabet (hits the vocabulary), partly anything.
category_values = st.lists(
    st.one_of(st.text(alphabet="abcdefgh", min_size=1, max_size=3), st.text(max_size=5)), max_size=100
)


def histograms(n_bins: int, *, max_count: int = 10_000) -> st.SearchStrategy[list[int]]:
    """Non-negative integer counts over ``n_bins`` bins with a positive total."""
    return st.lists(st.integers(0, max_count), min_size=n_bins, max_size=n_bins).filter(
        lambda h: sum(h) > 0
    )


#: Two histograms over the same (2 to 20) bins.
histogram_pair = st.integers(2, 20).flatmap(lambda k: st.tuples(histograms(k), histograms(k)))


# ---------------------------------------------------------------- records

_json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**53), 2**53),
    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=8),
)


@st.composite
def good_record(draw: st.DrawFn) -> dict[str, Any]:
    """An envelope-valid record (id field ``record_id``, time field ``event_time``)."""
    rec: dict[str, Any] = {
        "record_id": draw(st.one_of(st.integers(-(2**53), 2**53), st.text(min_size=1, max_size=8)))
    }
    if draw(st.booleans()):
        rec["event_time"] = draw(st.one_of(
            st.integers(0, 2**31), st.floats(0, 2e9),
            st.sampled_from(["2024-05-01T12:00:00Z", "2024-05-01T12:00:00+02:00", "2024-05-01"]),
        ))
    if draw(st.booleans()):
        rec["schema_version"] = 1
    rec["x"] = draw(_json_scalars)
    return rec


#: Envelope-invalid records, each with the reason it must be rejected with.
BAD_RECORDS: list[tuple[Any, str]] = [
    ("a string", "not_an_object"),
    (42, "not_an_object"),
    (True, "not_an_object"),
    (None, "not_an_object"),
    ({"x": 1}, "missing_id"),
    ({"record_id": None}, "missing_id"),
    ({"record_id": ""}, "invalid_id"),
    ({"record_id": True}, "invalid_id"),
    ({"record_id": 1.5}, "invalid_id"),
    ({"record_id": {"a": 1}}, "invalid_id"),
    ({"record_id": 1, "event_time": "yesterday"}, "invalid_event_time"),
    ({"record_id": 1, "event_time": True}, "invalid_event_time"),
    ({"record_id": 1, "event_time": [0]}, "invalid_event_time"),
    ({"record_id": 1, "schema_version": 2}, "unsupported_schema_version"),
    ({"record_id": 1, "schema_version": "1"}, "unsupported_schema_version"),
]

#: Non-empty lists mixing good records with ``(record, reason)`` bad ones; good
#: entries are ``(record, None)``.
mixed_records = st.lists(
    st.one_of(good_record().map(lambda r: (r, None)), st.sampled_from(BAD_RECORDS)),
    min_size=1, max_size=30,
)


# ---------------------------------------------------------------- feature values (checks, windows)

#: Values a numeric feature may receive: numbers (some out of range, some huge), missing ones
#: (NaN, infinities) and wrong types (bools, strings, containers, an int beyond float range).
numeric_values = st.one_of(
    st.floats(min_value=-50, max_value=150, allow_nan=False),
    st.integers(-10, 200),
    st.sampled_from([None, float("nan"), float("inf"), -float("inf"), True, False, "3", 10**400, [1], {"a": 1}]),
)

#: Values a categorical feature may receive: short strings (hitting a small vocabulary),
#: integers (valid categories), and missing / wrong-type values (bool, float, containers).
categorical_values = st.one_of(
    st.text(alphabet="abcz", min_size=0, max_size=3),
    st.integers(-2, 3),
    st.sampled_from([None, True, False, 1.0, 2.5, [1], {"a": 1}]),
)

#: Values a boolean feature may receive.
boolean_values = st.one_of(st.booleans(), st.sampled_from([None, 0, 1, "true", 1.5, [True]]))

#: Values a free-text (string) feature may receive.
string_values = st.one_of(st.text(max_size=6), st.sampled_from([None, 1, True, 1.5, ["x"]]))

#: Marker for "the key is absent from the record" in :func:`feature_records`.
_ABSENT = object()


def feature_records(name: str, values: st.SearchStrategy[Any], *,
                    max_size: int = 60) -> st.SearchStrategy[list[dict[str, Any]]]:
    """Lists of records holding ``name`` (or lacking it: absent key)."""
    return st.lists(st.one_of(values, st.just(_ABSENT)), max_size=max_size).map(
        lambda vs: [{} if v is _ABSENT else {name: v} for v in vs])


#: One record's flags for :class:`monitor.checks.RecordFlags`: (duplicate, unexpected field names,
#: late, out of order, has time, lag seconds, event time).
record_flag_rows = st.lists(
    st.tuples(
        st.booleans(),
        st.sampled_from([(), (), ("extra",), ("extra", "zz"), ("other",)]),
        st.booleans(), st.booleans(), st.booleans(),
        st.floats(0, 1e4, allow_nan=False), st.floats(0, 1e9, allow_nan=False),
    ),
    max_size=60,
)

#: Record ids: small integers and short strings, so repeats are common (``1`` and ``"1"`` differ).
record_ids = st.one_of(st.integers(0, 30), st.text(alphabet="abc", min_size=1, max_size=2))

#: Sizes of consecutive batches fed to a window track.
batch_sizes = st.lists(st.integers(1, 40), min_size=1, max_size=25)


# ---------------------------------------------------------------- checkpoints


@dataclass(frozen=True, slots=True)
class SplitRun:
    """A seeded stream of ``n`` records, checkpointed after the first ``k`` and fed in batches of
    ``batch_sizes`` (cycled; the cycle restarts at ``k``, so both parts have the same boundaries in
    an uninterrupted run and in a restored one)."""

    seed: int
    n: int
    k: int
    batch_sizes: tuple[int, ...]

    def batches(self, records: list[dict[str, Any]]) -> tuple[list[list[dict[str, Any]]], list[list[dict[str, Any]]]]:
        """The batches before and after the checkpoint."""
        return self._cut(records[:self.k]), self._cut(records[self.k:])

    def _cut(self, records: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
        out, at, i = [], 0, 0
        while at < len(records):
            size = self.batch_sizes[i % len(self.batch_sizes)]
            out.append(records[at:at + size])
            at, i = at + size, i + 1
        return out


@st.composite
def split_runs(draw: st.DrawFn, *, max_records: int = 1200) -> SplitRun:
    """A :class:`SplitRun`: the checkpoint anywhere (before the first record, after the last), batches of
    1 to 500 records."""
    n = draw(st.integers(1, max_records))
    k = draw(st.one_of(st.integers(0, n), st.sampled_from([0, n])))
    sizes = draw(st.lists(st.one_of(st.integers(1, 40), st.integers(41, 500)), min_size=1, max_size=5))
    return SplitRun(seed=draw(st.integers(0, 2**16)), n=n, k=k, batch_sizes=tuple(sizes))
