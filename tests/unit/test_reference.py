"""Reference profiles: building from CSV/JSONL, numpy oracles, save/load, tampering, mismatches."""

from __future__ import annotations

import csv
import math
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from monitor.errors import ProfileError
from monitor.reference import (
    PROFILE_SCHEMA_VERSION,
    ReferenceProfile,
    build_profile,
    build_profile_from_file,
)
from monitor.spec import StreamSpec

BINS = 5


def make_stream(features: list[dict[str, Any]] | None = None, **kw: Any) -> StreamSpec:
    return StreamSpec.model_validate({
        "name": "s", "psi_bins": BINS, "windows": [{"name": "w", "kind": "count", "size": 10}],
        "features": features or [
            {"name": "x", "type": "numeric"},
            {"name": "k", "type": "numeric", "range": {"min": 0, "max": 40}},
            {"name": "c", "type": "categorical"},
            {"name": "b", "type": "boolean"},
        ],
        **kw,
    })


STREAM = make_stream()


def make_rows(n: int = 600, seed: int = 0) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        rows.append({
            "record_id": i,
            "x": None if rng.random() < 0.05 else float(rng.normal(10.0, 3.0)),
            "k": int(rng.integers(0, 50)),  # many ties, some out of range: still profiled
            "c": None if rng.random() < 0.03 else str(rng.choice(["a", "b", "c"], p=[0.6, 0.3, 0.1])),
            "b": bool(rng.random() < 0.4),
        })
    return rows


def write_csv(path: Path, rows: list[dict[str, Any]]) -> Path:
    def cell(v: Any) -> str:
        if v is None:
            return ""
        if isinstance(v, bool):
            return "true" if v else "false"
        return repr(v) if isinstance(v, float) else str(v)

    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["record_id", "x", "k", "c", "b"])
        for r in rows:
            w.writerow([cell(r[c]) for c in ["record_id", "x", "k", "c", "b"]])
    return path


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    with path.open("wb") as fh:
        for i, r in enumerate(rows):
            # missing as null or as an absent key, alternately
            rec = {k: v for k, v in r.items() if not (v is None and i % 2)}
            fh.write(orjson.dumps(rec) + b"\n")
        fh.write(b"\n")  # blank lines are skipped
    return path


@pytest.fixture(scope="module")
def rows() -> list[dict[str, Any]]:
    return make_rows()


@pytest.fixture()
def csv_profile(tmp_path: Path, rows) -> ReferenceProfile:
    return build_profile_from_file(STREAM, write_csv(tmp_path / "ref.csv", rows))


def valid(rows, name: str) -> np.ndarray:
    return np.array([r[name] for r in rows if r[name] is not None], dtype=float)


def np_hist(edges, values) -> list[int]:
    idx = np.searchsorted(np.asarray(edges), values, side="right")
    return np.bincount(idx, minlength=len(edges) + 1).tolist()


def test_csv_and_jsonl_give_the_same_profile(tmp_path: Path, rows) -> None:
    p_csv = build_profile_from_file(STREAM, write_csv(tmp_path / "ref.csv", rows))
    p_json = build_profile_from_file(STREAM, write_jsonl(tmp_path / "ref.jsonl", rows))
    assert p_csv.features == p_json.features
    assert p_csv.profile_version == p_json.profile_version
    assert p_csv.rows == p_json.rows == len(rows)
    assert p_csv.source["format"] == "csv" and p_json.source["format"] == "jsonl"
    assert p_csv.source["sha256"] != p_json.source["sha256"]
    assert len(p_csv.profile_version) == 12


def test_profile_version_changes_with_the_data(tmp_path: Path, rows) -> None:
    a = build_profile_from_file(STREAM, write_csv(tmp_path / "a.csv", rows))
    b = build_profile_from_file(STREAM, write_csv(tmp_path / "b.csv", make_rows(seed=1)))
    assert a.profile_version != b.profile_version


def test_numeric_feature_matches_numpy(csv_profile: ReferenceProfile, rows) -> None:
    x = valid(rows, "x")
    fp = csv_profile.features["x"]
    assert fp.type == "numeric"
    assert fp.count == len(rows)
    assert fp.missing == len(rows) - x.size > 0
    # the sample (200,000 values) holds every value, so the edges are the exact quantiles
    assert fp.bin_edges == np.quantile(x, np.linspace(0, 1, BINS + 1)[1:-1]).tolist()
    assert len(fp.bin_counts) == BINS
    assert fp.bin_counts == np_hist(fp.bin_edges, x)
    assert sum(fp.bin_counts) == x.size
    assert fp.mean == pytest.approx(x.mean(), rel=1e-12)
    assert fp.std == pytest.approx(x.std(ddof=1), rel=1e-9)
    assert (fp.min, fp.max) == (x.min(), x.max())
    assert fp.expected_histogram() == fp.bin_counts


