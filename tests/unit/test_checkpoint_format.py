"""The join-state checkpoint format (agents/worker/checkpoint.py): keys, manifests, journal chunks, positions."""

from __future__ import annotations

import orjson
from hypothesis import given
from hypothesis import strategies as st

from agents.worker.checkpoint import CHUNK_BYTES, POSITION_BITS, Checkpoint, journal_chunks, positions


class _Message:
    def __init__(self, offset: int) -> None:
        self._offset = offset

    def offset(self) -> int:
        return self._offset


def test_manifest_round_trips_and_names_every_key_once() -> None:
    cp = Checkpoint(generation=7, chunks=3, journals=[2, 1], snapshot_bytes=10, journal_bytes=5)
    back = Checkpoint.from_manifest(cp.manifest())
    assert (back.generation, back.chunks, back.journals) == (7, 3, [2, 1])
    keys = cp.keys("preds/4")
    assert keys == ["preds/4/7/0", "preds/4/7/1", "preds/4/7/2", "preds/4/7/j0/0", "preds/4/7/j0/1", "preds/4/7/j1/0"]
    assert len(set(keys)) == len(keys)
    assert orjson.loads(cp.manifest()) == {"generation": 7, "chunks": 3, "journals": [2, 1]}  # sizes are not saved


def test_a_manifest_without_journals_is_read() -> None:  # written by a release before journals
    assert Checkpoint.from_manifest(b'{"generation": 1, "chunks": 2}').journals == []


ENTRY = st.one_of(st.none(), st.dictionaries(st.text(max_size=8), st.integers(-(2**63), 2**63 - 1), max_size=4))


@given(st.lists(st.tuples(st.text(max_size=40), ENTRY), max_size=200))
def test_journal_chunks_hold_every_entry_in_order_within_the_chunk_size(entries: list[tuple[str, dict | None]]) -> None:  # type: ignore[type-arg]
    chunks = journal_chunks(entries)
    assert all(len(c) <= CHUNK_BYTES for c in chunks)
    assert [tuple(pair) for c in chunks for pair in orjson.loads(c)] == [(r, e) for r, e in entries]


def test_positions_order_records_by_offset_then_index_in_their_message() -> None:
    a, b = _Message(5), _Message(6)
    got = positions([a, a, a, b])
    assert got == sorted(got) and got[3] == 6 << POSITION_BITS and got[2] == (5 << POSITION_BITS) | 2
