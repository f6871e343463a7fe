"""Column extraction: a batch of decoded records turned into typed numpy columns once,
so every window and check can work vectorised.

Per feature, a :class:`Column` holds one entry per record:

* numeric: ``x`` (float64; NaN where the value is not a usable number) and
  ``status`` (0 valid, 1 missing, 2 wrong type). NaN and +-inf count as missing.
* categorical / boolean / string: ``codes`` (int32 index into ``vocab``, the
  batch's distinct values as strings) with -1 for missing and -2 for wrong type.

Examples
--------
>>> from monitor.spec import FeatureSpec
>>> col = extract_column([{"a": 1}, {"a": None}, {"a": "x"}, {}], FeatureSpec(name="a", type="numeric"))
>>> col.x.tolist()[:1], col.status.tolist()
([1.0], [0, 1, 2, 1])
>>> col = extract_column([{"c": "US"}, {"c": 7}, {"c": True}, {"c": "US"}], FeatureSpec(name="c", type="categorical"))
>>> col.codes.tolist(), col.vocab
([0, 1, -2, 0], ['US', '7'])
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import chain
from operator import itemgetter
from typing import Any

import numpy as np
from numpy.typing import NDArray

from monitor.spec import FeatureSpec

try:  # the compiled kernels (monitor/_kernels.pyx), built by pip install when a C compiler is there
    # By name: import-linter cannot see a compiled module and would count "import monitor._kernels" as
    # an import of the whole package (whose __init__ re-exports the facade at the top of the layers).
    _kernels = importlib.import_module("monitor._kernels")
except ImportError:  # pragma: no cover - the pure-Python path gives the same results, slower
    _kernels = None  # type: ignore[assignment]

__all__ = ["MISSING", "VALID", "WRONG_TYPE", "Column", "Extracted", "NumericBlock", "column_of", "columns_block",
           "compiled", "extract_batch", "extract_column", "extract_columns", "extract_columns_checked"]

VALID, MISSING, WRONG_TYPE = 0, 1, 2

_NUMBER_TYPES = frozenset({int, float, type(None)})


def compiled() -> bool:
    """Whether the compiled kernels are in use (else the pure-Python path: same results, slower)."""
    return _kernels is not None


@dataclass(slots=True)
class Column:
    """One feature's values over a batch (see the module docstring)."""

    kind: str
    x: NDArray[np.float64] | None = None
    status: NDArray[np.int8] | None = None
    codes: NDArray[np.int32] | None = None
    vocab: list[str] | None = None

    def __len__(self) -> int:
        arr = self.x if self.x is not None else self.codes
        return 0 if arr is None else len(arr)

    def take(self, rows: slice | NDArray[np.intp]) -> Column:
        """The rows ``rows`` of this column (the vocabulary is shared)."""
        if self.x is not None:
            return Column(self.kind, x=self.x[rows], status=self.status[rows])  # type: ignore[index]
        return Column(self.kind, codes=self.codes[rows], vocab=self.vocab)  # type: ignore[index]


@dataclass(slots=True)
class NumericBlock:
    """The numeric features of a batch as one array: row ``j`` of ``x`` and ``status`` is feature
    ``names[j]`` (the same values as its :class:`Column`), for updating all of them at once."""

    names: list[str]
    x: NDArray[np.float64]
    status: NDArray[np.int8]

    def take(self, rows: slice | NDArray[np.intp]) -> NumericBlock:
        """The records ``rows`` of every feature."""
        return NumericBlock(self.names, self.x[:, rows], self.status[:, rows])


def extract_column(records: Sequence[dict[str, Any]], spec: FeatureSpec) -> Column:
    """One feature's :class:`Column` over ``records``."""
    name = spec.name
    return _column([r.get(name) for r in records], spec)


def column_of(values: Sequence[Any], spec: FeatureSpec) -> Column:
    """The :class:`Column` of ``spec`` from its values (a columnar batch's list)."""
    return _column(values, spec)


