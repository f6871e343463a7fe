"""Column extraction, per-feature and per-record window state, merges, duplicate detection."""

from __future__ import annotations

import itertools
import math
from collections import Counter
from typing import Any

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from monitor.checks import MISSING, DuplicateFilter, FeatureState, FeatureWindowResult
from monitor.checks.record import RecordFlags, RecordState
from monitor.columns import MISSING as MISSING_CODE
from monitor.columns import VALID, WRONG_TYPE, extract_column
from monitor.reference import FeatureProfile
from monitor.spec import FeatureSpec
from monitor.stats import OTHER
from tests.strategies import (
    boolean_values,
    categorical_values,
    feature_records,
    numeric_values,
    record_flag_rows,
    record_ids,
    string_values,
)

NAN, INF = float("nan"), float("inf")


# ---------------------------------------------------------------- spec


def test_feature_spec_accepts_a_valid_pattern_only() -> None:
    assert FeatureSpec(name="c", type="categorical", pattern="[A-Z]{2}").pattern == "[A-Z]{2}"
    assert FeatureSpec(name="s", type="string", pattern="x+").pattern == "x+"
    with pytest.raises(ValidationError, match="not a valid regular expression"):
        FeatureSpec(name="c", type="categorical", pattern="[A-Z")
    with pytest.raises(ValidationError, match="categorical and string features only"):
        FeatureSpec(name="x", type="numeric", pattern="1")


# ---------------------------------------------------------------- extract_column


def numeric_entries(values: list[Any]) -> list[tuple[float | None, int]]:
    col = extract_column([{"a": v} for v in values], FeatureSpec(name="a", type="numeric"))
    assert col.x is not None and col.status is not None and len(col) == len(values)
    return [(None if math.isnan(x) else x, int(s)) for x, s in zip(col.x.tolist(), col.status.tolist(), strict=True)]


NUMERIC_CASES: list[tuple[Any, tuple[float | None, int]]] = [
    (1, (1.0, VALID)),
    (2.5, (2.5, VALID)),
    (0, (0.0, VALID)),
    (-3, (-3.0, VALID)),
    (2**70, (float(2**70), VALID)),  # a big int that still fits a float
    (1e308, (1e308, VALID)),
    (None, (None, MISSING_CODE)),
    (NAN, (None, MISSING_CODE)),
    (INF, (None, MISSING_CODE)),
    (-INF, (None, MISSING_CODE)),
    (True, (None, WRONG_TYPE)),  # a bool is not a number
    (False, (None, WRONG_TYPE)),
    ("3", (None, WRONG_TYPE)),
    ("", (None, WRONG_TYPE)),
    (10**400, (None, WRONG_TYPE)),  # beyond float range
    (-(10**400), (None, WRONG_TYPE)),
    ([1], (None, WRONG_TYPE)),
    ({"a": 1}, (None, WRONG_TYPE)),
]


@pytest.mark.parametrize(("value", "want"), NUMERIC_CASES, ids=[repr(v)[:20] for v, _ in NUMERIC_CASES])
def test_extract_numeric_single_value(value: Any, want: tuple[float | None, int]) -> None:
    assert numeric_entries([value]) == [want]


def test_extract_numeric_mixed_batch_and_absent_key() -> None:
    values = [v for v, _ in NUMERIC_CASES]
    want = [w for _, w in NUMERIC_CASES]
    assert numeric_entries(values) == want
    assert numeric_entries(values[::-1]) == want[::-1]
    # an absent key is missing, like null
    col = extract_column([{}, {"a": 4}, {"b": 1}], FeatureSpec(name="a", type="numeric"))
    assert col.status is not None and col.status.tolist() == [MISSING_CODE, VALID, MISSING_CODE]


def test_extract_numeric_all_number_batch_with_overflow() -> None:
    # the vectorised path (only int/float/None) must fall back when an int overflows a float
    assert numeric_entries([1, 10**400, None, 2.0, NAN]) == [
        (1.0, VALID), (None, WRONG_TYPE), (None, MISSING_CODE), (2.0, VALID), (None, MISSING_CODE)]


