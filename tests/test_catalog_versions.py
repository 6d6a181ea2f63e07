"""The living catalog: epochs, versions, as-of, class changes, atomicity, concurrency.

These run the pipeline steps directly on the embedded PostgreSQL (the Prefect wiring is
tested in test_flows.py). The sample catalog is published up to EPOCH1 at epoch 1; the rest
of its observations and a SIMBAD snapshot with changed types arrive at epoch 2.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import text

from db import catalog_store as store
from db import integrity, oracle
from db.settings import Settings
from ingest.sample import generate_sample
from ingest.sample_source import SampleCsc, SampleSimbad
from pipeline import classify, ingest

EPOCH1 = "2014-12-31"
PROJECT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def sample():
    return generate_sample(1500, seed=11)


@pytest.fixture(scope="module")
def settings():
    return Settings(n_components=6, random_state=42)


def q(engine, sql: str, **params) -> list[tuple]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text(sql), params).fetchall()]


def scalar(engine, sql: str, **params):
    with engine.connect() as conn:
        return conn.execute(text(sql), params).scalar()


def snapshot(engine, version: int | None = None) -> pd.DataFrame:
    sql = ("SELECT * FROM catalog.source_class" if version is None
           else f"SELECT * FROM catalog.source_class_as_of({int(version)})")
    with engine.connect() as conn:
        return pd.read_sql_query(text(sql), conn).sort_values("source_id", ignore_index=True)


def invariants(engine) -> None:
    """What must hold after any sequence of runs."""
    assert q(engine, """SELECT detection_id FROM catalog.detection_result WHERE valid_to IS NULL
                        GROUP BY detection_id HAVING count(*) > 1""") == []
    assert q(engine, """SELECT source_id FROM catalog.source_result WHERE valid_to IS NULL
                        GROUP BY source_id HAVING count(*) > 1""") == []
    assert q(engine, """SELECT 1 FROM catalog.source_result WHERE valid_to <= valid_from""") == []
    versions = [v for (v,) in q(engine, "SELECT release_id FROM catalog.release ORDER BY 1")]
    assert versions == list(range(1, len(versions) + 1)), "versions are numbered without gaps"
    assert scalar(engine, "SELECT count(*) FROM catalog.fitted_model WHERE status = 'active'") <= 1
    with engine.connect() as conn:
        assert integrity.problems(conn) == {}
    # source_class's current-state table and every version's class counts follow the history
    assert oracle.stored_state_problems(engine) == []


@pytest.fixture(scope="module")
def epochs(engine, sample, settings):
    """Epoch 1 then epoch 2, with what each step returned and the v1 snapshot."""
    out = {}
    out["csc1"] = ingest.ingest_csc(engine, SampleCsc(sample), until=EPOCH1)
    out["simbad1"] = ingest.ingest_simbad(engine, SampleSimbad(sample, 1), refresh_days=None)
    out["refit"] = classify.refit(engine, settings)
    out["v1"] = classify.publish(engine, settings, promote=out["refit"].model_id)
    out["snap1"] = snapshot(engine)
    out["detections1"] = scalar(engine, "SELECT count(*) FROM catalog.csc_detection")
    out["sources1"] = scalar(engine, "SELECT count(*) FROM catalog.csc_source")
    out["csc2"] = ingest.ingest_csc(engine, SampleCsc(sample))
    out["simbad2"] = ingest.ingest_simbad(engine, SampleSimbad(sample, 2), refresh_days=0)
    out["v2"] = classify.publish(engine, settings)
    out["snap2"] = snapshot(engine)
    return out


def test_epoch1_classifies_everything_once(epochs, engine):
    v1 = epochs["v1"]
    assert v1.catalog_version == 1
    assert v1.detections_classified == epochs["detections1"] == epochs["csc1"].new_detections
    assert len(epochs["snap1"]) == epochs["sources1"] == epochs["csc1"].new_sources
    invariants(engine)


def test_epoch2_classifies_exactly_the_new_detections(epochs, engine):
    run2 = epochs["csc2"].run_id
    assert epochs["csc2"].new_detections > 0
    new_ids = {r[0] for r in q(engine, "SELECT detection_id FROM catalog.csc_detection "
                                       "WHERE ingest_run_id = :r", r=run2)}
    classified = {r[0] for r in q(engine, "SELECT detection_id FROM catalog.detection_result "
                                          "WHERE valid_from = 2")}
    assert classified == new_ids
    assert epochs["v2"].detections_classified == len(new_ids)
    # nothing classified at version 1 was rewritten
    assert scalar(engine, "SELECT count(*) FROM catalog.detection_result "
                          "WHERE valid_to IS NOT NULL") == 0


def test_epoch2_writes_master_rows_only_for_affected_sources(epochs, engine):
    gained = {r[0] for r in q(engine, "SELECT DISTINCT source_id FROM catalog.csc_detection "
                                      "WHERE ingest_run_id = :r", r=epochs["csc2"].run_id)}
    simbad_changed = {r[0] for r in q(engine, "SELECT source_id FROM catalog.simbad_match_history")}
    assert simbad_changed, "the epoch-2 SIMBAD snapshot changes some types"
    written = {r[0] for r in q(engine, "SELECT source_id FROM catalog.source_result "
                                       "WHERE valid_from = 2")}
    assert written and written <= gained | simbad_changed
    # and every source whose result differs from version 1 was written
    s1, s2 = epochs["snap1"].set_index("source_id"), epochs["snap2"].set_index("source_id")
    both = s1.index.intersection(s2.index)
    cols = ["adopted_class", "label_origin", "hard_class", "soft_class", "n_detections"]
    differ = (s1.loc[both, cols].fillna("∅") != s2.loc[both, cols].fillna("∅")).any(axis=1)
    assert set(both[differ]) <= written
    assert set(s2.index.difference(s1.index)) <= written
    invariants(engine)


def test_as_of_version_1_returns_what_was_current_then(epochs, engine):
    then = epochs["snap1"].drop(columns=["valid_to"])
    now_as_of = snapshot(engine, 1).drop(columns=["valid_to"])
    pd.testing.assert_frame_equal(now_as_of, then)
    pd.testing.assert_frame_equal(snapshot(engine, 2), epochs["snap2"])


def test_class_change_lists_exactly_the_sources_that_changed(epochs, engine):
    s1 = epochs["snap1"].set_index("source_id")["adopted_class"]
    s2 = epochs["snap2"].set_index("source_id")["adopted_class"]
    joined = pd.concat([s1.rename("a"), s2.rename("b")], axis=1)
    expected = set(joined.index[joined["a"].fillna("∅") != joined["b"].fillna("∅")])
    got = {r[0] for r in q(engine, "SELECT source_id FROM catalog.class_changes(1, 2)")}
    assert got == expected and expected
    view = {r[0] for r in q(engine, "SELECT source_id FROM catalog.class_change "
                                    "WHERE catalog_version = 2")}
    existing_changed = expected & set(s1.index)
    assert view == {s for s in existing_changed if s1[s] is not None or s2[s] is not None}


def test_a_run_with_no_new_data_adds_no_rows(epochs, engine, sample, settings):
    before = q(engine, "SELECT (SELECT count(*) FROM catalog.detection_result), "
                       "(SELECT count(*) FROM catalog.source_result), "
                       "(SELECT count(*) FROM catalog.release)")
    assert ingest.ingest_csc(engine, SampleCsc(sample)).new_detections == 0
    ingest.ingest_simbad(engine, SampleSimbad(sample, 2), refresh_days=0)
    assert classify.publish(engine, settings) is None
    after = q(engine, "SELECT (SELECT count(*) FROM catalog.detection_result), "
                      "(SELECT count(*) FROM catalog.source_result), "
                      "(SELECT count(*) FROM catalog.release)")
    assert after == before


def test_a_publish_that_fails_halfway_leaves_the_last_version(epochs, engine, sample, settings,
                                                             monkeypatch):
    before = snapshot(engine)
    n_release = scalar(engine, "SELECT count(*) FROM catalog.release")
    n_rows = scalar(engine, "SELECT count(*) FROM catalog.detection_result")

    def boom(*args, **kwargs):
        raise RuntimeError("killed after writing detection results")

    monkeypatch.setattr(store, "write_source_results", boom)
    with pytest.raises(RuntimeError, match="killed"):
        classify.publish(engine, settings, reclassify_all=True)
    assert scalar(engine, "SELECT count(*) FROM catalog.release") == n_release
    assert scalar(engine, "SELECT count(*) FROM catalog.detection_result") == n_rows
    pd.testing.assert_frame_equal(snapshot(engine), before)
    invariants(engine)


KILL_SCRIPT = """
import sys, time, pathlib
from db import catalog_store as store
from db import integrity
from db.engine import get_engine
from db.settings import Settings
from pipeline import classify
marker = pathlib.Path(sys.argv[1])
real = store.write_source_results
def slow(*a, **k):
    n = real(*a, **k)
    marker.write_text("written")
    time.sleep(120)
    return n