def _column(values: Sequence[Any], spec: FeatureSpec) -> Column:
    if spec.type == "numeric":
        return _numeric(values)
    if spec.type == "boolean":
        return _boolean(values)
    return _categorical(values, spec.type)


def extract_columns(records: Sequence[dict[str, Any]], features: Sequence[FeatureSpec]) -> dict[str, Column]:
    """Every feature's column in one pass over the records (C-level ``itemgetter`` + transpose).

    >>> from monitor.spec import FeatureSpec
    >>> cols = extract_columns([{"a": 1.5, "b": "x"}, {"b": "y"}],
    ...                        [FeatureSpec(name="a", type="numeric"), FeatureSpec(name="b", type="categorical")])
    >>> cols["a"].status.tolist(), cols["b"].vocab
    ([0, 1], ['x', 'y'])
    """
    return extract_columns_checked(records, features)[0]


def extract_columns_checked(records: Sequence[dict[str, Any]],
                            features: Sequence[FeatureSpec]) -> tuple[dict[str, Column], bool]:
    """:func:`extract_columns`, and whether every record holds every feature's key."""
    ex = extract_batch(records, features)
    return ex.columns, ex.complete


@dataclass(slots=True)
class Extracted:
    """What :func:`extract_batch` read from a batch of records."""

    #: Every feature's column, in spec order.
    columns: dict[str, Column]
    #: Whether every record holds every feature's key.
    complete: bool
    #: Each record's id (``rec[id_field]``), when asked for.
    ids: Sequence[Any]
    #: Each record's event-time value (``rec.get(time_field)``), when asked for.
    times: Sequence[Any] | None
    #: The numeric columns as one block (their columns are its rows), when every numeric value
    #: was a number or null.
    block: NumericBlock | None


def extract_batch(records: Sequence[dict[str, Any]], features: Sequence[FeatureSpec], id_field: str | None = None,
                  time_field: str | None = None) -> Extracted:
    """The columns of :func:`extract_columns` and, in the same passes, the records' ids
    (``rec[id_field]``: a missing id raises ``KeyError``) and event times (``rec.get(time_field)``).

    Numeric features are read record by record into one 2-D array: a record's
    values sit together in memory, so reading them record after record is much
    cheaper than one feature at a time across the batch. The ids and times are
    read with the other features' values.
    """
    if not records or not features:
        return Extracted({f.name: _column([], f) for f in features}, True,
                         [r[id_field] for r in records] if id_field is not None else [],
                         [r.get(time_field) for r in records] if time_field is not None else None, None)
    if _kernels is not None:
        fast = _extract_compiled(records, features, id_field, time_field)
        if fast is not None:
            return fast
    numeric = [f for f in features if f.type == "numeric"]
    other = [f for f in features if f.type != "numeric"]
    out: dict[str, Column] = {}
    complete = True
    block = None
    if numeric:
        rows, ok = _rows(records, [f.name for f in numeric])
        complete &= ok
        block = _numeric_block(rows, numeric)
        if block is None:
            columns_n: list[Sequence[Any]] = [rows] if len(numeric) == 1 else list(zip(*rows, strict=True))
            out.update({f.name: _numeric(col) for f, col in zip(numeric, columns_n, strict=True)})
        else:
            out.update({name: Column("numeric", x=block.x[j], status=block.status[j])
                        for j, name in enumerate(block.names)})
    other_names = [f.name for f in other]
    names = [*other_names]
    if id_field is not None:
        names.append(id_field)
    # The time rides along when the first record has one (a stream without times would make
    # every batch take the slow path of _rows).
    carry_time = time_field is not None and time_field in records[0]
    if carry_time:
        names.append(time_field)  # type: ignore[arg-type]
    ids: Sequence[Any] = []
    times: Sequence[Any] | None = None
    if names:
        rows, all_there = _rows(records, names)
        columns: list[Sequence[Any]] = [rows] if len(names) == 1 else list(zip(*rows, strict=True))
        out.update({f.name: _column(col, f) for f, col in zip(other, columns, strict=False)})
        # Which key was missing: a feature's, or the id's or time's?
        complete &= all_there or not other_names or _rows(records, other_names)[1]
        if id_field is not None:
            # Read again when a key was missing, so that a missing id raises as ``rec[id_field]`` does.
            ids = columns[len(other)] if all_there else [r[id_field] for r in records]
        if carry_time:
            times = columns[-1]  # absent keys read as None, as rec.get gives
    if time_field is not None and not carry_time:
        times = [r.get(time_field) for r in records]
    return Extracted({f.name: out[f.name] for f in features}, complete, ids, times, block)