def labels(values: list[Any], kind: str) -> list[str]:
    """Each value's label: its category string, 'MISSING' or 'WRONG'."""
    col = extract_column([{"a": v} for v in values], FeatureSpec(name="a", type=kind))  # type: ignore[arg-type]
    assert col.codes is not None and col.vocab is not None and len(col) == len(values)
    out = []
    for c in col.codes.tolist():
        out.append("MISSING" if c == -1 else "WRONG" if c == -2 else col.vocab[c])
    return out


CATEGORICAL_CASES: list[tuple[Any, str]] = [
    ("US", "US"), ("", ""), ("1", "1"),
    (1, "1"), (0, "0"), (-5, "-5"), (10**400, str(10**400)),  # integers are categories, spelled as str()
    (True, "WRONG"), (False, "WRONG"),   # bools are not (although True == 1 in Python)
    (1.0, "WRONG"), (2.5, "WRONG"),      # neither are floats (1.0 == 1 in Python)
    (None, "MISSING"), ([1], "WRONG"), ({"a": 1}, "WRONG"), ((1, [2]), "WRONG"),
]


@pytest.mark.parametrize(("value", "want"), CATEGORICAL_CASES, ids=[repr(v)[:20] for v, _ in CATEGORICAL_CASES])
def test_extract_categorical_single_value(value: Any, want: str) -> None:
    assert labels([value], "categorical") == [want]


def test_extract_categorical_keeps_true_one_and_one_point_zero_apart() -> None:
    items = [True, 1, 1.0, "1", False, 0, 0.0]  # equal and equally hashed in Python, but not here
    for perm in itertools.permutations(items):
        got = labels(list(perm), "categorical")
        for v, label in zip(perm, got, strict=True):
            if isinstance(v, bool | float):
                assert label == "WRONG", perm
            elif isinstance(v, str):
                assert label == v, perm
            else:
                assert label == str(v), perm


def test_extract_categorical_unhashable_values_anywhere() -> None:
    values = ["a", [1], {"k": 1}, 2, [1], "a", {2}, None]
    want = ["a", "WRONG", "WRONG", "2", "WRONG", "a", "WRONG", "MISSING"]
    assert labels(values, "categorical") == want
    assert labels(values[::-1], "categorical") == want[::-1]
    col = extract_column([{"a": [1]}, {}], FeatureSpec(name="a", type="categorical"))
    assert col.codes is not None and col.codes.tolist() == [-2, -1]


@pytest.mark.parametrize(("value", "want"), [
    ("free text", "free text"), ("", ""), (1, "WRONG"), (True, "WRONG"), (1.5, "WRONG"),
    (None, "MISSING"), (["x"], "WRONG"), ({"x": 1}, "WRONG"),
])
def test_extract_string(value: Any, want: str) -> None:
    assert labels([value], "string") == [want]
    assert labels(["pad", value, "pad"], "string") == ["pad", want, "pad"]


@pytest.mark.parametrize(("value", "want"), [
    (True, "true"), (False, "false"), (None, "MISSING"), (1, "WRONG"), (0, "WRONG"), (1.0, "WRONG"),
    ("true", "WRONG"), ([True], "WRONG"),
])
def test_extract_boolean(value: Any, want: str) -> None:
    assert labels([value], "boolean") == [want]


# ---------------------------------------------------------------- FeatureState: column == one by one

NUMERIC_REF = FeatureProfile(name="x", type="numeric", count=100, missing=0, mean=50.0, std=30.0,
                             bin_edges=[0.0, 10.0, 50.0, 100.0], bin_counts=[10, 20, 30, 30, 10])
CATEGORICAL_REF = FeatureProfile(name="c", type="categorical", count=10, missing=0,
                                 category_counts={"a": 5, "b": 3, "ab": 1, "1": 1})

FEATURES: dict[str, tuple[FeatureSpec, FeatureProfile | None, st.SearchStrategy[Any]]] = {
    "numeric": (FeatureSpec(name="x", type="numeric", range={"min": 0, "max": 100}), NUMERIC_REF, numeric_values),
    "numeric_no_ref": (FeatureSpec(name="x", type="numeric"), None, numeric_values),
    "categorical": (FeatureSpec(name="c", type="categorical", categories=["a", "b", "c", "1"], pattern="[ab]+"),
                    CATEGORICAL_REF, categorical_values),
    "categorical_no_ref": (FeatureSpec(name="c", type="categorical"), None, categorical_values),
    "boolean": (FeatureSpec(name="b", type="boolean"), None, boolean_values),
    "string": (FeatureSpec(name="s", type="string", pattern="[a-z]*"), None, string_values),
}


