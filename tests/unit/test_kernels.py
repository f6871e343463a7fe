"""The compiled kernels (monitor/_kernels.pyx) give exactly what the pure-Python path gives.

Every comparison runs the same input twice: with the kernels, and with
``monitor.columns._kernels`` set to ``None`` (the path taken where no C compiler
was there at install time).
"""

from __future__ import annotations

import enum
import random
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import monitor.columns as columns
from monitor.columns import Extracted, columns_block, extract_batch, extract_column
from monitor.engine import Monitor
from monitor.records import ColumnBatch, RecordBatch
from monitor.spec import FeatureSpec, MonitorSpec


class Level(enum.IntEnum):
    LOW = 1


class Tag(str):
    pass


NUMBERS: list[Any] = [1.5, None, 3, -0.0, 0.0, float("nan"), float("inf"), -float("inf"), 2**80, np.float64(2.5),
                      Level.LOW]
ODD: list[Any] = ["x", "1.5", True, False, 2**1100, [1], {"a": 1}, b"1", np.int64(4)]
CATEGORIES: list[Any] = ["a", "b", None, 3, True, 2.5, "", [1], Tag("a")]


def pure(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(columns, "_kernels", None)


def test_the_kernels_are_built() -> None:
    assert columns._kernels is not None, (
        "monitor/_kernels.pyx is not compiled: reinstall with `pip install -e .` on a machine with a C compiler "
        "(the pure-Python path works, several times slower)")


def assert_same_columns(got: dict[str, columns.Column], want: dict[str, columns.Column]) -> None:
    assert list(got) == list(want)
    for name in want:
        a, b = got[name], want[name]
        assert a.kind == b.kind and a.vocab == b.vocab, name
        for attr in ("x", "status", "codes"):
            u, v = getattr(a, attr), getattr(b, attr)
            assert (u is None) == (v is None), (name, attr)
            if u is not None:
                assert u.dtype == v.dtype, (name, attr)
                np.testing.assert_array_equal(u, v)
                if attr == "x":  # -0.0 stays -0.0
                    np.testing.assert_array_equal(np.signbit(u), np.signbit(v))


def assert_same(got: Extracted, want: Extracted) -> None:
    assert_same_columns(got.columns, want.columns)
    assert got.complete == want.complete
    assert list(got.ids) == list(want.ids)
    assert (got.times is None) == (want.times is None)
    if want.times is not None:
        assert list(got.times or []) == list(want.times)
    if want.block is not None and got.block is not None:
        assert got.block.names == want.block.names
        np.testing.assert_array_equal(got.block.x, want.block.x)
        np.testing.assert_array_equal(np.signbit(got.block.x), np.signbit(want.block.x))
        np.testing.assert_array_equal(got.block.status, want.block.status)


def messy_records(rng: random.Random, features: list[FeatureSpec], n: int) -> list[dict[str, Any]]:
    out = []
    for i in range(n):
        rec: dict[str, Any] = {"record_id": i}
        if rng.random() < 0.9:
            rec["ts"] = rng.choice(["2024-01-01T00:00:00Z", 5.0, None, "x"])
        for f in features:
            if rng.random() < 0.05:
                continue  # an absent key
            if f.type == "numeric":
                pool = NUMBERS + ODD if rng.random() < 0.2 else NUMBERS
                rec[f.name] = rng.random() if rng.random() < 0.5 else rng.choice(pool)
            else:
                rec[f.name] = rng.choice(CATEGORIES if rng.random() < 0.3 else ["a", "b", None])
        if rng.random() < 0.1:
            rec["extra"] = 1  # an unexpected field
        if rng.random() < 0.2:  # another key order (the kernel then looks keys up)
            items = list(rec.items())
            rng.shuffle(items)
            rec = dict(items)
        out.append(rec)
    return out


VALUES = st.one_of(st.none(), st.floats(), st.integers(min_value=-(2**1100), max_value=2**1100), st.booleans(),
                   st.text(max_size=3), st.sampled_from(["a", "b"]), st.lists(st.integers(), max_size=1))
KEYS = st.sampled_from(["record_id", "ts", "n0", "n1", "c0", "b0", "extra"])
HYP_FEATURES = [FeatureSpec(name="n0", type="numeric"), FeatureSpec(name="n1", type="numeric"),
                FeatureSpec(name="c0", type="categorical"), FeatureSpec(name="b0", type="boolean")]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(records=st.lists(st.dictionaries(KEYS, VALUES, min_size=4), min_size=1, max_size=12))
def test_any_json_like_records_read_as_on_the_pure_path(records: list[dict[str, Any]],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    def read() -> Extracted | str:
        try:
            return extract_batch(records, HYP_FEATURES, "record_id", "ts")
        except KeyError as e:
            return f"KeyError {e}"

    got = read()
    with monkeypatch.context() as m:
        pure(m)
        want = read()
    if isinstance(want, str) or isinstance(got, str):
        assert got == want
    else:
        assert_same(got, want)


@pytest.mark.parametrize("seed", range(8))
def test_extract_batch_equals_the_pure_path(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(seed)
    for _ in range(40):
        features = [FeatureSpec(name=f"n{i}", type="numeric") for i in range(rng.choice([0, 1, 3, 6]))]
        features += [FeatureSpec(name=f"c{i}", type=rng.choice(["categorical", "boolean", "string"]))
                     for i in range(rng.choice([0, 1, 3]))]
        rng.shuffle(features)
        records = messy_records(rng, features, rng.choice([0, 1, 5, 80]))
        batch = RecordBatch(records) if rng.random() < 0.5 else records
        got = extract_batch(batch, features, "record_id", "ts")
        with monkeypatch.context() as m:
            pure(m)
            want = extract_batch(batch, features, "record_id", "ts")
        assert_same(got, want)
        for f in features:  # and against the obvious per-feature read
            with monkeypatch.context() as m:
                pure(m)
                one = extract_column(records, f)
            assert_same_columns({f.name: got.columns[f.name]}, {f.name: one})


def test_a_record_with_the_learnt_length_but_other_keys_is_read_by_lookup(monkeypatch: pytest.MonkeyPatch) -> None:
    features = [FeatureSpec(name="x", type="numeric"), FeatureSpec(name="c", type="categorical")]
    records: list[dict[str, Any]] = [
        {"record_id": 1, "x": 1.0, "c": "a"},
        {"record_id": 2, "x": 2.0, "other": "b"},  # same length, "c" absent: read by lookup, c is None
        {"c": "z", "x": "bad", "record_id": 3},  # same keys, another order
        {"".join(["record", "_id"]): 4, "".join("x"): 4.0, "".join("c"): "d"},  # equal keys, other objects
    ]
    got = extract_batch(records, features, "record_id")
    with monkeypatch.context() as m:
        pure(m)
        want = extract_batch(records, features, "record_id")
    assert_same(got, want)
    assert got.columns["c"].vocab == ["a", "z", "d"] and got.columns["c"].codes.tolist() == [0, -1, 1, 2]
    assert got.columns["x"].status.tolist() == [0, 0, 2, 0] and not got.complete


def test_a_missing_id_raises_as_indexing_does(monkeypatch: pytest.MonkeyPatch) -> None:
    features = [FeatureSpec(name="x", type="numeric")]
    records = [{"record_id": 1, "x": 1.0}, {"x": 2.0}]
    with pytest.raises(KeyError, match="record_id"):
        extract_batch(records, features, "record_id")
    with monkeypatch.context() as m:
        pure(m)
        with pytest.raises(KeyError, match="record_id"):
            extract_batch(records, features, "record_id")


def test_records_that_are_not_dicts_take_the_pure_path() -> None:
    assert columns._kernels is not None
    assert columns._kernels.extract_rows([{"x": 1.0}, ["x"]], ("x",), ()) is None
    assert columns._kernels.extract_rows(({"x": 1.0},), ("x",), ()) is None


@pytest.mark.parametrize("seed", range(4))
def test_columnar_batches_equal_the_pure_path(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(seed)
    features = [FeatureSpec(name=f"n{i}", type="numeric") for i in range(4)]
    features += [FeatureSpec(name="c", type="categorical"), FeatureSpec(name="b", type="boolean")]
    for _ in range(30):
        n = rng.choice([0, 1, 9, 50])
        records = messy_records(rng, features, n)
        given = {f.name: [r.get(f.name) for r in records] for f in features if rng.random() < 0.9}
        got, block = columns_block(given, features, n)
        with monkeypatch.context() as m:
            pure(m)
            want, none = columns_block(given, features, n)
        assert none is None
        assert_same_columns(got, want)
        if block is None:  # only a number of a subclass sends a columnar batch to the pure path
            assert any(isinstance(v, int | float) and type(v) not in (int, float, bool)
                       for name, col in given.items() if name.startswith("n") for v in col)
            continue
        for j, name in enumerate(block.names):
            np.testing.assert_array_equal(block.x[j], got[name].x)
            np.testing.assert_array_equal(block.status[j], got[name].status)


def spec() -> MonitorSpec:
    return MonitorSpec.model_validate({
        "version": 1, "name": "k",
        "streams": [{
            "name": "s", "time_field": "ts", "allow_extra_fields": False,
            "windows": [{"name": "w50", "kind": "count", "size": 50}, {"name": "t5", "kind": "time", "seconds": 5}],
            "features": [{"name": "n0", "type": "numeric", "range": {"min": 0, "max": 1}},
                         {"name": "n1", "type": "numeric"},
                         {"name": "c0", "type": "categorical", "categories": ["a", "b"]}],
        }],
    })


def test_the_engine_reports_the_same_with_and_without_kernels(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(7)
    features = spec().streams[0].features
    batches = []
    for b in range(12):
        records = messy_records(rng, list(features), 40)
        for i, r in enumerate(records):
            r["record_id"] = b * 100 + i
            r["ts"] = 1_700_000_000 + b + i / 100 if rng.random() < 0.95 else None
        batches.append(records)

    def run() -> list[dict[str, Any]]:
        engine = Monitor(spec(), clock=lambda: 1_700_000_020.0)
        out = []
        for i, records in enumerate(batches):
            batch: Any = records
            if i % 3 == 2:  # some as columnar messages
                names = {k for r in records for k in r}
                batch = ColumnBatch({k: [r.get(k) for r in records] for k in sorted(names)})
            out += [r.to_dict() for r in engine.process("s", batch)]
        return out + [r.to_dict() for r in engine.close()]

    got = run()
    with monkeypatch.context() as m:
        pure(m)
        want = run()
    assert got == want and len(got) > 5


class Loud(float):
    def __float__(self) -> float:
        return 99.0


class DefaultsToZero(dict):  # type: ignore[type-arg]
    def __missing__(self, key: str) -> float:
        return 0.0


class Backwards(list):  # type: ignore[type-arg]
    def __iter__(self) -> Any:
        return iter(list.__getitem__(self, slice(None, None, -1)))


@pytest.mark.parametrize("records", [
    [{"record_id": 1, "x": Loud(3.0)}, {"record_id": 2, "x": 1.0}],  # float() calls its __float__
    [{"record_id": 1, "x": Level.LOW}, {"record_id": 2, "x": np.float64(2.5)}],
    [DefaultsToZero(record_id=1), {"record_id": 2, "x": 1.0}],  # __missing__ fills the absent x
    Backwards([{"record_id": 1, "x": 1.0}, {"record_id": 2, "x": "b"}]),
], ids=["own-float", "number-subclasses", "dict-subclass", "list-subclass"])
def test_what_could_run_user_code_takes_the_pure_path(records: list[dict[str, Any]],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    features = [FeatureSpec(name="x", type="numeric")]
    got = extract_batch(records, features, "record_id")
    with monkeypatch.context() as m:
        pure(m)
        want = extract_batch(records, features, "record_id")
    assert_same(got, want)


def test_a_colliding_key_that_misbehaves_neither_crashes_nor_is_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    features = [FeatureSpec(name="x", type="numeric")]
    records: list[dict[Any, Any]] = [{"record_id": 0, "x": 1.0}]

    armed = []

    class Shrinks:  # shares "x"'s hash; comparing it (once armed) empties the batch list
        def __hash__(self) -> int:
            return hash("x")

        def __eq__(self, other: object) -> bool:
            if armed:
                records.clear()
            return False

    class Raises(Shrinks):
        __hash__ = Shrinks.__hash__

        def __eq__(self, other: object) -> bool:
            if armed:
                raise RuntimeError("no comparing me")
            return False

    records += [{Shrinks(): 1, "record_id": 1, "x": 2.0, "z": 0}] + [{"record_id": i, "x": 3.0} for i in range(2, 50)]
    raising = [{"record_id": 0, "x": 1.0}, {Raises(): 1, "record_id": 1, "x": 2.0, "z": 0}]
    armed.append(True)
    got = extract_batch(records, features, "record_id")  # the kernel owns every record for the pass
    assert got.columns["x"].status.tolist() == [0] * 50
    with pytest.raises(RuntimeError, match="no comparing me"):  # as indexing the record raises
        extract_batch(raising, features, "record_id")
    with monkeypatch.context() as m, pytest.raises(RuntimeError, match="no comparing me"):
        pure(m)
        extract_batch(raising, features, "record_id")
