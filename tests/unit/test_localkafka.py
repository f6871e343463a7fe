"""The local broker launcher's pure parts (the broker itself is exercised by the integration tests)."""

from __future__ import annotations

import base64
import re

from agents.cli.localkafka import new_cluster_id


def test_cluster_ids_never_start_with_a_dash_nor_are_all_zeros() -> None:
    # One random id in 64 starts with "-" in URL-safe base64; "kafka-storage format -t -X..." then
    # failed with "argument --cluster-id/-t: expected one argument" (a CI run was lost to it).
    draws = iter([b"\xf8" + bytes(15), bytes(16), b"\x01" * 16])
    cluster_id = new_cluster_id(lambda: next(draws))
    assert cluster_id == base64.urlsafe_b64encode(b"\x01" * 16).decode().rstrip("=")
    assert next(draws, None) is None


def test_cluster_ids_have_kafkas_shape() -> None:
    ids = {new_cluster_id() for _ in range(2000)}
    assert len(ids) == 2000
    assert all(re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_-]{21}", i) for i in ids)
