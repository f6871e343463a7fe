"""Build a reference profile from a CSV or JSONL file.

Two passes over the file with bounded memory: the first counts missing values
and moments and keeps a seeded reservoir sample of at most ``sample_size``
values per numeric feature (for the bin cut points), the second counts every
value into those fixed bins exactly. Category vocabularies are capped at
:data:`MAX_CATEGORIES`.
"""

from __future__ import annotations

import csv
import hashlib
import math
import random
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from monitor.checks import FeatureWindow
from monitor.errors import ProfileError
from monitor.reference.profile import FeatureProfile, ReferenceProfile
from monitor.spec import FeatureSpec, StreamSpec
from monitor.stats import BinnedCounts

__all__ = ["MAX_CATEGORIES", "build_profile", "build_profile_from_file", "read_rows"]

MAX_CATEGORIES = 10_000

Progress = Callable[[int], None]


def read_rows(path: str | Path, stream: StreamSpec) -> Iterator[dict[str, Any]]:
    """Yield records from a ``.csv`` or ``.jsonl``/``.ndjson`` file.

    CSV cells are strings; they are converted by the feature's declared type
    (empty cell = missing; an unparsable number stays a string and is later
    counted as a type violation).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in {".jsonl", ".ndjson", ".json"}:
        with path.open("rb") as fh:
            for lineno, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    rec = orjson.loads(line)
                except orjson.JSONDecodeError as exc:
                    raise ProfileError(f"{path}:{lineno}: not valid JSON: {exc}") from None
                if not isinstance(rec, dict):
                    raise ProfileError(f"{path}:{lineno}: expected a JSON object per line")
                yield rec
    elif suffix == ".csv":
        types = {f.name: f.type for f in stream.features}
        with path.open(newline="", encoding="utf-8") as fh:
            for row in csv.DictReader(fh):
                yield {k: _from_csv(v, types.get(k)) for k, v in row.items()}
    else:
        raise ProfileError(f"{path}: unsupported input format {suffix!r} (use .csv or .jsonl)")


def _from_csv(cell: str | None, kind: str | None) -> Any:
    if cell is None or cell == "":
        return None
    if kind == "numeric":
        try:
            x = float(cell)
        except ValueError:
            return cell
        return x if math.isfinite(x) else None  # "nan"/"inf" cells count as missing
    if kind == "boolean":
        low = cell.strip().lower()
        if low in {"true", "1", "yes"}:
            return True
        if low in {"false", "0", "no"}:
            return False
        return cell
    return cell


def build_profile(
    stream: StreamSpec,
    rows: Callable[[], Iterable[dict[str, Any]]],
    *,
    source: dict[str, Any],
    sample_size: int = 100_000,
    seed: int = 0,
    progress: Progress | None = None,
) -> ReferenceProfile:
    """Profile ``stream``'s features over the records ``rows()`` yields.

    ``rows`` is called twice (two passes). ``progress`` is called with the
    running record count of each pass every 10,000 records.

    Examples
    --------
    >>> from monitor.spec import StreamSpec
    >>> s = StreamSpec.model_validate({"name": "f", "windows": [{"name": "w", "kind": "count",
    ...     "size": 10}], "features": [{"name": "x", "type": "numeric"}], "psi_bins": 4})
    >>> p = build_profile(s, lambda: ({"x": float(i)} for i in range(100)), source={"kind": "test"})
    >>> p.features["x"].bin_edges, p.features["x"].bin_counts
    ([24.75, 49.5, 74.25], [25, 25, 25, 25])
    """
    rng = random.Random(seed)
    windows = {f.name: FeatureWindow(f) for f in stream.features}
    numeric = [f.name for f in stream.features if f.type == "numeric"]
    reservoirs: dict[str, list[float]] = {n: [] for n in numeric}
    seen: dict[str, int] = dict.fromkeys(numeric, 0)
    cats: dict[str, Counter[str]] = {f.name: Counter() for f in stream.features if f.type != "numeric"}

    rows_n = 0
    for rec in rows():
        rows_n += 1
        for name, fw in windows.items():
            value = rec.get(name)
            before = fw.type_violations + fw.missing
            fw.update(value)
            if fw.type_violations + fw.missing != before:
                continue
            if name in reservoirs:
                x = float(value)  # type: ignore[arg-type]  # FeatureWindow accepted it as a number
                seen[name] += 1
                res = reservoirs[name]
                if len(res) < sample_size:
                    res.append(x)
                else:
                    j = rng.randrange(seen[name])
                    if j < sample_size:
                        res[j] = x
            else:
                key = _category_key(value)
                counter = cats[name]
                counter[key] += 1
                if len(counter) > MAX_CATEGORIES:
                    raise ProfileError(f"feature {name!r} has more than {MAX_CATEGORIES} distinct "
                                       "values; is it really categorical?")
        if progress is not None and rows_n % 10_000 == 0:
            progress(rows_n)
    if rows_n == 0:
        raise ProfileError("the reference input holds no records")

    edges: dict[str, list[float]] = {}
    for name in numeric:
        sample = np.asarray(reservoirs[name], dtype=float)
        if sample.size == 0:
            raise ProfileError(f"numeric feature {name!r} has no valid value in the reference")
        qs = np.quantile(sample, np.linspace(0.0, 1.0, stream.psi_bins + 1)[1:-1])
        edges[name] = sorted({float(q) for q in qs})

    hists = {name: BinnedCounts(edges[name]) for name in numeric}
    if numeric:
        for i, rec in enumerate(rows(), 1):
            for name, h in hists.items():
                value = rec.get(name)
                if isinstance(value, int | float) and not isinstance(value, bool):
                    h.update(float(value))
            if progress is not None and i % 10_000 == 0:
                progress(i)

    features = {}
    for f in stream.features:
        features[f.name] = _feature_profile(f, windows[f.name], hists.get(f.name), cats.get(f.name))
    return ReferenceProfile(
        stream=stream.name,
        source=source,
        created_at=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        rows=rows_n,
        features=features,
    )


def _category_key(value: Any) -> str:
    if isinstance(value, bool):  # same spelling as the window histograms
        return "true" if value else "false"
    return value if isinstance(value, str) else str(value)


def _feature_profile(f: FeatureSpec, fw: FeatureWindow, hist: BinnedCounts | None,
                     counts: Counter[str] | None) -> FeatureProfile:
    r = fw.result()
    if f.type == "numeric":
        m = r.moments or {}
        return FeatureProfile(name=f.name, type=f.type, count=r.count, missing=r.missing,
                              mean=m.get("mean"), std=m.get("std"), min=m.get("min"), max=m.get("max"),
                              bin_edges=hist.edges if hist else None,
                              bin_counts=hist.counts if hist else None)
    return FeatureProfile(name=f.name, type=f.type, count=r.count, missing=r.missing,
                          category_counts=dict(sorted((counts or Counter()).items())))


def build_profile_from_file(stream: StreamSpec, path: str | Path, *, sample_size: int = 100_000,
                            seed: int = 0, progress: Progress | None = None) -> ReferenceProfile:
    """:func:`build_profile` over a CSV/JSONL file, recording its path and SHA-256."""
    path = Path(path)
    if not path.is_file():
        raise ProfileError(f"reference input {path} does not exist")
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    source = {"kind": "file", "path": str(path), "sha256": digest.hexdigest(),
              "format": path.suffix.lower().lstrip(".")}
    return build_profile(stream, lambda: read_rows(path, stream), source=source,
                         sample_size=sample_size, seed=seed, progress=progress)
