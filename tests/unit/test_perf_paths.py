"""The engine's fast paths give exactly what the general paths give.

Each fast path (row-wise numeric extraction, fixed-width ISO-8601 parsing, the
unexpected-field check by record length, comparison-based binning, merged slice
summaries) is checked against the slower, obvious computation on messy inputs.
"""

from __future__ import annotations

import random
from bisect import bisect_right
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest

import monitor.stream.engine as engine_module
from monitor.checks import FeatureState
from monitor.columns import Column, extract_column, extract_columns_checked
from monitor.engine import Monitor
from monitor.spec import FeatureSpec, MonitorSpec
from monitor.stats import BinnedCounts
from monitor.times import MAX_EPOCH, MIN_EPOCH, parse_times

NUMBERS: list[Any] = [1.5, None, 3, -0.0, 0.0, 1.0, float("nan"), float("inf"), -float("inf"), 2**80, 7]
ODD: list[Any] = ["x", "1.5", True, False, 2**1100, [1], {"a": 1}, b"1"]
CATEGORIES: list[Any] = ["a", "b", None, 3, True, 2.5, "", [1]]


def random_records(rng: random.Random, features: list[FeatureSpec], n: int, messy: bool) -> list[dict[str, Any]]:
    out = []
    for _ in range(n):
        rec: dict[str, Any] = {}
        for f in features:
            if messy and rng.random() < 0.05:
                continue  # absent key
            if f.type == "numeric":
                pool = NUMBERS + ODD if messy and rng.random() < 0.2 else NUMBERS
                rec[f.name] = rng.random() if rng.random() < 0.5 else rng.choice(pool)
            else:
                rec[f.name] = rng.choice(CATEGORIES if messy else ["a", "b", None])
        out.append(rec)
    return out


