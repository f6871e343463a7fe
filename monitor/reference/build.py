"""Build a reference profile from records: a CSV, JSONL or Parquet file, or any iterable
(the CLI also reads a Kafka topic range).

One pass with bounded memory: moments and counts over every record, a
deterministic sample of at most ``sample_size`` values per numeric feature
(for quantiles and bin cut points), category counts capped at
:data:`MAX_CATEGORIES` distinct values, and the event-time span for the
record rate.
"""

from __future__ import annotations

import csv
import hashlib
import math
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson

from monitor.checks import FeatureState
from monitor.columns import extract_column
from monitor.errors import ProfileError
from monitor.performance import ReferenceBuilder
from monitor.records import Rejection, decode_message
from monitor.reference.profile import FeatureProfile, ReferenceProfile
from monitor.spec import FeatureSpec, StreamSpec
from monitor.stats import BinnedCounts, QuantileSummary
from monitor.stats.quantiles import quantiles
from monitor.times import parse_times

if TYPE_CHECKING:
    from monitor.reference.audit import ReferenceAudit

__all__ = ["MAX_CATEGORIES", "build_profile", "build_profile_from_file", "read_records", "read_rows"]

MAX_CATEGORIES = 10_000

Progress = Callable[[int], None]


def read_rows(path: str | Path, stream: StreamSpec) -> Iterator[dict[str, Any]]:
    """Yield records from a ``.csv``, ``.jsonl``/``.ndjson`` or ``.parquet`` file.

    Parquet timestamps become ISO-8601 strings; NaN floats count as missing later.

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
        types: dict[str, str] = {f.name: f.type for f in stream.features}
        types[stream.time_field] = "time"
        if stream.model is not None and stream.model.task == "regression":
            types.setdefault(stream.model.label_field, "numeric")  # the reference label of a regressor
        with path.open(newline="", encoding="utf-8") as fh:
            for row in csv.DictReader(fh):
                yield {k: _from_csv(v, types.get(k)) for k, v in row.items()}
    elif suffix in {".parquet", ".pq"}:
        import pyarrow.parquet as pq  # imported here: only Parquet inputs need it

        try:
            pf = pq.ParquetFile(path)
        except Exception as exc:  # noqa: BLE001 - pyarrow raises several unrelated types
            raise ProfileError(f"{path}: not a readable Parquet file: {exc}") from None
        for batch in pf.iter_batches(batch_size=10_000):
            for rec in batch.to_pylist():
                yield {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in rec.items()}
    else:
        raise ProfileError(f"{path}: unsupported input format {suffix!r} (use .csv, .jsonl or .parquet)")


def _from_csv(cell: str | None, kind: str | None) -> Any:
    if cell is None or cell == "":
        return None
    if kind == "numeric":
        try:
            x = float(cell)
        except ValueError:
            return cell
        return x if math.isfinite(x) else None  # "nan"/"inf" cells count as missing
    if kind == "time":  # epoch seconds stay numbers; ISO-8601 strings stay strings
        try:
            return float(cell)
        except ValueError:
            return cell
    if kind == "boolean":
        low = cell.strip().lower()
        if low in {"true", "1", "yes"}:
            return True
        if low in {"false", "0", "no"}:
            return False
        return cell
    return cell


def read_records(path: str | Path, stream: StreamSpec) -> Iterator[dict[str, Any] | Rejection]:
    """:func:`read_rows`, but each JSON line decoded as the worker decodes a message
    (:func:`monitor.records.decode_message`: one object, an array of them or a columnar batch; a bad
    line is a :class:`~monitor.records.Rejection` whose detail starts with its line number, not an
    error). CSV and Parquet rows are yielded as :func:`read_rows` reads them.

    >>> import tempfile, os
    >>> from monitor.spec import StreamSpec
    >>> s = StreamSpec.model_validate({"name": "f", "windows": [{"name": "w", "kind": "count", "size": 10}],
    ...     "features": [{"name": "x", "type": "numeric"}]})
    >>> with tempfile.TemporaryDirectory() as d:
    ...     p = os.path.join(d, "r.jsonl")
    ...     _ = open(p, "wb").write(b'{"record_id": 1, "x": 2}\\n[{"record_id": 2}, {"x": 3}]\\n{"x": \\n')
    ...     [r if isinstance(r, dict) else (r.reason, r.detail[:7]) for r in read_records(p, s)]
    [{'record_id': 1, 'x': 2}, ('missing_id', 'line 2:'), {'record_id': 2}, ('malformed_json', 'line 3:')]
    """
    path = Path(path)
    if path.suffix.lower() not in {".jsonl", ".ndjson", ".json"}:
        yield from read_rows(path, stream)
        return
    if not path.is_file():
        raise ProfileError(f"reference input {path} does not exist")
    with path.open("rb") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            ok, bad = decode_message(line.rstrip(b"\r\n"), stream)  # the original is the line, not its break
            for rejection in bad:
                yield replace(rejection, detail=f"line {lineno}: {rejection.detail}")
            yield from ok


def build_profile(
    stream: StreamSpec,
    rows: Callable[[], Iterable[dict[str, Any]]],
    *,
    source: dict[str, Any],
    sample_size: int = 200_000,
    seed: int = 0,
    progress: Progress | None = None,
    audit: ReferenceAudit | None = None,
) -> ReferenceProfile:
    """Profile ``stream``'s features over the records ``rows()`` yields, in one pass.

    Numeric features keep moments over every value and a deterministic sample
    of at most ``sample_size`` values (every value while they fit), from which
    the quantile summary (1001 levels) and the ``psi_bins`` bin edges come; bin
    counts are exact while the sample holds every value, scaled from it
    otherwise. ``progress`` is called with the running record count every
    10,000 records. ``seed`` is kept for API compatibility (the sample is deterministic).

    ``rows`` are profiled as given; to leave out what a worker would dead-letter, pass
    ``lambda: audit.check(...)`` and the same ``audit``
    (:class:`~monitor.reference.audit.ReferenceAudit`), which is then also told how each feature's
    values compare with the spec.

    Examples
    --------
    >>> from monitor.spec import StreamSpec
    >>> s = StreamSpec.model_validate({"name": "f", "windows": [{"name": "w", "kind": "count",
    ...     "size": 10}], "features": [{"name": "x", "type": "numeric"}], "psi_bins": 4})
    >>> p = build_profile(s, lambda: ({"x": float(i)} for i in range(100)), source={"kind": "test"})
    >>> p.features["x"].bin_edges, p.features["x"].bin_counts
    ([24.75, 49.5, 74.25], [25, 25, 25, 25])
    """
    del seed
    states = {f.name: FeatureState(f, sample_capacity=sample_size) for f in stream.features}
    # Free-text (string) features have no drift, so their values are not counted.
    cats: dict[str, Counter[str]] = {f.name: Counter() for f in stream.features if f.type in ("categorical", "boolean")}
    t_min, t_max = np.inf, -np.inf
    rows_n = 0
    # A predictions stream's rows may also carry the label: then the model's reference performance is kept.
    model = None
    if stream.model is not None:
        model = ReferenceBuilder(stream.model)
    batch: list[dict[str, Any]] = []

    def consume(recs: list[dict[str, Any]]) -> None:
        nonlocal t_min, t_max
        for f in stream.features:
            col = extract_column(recs, f)
            states[f.name].update_column(col)
            if f.name in cats and col.codes is not None and col.vocab is not None:
                valid = col.codes[col.codes >= 0]
                if valid.size:
                    counts = np.bincount(valid, minlength=len(col.vocab))
                    counter = cats[f.name]
                    for j in np.flatnonzero(counts):
                        counter[col.vocab[j]] += int(counts[j])
                    if len(counter) > MAX_CATEGORIES:
                        raise ProfileError(f"feature {f.name!r} has more than {MAX_CATEGORIES} distinct "
                                           "values; is it really categorical?")
        if model is not None:
            model.update(recs)
        t = parse_times([r.get(stream.time_field) for r in recs])
        t = t[~np.isnan(t)]
        if t.size:
            t_min, t_max = min(t_min, float(t.min())), max(t_max, float(t.max()))

    for rec in rows():
        rows_n += 1
        batch.append(rec)
        if len(batch) == 10_000:
            consume(batch)
            batch = []
            if progress is not None:
                progress(rows_n)
    if batch:
        consume(batch)
    if rows_n == 0:
        if audit is not None and audit.excluded:
            raise ProfileError(f"the reference input holds no record a worker would accept: all {audit.read:,} "
                               f"were excluded ({audit.excluded_text()}; e.g. "
                               f"{next(iter(audit.examples.values()))})")
        raise ProfileError("the reference input holds no records")
    if audit is not None:
        audit.observe(states, cats)

    features = {}
    for f in stream.features:
        features[f.name] = _feature_profile(f, stream.psi_bins, states[f.name], cats.get(f.name))
    span = t_max - t_min if t_max > t_min else None
    return ReferenceProfile(
        stream=stream.name,
        source=source,
        created_at=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        rows=rows_n,
        features=features,
        rate_per_second=(rows_n - 1) / span if span else None,
        model=model.result() if model is not None else None,
    )


def _category_key(value: Any) -> str:
    if isinstance(value, bool):  # same spelling as the window histograms
        return "true" if value else "false"
    return value if isinstance(value, str) else str(value)


def _feature_profile(f: FeatureSpec, bins: int, state: FeatureState, counts: Counter[str] | None) -> FeatureProfile:
    r = state.result()
    if f.type != "numeric":
        return FeatureProfile(name=f.name, type=f.type, count=r.count, missing=r.missing,
                              category_counts=dict(sorted((counts or Counter()).items())))
    m = r.moments or {}
    sample = state.sample.get() if state.sample is not None else None
    if sample is None or sample.size == 0:
        raise ProfileError(f"numeric feature {f.name!r} has no valid value in the reference")
    qs = quantiles(sample, np.linspace(0.0, 1.0, bins + 1)[1:-1])
    edges = sorted({float(q) for q in qs})
    hist = BinnedCounts(edges)
    hist.update_many(sample)
    valid = r.valid
    if sample.size != valid:  # thinned: scale the sample's counts to the full count
        scaled = np.asarray(hist.counts, dtype=float) * (valid / sample.size)
        hist.counts = [int(c) for c in np.round(scaled)]
    summary = QuantileSummary.from_values(sample, n=valid)
    return FeatureProfile(name=f.name, type=f.type, count=r.count, missing=r.missing,
                          mean=m.get("mean"), std=m.get("std"), min=m.get("min"), max=m.get("max"),
                          bin_edges=edges, bin_counts=hist.counts,
                          quantiles=[float(v) for v in summary.values])


def build_profile_from_file(stream: StreamSpec, path: str | Path, *, sample_size: int = 200_000,
                            seed: int = 0, progress: Progress | None = None,
                            audit: ReferenceAudit | None = None) -> ReferenceProfile:
    """:func:`build_profile` over a CSV/JSONL file, recording its path and SHA-256.

    With ``audit``, the records are read as a worker reads them (:func:`read_records`) and those
    it would dead-letter are left out and counted in ``audit``; without, :func:`read_rows` reads
    them (a bad JSON line is an error) and every record is profiled."""
    path = Path(path)
    if not path.is_file():
        raise ProfileError(f"reference input {path} does not exist")
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    source = {"kind": "file", "path": str(path), "sha256": digest.hexdigest(),
              "format": path.suffix.lower().lstrip(".")}
    if audit is not None:
        checked = audit
        return build_profile(stream, lambda: checked.check(read_records(path, stream)), source=source,
                             sample_size=sample_size, seed=seed, progress=progress, audit=audit)
    return build_profile(stream, lambda: read_rows(path, stream), source=source,
                         sample_size=sample_size, seed=seed, progress=progress)
