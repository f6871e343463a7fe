"""A feature stream's runtime state: its panes (mergeable per-feature and record-level states),
window tracks, duplicate filter and watermark."""

from __future__ import annotations

import math
import operator
from collections import deque
from collections.abc import Mapping, Sequence
from itertools import repeat
from typing import Any

import numpy as np
from numpy.typing import NDArray

from monitor.checks import FeatureState
from monitor.checks.duplicates import DuplicateFilter
from monitor.checks.record import RecordFlags, RecordState
from monitor.columns import Column, NumericBlock
from monitor.detectors import ChangeDetectors
from monitor.reference import ReferenceProfile
from monitor.spec import StreamSpec
from monitor.windows import CountTrack, TimeTrack

__all__ = ["Pane", "StreamState", "covering_slices"]


class Pane:
    """State of one pane: one FeatureState per feature plus the record-level state."""

    __slots__ = ("features", "records")

    def __init__(self, stream: StreamSpec, ref: ReferenceProfile | None) -> None:
        self.features = {f.name: FeatureState(f, ref.features.get(f.name) if ref is not None else None)
                         for f in stream.features}
        self.records = RecordState()

    def update(self, cols: Mapping[str, Column], flags: RecordFlags, rows: slice | NDArray[np.intp],
               block: NumericBlock | None = None) -> None:
        whole = isinstance(rows, slice) and rows.start == 0 and rows.stop == len(flags)
        done: frozenset[str] = frozenset()
        if block is not None:  # the numeric features all at once
            part = block if whole else block.take(rows)
            FeatureState.update_block([self.features[name] for name in block.names], part.x, part.status)
            done = frozenset(block.names)
        for name, state in self.features.items():
            if name not in done:
                col = cols[name]
                state.update_column(col if whole else col.take(rows))
        self.records.update(flags if whole else flags.take(rows))

    def __iadd__(self, other: Pane) -> Pane:
        for name, state in self.features.items():
            state += other.features[name]
        self.records += other.records
        return self


def covering_slices(memo: dict[Any, list[Any]], n: int) -> list[Pane] | None:
    """The summaries of slices that tile rows ``0..n`` in order (at least two), if the memo holds such."""
    spans = sorted(k for k in memo if isinstance(k, tuple))
    out: list[Pane] = []
    at = 0
    for start, stop in spans:
        if start != at:
            return None
        out.append(memo[(start, stop)][0])
        at = stop
    return out if at == n and len(out) > 1 else None


class StreamState:
    """Per-stream runtime: window tracks, duplicate filter, watermark, pending records."""

    def __init__(self, spec: StreamSpec, ref: ReferenceProfile | None) -> None:
        self.spec = spec
        self.ref = ref

        def new_pane() -> Pane:
            return Pane(spec, ref)

        self.new_pane = new_pane
        self.tracks: list[CountTrack[Pane] | TimeTrack[Pane]] = [
            CountTrack(w, new_pane=new_pane) if w.kind == "count" else TimeTrack(w, new_pane=new_pane)
            for w in spec.windows
        ]
        self.dedup = DuplicateFilter(capacity=spec.duplicates.capacity) if spec.duplicates.enabled else None
        self.watermark = -math.inf
        self.pending: list[dict[str, Any]] = []
        self.known = spec.known_fields
        required = frozenset([spec.id_field, *(f.name for f in spec.features)])
        self._n_required = len(required)
        self._optional = sorted(self.known - required)
        self._time_optional = spec.time_field in self._optional
        self.ref_version = ref.profile_version if ref is not None else None  # a hash: compute once
        self.rate = spec.volume.expected_per_second or (ref.rate_per_second if ref is not None else None)
        self.event_mode = spec.time.mode == "event"
        self.detectors = ChangeDetectors(list(spec.detectors))
        # Rolling reference: the last N closed windows' feature states, per window spec.
        self.history: dict[str, deque[dict[str, FeatureState]]] = {
            w.name: deque(maxlen=spec.rolling_reference) for w in spec.windows} if spec.rolling_reference else {}

    def only_known_fields(self, records: Sequence[dict[str, Any]], *, timed: bool = False) -> bool:
        """Whether no record has a field outside the spec, given that each holds the id and every
        feature (and, if ``timed``, the event-time field).

        Then a record's other fields are all known iff its length is the required
        fields plus the optional known ones (event time, ``schema_version``, ...) it
        has: a few C-level passes instead of a tuple of field names per record.
        """
        n = len(records)
        lengths = np.fromiter(map(len, records), dtype=np.intp, count=n)
        if timed and self._time_optional and bool((lengths == self._n_required + 1).all()):
            return True  # each has the required fields and the time field, and nothing else
        expected = np.full(n, self._n_required, dtype=np.intp)
        for name in self._optional:
            expected += np.fromiter(map(operator.contains, records, repeat(name)), dtype=bool, count=n)
        return bool(np.array_equal(lengths, expected))
