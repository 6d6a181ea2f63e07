"""0004_change_tracking on a populated 0003 database: same results, no SIMBAD change lost."""

from __future__ import annotations

import pandas as pd
import pytest
from sqlalchemy import create_engine, text

from db import migrate, oracle
from db.settings import Settings
from ingest.sample import generate_sample
from pipeline import classify, ingest
from tests.conftest import create_database, publish_first_version

SETTINGS = Settings(n_components=6, random_state=42)


@pytest.fixture(scope="module")
def db(pg_server):
    engine = create_engine(create_database(pg_server, "t_oracle_migration", template=None))
    migrate.upgrade(engine)
    sample = generate_sample(300, seed=8)
    publish_first_version(engine, sample, SETTINGS)
    yield engine
    engine.dispose()


def rows(engine, sql: str, **params) -> list[tuple]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text(sql), params)]


def current(engine) -> pd.DataFrame:
    with engine.connect() as conn:
        return pd.read_sql_query(text("SELECT * FROM catalog.source_class ORDER BY source_id"),
                                 conn)


def test_upgrade_keeps_results_and_queues_every_unapplied_change(db):
    before = current(db)
    (x,), (y,), (z,) = rows(db, "SELECT source_id FROM catalog.source_class WHERE "
                                "label_origin = 'model' AND n_detections > 0 ORDER BY name "
                                "LIMIT 3")
    migrate.downgrade(db, "0003")
    with db.begin() as conn:  # what the 0003 code left behind
        # a change ingested after the last version (0003 would apply it at the next publish)
        conn.execute(text("UPDATE catalog.simbad_match SET otype = 'YSO', main_id = 'N1', "
                          "changed_at = now() WHERE source_id = :s"), {"s": x})
        # a change 0003 lost: committed during the last publish, stamped before it started
        conn.execute(text("UPDATE catalog.simbad_match SET otype = 'HighMassXBin', "
                          "main_id = 'N2', changed_at = (SELECT created_at - interval '1 min' "
                          "FROM catalog.release ORDER BY release_id DESC LIMIT 1) "
                          "WHERE source_id = :s"), {"s": y})
    migrate.upgrade(db)
    assert migrate.current_revision(db) == migrate.head_revision()
    pd.testing.assert_frame_equal(current(db), before)  # nothing published changed
    queued = {s for (s,) in rows(db, "SELECT source_id FROM catalog.simbad_change")}
    assert queued == {x, y}
    result = oracle.check(db, SETTINGS)
    assert result.ok and result.n_pending_simbad == 2  # pending, not yet published
    assert classify.publish(db, SETTINGS) is not None
    got = dict(rows(db, "SELECT source_id, adopted_class FROM catalog.source_class "
                        "WHERE source_id IN (:x, :y, :z)", x=x, y=y, z=z))
    assert got[x] == "YSO" and got[y] == "HMXB" and got[z] == before.set_index(
        "source_id").loc[z, "adopted_class"]
    after = oracle.check(db, SETTINGS)
    assert after.ok and after.n_pending_simbad == 0
    assert rows(db, "SELECT count(*) FROM catalog.simbad_change") == [(0,)]


def test_downgrade_hands_queued_changes_back_to_0003(db):
    ((x, name),) = rows(db, "SELECT source_id, name FROM catalog.source_class "
                            "WHERE label_origin = 'model' ORDER BY name DESC LIMIT 1")
    ingest.ingest_simbad_frame(db, pd.DataFrame({"name": [name], "main_id": ["N3"],
                                                 "otype": ["QSO"], "separation_arcsec": [0.1]}),
                               "test")
    migrate.downgrade(db, "0003")
    # 0003 applies what changed after the last version
    assert rows(db, "SELECT m.changed_at > (SELECT max(created_at) FROM catalog.release) "
                    "FROM catalog.simbad_match m WHERE m.source_id = :s", s=x) == [(True,)]
    migrate.upgrade(db)
    assert rows(db, "SELECT source_id FROM catalog.simbad_change") == [(x,)]
    assert classify.publish(db, SETTINGS) is not None
    assert rows(db, "SELECT adopted_class FROM catalog.source_class WHERE source_id = :s",
                s=x) == [("QSO",)]
    assert oracle.check(db, SETTINGS).ok