def test_tied_numeric_feature_edges_deduplicated(csv_profile: ReferenceProfile, rows) -> None:
    k = valid(rows, "k")
    fp = csv_profile.features["k"]
    assert fp.bin_edges == sorted(set(np.quantile(k, np.linspace(0, 1, BINS + 1)[1:-1]).tolist()))
    assert fp.bin_counts == np_hist(fp.bin_edges, k)
    assert sum(fp.bin_counts) == k.size == len(rows)
    assert fp.missing == 0


def test_few_distinct_values_collapse_edges() -> None:
    s = make_stream([{"name": "x", "type": "numeric"}])
    p = build_profile(s, lambda: ({"x": float(i % 2)} for i in range(100)), source={"kind": "t"})
    fp = p.features["x"]
    assert fp.bin_edges == [0.0, 1.0]  # quantiles at 0.2..0.8 of a 0/1 sample: 0, 0, 1, 1
    assert fp.bin_counts == [0, 50, 50]


def test_categorical_and_boolean_counts(csv_profile: ReferenceProfile, rows) -> None:
    c = csv_profile.features["c"]
    want = Counter(r["c"] for r in rows if r["c"] is not None)
    assert c.category_counts == dict(want)
    assert c.missing == sum(r["c"] is None for r in rows) > 0
    assert c.category_names() == ["a", "b", "c"]  # most frequent first
    assert c.expected_histogram() == [want["a"], want["b"], want["c"], 0]
    b = csv_profile.features["b"]
    assert b.category_counts == {"false": sum(not r["b"] for r in rows), "true": sum(r["b"] for r in rows)}
    assert b.bin_edges is None and b.mean is None


def test_small_sample_scales_bin_counts(tmp_path: Path, rows) -> None:
    path = write_csv(tmp_path / "ref.csv", rows)
    a = build_profile_from_file(STREAM, path, sample_size=50, seed=3)
    b = build_profile_from_file(STREAM, path, sample_size=50, seed=4)
    x = valid(rows, "x")
    fp = a.features["x"]
    # The sample is deterministic: every 16th valid value (565 values thinned by halving until <= 50 remain).
    sample = x[::16]
    assert x.size == 565 and sample.size == 36
    assert fp.bin_edges == np.quantile(sample, np.linspace(0, 1, BINS + 1)[1:-1]).tolist()
    # bin counts are the sample's, scaled to the valid count: estimates summing to it up to rounding
    assert fp.bin_counts == np.round(np.array(np_hist(fp.bin_edges, sample)) * (x.size / sample.size)).tolist()
    assert abs(sum(fp.bin_counts) - x.size) <= len(fp.bin_counts) / 2
    assert len(fp.bin_edges) <= BINS - 1
    # moments, min and max are over every value, not the sample
    assert fp.mean == pytest.approx(x.mean(), rel=1e-12)
    assert fp.std == pytest.approx(x.std(ddof=1), rel=1e-9)
    assert (fp.min, fp.max, fp.count, fp.missing) == (x.min(), x.max(), len(rows), len(rows) - x.size)
    # the quantile summary is the sample's, standing for every valid value
    summary = fp.quantile_summary()
    assert summary is not None and summary.n == x.size
    assert summary.values.tolist() == np.quantile(sample, np.linspace(0, 1, 1001)).tolist()
    assert a.profile_version == b.profile_version  # deterministic whatever the seed


def test_progress_called(tmp_path: Path) -> None:
    s = make_stream([{"name": "x", "type": "numeric"}])
    seen: list[int] = []
    build_profile(s, lambda: ({"x": float(i)} for i in range(25_000)), source={"kind": "t"},
                  progress=seen.append)
    assert seen == [10_000, 20_000]  # one pass


# ---------------------------------------------------------------- Parquet and the record rate


def with_times(rows: list[dict[str, Any]], step: float = 0.5, start: float = 1_700_000_000.0) -> list[dict[str, Any]]:
    return [{**r, "event_time": start + i * step} for i, r in enumerate(rows)]


def write_parquet(path: Path, rows: list[dict[str, Any]]) -> Path:
    table = pa.table({
        "record_id": pa.array([r["record_id"] for r in rows], pa.int64()),
        # missing x as null and as NaN, alternately: both count as missing
        "x": pa.array([(math.nan if i % 2 else None) if r["x"] is None else r["x"] for i, r in enumerate(rows)],
                      pa.float64()),
        "k": pa.array([r["k"] for r in rows], pa.int64()),
        "c": pa.array([r["c"] for r in rows], pa.string()),
        "b": pa.array([r["b"] for r in rows], pa.bool_()),
        "event_time": pa.array([int(r["event_time"] * 1000) for r in rows], pa.timestamp("ms", tz="UTC")),
    })
    pq.write_table(table, path, row_group_size=128)  # several row groups
    return path