def _extract_compiled(records: Sequence[dict[str, Any]], features: Sequence[FeatureSpec], id_field: str | None,
                      time_field: str | None) -> Extracted | None:
    """:func:`extract_batch` in one compiled pass (``None`` unless ``records`` is a list of dicts)."""
    numeric = tuple(f.name for f in features if f.type == "numeric")
    other = [f for f in features if f.type != "numeric"]
    names = [f.name for f in other]
    if id_field is not None:
        names.append(id_field)
    if time_field is not None:
        names.append(time_field)
    got = _kernels.extract_rows(records, numeric, tuple(names))
    if got is None:
        return None
    x, status, values, absent = got
    if id_field is not None and absent[len(numeric) + len(other)]:
        raise KeyError(id_field)  # as ``rec[id_field]`` does
    out: dict[str, Column] = {name: Column("numeric", x=x[j], status=status[j]) for j, name in enumerate(numeric)}
    out.update({f.name: _column(col, f) for f, col in zip(other, values, strict=False)})
    return Extracted({f.name: out[f.name] for f in features}, not any(absent[:len(numeric) + len(other)]),
                     values[len(other)] if id_field is not None else [],
                     values[-1] if time_field is not None else None,
                     NumericBlock(list(numeric), x, status) if numeric else None)


def columns_block(given: Mapping[str, Sequence[Any]], features: Sequence[FeatureSpec],
                  n: int) -> tuple[dict[str, Column], NumericBlock | None]:
    """The columns of a columnar batch (``given``: name -> ``n`` values; absent names are all null)
    and its numeric columns as one block when the compiled kernels can read them so."""
    numeric = [f.name for f in features if f.type == "numeric"]
    nulls: list[Any] = [None] * n
    got = None
    if _kernels is not None and numeric:
        got = _kernels.numeric_lists([given.get(name, nulls) for name in numeric], n)
    if got is None:
        return {f.name: column_of(given.get(f.name, nulls), f) for f in features}, None
    x, status = got
    out = {name: Column("numeric", x=x[j], status=status[j]) for j, name in enumerate(numeric)}
    out.update({f.name: column_of(given.get(f.name, nulls), f) for f in features if f.type != "numeric"})
    return {f.name: out[f.name] for f in features}, NumericBlock(numeric, x, status)


def _rows(records: Sequence[dict[str, Any]], names: list[str]) -> tuple[list[Any], bool]:
    """Each record's values of ``names`` (a tuple, or the value itself for one name); whether all were present."""
    getter = itemgetter(*names)
    try:
        return list(map(getter, records)), True
    except KeyError:  # some record lacks a feature key: the slower, forgiving path
        return [_get_all(r, getter, names) for r in records], False


def _get_all(rec: dict[str, Any], getter: itemgetter[Any], names: list[str]) -> Any:
    try:
        return getter(rec)
    except KeyError:
        values = tuple(rec.get(n) for n in names)
        return values if len(names) > 1 else values[0]


def _numeric_block(rows: list[Any], features: list[FeatureSpec]) -> NumericBlock | None:
    """The block of numeric columns from per-record value tuples (or values, for one feature);
    ``None`` when some value is not a number or null (then each column is read on its own)."""
    single = len(features) == 1
    values: Iterable[Any] = rows if single else chain.from_iterable(rows)
    if not set(map(type, values)) <= _NUMBER_TYPES:
        return None
    n, k = len(rows), len(features)
    try:  # None -> NaN
        x2 = np.fromiter(rows if single else chain.from_iterable(rows), dtype=float, count=n * k)
    except OverflowError:  # an integer beyond float range
        return None
    x2 = x2.reshape(1, -1) if single else np.ascontiguousarray(x2.reshape(-1, k).T)  # a row per feature
    bad = ~np.isfinite(x2)
    x2[bad] = np.nan
    return NumericBlock([f.name for f in features], x2, bad.astype(np.int8))  # VALID (0) or MISSING (1)


