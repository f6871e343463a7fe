"""Event times: epoch seconds from numbers or ISO-8601 strings (vectorised), and back to ISO-8601.

Every event time streamdq reads goes through :func:`parse_times`; every time it
writes (window bounds, alert times) through :func:`iso`.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from datetime import UTC, datetime
from functools import lru_cache
from operator import methodcaller
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = ["MAX_EPOCH", "MIN_EPOCH", "iso", "iso_seconds", "parse_times"]

#: Event times outside years 1..9999 (e.g. epoch milliseconds sent as seconds) are invalid.
MIN_EPOCH, MAX_EPOCH = -62135596800.0, 253402300799.0
_NUMBER_TYPES = frozenset({int, float, type(None)})
_fromiso = datetime.fromisoformat


def iso_seconds(s: str) -> float:
    """Epoch seconds of an ISO-8601 string (no zone = UTC); NaN if it is not one."""
    try:
        dt = _fromiso(s)
    except ValueError:
        return math.nan
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


_UTC_SUFFIXES = ("+00:00", "Z")


def _utc_iso_fast(values: Sequence[Any]) -> NDArray[np.float64] | None:
    """Vectorised parse when every value is an ISO string ending in the same UTC suffix."""
    first = values[0]
    for suffix in _UTC_SUFFIXES:
        if first.endswith(suffix):
            break
    else:
        return None
    exact = _iso_fixed_width(values, suffix)
    if exact is not None:
        return exact
    if not all(map(methodcaller("endswith", suffix), values)):
        return None
    cut = len(suffix)
    if first[10:11] != "T" or min(map(len, values)) < 19 + cut:  # only full date-times take this path
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # numpy warns (not fails) on odd inputs: take the slow path
            stamps = np.array([v[:-cut] for v in values], dtype="datetime64[us]")
    except (ValueError, TypeError, Warning):
        return None
    if np.isnat(stamps).any():  # "NaT" parses; it is no time
        return None
    return stamps.astype(np.int64) / 1e6


_DAYS_IN_MONTH = np.array([31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31])
_ISO_LAYOUT = "dddd-dd-ddTdd:dd:dd"


@lru_cache(maxsize=16)
def _iso_template(body: int, suffix: str) -> tuple[NDArray[np.uint8], NDArray[np.uint8], NDArray[np.float32]]:
    """Per character of ``YYYY-MM-DDTHH:MM:SS[.f]`` + ``suffix`` + line break: the lowest code
    allowed, the span above it (9 for a digit, 0 for a fixed character) and the weight of each
    digit in the fields year, month, day, hour, minute, second, microsecond."""
    layout = (_ISO_LAYOUT + ("." + "d" * (body - 20) if body > 19 else "") + suffix + "\n").encode("ascii")
    codes = np.frombuffer(layout, dtype=np.uint8)
    is_digit = codes == ord("d")
    lowest = np.where(is_digit, ord("0"), codes).astype(np.uint8)
    span = np.where(is_digit, 9, 0).astype(np.uint8)
    weights = np.zeros((len(layout), 7), dtype=np.float32)
    for k, (at, size) in enumerate(((0, 4), (5, 2), (8, 2), (11, 2), (14, 2), (17, 2), (20, body - 20))):
        for j in range(size):
            weights[at + j, k] = 10.0 ** (size - 1 - j + (6 - size if k == 6 else 0))
    for a in (lowest, span, weights):
        a.flags.writeable = False
    return lowest, span, weights


def _iso_fixed_width(values: Sequence[str], suffix: str) -> NDArray[np.float64] | None:
    """Epoch seconds when every value is ``YYYY-MM-DDTHH:MM:SS[.f{1,6}]`` + ``suffix``, all of one
    length, parsed as a matrix of ASCII codes; ``None`` (no decision) for anything else.

    The same microseconds as numpy's ``datetime64[us]`` parser, several times faster. Only
    plainly valid fields pass (year >= 1, a real day of the month, hour < 24, minute and
    second < 60); the rest is left to the general parsers.
    """
    n = len(values)
    width = len(values[0])
    body = width - len(suffix)
    if body != 19 and not 21 <= body <= 26:
        return None
    try:  # one line per value
        raw = "\n".join(values).encode("ascii") + b"\n"
    except UnicodeEncodeError:
        return None
    if len(raw) != n * (width + 1):
        return None
    # Every row of the matrix is checked against the template below, which has one line break, at
    # its end: then the text has no other, each value is one row, and every value is ``width`` long.
    c = np.frombuffer(raw, dtype=np.uint8).reshape(n, width + 1)
    lowest, span, weights = _iso_template(body, suffix)
    digits = c - lowest  # a digit's value, 0 at a fixed character; wraps around below the lowest code
    if not (digits <= span).all():  # digits where digits belong, the fixed characters elsewhere
        return None
    # Each field is a weighted sum of its digits: one small matrix product (exact in float32).
    fields = (digits.astype(np.float32) @ weights).astype(np.int64)
    year, month, day, hour, minute, second, micro = fields.T
    if not ((year >= 1).all() and ((month >= 1) & (month <= 12)).all() and (hour < 24).all()
            and (minute < 60).all() and (second < 60).all()):
        return None
    leap = (year % 4 == 0) & ((year % 100 != 0) | (year % 400 == 0))
    if not ((day >= 1) & (day <= _DAYS_IN_MONTH[month - 1] + (leap & (month == 2)))).all():
        return None
    # Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil).
    y = year - (month <= 2)
    era = y // 400
    yoe = y - era * 400
    doy = (153 * ((month + 9) % 12) + 2) // 5 + day - 1
    days = era * 146097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 719468
    us = (days * 86400 + hour * 3600 + minute * 60 + second) * 1_000_000 + micro
    return np.asarray(us / 1e6, dtype=np.float64)


def iso(ts: float) -> str:
    """Epoch seconds as ISO-8601 UTC with milliseconds (clamped to years 1..9999).

    >>> iso(0.0)
    '1970-01-01T00:00:00.000Z'
    """
    ts = min(max(ts, MIN_EPOCH), MAX_EPOCH)
    return datetime.fromtimestamp(ts, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _in_range(t: NDArray[np.float64]) -> NDArray[np.float64]:
    with np.errstate(invalid="ignore"):
        t[~((t >= MIN_EPOCH) & (t <= MAX_EPOCH))] = np.nan  # also NaN and +-inf
    return t


def parse_times(values: Sequence[Any]) -> NDArray[np.float64]:
    """Epoch seconds of event-time values (numbers or ISO-8601 strings); NaN where absent or invalid.

    >>> parse_times(["1970-01-01T00:01:00Z", 5, None, "1970-01-01T00:00:01.5+00:00", "x"]).tolist()
    [60.0, 5.0, nan, 1.5, nan]
    """
    types = set(map(type, values))
    if types <= _NUMBER_TYPES:
        try:
            t = np.array(values, dtype=float)
        except OverflowError:
            t = None
        if t is not None:
            return _in_range(t)
    elif types == {str}:
        fast = _utc_iso_fast(values)
        if fast is not None:
            return _in_range(fast)
    out = np.full(len(values), np.nan)
    for i, v in enumerate(values):
        if v.__class__ is str:
            out[i] = iso_seconds(v)
        elif isinstance(v, int | float) and not isinstance(v, bool):
            try:
                f = float(v)
            except OverflowError:
                continue
            if math.isfinite(f):
                out[i] = f
    return _in_range(out)