def assert_same_result(a: FeatureWindowResult, b: FeatureWindowResult) -> None:
    """Equal results; float moments up to rounding (different summation order)."""
    da, db = a.to_dict(), b.to_dict()
    ma, mb = da.pop("moments"), db.pop("moments")
    ca, cb = da.pop("cardinality"), db.pop("cardinality")
    assert da == db
    if ma is None or mb is None:
        assert ma is mb is None
    else:
        assert (ma["count"], ma["min"], ma["max"]) == (mb["count"], mb["min"], mb["max"])
        assert ma["mean"] == pytest.approx(mb["mean"], rel=1e-9, abs=1e-9)
        if ma["std"] is None or mb["std"] is None:
            assert ma["std"] is mb["std"] is None
        else:
            assert ma["std"] == pytest.approx(mb["std"], rel=1e-9, abs=1e-9)
    if ca is None or cb is None:
        assert ca is cb is None
    else:
        assert ca == pytest.approx(cb, rel=1e-9)


def new_state(kind: str) -> FeatureState:
    spec, ref, _ = FEATURES[kind]
    return FeatureState(spec, ref)


def values_of(records: list[dict[str, Any]], name: str) -> list[Any]:
    return [r.get(name, MISSING) for r in records]


@pytest.mark.parametrize("kind", list(FEATURES))
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_column_update_equals_value_by_value(kind: str, data: st.DataObject) -> None:
    spec, _, values = FEATURES[kind]
    records = data.draw(feature_records(spec.name, values))
    one = new_state(kind)
    for v in values_of(records, spec.name):
        one.update(v)
    col = new_state(kind)
    col.update_column(extract_column(records, spec))
    assert one.count == col.count == len(records)
    assert_same_result(one.result(), col.result())


@pytest.mark.parametrize("kind", list(FEATURES))
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_split_and_merge_equals_one_state(kind: str, data: st.DataObject) -> None:
    spec, _, values = FEATURES[kind]
    records = data.draw(feature_records(spec.name, values))
    cut = data.draw(st.integers(0, len(records)))
    whole = new_state(kind)
    whole.update_column(extract_column(records, spec))
    left, right = new_state(kind), new_state(kind)
    left.update_column(extract_column(records[:cut], spec))
    right.update_column(extract_column(records[cut:], spec))
    left += right
    assert_same_result(left.result(), whole.result())
    if whole.sample is not None:  # the value sample is the concatenation, in order
        assert left.sample is not None
        assert left.sample.values().tolist() == whole.sample.values().tolist()


def test_feature_state_counts_against_a_python_oracle() -> None:
    spec, ref, _ = FEATURES["categorical"]
    values = ["a", "b", "ab", "c", "zz", 1, 3, True, 1.0, None, MISSING, [1], "", "ba"]
    st_ = FeatureState(spec, ref)
    for v in values:
        st_.update(v)
    r = st_.result()
    # valid: a b ab c zz 1 3 "" ba (9); missing: None, absent; wrong type: True 1.0 [1]
    assert (r.count, r.missing, r.type_violations) == (14, 2, 3)
    assert r.out_of_domain == 5            # ab, zz, 3, "", ba (categories a b c 1)
    assert r.unseen == 5                   # c, zz, 3, "", ba: not in the reference (a b ab 1)
    assert r.format_violations == 5        # c, zz, 1, 3, "" do not fullmatch [ab]+
    assert r.histogram_labels == ["a", "b", "1", "ab", OTHER]
    assert r.histogram == [1, 1, 1, 1, 5]
    assert r.ratios["unseen_category_ratio"] == 5 / 14
    assert r.ratios["format_violation_ratio"] == 5 / 14
    assert r.ratios["out_of_domain_ratio"] == 5 / 14


def test_cardinality_counts_the_empty_string() -> None:
    spec = FeatureSpec(name="c", type="categorical")
    fs = FeatureState(spec)
    fs.update_column(extract_column([{"c": v} for v in ["", "a", "", "b"]], spec))
    assert fs.result().cardinality == pytest.approx(3.0, abs=0.01)


# ---------------------------------------------------------------- ratios

