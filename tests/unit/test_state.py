"""State round trips (to_state/from_state through JSON) and the size bounds of windows' state."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.checks import FeatureState, RecordState
from monitor.columns import extract_column
from monitor.reference import build_profile
from monitor.spec import FeatureSpec, StreamSpec
from monitor.stats import ValueSample
from monitor.testing.synthetic import SyntheticFeatures

STREAM = StreamSpec.model_validate({
    "name": "f", "windows": [{"name": "w", "kind": "count", "size": 10}],
    "features": [{"name": "age", "type": "numeric", "range": {"min": 18, "max": 100}},
                 {"name": "country", "type": "categorical", "pattern": "[A-Z]{2}"},
                 {"name": "is_returning", "type": "boolean"},
                 {"name": "coupon_code", "type": "string"}]})
REFERENCE = build_profile(STREAM, lambda: SyntheticFeatures(seed=3).records(3000), source={"kind": "test"})

values = st.one_of(st.none(), st.booleans(), st.integers(-5, 200), st.floats(allow_nan=True, allow_infinity=True),
                   st.sampled_from(["US", "DE", "xx", "", "IN"]))


def _canonical(state: dict[str, Any]) -> dict[str, Any]:
    """The state with the HLL sketch compared by its estimate: DataSketches may serialise the same
    sketch's coupons in another order after a round trip."""
    out = dict(state)
    if out.get("cardinality") is not None:
        from monitor.stats import Cardinality

        out["cardinality"] = Cardinality.from_state(out["cardinality"]).get()
    return out


def _json(state: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(state))  # what a checkpoint store would hand back


@settings(max_examples=60, deadline=None)
@given(rows=st.lists(st.fixed_dictionaries({}, optional={f.name: values for f in STREAM.features}), max_size=60))
def test_feature_state_round_trips(rows: list[dict[str, Any]]) -> None:
    for f in STREAM.features:
        fs = FeatureState(f, REFERENCE.features[f.name])
        fs.update_column(extract_column(rows, f))
        back = FeatureState.from_state(f, _json(fs.to_state()), REFERENCE.features[f.name])
        assert _canonical(back.to_state()) == _canonical(fs.to_state())
        assert back.result() == fs.result()
        # the restored state keeps accumulating exactly like the original
        more = SyntheticFeatures(seed=5).records(20)
        fs.update_column(extract_column(more, f))
        back.update_column(extract_column(more, f))
        assert back.result() == fs.result()


def test_feature_state_rejects_a_foreign_state() -> None:
    fs = FeatureState(FeatureSpec(name="a", type="numeric"))
    try:
        FeatureState.from_state(FeatureSpec(name="b", type="numeric"), fs.to_state())
    except ValueError:
        return
    raise AssertionError("a state of feature 'a' was accepted for feature 'b'")


def test_record_state_round_trips() -> None:
    rs = RecordState()
    assert RecordState.from_state(_json(rs.to_state())).to_state() == rs.to_state()
    rs.count, rs.duplicates, rs.late_excluded = 10, 2, 1
    rs.unexpected_fields.update({"extra": 3})
    rs.lags.update_many(np.array([0.5, 1.5]))
    rs.max_lag, rs.t_min, rs.t_max = 1.5, 100.0, 200.0
    back = RecordState.from_state(_json(rs.to_state()))
    assert back.to_state() == rs.to_state() and back.result() == rs.result()


@settings(max_examples=40, deadline=None)
@given(capacity=st.integers(2, 64), batches=st.lists(st.integers(0, 300), max_size=20))
def test_value_sample_never_exceeds_its_capacity(capacity: int, batches: list[int]) -> None:
    s = ValueSample(capacity=capacity)
    seen = 0
    for n in batches:
        s.update_many(np.arange(seen, seen + n, dtype=float))
        seen += n
        assert s.values().size <= capacity
        assert s.n == seen
        # thinning is systematic: the kept values are exactly the multiples of the stride
        assert np.array_equal(s.values(), np.arange(0, seen, s.stride, dtype=float)[: s.values().size])