def test_parquet_round_trip_gives_the_csv_profile(tmp_path: Path, rows) -> None:
    timed_rows = with_times(rows)
    p_pq = build_profile_from_file(STREAM, write_parquet(tmp_path / "ref.parquet", timed_rows))
    p_csv = build_profile_from_file(STREAM, write_csv(tmp_path / "ref.csv", rows))
    assert p_pq.features == p_csv.features
    assert p_pq.profile_version == p_csv.profile_version
    assert p_pq.rows == len(rows)
    assert p_pq.source["format"] == "parquet" and len(p_pq.source["sha256"]) == 64
    x = valid(rows, "x")
    assert p_pq.features["x"].missing == len(rows) - x.size
    assert p_pq.features["x"].bin_counts == np_hist(p_pq.features["x"].bin_edges, x)
    # timestamps become event times: 600 records over 299.5 s
    assert p_pq.rate_per_second == pytest.approx(2.0, rel=1e-12)
    assert p_csv.rate_per_second is None  # no event_time column


def test_unreadable_parquet_raises(tmp_path: Path) -> None:
    path = tmp_path / "ref.parquet"
    path.write_text("x\n1\n")
    with pytest.raises(ProfileError, match="not a readable Parquet file"):
        build_profile_from_file(STREAM, path)


def test_rate_per_second_from_event_times(tmp_path: Path, rows) -> None:
    timed_rows = with_times(rows, step=0.25)
    p = build_profile_from_file(STREAM, write_jsonl(tmp_path / "ref.jsonl", timed_rows))
    assert p.rate_per_second == pytest.approx((len(rows) - 1) / (0.25 * (len(rows) - 1)), rel=1e-12)  # 4/s
    # ISO-8601 strings, in any order
    iso = [{**r, "event_time": datetime.fromtimestamp(r["event_time"], tz=UTC).isoformat()}
           for r in reversed(timed_rows)]
    assert build_profile(STREAM, lambda: iter(iso), source={"kind": "t"}).rate_per_second == pytest.approx(4.0)
    # no event times, or a single instant: no rate
    assert build_profile(STREAM, lambda: iter(rows), source={"kind": "t"}).rate_per_second is None
    same = [{**r, "event_time": 5.0} for r in rows]
    assert build_profile(STREAM, lambda: iter(same), source={"kind": "t"}).rate_per_second is None
    assert p.to_dict()["rate_per_second"] == p.rate_per_second
    assert ReferenceProfile.from_dict(p.to_dict()).rate_per_second == p.rate_per_second


def test_csv_epoch_event_times_give_the_rate(tmp_path: Path, rows) -> None:
    timed_rows = with_times(rows, step=0.25)
    path = tmp_path / "ref.csv"
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["record_id", "x", "event_time"])
        for r in timed_rows:
            w.writerow([r["record_id"], "" if r["x"] is None else repr(r["x"]), repr(r["event_time"])])
    p = build_profile_from_file(make_stream([{"name": "x", "type": "numeric"}]), path)
    assert p.rate_per_second == pytest.approx(4.0)


# ---------------------------------------------------------------- save / load


def test_save_load_round_trip(tmp_path: Path, csv_profile: ReferenceProfile) -> None:
    path = csv_profile.save(tmp_path / "deep" / "p.json")
    assert path.is_file()
    loaded = ReferenceProfile.load(path)
    assert loaded == csv_profile
    assert loaded.profile_version == csv_profile.profile_version
    doc = orjson.loads(path.read_bytes())
    assert doc["schema_version"] == PROFILE_SCHEMA_VERSION
    assert doc["profile_version"] == csv_profile.profile_version
    assert not list(tmp_path.glob("deep/*.tmp"))


def test_tampered_count_raises(tmp_path: Path, csv_profile: ReferenceProfile) -> None:
    path = csv_profile.save(tmp_path / "p.json")
    doc = orjson.loads(path.read_bytes())
    doc["features"]["x"]["bin_counts"][0] += 1
    path.write_bytes(orjson.dumps(doc))
    with pytest.raises(ProfileError, match="profile_version"):
        ReferenceProfile.load(path)


def test_tampered_category_raises(tmp_path: Path, csv_profile: ReferenceProfile) -> None:
    doc = csv_profile.to_dict()
    doc["features"]["c"]["category_counts"]["a"] -= 1
    with pytest.raises(ProfileError):
        ReferenceProfile.from_dict(doc)