def test_unseen_category_ratio() -> None:
    ref = FeatureProfile(name="c", type="categorical", count=4, missing=0, category_counts={"a": 3, "b": 1})
    spec = FeatureSpec(name="c", type="categorical")
    fs = FeatureState(spec, ref)
    fs.update_column(extract_column([{"c": v} for v in ["a", "b", "new", "new", None, 7, True, "a"]], spec))
    r = fs.result()
    assert r.unseen == 3  # "new" twice and 7 ("7"); missing and wrong-type values are not unseen
    assert r.ratios["unseen_category_ratio"] == 3 / 8
    # no reference: no unseen ratio at all
    bare = FeatureState(spec)
    bare.update("new")
    assert bare.result().ratios["unseen_category_ratio"] is None
    # a boolean feature never has unseen categories
    b = FeatureState(FeatureSpec(name="c", type="boolean"),
                     FeatureProfile(name="c", type="boolean", count=1, missing=0, category_counts={"true": 1}))
    b.update(False)
    assert b.result().ratios["unseen_category_ratio"] is None


@pytest.mark.parametrize("kind", ["categorical", "string"])
def test_format_violation_ratio(kind: str) -> None:
    spec = FeatureSpec(name="c", type=kind, pattern="[A-Z]{2}")  # type: ignore[arg-type]
    fs = FeatureState(spec)
    values: list[Any] = ["US", "DE", "usa", "U1", "USA", None, True, "GB"]
    fs.update_column(extract_column([{"c": v} for v in values], spec))
    r = fs.result()
    assert r.format_violations == 3  # usa, U1, USA (fullmatch); None missing, True wrong type
    assert r.ratios["format_violation_ratio"] == 3 / 8
    assert FeatureState(FeatureSpec(name="c", type=kind)).result().ratios["format_violation_ratio"] is None


def test_out_of_domain_ratio() -> None:
    num = FeatureSpec(name="x", type="numeric", range={"min": 0, "max": 10})
    fs = FeatureState(num)
    fs.update_column(extract_column([{"x": v} for v in [-1, 0, 10, 10.0001, NAN, "x", 5, -INF]], num))
    assert fs.result().ratios["out_of_domain_ratio"] == 2 / 8
    cat = FeatureSpec(name="c", type="categorical", categories=["a", "b", "3"])
    fc = FeatureState(cat)
    fc.update_column(extract_column([{"c": v} for v in ["a", "c", 3, 4, True, None, "b", "A"]], cat))
    assert fc.result().ratios["out_of_domain_ratio"] == 3 / 8  # c, 4, A


@pytest.mark.parametrize("kind", ["categorical", "string"])
def test_cardinality_of_ten_thousand_distinct_values(kind: str) -> None:
    spec = FeatureSpec(name="c", type=kind)  # type: ignore[arg-type]
    values = [f"v{i}" for i in range(10_000)]
    records = [{"c": v} for v in values + values[:3000]]  # repeats do not count twice
    a, b = FeatureState(spec), FeatureState(spec)
    for i in range(0, len(records), 977):
        a.update_column(extract_column(records[i:i + 977], spec))
    card = a.result().cardinality
    assert card is not None and abs(card - 10_000) <= 0.03 * 10_000
    # merged with an overlapping state: the union has 15,000 distinct values
    b.update_column(extract_column([{"c": f"v{i}"} for i in range(5_000, 15_000)], spec))
    a += b
    merged = a.result().cardinality
    assert merged is not None and abs(merged - 15_000) <= 0.03 * 15_000
    assert FeatureState(spec).result().cardinality is None


# ---------------------------------------------------------------- RecordState


def flags_of(rows: list[tuple[bool, tuple[str, ...], bool, bool, bool, float, float]]) -> RecordFlags:
    names = sorted({r[1] for r in rows}) or [()]
    code = {n: i for i, n in enumerate(names)}
    has_time = np.array([r[4] for r in rows], dtype=bool)
    return RecordFlags(
        duplicate=np.array([r[0] for r in rows], dtype=bool),
        unexpected=np.array([bool(r[1]) for r in rows], dtype=bool),
        late=np.array([r[2] for r in rows], dtype=bool),
        out_of_order=np.array([r[3] for r in rows], dtype=bool),
        has_time=has_time,
        lag=np.where(has_time, np.array([r[5] for r in rows], dtype=float), np.nan),
        time=np.array([r[6] for r in rows], dtype=float),
        unexpected_names=names,
        layout=np.array([code[r[1]] for r in rows], dtype=np.int32),
        head=np.array([r[6] for r in rows], dtype=float),
    )


