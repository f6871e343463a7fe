"""A feature stream's runtime state: its panes (mergeable per-feature and record-level states),
window tracks, duplicate filter and watermark; and their JSON-able states for checkpoints."""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Mapping, Sequence
from itertools import repeat
from typing import Any

import numpy as np
from numpy.typing import NDArray

from monitor.checks import FeatureState
from monitor.checks.duplicates import DuplicateFilter
from monitor.checks.record import RecordFlags, RecordState
from monitor.columns import Column, NumericBlock
from monitor.errors import StateError
from monitor.reference import ReferenceProfile
from monitor.spec import StreamSpec, WindowSpec
from monitor.windows import CountTrack, TimeTrack

__all__ = ["STREAM_STATE_VERSION", "Pane", "StreamState", "count_pane_size", "covering_slices"]

#: Version of :meth:`StreamState.to_state` and :meth:`Pane.to_state` output.
STREAM_STATE_VERSION = 2


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

    def to_state(self) -> dict[str, Any]:
        """JSON-able state (``schema_version`` 1): each feature's and the record-level state.

        >>> from monitor.spec import StreamSpec, WindowSpec
        >>> spec = StreamSpec.model_validate({"name": "s", "windows": [{"name": "w", "kind": "count", "size": 2}],
        ...                                   "features": [{"name": "x", "type": "numeric"}]})
        >>> pane = Pane(spec, None)
        >>> pane.features["x"].update(2.5)
        >>> back = Pane.from_state(spec, None, pane.to_state())
        >>> back.to_state() == pane.to_state(), back.features["x"].result().moments["mean"]
        (True, 2.5)
        """
        return {"schema_version": STREAM_STATE_VERSION,
                "features": {name: state.to_state() for name, state in self.features.items()},
                "records": self.records.to_state()}

    @classmethod
    def from_state(cls, stream: StreamSpec, ref: ReferenceProfile | None, state: dict[str, Any]) -> Pane:
        """A pane continuing from :meth:`to_state`'s output, under the same stream spec and reference
        (neither is in the state; the reference gives the histograms' bins)."""
        if state.get("schema_version") != STREAM_STATE_VERSION:
            raise StateError(f"unsupported pane state version {state.get('schema_version')!r} "
                             f"(reads {STREAM_STATE_VERSION})")
        features = state["features"]
        names = [f.name for f in stream.features]
        if sorted(features) != sorted(names):
            raise StateError(f"pane state of features {sorted(features)} does not match stream {stream.name!r}'s "
                             f"features {sorted(names)}")
        pane = cls.__new__(cls)
        try:
            pane.features = {f.name: FeatureState.from_state(f, features[f.name], ref.features.get(f.name)
                                                             if ref is not None else None)
                             for f in stream.features}
            pane.records = RecordState.from_state(state["records"])
        except StateError:
            raise
        except (KeyError, TypeError, ValueError) as exc:  # a part's own version check, or a malformed part
            raise StateError(f"cannot restore a pane of stream {stream.name!r}: {exc!r}") from exc
        return pane


def count_pane_size(window: WindowSpec, partitions: int) -> int:
    """Records per pane of a count window in each of a stream's ``partitions`` partitions:
    ``ceil(pane / partitions)`` (``pane`` is the slide, or the size of a tumbling window)."""
    return max(1, math.ceil(int(window.pane) / max(partitions, 1)))


