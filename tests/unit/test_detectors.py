"""River change detectors on per-window aggregates: each finds a shift, none fires on a flat series."""

from __future__ import annotations

import random

import pytest

from monitor.detectors import DETECTORS, ChangeDetectors


@pytest.mark.parametrize("name", sorted(DETECTORS))
def test_a_shift_of_the_series_is_flagged_soon_after_it_starts(name: str) -> None:
    rng = random.Random(3)
    cd = ChangeDetectors([name])
    fired = [bool(cd.update(("w", "x", "mean"), rng.gauss(0, 1) + (8.0 if i >= 100 else 0.0))) for i in range(140)]
    assert not any(fired[:100]), f"{name} fired before the shift"
    first = fired.index(True)
    assert 100 <= first <= 115, f"{name} flagged the shift at point {first}"


@pytest.mark.parametrize("name", ["adwin", "page_hinkley"])
def test_a_stationary_series_is_left_alone(name: str) -> None:
    rng = random.Random(5)
    cd = ChangeDetectors([name])
    assert sum(bool(cd.update(("w", "x", "mean"), rng.gauss(0, 1))) for _ in range(2000)) == 0


def test_series_are_independent_and_unknown_detectors_are_refused() -> None:
    cd = ChangeDetectors(["adwin"])
    for _ in range(60):
        cd.update(("w", "a", "mean"), 0.0)
    assert cd.update(("w", "b", "mean"), 100.0) == []  # a new series starts fresh
    assert cd.update(("w", "a", "mean"), float("nan")) == []  # missing points are skipped
    with pytest.raises(ValueError, match="unknown detector"):
        ChangeDetectors(["cusum"])