@settings(max_examples=100, deadline=None)
@given(rows=record_flag_rows, data=st.data())
def test_record_state_split_and_merge_equals_one_state(rows: list[Any], data: st.DataObject) -> None:
    cut = data.draw(st.integers(0, len(rows)))
    f = flags_of(rows)
    whole = RecordState()
    whole.update(f)
    left, right = RecordState(), RecordState()
    left.update(f.take(slice(0, cut)))
    right.update(f.take(slice(cut, len(rows))))
    left += right
    got, want = left.result(), whole.result()
    for key in ("freshness_mean_seconds",):
        g, w = got.pop(key), want.pop(key)
        assert (g is None and w is None) or g == pytest.approx(w, rel=1e-9, abs=1e-9)
    assert got == want
    # and the figures themselves, against the rows
    n = len(rows)
    assert want["records"] == n
    assert want["duplicates"] == sum(r[0] for r in rows)
    assert want["late"] == sum(r[2] for r in rows)
    timed = [r for r in rows if r[4]]
    assert want["missing_event_time"] == n - len(timed)
    assert want["unexpected_fields"] == dict(Counter(name for r in rows for name in r[1]))
    if n:
        assert want["duplicate_ratio"] == sum(r[0] for r in rows) / n
        assert want["out_of_order_ratio"] == sum(r[3] for r in rows) / n
        assert want["unexpected_field_ratio"] == sum(bool(r[1]) for r in rows) / n
    if timed:
        lags = np.array([r[5] for r in timed])
        assert want["freshness_p95_seconds"] == pytest.approx(float(np.percentile(lags, 95)))
        assert want["freshness_max_seconds"] == lags.max()
        assert (want["event_time_min"], want["event_time_max"]) == (min(r[6] for r in timed),
                                                                    max(r[6] for r in timed))
    else:
        assert want["freshness_p95_seconds"] is None and want["event_time_min"] is None


# ---------------------------------------------------------------- DuplicateFilter


def oracle_flags(batches: list[list[Any]]) -> list[list[bool]]:
    seen: set[Any] = set()
    out = []
    for batch in batches:
        flags = []
        for rid in batch:
            flags.append(rid in seen)
            seen.add(rid)
        out.append(flags)
    return out


@settings(max_examples=200, deadline=None)
@given(batches=st.lists(st.lists(record_ids, max_size=30), max_size=12))
def test_duplicate_filter_matches_remember_everything_oracle(batches: list[list[Any]]) -> None:
    # fewer distinct ids (at most 31 + 12) than capacity // 2 = 100: nothing is forgotten
    d = DuplicateFilter(capacity=200)
    assert len({i for b in batches for i in b}) < 100
    got = [d.check(b).tolist() for b in batches]
    assert got == oracle_flags(batches)


def test_duplicate_filter_keeps_one_and_string_one_apart() -> None:
    d = DuplicateFilter(capacity=100)
    assert d.check([1, "1", 1, "1", 2]).tolist() == [False, False, True, True, False]


def test_duplicate_filter_forgets_old_ids_but_remembers_recent_ones() -> None:
    d = DuplicateFilter(capacity=100)
    d.check(list(range(1000)))
    assert d.check([999, 990, 960]).tolist() == [True, True, True]  # within the last capacity // 2
    assert d.check([0, 1]).tolist() == [False, False]                # long forgotten


def test_duplicate_filter_memory_bounded_one_id_at_a_time() -> None:
    d = DuplicateFilter(capacity=100)
    sizes = []
    for i in range(500):
        d.check([f"id{i}"])
        sizes.append(len(d))
    assert max(sizes) <= 100


@settings(max_examples=100, deadline=None)
@given(sizes=st.lists(st.integers(1, 80), max_size=40), repeat=st.integers(0, 5))
@example(sizes=[1] * 120, repeat=0)
def test_duplicate_filter_memory_bounded(sizes: list[int], repeat: int) -> None:
    d = DuplicateFilter(capacity=100)
    fresh = itertools.count()
    for k in sizes:
        batch = [next(fresh) for _ in range(k)]
        batch += batch[:repeat]  # some in-batch repeats take the slow path
        d.check(batch)
        assert len(d) <= d.capacity
