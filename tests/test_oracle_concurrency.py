"""Change tracking under concurrency (issue 13, "lost update"), checked by the oracle.

A SIMBAD change whose transaction commits while a publish transaction is open must be
applied by the next publish. Until 0004 the publish compared ``simbad_match.changed_at``
(the ingest's wall clock) with the previous release's ``created_at``: a change stamped
before the publish started but committed after it had read the changes was never applied.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pandas as pd
import pytest
from sqlalchemy import text

from db import catalog_store as store
from db import ingest_store, oracle
from db.settings import Settings
from ingest.sample import generate_sample
from pipeline import classify, ingest
from tests.conftest import publish_first_version


@pytest.fixture(scope="module")
def settings():
    return Settings(n_components=6, random_state=42)


@pytest.fixture(scope="module")
def built(engine, settings):
    sample = generate_sample(400, seed=3)
    publish_first_version(engine, sample, settings)
    return sample


def model_sources(engine, n: int) -> list[tuple[int, str]]:
    """Sources whose class comes from the model (uninformative or no SIMBAD type)."""
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text(
            "SELECT source_id, name FROM catalog.source_class WHERE label_origin = 'model' "
            "AND n_detections > 0 ORDER BY name LIMIT :n"), {"n": n})]


def current(engine, source_id: int) -> dict:
    with engine.connect() as conn:
        return dict(conn.execute(text(
            "SELECT simbad_otype, adopted_class, label_origin, catalog_version "
            "FROM catalog.source_class WHERE source_id = :s"), {"s": source_id}).mappings().one())


def matches(names: list[str], otype: str) -> pd.DataFrame:
    return pd.DataFrame({"name": names, "main_id": [f"TEST {n}" for n in names],
                         "otype": otype, "separation_arcsec": 0.1})


def assert_oracle(engine, settings) -> None:
    result = oracle.check(engine, settings)
    assert result.ok, result.verdict() + "\n" + oracle.format_differences(result)
    assert result.n_pending_simbad == 0


def test_a_change_whose_transaction_straddles_a_publish_is_applied_next(built, engine, settings,
                                                                      monkeypatch):
    (x, x_name), (y, y_name) = model_sources(engine, 2)
    run = ingest_store.start_run(engine, "simbad-file", "test: straddling")
    # the SIMBAD ingest's transaction writes X's new type before the publish starts ...
    simbad = engine.connect()
    tx = simbad.begin()
    ingest_store.upsert_simbad(simbad, matches([x_name], "YSO"), run, datetime.now(UTC))
    with engine.begin() as conn:  # (Y's change is committed: the publish has work to do)
        ingest_store.upsert_simbad(conn, matches([y_name], "QSO"), run, datetime.now(UTC))
    real = store.affected_sources

    def commit_during_publish(*args, **kwargs):
        out = real(*args, **kwargs)
        tx.commit()  # ... and commits while the publish transaction is open
        return out

    monkeypatch.setattr(store, "affected_sources", commit_during_publish)
    try:
        v = classify.publish(engine, settings)
    finally:
        simbad.close()
    monkeypatch.undo()
    assert v is not None
    assert current(engine, y)["simbad_otype"] == "QSO"
    assert current(engine, x)["simbad_otype"] != "YSO"  # the publish could not see it
    after = classify.publish(engine, settings)
    assert after is not None and after.catalog_version == v.catalog_version + 1
    assert current(engine, x) == {"simbad_otype": "YSO", "adopted_class": "YSO",
                                  "label_origin": "simbad",
                                  "catalog_version": after.catalog_version}
    assert_oracle(engine, settings)


def test_a_whole_simbad_ingest_committed_during_a_publish_is_applied_next(built, engine,
                                                                        settings, monkeypatch):
    (x, x_name), (y, y_name) = model_sources(engine, 2)
    with engine.begin() as conn:
        run = ingest_store.start_run(engine, "simbad-file", "test: before")
        ingest_store.upsert_simbad(conn, matches([y_name], "AGN"), run, datetime.now(UTC))
    real = store.affected_sources
    done: list = []

    def ingest_during_publish(*args, **kwargs):
        out = real(*args, **kwargs)
        t = threading.Thread(target=lambda: done.append(ingest.ingest_simbad_frame(
            engine, matches([x_name], "HMXB"), "test: during")))
        t.start()
        t.join(60)  # the ingest commits in its own transaction; the publish's stays open
        return out

    monkeypatch.setattr(store, "affected_sources", ingest_during_publish)
    v = classify.publish(engine, settings)
    monkeypatch.undo()
    assert v is not None and done and done[0].status == "completed"
    assert done[0].simbad["changed"] == 1
    assert current(engine, x)["simbad_otype"] != "HMXB"
    after = classify.publish(engine, settings)
    assert after is not None
    assert current(engine, x)["adopted_class"] == "HMXB"
    assert_oracle(engine, settings)


def test_a_rolled_back_publish_leaves_the_changes_queued(built, engine, settings, monkeypatch):
    ((x, x_name),) = model_sources(engine, 1)
    ingest.ingest_simbad_frame(engine, matches([x_name], "LMXB"), "test: rollback")

    def boom(*args, **kwargs):
        raise RuntimeError("publish died")

    monkeypatch.setattr(store, "write_source_results", boom)
    with pytest.raises(RuntimeError, match="died"):
        classify.publish(engine, settings)
    monkeypatch.undo()
    pending = oracle.check(engine, settings)
    assert pending.ok and pending.n_pending_simbad == 1  # not yet published, not wrong
    assert classify.publish(engine, settings) is not None
    assert current(engine, x)["adopted_class"] == "LMXB"
    assert_oracle(engine, settings)
