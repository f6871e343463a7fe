"""pandas DataFrames as records: the notebook side of :class:`monitor.Monitor` (pandas is optional)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["frame_records"]


def frame_records(frame: pd.DataFrame) -> Iterator[dict[str, Any]]:
    """The rows of ``frame`` as records (one field per column), as a worker would decode them.

    Missing values (``NaN``, ``None``, ``NaT``, ``pd.NA``) become ``None``; datetime columns become
    epoch seconds (naive ones are taken as UTC); numpy scalars become Python numbers.

    >>> import pandas as pd
    >>> df = pd.DataFrame({"id": [1, 2], "x": [0.5, None],
    ...                    "t": pd.to_datetime(["1970-01-01T00:01:00", None])})
    >>> list(frame_records(df))
    [{'id': 1, 'x': 0.5, 't': 60.0}, {'id': 2, 'x': None, 't': None}]
    """
    import pandas as pd

    columns: dict[str, list[Any]] = {}
    for name in frame.columns:
        col = frame[name]
        if pd.api.types.is_datetime64_any_dtype(col.dtype):
            if getattr(col.dt, "tz", None) is None:
                col = col.dt.tz_localize("UTC")
            seconds = (col - pd.Timestamp(0, tz="UTC")).dt.total_seconds()
            columns[str(name)] = [None if v != v else float(v) for v in seconds.tolist()]
        else:
            columns[str(name)] = col.astype(object).where(col.notna(), None).tolist()
    names = list(columns)
    for values in zip(*columns.values(), strict=True):
        yield dict(zip(names, values, strict=True))
