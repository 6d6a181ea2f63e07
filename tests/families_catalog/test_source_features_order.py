"""A source's mean features do not depend on the physical order of its detections.

A float sum depends on its order. The crash-safety suite once saw a rerun after a SIGKILL
differ from an uninterrupted run in the last bits of three sources' family probabilities:
the detections' physical order (which a crash and a vacuum can change) had decided the
order of the sums. Here two sources hold the same values inserted in opposite orders.
"""

from __future__ import annotations

import pytest
from sqlalchemy import text

from db import family_store as fs
from db.models import SCHEMA

VALUES = {1: 0.1, 2: 0.2, 3: 0.3}  # (0.1 + 0.2) + 0.3 != (0.3 + 0.2) + 0.1 in floats


@pytest.fixture(scope="module")
def two_sources(engine):
    with engine.begin() as conn:
        ids = {}
        for name, ra in (("2CXO J000000.0+000000", 0.0), ("2CXO J000100.0+000000", 0.25)):
            ids[name] = conn.execute(text(
                f"INSERT INTO {SCHEMA}.csc_source (name, ra, dec, ingest_run_id) "
                "VALUES (:n, :ra, 0, 1) RETURNING source_id"), {"n": name, "ra": ra}).scalar()
        forward, backward = ids.values()
        for sid, obsids in ((forward, [1, 2, 3]), (backward, [3, 2, 1])):
            for obsid in obsids:  # one statement per row: the heap keeps this order
                conn.execute(text(
                    f"INSERT INTO {SCHEMA}.csc_detection (source_id, obsid, obi, region_id, "
                    "var_ratio_b, hard_hm, ingest_run_id) VALUES (:s, :o, 0, 1, :v, :v, 1)"),
                    {"s": sid, "o": obsid, "v": VALUES[obsid]})
    yield forward, backward
    with engine.begin() as conn:
        conn.execute(text(f"DELETE FROM {SCHEMA}.csc_detection"))
        conn.execute(text(f"DELETE FROM {SCHEMA}.csc_source"))


def _means(frame) -> list[tuple[float, float]]:
    return list(frame.set_index("source_id")[["var_ratio_b", "hard_hm"]].itertuples(
        index=False, name=None))


@pytest.mark.parametrize("read", ["whole", "by key", "by temp table"])
def test_means_follow_the_detection_key_not_the_heap(engine, two_sources, read, monkeypatch):
    forward, backward = two_sources
    if read == "by temp table":
        monkeypatch.setattr(fs, "KEYED_READ_MAX", 0)
    with engine.connect() as conn:
        frame = fs.source_features(conn, None if read == "whole" else [backward, forward])
        conn.rollback()
    in_key_order = ((VALUES[1] + VALUES[2]) + VALUES[3]) / 3
    assert in_key_order != ((VALUES[3] + VALUES[2]) + VALUES[1]) / 3  # the case is real
    assert _means(frame) == [(in_key_order, in_key_order)] * 2