def _numeric(values: Sequence[Any]) -> Column:
    n = len(values)
    if set(map(type, values)) <= _NUMBER_TYPES:
        try:
            x = np.array(values, dtype=float)  # None -> NaN
        except OverflowError:  # an integer beyond float range
            x = None
        if x is not None:
            finite = np.isfinite(x)
            status = np.where(finite, VALID, MISSING).astype(np.int8)
            x[~finite] = np.nan
            return Column("numeric", x=x, status=status)
    x = np.full(n, np.nan)
    status = np.full(n, MISSING, dtype=np.int8)
    for i, v in enumerate(values):
        if v is None:
            continue
        if isinstance(v, bool) or not isinstance(v, int | float):
            status[i] = WRONG_TYPE
            continue
        try:
            f = float(v)
        except OverflowError:
            status[i] = WRONG_TYPE
            continue
        if math.isfinite(f):
            x[i], status[i] = f, VALID
    return Column("numeric", x=x, status=status)


class _Key:
    """Dictionary keys that keep ``True``, ``1`` and ``1.0`` apart (Python hashes them equal)."""

    __slots__ = ()


_STR_OR_NONE = frozenset({str, type(None)})


def _categorical(values: Sequence[Any], kind: str) -> Column:
    if _kernels is not None:
        coded = _kernels.encode_strings(values)
        if coded is not None:  # strings and nulls only
            return Column(kind, codes=coded[0], vocab=coded[1])
    if set(map(type, values)) <= _STR_OR_NONE:
        # The common case, all at C speed: strings (and nulls) keyed as themselves.
        index = {v: i for i, v in enumerate(dict.fromkeys(values))}
        vocab_all = list(index)
        remap = np.empty(len(vocab_all), dtype=np.int32)
        vocab: list[str] = []
        for j, k in enumerate(vocab_all):
            if k is None:
                remap[j] = -1
            else:
                remap[j] = len(vocab)
                vocab.append(k)
        codes = remap[np.fromiter(map(index.__getitem__, values), dtype=np.intp, count=len(values))]
        return Column(kind, codes=codes, vocab=vocab)
    table: dict[Any, int] = {}
    setdefault = table.setdefault
    try:
        codes_l = [setdefault(v if v.__class__ is str else (v.__class__, v), len(table)) for v in values]
    except TypeError:  # an unhashable value (list/object): wrong type, handled one by one
        codes_l = [setdefault(v if v.__class__ is str else (v.__class__, _hashable(v)), len(table)) for v in values]
    keys = list(table)
    vocab = []
    remap = np.empty(len(keys), dtype=np.int32)
    for j, k in enumerate(keys):
        if k.__class__ is str:
            remap[j] = len(vocab)
            vocab.append(k)
            continue
        cls, v = k
        if cls is type(None):
            remap[j] = -1
        elif cls is int and kind != "string":
            remap[j] = len(vocab)
            vocab.append(str(v))
        else:
            remap[j] = -2
    codes = remap[np.asarray(codes_l, dtype=np.intp)] if codes_l else np.empty(0, dtype=np.int32)
    return Column(kind, codes=codes.astype(np.int32, copy=False), vocab=vocab)


def _hashable(v: Any) -> Any:
    try:
        hash(v)
    except TypeError:
        return id(_Key)  # every unhashable value shares one wrong-type key
    return v


def _boolean(values: Sequence[Any]) -> Column:
    codes = np.fromiter((1 if v is True else 0 if v is False else -1 if v is None else -2 for v in values),
                        dtype=np.int32, count=len(values))
    return Column("boolean", codes=codes, vocab=["false", "true"])