store.write_source_results = slow
classify.publish(get_engine(), Settings(), reclassify_all=True)
"""


def test_a_killed_run_leaves_the_last_version_intact(epochs, engine, db_url, tmp_path):
    before = snapshot(engine)
    counts = q(engine, "SELECT (SELECT count(*) FROM catalog.release), "
                       "(SELECT count(*) FROM catalog.detection_result), "
                       "(SELECT count(*) FROM catalog.source_result)")
    marker = tmp_path / "marker"
    env = {**os.environ, "CSCAT_DATABASE_URL": db_url, "PYTHONPATH": str(PROJECT)}
    child = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT, str(marker)], env=env)
    try:
        deadline = time.monotonic() + 120
        while not marker.exists():
            assert child.poll() is None, "the child ended before it was killed"
            assert time.monotonic() < deadline
            time.sleep(0.2)
        child.send_signal(signal.SIGKILL)  # all its rows are written, not committed
        child.wait(30)
    finally:
        if child.poll() is None:
            child.kill()
    deadline = time.monotonic() + 30  # the server notices the dead connection
    while scalar(engine, "SELECT count(*) FROM pg_stat_activity WHERE datname = "
                         "current_database() AND state = 'idle in transaction'"):
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert q(engine, "SELECT (SELECT count(*) FROM catalog.release), "
                     "(SELECT count(*) FROM catalog.detection_result), "
                     "(SELECT count(*) FROM catalog.source_result)") == counts
    pd.testing.assert_frame_equal(snapshot(engine), before)
    invariants(engine)


def test_two_concurrent_runs_leave_a_consistent_catalog(epochs, engine, sample, settings):
    """Both wait for the advisory lock; each fits its own model and publishes it."""
    results, errors = [], []

    def run(seed: int):
        try:
            with store.update_lock(engine, wait=True):
                ingest.ingest_csc(engine, SampleCsc(sample))
                fitted = classify.refit(engine, Settings(n_components=6, random_state=seed))
                results.append(classify.publish(engine, settings, promote=fitted.model_id,
                                                reclassify_all=True))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    n_release = scalar(engine, "SELECT count(*) FROM catalog.release")
    threads = [threading.Thread(target=run, args=(100 + i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert not errors, errors
    assert sorted(r is None for r in results) == [False, False]  # a new model: a version each
    assert scalar(engine, "SELECT count(*) FROM catalog.release") == n_release + 2
    n_det = scalar(engine, "SELECT count(*) FROM catalog.csc_detection")
    assert scalar(engine, "SELECT count(*) FROM catalog.detection_result "
                          "WHERE valid_to IS NULL") == n_det
    invariants(engine)


def test_a_second_update_without_wait_exits_with_a_clear_message(engine):
    with store.update_lock(engine):
        with pytest.raises(store.CatalogBusy, match="another catalog update is running"):
            with store.update_lock(engine, wait=False):
                pass


def test_reader_role_can_query_but_not_write(epochs, engine):
    with engine.connect() as conn:
        conn.execute(text("SET ROLE cscat_reader"))
        assert conn.execute(text("SELECT count(*) FROM catalog.source_class")).scalar() > 0
        assert conn.execute(text("SELECT count(*) FROM catalog.source_class_as_of(1)")).scalar()
        with pytest.raises(Exception, match="permission denied"):
            conn.execute(text("DELETE FROM catalog.source_result"))
        conn.rollback()


def test_detection_class_view_has_a_probability_column_per_class(epochs, engine):
    cols = [r[0] for r in q(engine, """SELECT column_name FROM information_schema.columns
        WHERE table_schema = 'catalog' AND table_name = 'detection_class'
        ORDER BY ordinal_position""")]
    for c in ["p_qso", "p_agn", "p_seyfert_1", "p_seyfert_2", "p_hmxb", "p_lmxb", "p_xb",
              "p_yso", "p_ttau", "p_orion_v"]:
        assert c in cols
    sums = q(engine, """SELECT p_qso + p_agn + p_seyfert_1 + p_seyfert_2 + p_hmxb + p_lmxb
        + p_xb + p_yso + p_ttau + p_orion_v FROM catalog.detection_class
        WHERE predicted_class IS NOT NULL""")
    assert sums and all(abs(s - 1) < 1e-9 for (s,) in sums)
