"""Seeded synthetic feature records for the demo, tests and benchmarks.

Matches the features of ``deploy/monitor.yaml``. A :class:`Scenario` switches on
the injected problems: a drift (``age`` mean +8, ``country`` shifted to IN), a
missing-value spike (``income`` missing 30% instead of 1%). :func:`bad_messages`
yields malformed messages with the reason code each must be dead-lettered with.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

__all__ = ["Scenario", "SyntheticFeatures", "bad_messages"]

_COUNTRIES = ["US", "DE", "FR", "GB", "IN"]
_COUNTRY_P = [0.40, 0.20, 0.15, 0.15, 0.10]
_COUNTRY_P_DRIFT = [0.20, 0.12, 0.10, 0.08, 0.50]
_DEVICES = ["mobile", "desktop", "tablet"]
_DEVICE_P = [0.6, 0.3, 0.1]


@dataclass(frozen=True, slots=True)
class Scenario:
    """Which problems to inject."""

    drift: bool = False
    missing_spike: bool = False


class SyntheticFeatures:
    """Generator of feature records; deterministic for a given seed.

    Examples
    --------
    >>> gen = SyntheticFeatures(seed=1)
    >>> rec = gen.record(now=0.0)
    >>> sorted(rec)[:4]
    ['age', 'basket_value', 'country', 'coupon_code']
    >>> SyntheticFeatures(seed=1).record(now=0.0) == rec
    True
    """

    def __init__(self, *, seed: int = 0) -> None:
        self.rng = random.Random(seed)
        self.n = 0

    def record(self, *, now: float, scenario: Scenario = Scenario()) -> dict[str, Any]:
        r = self.rng
        self.n += 1
        age = r.gauss(48.0 if scenario.drift else 40.0, 12.0)
        income_missing = r.random() < (0.30 if scenario.missing_spike else 0.01)
        probs = _COUNTRY_P_DRIFT if scenario.drift else _COUNTRY_P
        return {
            "record_id": f"r{self.n:09d}",
            "event_time": datetime.fromtimestamp(now, tz=UTC).isoformat(timespec="milliseconds"),
            "age": round(min(max(age, 18.0), 100.0), 1),
            "income": None if income_missing else round(math.exp(r.gauss(10.5, 0.5)), 2),
            "tenure_months": r.randint(0, 120),
            "basket_value": round(r.expovariate(1 / 60.0), 2),
            "session_seconds": round(r.lognormvariate(5.0, 0.8), 1),
            "country": r.choices(_COUNTRIES, probs)[0],
            "device": r.choices(_DEVICES, _DEVICE_P)[0],
            "is_returning": r.random() < 0.55,
            "coupon_code": r.choice(["SPRING", "VIP"]) if r.random() < 0.05 else None,
        }

    def records(self, n: int, *, now: float = 0.0, scenario: Scenario = Scenario()) -> list[dict[str, Any]]:
        return [self.record(now=now, scenario=scenario) for _ in range(n)]


def bad_messages(*, seed: int = 0) -> Iterator[tuple[bytes, str]]:
    """Endless ``(message bytes, expected reason code)`` pairs of bad input, cycling kinds.

    >>> [reason for _, (_, reason) in zip(range(3), bad_messages())]
    ['malformed_json', 'non_finite_number', 'missing_id']
    """
    r = random.Random(seed)
    i = 0
    while True:
        i += 1
        kind = (i - 1) % 6
        if kind == 0:
            yield b'{"record_id": "bad%d", "age": 4' % i, "malformed_json"
        elif kind == 1:
            yield b'{"record_id": "bad%d", "age": NaN, "income": 1.0}' % i, "non_finite_number"
        elif kind == 2:
            yield b'{"age": %d, "country": "US"}' % r.randint(18, 90), "missing_id"
        elif kind == 3:
            yield b'"just a string"', "not_an_object"
        elif kind == 4:
            yield b'{"schema_version": 99, "record_id": "bad%d", "age": 30}' % i, "unsupported_schema_version"
        else:
            yield b"\xff\xfe garbage bytes", "malformed_json"