@pytest.mark.parametrize("seed", range(6))
def test_extraction_equals_the_per_feature_path(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(60):
        features = [FeatureSpec(name=f"n{i}", type="numeric") for i in range(rng.choice([0, 1, 2, 4]))]
        features += [FeatureSpec(name=f"c{i}", type=rng.choice(["categorical", "boolean", "string"]))
                     for i in range(rng.choice([0, 1, 2]))]
        rng.shuffle(features)
        records = random_records(rng, features, rng.choice([0, 1, 7, 60]), messy=rng.random() < 0.5)
        cols, complete = extract_columns_checked(records, features)
        assert list(cols) == [f.name for f in features]
        assert complete == all(f.name in r for r in records for f in features)
        for f in features:
            got, want = cols[f.name], extract_column(records, f)
            assert got.kind == want.kind and got.vocab == want.vocab
            for attr in ("x", "status", "codes"):
                a, b = getattr(got, attr), getattr(want, attr)
                assert (a is None) == (b is None)
                if a is not None:
                    assert a.dtype == b.dtype
                    np.testing.assert_array_equal(a, b)


def numpy_iso(values: list[str]) -> list[float]:
    """The oracle: numpy's own datetime64 parser on each string without its UTC suffix."""
    out = []
    for v in values:
        cut = 1 if v.endswith("Z") else 6
        t = float(np.array([v[:-cut]], dtype="datetime64[us]").astype(np.int64)[0] / 1e6)
        out.append(t if MIN_EPOCH <= t <= MAX_EPOCH else np.nan)
    return out


def random_iso(rng: random.Random, digits: int, suffix: str) -> str:
    t = datetime(1, 1, 1, tzinfo=UTC) + timedelta(seconds=rng.uniform(0, 3.15e11))
    frac = "." + "".join(rng.choice("0123456789") for _ in range(digits)) if digits else ""
    return f"{t.year:04d}" + t.strftime("-%m-%dT%H:%M:%S") + frac + suffix


@pytest.mark.parametrize("digits", range(7))
def test_fixed_width_iso_times_equal_numpys_parser(digits: int) -> None:
    rng = random.Random(digits)
    for _ in range(40):
        suffix = rng.choice(["+00:00", "Z"])
        values = [random_iso(rng, digits, suffix) for _ in range(rng.choice([1, 3, 50]))]
        np.testing.assert_array_equal(parse_times(values), numpy_iso(values))


ODD_TIMES = ["2024-02-29T00:00:00+00:00", "2023-02-29T00:00:00+00:00", "2100-02-29T00:00:00+00:00",
             "2000-02-29T12:00:00.5+00:00", "0000-01-01T00:00:00+00:00", "2024-13-01T00:00:00+00:00",
             "2024-01-01T24:00:00+00:00", "2024-01-01T23:59:60+00:00", "2024-01-01 23:59:59+00:00",
             "2024-01-01T23:59:59.1234567+00:00", "NaT+00:00", "2024-1-01T23:59:59+00:00",
             "1969-12-31T23:59:59.999999Z", "9999-12-31T23:59:59.999+00:00", "2024-01-01T00:00:00+01:00",
             "2024-00-10T00:00:00+00:00", "2024-04-31T00:00:00+00:00", "2024-01-01T00:00:0a+00:00",
             "\uff12\uff10\uff12\uff14-01-01T00:00:00+00:00", "x"]  # full-width digits


@pytest.mark.parametrize("odd", ODD_TIMES)
def test_odd_iso_times_parse_as_before(odd: str) -> None:
    """Invalid or unusual strings leave the fast path and get what the general parser gives."""
    good = "2024-01-01T00:00:00+00:00"
    for values in ([odd], [odd, odd], [good, odd], [odd, good]):
        expected = []
        for v in values:
            try:
                dt = datetime.fromisoformat(v)
            except ValueError:
                expected.append(np.nan)
                continue
            ts = dt.replace(tzinfo=dt.tzinfo or UTC).timestamp()
            expected.append(ts if MIN_EPOCH <= ts <= MAX_EPOCH else np.nan)
        np.testing.assert_array_equal(parse_times(values), expected)


def spec_with(**stream: Any) -> MonitorSpec:
    return MonitorSpec.model_validate({"version": 1, "name": "t", "streams": [{
        "name": "s", "windows": [{"name": "w", "kind": "count", "size": 10}],
        "features": [{"name": "x", "type": "numeric"}, {"name": "c", "type": "categorical"}], **stream}]})


@pytest.mark.parametrize("extra", [
    {},  # all known
    {"surprise": 1},  # one more field
])
def test_unexpected_fields_are_seen_whatever_the_record_length(extra: dict[str, Any]) -> None:
    """A record trading a known optional field (its event time) for an unknown one keeps its length:
    the unknown one is still reported."""
    engine = Monitor(spec_with(), clock=lambda: 0.0)
    records: list[dict[str, Any]] = []
    for i in range(10):
        rec: dict[str, Any] = {"record_id": i, "x": 1.0, "c": "a"}
        if i % 2:
            rec["event_time"] = float(i)
        else:
            rec["other"] = 1  # same length as the timed records
        rec.update(extra)
        records.append(rec)
    [report] = engine.process("s", records)
    fields = {"other": 5, **({"surprise": 10} if extra else {})}
    assert report.records["unexpected_fields"] == fields
    assert report.records["unexpected_field_ratio"] == (1.0 if extra else 0.5)


def test_records_with_only_known_fields_have_none_unexpected() -> None:
    engine = Monitor(spec_with(), clock=lambda: 0.0)
    records = [{"record_id": i, "x": 1.0, "c": "a", **({"event_time": 1.0} if i % 3 else {}),
                **({"schema_version": 1} if i % 2 else {})} for i in range(10)]
    [report] = engine.process("s", records)
    assert report.records["unexpected_field_ratio"] == 0.0 and report.records["unexpected_fields"] == {}


@pytest.mark.parametrize("n_edges", [0, 1, 3, 9, 64, 65, 200])
def test_binning_equals_bisect(n_edges: int) -> None:
    rng = np.random.default_rng(n_edges)
    edges = sorted(set(np.round(rng.normal(size=n_edges), 1).tolist()))
    x = np.round(rng.normal(size=2000), 1)
    x[::50], x[::77], x[::91] = np.nan, np.inf, -np.inf
    h = BinnedCounts(edges)
    h.update_many(x)
    h.update_finite(x[np.isfinite(x)][:100])
    expected = [0] * (len(edges) + 1)
    for v in [*x.tolist(), *x[np.isfinite(x)][:100].tolist()]:
        expected[bisect_right(edges, v)] += 1
    assert h.counts == expected


def test_a_batch_split_by_a_count_window_is_merged_not_summarised_again(monkeypatch: pytest.MonkeyPatch) -> None:
    """With a count and a time window, the time pane gets the batch as the merge of the count
    window's slices: the same report as one window alone."""
    windows = [{"name": "c7", "kind": "count", "size": 7}, {"name": "t100", "kind": "time", "seconds": 100}]
    both = spec_with(windows=windows)
    alone = spec_with(windows=windows[1:])
    rng = random.Random(1)
    records = [{"record_id": i, "event_time": float(i), "x": rng.gauss(0, 1), "c": rng.choice("ab")}
               for i in range(30)]
    merged: list[int] = []
    original = engine_module.covering_slices

    def spy(memo: dict[Any, list[Any]], n: int) -> Any:
        parts = original(memo, n)
        merged.append(0 if parts is None else len(parts))
        return parts

    monkeypatch.setattr(engine_module, "covering_slices", spy)
    e1, e2 = Monitor(both, clock=lambda: 0.0), Monitor(alone, clock=lambda: 0.0)
    got = [r for r in e1.process("s", records) + e1.close() if r.window["name"] == "t100"]
    want = e2.process("s", records) + e2.close()
    assert merged == [5]  # slices of 7, 7, 7, 7 and 2 rows
    assert [r.count for r in got] == [r.count for r in want] == [30]
    g, w = got[0].features["x"], want[0].features["x"]
    assert g.histogram == w.histogram and g.count == w.count
    assert g.moments is not None and w.moments is not None
    for k in ("count", "min", "max"):
        assert g.moments[k] == w.moments[k]
    assert g.moments["mean"] == pytest.approx(w.moments["mean"], rel=1e-12)
    assert g.moments["std"] == pytest.approx(w.moments["std"], rel=1e-12)


@pytest.mark.parametrize(("extra", "unexpected"), [
    ({}, {}),
    ({"schema_version": 1}, {}),
    ({"surprise": 1}, {"surprise": 1}),
    ({"event_time": None}, {}),  # a null time is still the time field
])
def test_unexpected_fields_with_every_record_timed(extra: dict[str, Any], unexpected: dict[str, int]) -> None:
    engine = Monitor(spec_with(), clock=lambda: 0.0)
    records: list[dict[str, Any]] = [{"record_id": i, "event_time": float(i), "x": 1.0, "c": "a"} for i in range(10)]
    records[4].update(extra)
    [report] = engine.process("s", records)
    assert report.records["unexpected_fields"] == unexpected


def test_extract_batch_reads_ids_and_times_like_indexing() -> None:
    from monitor.columns import extract_batch

    features = [FeatureSpec(name="x", type="numeric"), FeatureSpec(name="c", type="categorical")]
    records: list[dict[str, Any]] = [{"id": 1, "t": 5, "x": 1.0, "c": "a"}, {"id": None, "x": 2.0, "c": "b"},
                                     {"id": "z", "c": "b", "t": None}]
    ex = extract_batch(records, features, "id", "t")
    assert list(ex.ids) == [1, None, "z"] and not ex.complete and list(ex.times or []) == [5, None, None]
    assert ex.columns["x"].status.tolist() == [0, 0, 1]  # type: ignore[union-attr]
    ex = extract_batch(records[1:2], features, "id", "t")  # the time not in the first record: not carried
    assert list(ex.ids) == [None] and ex.complete and list(ex.times or []) == [None]
    ex = extract_batch(records[:2], features[1:], "id", "t")  # only the time is missing somewhere
    assert ex.complete and list(ex.times or []) == [5, None]
    ex = extract_batch(records[:1], features[1:], "id")
    assert list(ex.ids) == [1] and ex.complete and ex.times is None
    with pytest.raises(KeyError):
        extract_batch([{"x": 1.0, "c": "a"}], features, "id")
    with pytest.raises(KeyError):
        extract_batch([{"id": 1, "t": 1, "x": 1.0, "c": "a"}, {"t": 1, "x": 1.0}], features, "id", "t")


@pytest.mark.parametrize("seed", range(4))
def test_block_update_equals_updates_per_column(seed: int) -> None:
    """FeatureState.update_block gives exactly what update_column gives, row by row."""
    from monitor.reference import FeatureProfile

    rng = np.random.default_rng(seed)
    k, n = 4, 300
    specs = [FeatureSpec(name=f"n{j}", type="numeric", range={"min": -1.0, "max": 1.0} if j % 2 else None)
             for j in range(k)]
    x = rng.normal(size=(k, n)) * (1 + np.arange(k))[:, None]
    status = np.zeros((k, n), dtype=np.int8)
    status[rng.random((k, n)) < 0.05] = 1
    status[rng.random((k, n)) < 0.02] = 2
    status[2] = 1  # a feature without a valid value
    x[status != 0] = np.nan
    edges = [sorted(rng.normal(size=m).tolist()) for m in (9, 9, 3, 70)]
    profiles = [FeatureProfile(name=s.name, type="numeric", count=10, missing=0, bin_edges=e,
                               bin_counts=[1] * (len(e) + 1))
                for s, e in zip(specs, edges, strict=True)]
    block = [FeatureState(s, p) for s, p in zip(specs, profiles, strict=True)]
    one = [FeatureState(s, p) for s, p in zip(specs, profiles, strict=True)]
    FeatureState.update_block(block, x, status)
    FeatureState.update_block(block, x[:, :7], status[:, :7])  # a second, short block
    for j, state in enumerate(one):
        state.update_column(Column("numeric", x=x[j], status=status[j]))
        state.update_column(Column("numeric", x=x[j, :7], status=status[j, :7]))
    for a, b in zip(block, one, strict=True):
        ra, rb = a.result(), b.result()
        assert (ra.count, ra.missing, ra.type_violations, ra.out_of_domain) == \
               (rb.count, rb.missing, rb.type_violations, rb.out_of_domain)
        assert ra.histogram == rb.histogram
        assert a.sample is not None and b.sample is not None
        np.testing.assert_array_equal(a.sample.values(), b.sample.values())
        if rb.moments is None:
            assert ra.moments is None
            continue
        assert ra.moments is not None
        assert ra.moments == rb.moments


@pytest.mark.parametrize("values", [
    # Lengths that add up: one value a character short, the next one long.
    ["2024-01-01T00:00:00.000+00:00", "2024-01-01T00:00:00.000+00:0", "02024-01-01T00:00:00.000+00:00"],
    # A line break inside a value.
    ["2024-01-01T00:00:00+00:00", "2024-01-01T00:00:00+00:00\n2024-01-01T00:00:00+00:00", ""],
    ["2024-01-01T00:00:00+00:00\n", "024-01-01T00:00:00+00:00"],
])
def test_values_that_only_line_up_together_are_not_times(values: list[str]) -> None:
    expected = []
    for v in values:
        try:
            expected.append(datetime.fromisoformat(v).timestamp())
        except ValueError:
            expected.append(np.nan)
    np.testing.assert_array_equal(parse_times(values), expected)
