"""The load into an empty catalog (``db.load._EmptyCatalogLoad``: truncate, COPY FREEZE,
indexes and constraints built after the COPYs) stores exactly what the row-by-row path
stores, leaves the schema as it was, rolls back whole, and is used only when every table it
truncates is empty and its locks are granted.

Each test runs both paths by setting ``db.load.BULK_MIN_ROWS`` (0: always the empty-catalog
path when the catalog is empty; huge: never) on this module's own database.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import Engine, text

import db.load
from ingest.files import read_table, write_table
from ingest.sample import generate_sample
from pipeline.ingest import ingest_frame

NEVER = 10**12
TABLES = ("ingest_run", "observation", "rejected_row", "csc_source", "csc_detection",
          "simbad_match", "simbad_match_history", "source_pending", "unclassified_detection",
          "detection_tally")


def empty(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.exec_driver_sql("TRUNCATE " + ", ".join(f"catalog.{t}" for t in TABLES)
                             + " RESTART IDENTITY CASCADE")


@pytest.fixture(autouse=True)
def clean(engine: Engine) -> None:
    empty(engine)


@pytest.fixture(scope="module")
def detections() -> pd.DataFrame:
    """A few thousand detections with bad rows: a value out of range, a repeated key and a
    known name at another position (a load conflict)."""
    det = generate_sample(400, seed=5).detections.reset_index(drop=True)
    det.loc[3, "hard_hm"] = 1.7
    det = pd.concat([det, det.iloc[[10]]], ignore_index=True)
    moved = det.iloc[[20]].copy()
    moved["obsid"] = int(det["obsid"].max()) + 1
    moved["ra"] = moved["ra"] + 0.01
    return pd.concat([det, moved], ignore_index=True)


def schema(engine: Engine) -> set[tuple]:
    """Every index, constraint and trigger of the catalog schema, as the server shows it."""
    with engine.connect() as conn:
        idx = conn.execute(text(
            "SELECT tablename, indexname, indexdef FROM pg_indexes "
            "WHERE schemaname = 'catalog'")).all()
        con = conn.execute(text(
            "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid), "
            "convalidated FROM pg_constraint WHERE connamespace = 'catalog'::regnamespace"
        )).all()
        trg = conn.execute(text(
            "SELECT tgrelid::regclass::text, tgname, tgenabled FROM pg_trigger "
            "WHERE NOT tgisinternal")).all()
    return {("index", *r) for r in idx} | {("constraint", *r) for r in con} | {
        ("trigger", *r) for r in trg}


def contents(engine: Engine) -> dict[str, pd.DataFrame]:
    """What a load stores, without ids a sequence gave or times."""
    q = {
        "source": "SELECT name, ra, dec, err_ellipse_r0, significance, likelihood_class "
                  "FROM catalog.csc_source ORDER BY name",
        "detection": "SELECT s.name, d.* FROM catalog.csc_detection d "
                     "JOIN catalog.csc_source s USING (source_id) "
                     "ORDER BY s.name, d.obsid, d.obi, d.region_id",
        "pending": "SELECT p.step, s.name FROM catalog.source_pending p "
                   "JOIN catalog.csc_source s USING (source_id) ORDER BY 1, 2",
        "unclassified": "SELECT s.name, d.obsid, d.obi, d.region_id "
                        "FROM catalog.unclassified_detection u "
                        "JOIN catalog.csc_detection d USING (detection_id) "
                        "JOIN catalog.csc_source s USING (source_id) ORDER BY 1, 2, 3, 4",
        "tally": "SELECT otype, sum(n_detections) AS n FROM catalog.detection_tally "
                 "GROUP BY otype ORDER BY otype",
        "rejected": "SELECT row_number, natural_key, reason FROM catalog.rejected_row "
                    "ORDER BY row_number, reason",
        "run": "SELECT n_new_detections, n_new_sources, n_duplicates, n_rejected, status "
               "FROM catalog.ingest_run ORDER BY run_id",
    }
    with engine.connect() as conn:
        out = {k: pd.read_sql_query(text(v), conn) for k, v in q.items()}
    out["detection"] = out["detection"].drop(
        columns=["detection_id", "source_id", "ingest_run_id"])
    return out


def load(engine: Engine, frame: pd.DataFrame, tmp_path, name: str = "det.parquet"):
    path = write_table(frame, tmp_path / name)
    return ingest_frame(engine, read_table(path), kind="file", origin=str(path))


def test_empty_catalog_load_stores_what_the_usual_load_stores(engine, detections, tmp_path,
                                                              monkeypatch):
    before = schema(engine)
    monkeypatch.setattr(db.load, "BULK_MIN_ROWS", NEVER)
    usual = load(engine, detections, tmp_path)
    want = contents(engine)
    empty(engine)
    calls = []
    start = db.load._EmptyCatalogLoad.start.__func__

    def spy(cls, conn, n):
        calls.append(out := start(cls, conn, n))
        return out

    monkeypatch.setattr(db.load._EmptyCatalogLoad, "start", classmethod(spy))
    monkeypatch.setattr(db.load, "BULK_MIN_ROWS", 0)
    bulk = load(engine, detections, tmp_path)
    assert calls and calls[0] is not None and calls[0].rebuild  # the empty-catalog path ran
    got = contents(engine)
    assert (bulk.new_detections, bulk.new_sources, bulk.duplicates, bulk.rejected) == (
        usual.new_detections, usual.new_sources, usual.duplicates, usual.rejected)
    assert usual.rejected == 2 and usual.duplicates >= 1
    for k in want:
        pd.testing.assert_frame_equal(got[k], want[k], check_dtype=False, obj=k)
    assert schema(engine) == before
    # a second load into that catalog takes the usual path and sees every stored row
    again = load(engine, detections, tmp_path)
    assert again.new_detections == 0 and again.new_sources == 0


def test_failed_empty_catalog_load_rolls_back_indexes_included(engine, detections, tmp_path,
                                                                monkeypatch):
    before = schema(engine)
    monkeypatch.setattr(db.load, "BULK_MIN_ROWS", 0)
    real = db.load.copy_binary

    def failing(conn, table, frame, columns, **kw):
        if table.endswith("csc_detection"):
            raise RuntimeError("connection lost in the middle of the COPY")
        return real(conn, table, frame, columns, **kw)

    monkeypatch.setattr(db.load, "copy_binary", failing)
    with pytest.raises(RuntimeError, match="connection lost"):
        load(engine, detections, tmp_path)
    assert schema(engine) == before
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM catalog.csc_source")).scalar() == 0
    monkeypatch.setattr(db.load, "copy_binary", real)
    assert load(engine, detections, tmp_path).new_detections > 0
    assert schema(engine) == before


def test_not_empty_or_not_lockable_loads_as_usual(engine, detections, tmp_path, monkeypatch):
    monkeypatch.setattr(db.load, "BULK_MIN_ROWS", 0)
    monkeypatch.setattr(db.load, "BULK_LOCK_TIMEOUT", "200ms")
    started = []
    start = db.load._EmptyCatalogLoad.start.__func__
    monkeypatch.setattr(db.load._EmptyCatalogLoad, "start", classmethod(
        lambda cls, conn, n: started.append(start(cls, conn, n)) or started[-1]))
    # a queue row left by a deleted source: the queue is not empty, nothing is truncated
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO catalog.source_pending VALUES ('simbad', 999999)"))
    first = detections.iloc[: len(detections) // 2]
    load(engine, first, tmp_path, "first.parquet")
    assert started == [None]
    with engine.connect() as conn:
        assert conn.execute(text(
            "SELECT count(*) FROM catalog.source_pending WHERE source_id = 999999")).scalar() == 1
    # a reader holding a lock on a loaded table: the load does not wait for it, nor fail
    empty(engine)
    with engine.connect() as reader:
        reader.execute(text("SELECT count(*) FROM catalog.csc_detection"))  # lock held
        summary = load(engine, first, tmp_path, "first.parquet")
        reader.rollback()
    assert started[-1] is None and summary.new_detections > 0
    # a catalog with sources: the usual path, the stored rows stay
    n = summary.new_detections
    rest = load(engine, detections, tmp_path, "all.parquet")
    assert started[-1] is None
    with engine.connect() as conn:
        stored = conn.execute(text("SELECT count(*) FROM catalog.csc_detection")).scalar()
    assert stored == n + rest.new_detections
    assert np.isclose(stored, len(detections) - 3, atol=len(detections))


def test_server_crash_after_and_during_an_empty_catalog_load(detections, tmp_path,
                                                             monkeypatch):
    """On a server of its own (``wal_level=minimal``, as every embedded server): a committed
    load survives a SIGKILLed server with every row and index; one killed mid-load leaves the
    empty catalog and its schema, and loads again."""
    import os
    import signal

    import psutil
    from sqlalchemy import create_engine

    from db import migrate
    from db.embedded import EmbeddedServer

    def kill(pid: int) -> None:
        os.kill(pid, signal.SIGKILL)
        try:
            psutil.Process(pid).wait(timeout=30)
        except psutil.NoSuchProcess:
            pass  # gone already

    server = EmbeddedServer(tmp_path / "pg")
    info = server.acquire(keep_running=True)
    try:
        url = info.url("postgresql+psycopg")
        own = create_engine(url)
        migrate.upgrade(own)
        with own.connect() as conn:
            assert conn.execute(text("SHOW wal_level")).scalar() == "minimal"
        before = schema(own)
        monkeypatch.setattr(db.load, "BULK_MIN_ROWS", 0)
        done = load(own, detections, tmp_path)
        want = contents(own)
        own.dispose()
        kill(info.pid)  # no shutdown checkpoint: recovery at restart
        info = server.acquire(keep_running=True)
        own = create_engine(info.url("postgresql+psycopg"))
        got = contents(own)
        for k in want:
            pd.testing.assert_frame_equal(got[k], want[k], check_dtype=False, obj=k)
        assert schema(own) == before
        with own.connect() as conn:  # the rebuilt indexes find every row
            conn.exec_driver_sql("SET enable_seqscan = off")
            n = conn.execute(text("SELECT count(*) FROM catalog.csc_detection d JOIN "
                                  "catalog.csc_source s USING (source_id) "
                                  "WHERE s.name >= '' AND d.obsid > 0")).scalar()
        assert n == done.new_detections
        assert load(own, detections, tmp_path).new_detections == 0
        # killed in the middle of the load: nothing of it stays
        with own.begin() as conn:
            conn.exec_driver_sql("TRUNCATE " + ", ".join(f"catalog.{t}" for t in TABLES)
                                 + " RESTART IDENTITY CASCADE")
        real, pid = db.load.copy_binary, info.pid

        def crash(conn, table, frame, columns, **kw):
            if table.endswith("csc_detection"):
                kill(pid)
            return real(conn, table, frame, columns, **kw)

        monkeypatch.setattr(db.load, "copy_binary", crash)
        with pytest.raises(Exception):  # noqa: B017 - the connection is lost, any error
            load(own, detections, tmp_path)
        monkeypatch.setattr(db.load, "copy_binary", real)
        own.dispose()
        info = server.acquire(keep_running=True)
        own = create_engine(info.url("postgresql+psycopg"))
        assert schema(own) == before
        with own.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM catalog.csc_source")).scalar() == 0
            assert conn.execute(text(
                "SELECT count(*) FROM catalog.source_pending")).scalar() == 0
        assert load(own, detections, tmp_path).new_detections == done.new_detections
        own.dispose()
    finally:
        server.stop()