def _track(window: WindowSpec, new_pane: Callable[[], Pane], partitions: int) -> CountTrack[Pane] | TimeTrack[Pane]:
    """A partition's track of ``window``: its panes, closed one by one (the merge stage makes windows)."""
    if window.kind == "count":
        pane = WindowSpec(name=window.name, kind="count", size=count_pane_size(window, partitions))
        return CountTrack(pane, new_pane=new_pane)
    return TimeTrack(WindowSpec(name=window.name, kind="time", seconds=window.pane), new_pane=new_pane)


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
    """One partition of a stream: its pane tracks, duplicate filter, watermark, pending records.

    Each window spec has a track of its panes here (tumbling: one pane per window; sliding: one per
    slide); closed panes go to the stream's merge stage (:class:`monitor.stream.merge.StreamWindows`),
    which makes windows of every partition's panes and evaluates them.

    :meth:`to_state` / :meth:`load_state` checkpoint what the windowing stage accumulates as records
    arrive: every window track (open panes, the closed panes sliding windows still need, pane
    indices, fills, start clocks), the duplicate filter and the watermark. Not in it:

    * the merge stage's state (merged panes, change detectors, rolling-reference history);
    * the pending records: :meth:`to_state` refuses to run while any is buffered (flush first);
    * what the spec and reference determine (known fields, rate, reference version): rebuilt from them.
      The reference version is saved, and a state saved under another reference is refused (its
      histograms have the other reference's bins).
    """

    def __init__(self, spec: StreamSpec, ref: ReferenceProfile | None, *, partitions: int = 1) -> None:
        self.spec = spec
        self.ref = ref
        self.partitions = partitions

        def new_pane() -> Pane:
            return Pane(spec, ref)

        self.new_pane = new_pane
        self.tracks: list[CountTrack[Pane] | TimeTrack[Pane]] = [_track(w, new_pane, partitions) for w in spec.windows]
        self.dedup = DuplicateFilter(capacity=spec.duplicates.capacity) if spec.duplicates.enabled else None
        self.watermark = -math.inf
        self.pending: list[dict[str, Any]] = []
        self.known = spec.known_fields
        required = frozenset([spec.id_field, *(f.name for f in spec.features)])
        self._n_required = len(required)
        self._optional = sorted(self.known - required)
        self._time_optional = spec.time_field in self._optional
        self.ref_version = ref.profile_version if ref is not None else None  # a hash: compute once
        self.event_mode = spec.time.mode == "event"

    def to_state(self) -> dict[str, Any]:
        """JSON-able state (``schema_version`` 1): tracks (in spec order), duplicate filter and
        watermark (``null`` before any event time); see the class docstring for what is left out.

        Raises :class:`~monitor.errors.StateError` while records are pending (call the engine's
        ``flush`` first: they would otherwise be lost).
        """
        if self.pending:
            raise StateError(f"stream {self.spec.name!r} has {len(self.pending)} pending records: flush them "
                             "before taking its state")
        if math.isnan(self.watermark) or self.watermark == math.inf:
            raise StateError(f"stream {self.spec.name!r} has watermark {self.watermark}, which a JSON state "
                             "cannot hold")

        def encode(pane: Pane) -> dict[str, Any]:
            return pane.to_state()

        return {"schema_version": STREAM_STATE_VERSION, "stream": self.spec.name,
                "reference_version": self.ref_version,
                "watermark": None if self.watermark == -math.inf else self.watermark,
                "tracks": [track.to_state(encode) for track in self.tracks],
                "duplicates": self.dedup.to_state() if self.dedup is not None else None}

    def load_state(self, state: dict[str, Any]) -> None:
        """Continue from :meth:`to_state`'s output, taken under the same stream spec and reference.

        Raises :class:`~monitor.errors.StateError` for another version, stream, reference, window
        list or duplicates setting, and while records are pending; the state is then unchanged.
        The change detectors and rolling-reference history are not touched.
        """
        version = state.get("schema_version")
        if version != STREAM_STATE_VERSION:
            raise StateError(f"unsupported stream state version {version!r} (reads {STREAM_STATE_VERSION})")
        name = self.spec.name
        if state.get("stream") != name:
            raise StateError(f"state of stream {state.get('stream')!r} cannot be restored into stream {name!r}")
        if self.pending:
            raise StateError(f"stream {name!r} has {len(self.pending)} pending records: flush them before "
                             "restoring a state over them")
        if state.get("reference_version") != self.ref_version:
            raise StateError(f"state of stream {name!r} was taken with reference {state.get('reference_version')!r}, "
                             f"not the current {self.ref_version!r}")
        saved, windows = state["tracks"], [w.name for w in self.spec.windows]
        if [t.get("window") for t in saved] != windows:
            raise StateError(f"state of stream {name!r} has windows {[t.get('window') for t in saved]}, "
                             f"the spec {windows}")
        dup = state.get("duplicates")
        if (dup is None) != (self.dedup is None) or (dup is not None and self.dedup is not None
                                                      and int(dup.get("capacity", -1)) != self.dedup.capacity):
            raise StateError(f"state of stream {name!r} was taken with another duplicates setting "
                             f"(saved {'none' if dup is None else dup.get('capacity')}, spec "
                             f"{'none' if self.dedup is None else self.dedup.capacity})")
        spec, ref = self.spec, self.ref

        def decode(pane: dict[str, Any]) -> Pane:
            return Pane.from_state(spec, ref, pane)

        # Everything is rebuilt aside first, so a bad state leaves this one as it was.
        tracks: list[CountTrack[Pane] | TimeTrack[Pane]] = []
        try:
            for w, track_state in zip(spec.windows, saved, strict=True):
                track = _track(w, self.new_pane, self.partitions)
                track.load_state(track_state, decode)
                tracks.append(track)
            dedup = DuplicateFilter.from_state(dup) if dup is not None else None
            watermark = -math.inf if state["watermark"] is None else float(state["watermark"])
        except StateError:
            raise
        except (KeyError, TypeError, ValueError) as exc:
            raise StateError(f"malformed state of stream {name!r}: {exc!r}") from exc
        self.tracks, self.dedup, self.watermark = tracks, dedup, watermark

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