@pytest.mark.parametrize("version", [2, 0, None, "1"])
def test_wrong_schema_version_raises(csv_profile: ReferenceProfile, version) -> None:
    doc = csv_profile.to_dict()
    doc["schema_version"] = version
    with pytest.raises(ProfileError, match="schema_version"):
        ReferenceProfile.from_dict(doc)


def test_missing_schema_version_and_non_object_raise() -> None:
    with pytest.raises(ProfileError):
        ReferenceProfile.from_dict({"stream": "s"})
    with pytest.raises(ProfileError):
        ReferenceProfile.from_dict([1, 2])  # type: ignore[arg-type]


def test_missing_field_raises(csv_profile: ReferenceProfile) -> None:
    doc = csv_profile.to_dict()
    del doc["features"]["x"]["count"]
    with pytest.raises(ProfileError, match="missing or has a bad field"):
        ReferenceProfile.from_dict(doc)


def test_load_errors(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match="cannot read"):
        ReferenceProfile.load(tmp_path / "absent.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ProfileError, match="not valid JSON"):
        ReferenceProfile.load(bad)


# ---------------------------------------------------------------- check_against


def test_check_against_matching_stream(csv_profile: ReferenceProfile) -> None:
    csv_profile.check_against(STREAM)  # no exception
    # a stream with a subset of the features also matches
    csv_profile.check_against(make_stream([{"name": "x", "type": "numeric"}]))


def test_check_against_missing_feature(csv_profile: ReferenceProfile) -> None:
    other = make_stream([{"name": "x", "type": "numeric"}, {"name": "new", "type": "numeric"}])
    with pytest.raises(ProfileError, match="'new' is not in the profile"):
        csv_profile.check_against(other)


def test_check_against_type_mismatch(csv_profile: ReferenceProfile) -> None:
    other = make_stream([{"name": "x", "type": "categorical"}])
    with pytest.raises(ProfileError, match="'x' is categorical in the spec but numeric in the profile"):
        csv_profile.check_against(other)


# ---------------------------------------------------------------- bad input


def test_empty_csv_raises(tmp_path: Path) -> None:
    path = tmp_path / "empty.csv"
    path.write_text("record_id,x,k,c,b\n")
    with pytest.raises(ProfileError, match="no records"):
        build_profile_from_file(STREAM, path)


def test_empty_jsonl_raises(tmp_path: Path) -> None:
    path = tmp_path / "empty.jsonl"
    path.write_text("\n\n")
    with pytest.raises(ProfileError, match="no records"):
        build_profile_from_file(STREAM, path)


def test_numeric_feature_without_values_raises(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    path.write_text('{"x": null, "k": 1, "c": "a", "b": true}\n')
    with pytest.raises(ProfileError, match="'x' has no valid value"):
        build_profile_from_file(STREAM, path)


@pytest.mark.parametrize("name", ["ref.txt", "ref.xlsx", "ref"])
def test_unsupported_suffix_raises(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_text("x\n1\n")
    with pytest.raises(ProfileError, match="unsupported input format"):
        build_profile_from_file(STREAM, path)


def test_absent_input_raises(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match="does not exist"):
        build_profile_from_file(STREAM, tmp_path / "nope.csv")


def test_bad_jsonl_line_raises_with_line_number(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    path.write_text('{"x": 1}\n{"x": \n')
    with pytest.raises(ProfileError, match=r"r\.jsonl:2: not valid JSON"):
        build_profile_from_file(STREAM, path)
    path.write_text('{"x": 1}\n[1]\n')
    with pytest.raises(ProfileError, match="expected a JSON object"):
        build_profile_from_file(STREAM, path)


def test_csv_type_violations_are_not_profiled(tmp_path: Path) -> None:
    s = make_stream([{"name": "x", "type": "numeric"}, {"name": "b", "type": "boolean"}])
    path = tmp_path / "r.csv"
    path.write_text("x,b\n1,yes\n2,0\nabc,maybe\n,\n3,TRUE\n")
    p = build_profile_from_file(s, path)
    x = p.features["x"]
    assert (x.count, x.missing) == (5, 1)
    assert sum(x.bin_counts) == 3 and (x.min, x.max, x.mean) == (1.0, 3.0, 2.0)
    assert p.features["b"].category_counts == {"false": 1, "true": 2}


def test_csv_non_finite_cells_do_not_poison_the_profile(tmp_path: Path) -> None:
    s = make_stream([{"name": "x", "type": "numeric"}])
    path = tmp_path / "r.csv"
    path.write_text("x\n1\n2\nnan\n3\n4\ninf\n")
    fp = build_profile_from_file(s, path).features["x"]
    assert math.isfinite(fp.mean) and math.isfinite(fp.std) and math.isfinite(fp.max)
    assert all(math.isfinite(e) for e in fp.bin_edges)
