"""Hypothesis strategies shared by the test suite (the only place they live)."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

__all__ = [
    "BAD_RECORDS",
    "bin_edges",
    "category_values",
    "finite_floats",
    "float_lists",
    "good_record",
    "histogram_pair",
    "histograms",
    "mixed_records",
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
