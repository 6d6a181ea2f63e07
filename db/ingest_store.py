"""SQL of ingest: run records, coverage by ObsID, rejected rows and SIMBAD matches."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

import pandas as pd
from sqlalchemy import Connection, Engine, text

from db.load import copy_frame
from db.models import SCHEMA

log = logging.getLogger(__name__)

#: pg_advisory_lock key held by every ingest writer ("cscig" in ASCII). Distinct from the
#: catalog update lock (``db.catalog_store.UPDATE_LOCK_KEY``), which an update holds on
#: another connection while it runs the ingest steps: always update lock first, then this.
INGEST_LOCK_KEY = 0x6373636967


class IngestBusy(RuntimeError):
    """Another ingest holds the ingest lock (raised only when not waiting)."""


def _lock_holder(conn: Connection, key: int) -> int | None:
    return conn.execute(text(
        "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted "
        "AND classid = :hi AND objid = :lo LIMIT 1"),
        {"hi": (key >> 32) & 0xFFFFFFFF, "lo": key & 0xFFFFFFFF}).scalar()


@contextmanager
def ingest_lock(engine: Engine, what: str, wait: bool = True) -> Iterator[None]:
    """Hold the ingest lock: one ingest writer at a time, across processes.

    When another ingest holds it: wait for it (saying so once) or, with ``wait=False``,
    raise IngestBusy naming the holder.
    """
    with engine.connect() as conn:
        if not conn.execute(text("SELECT pg_try_advisory_lock(:k)"),
                            {"k": INGEST_LOCK_KEY}).scalar_one():
            holder = _lock_holder(conn, INGEST_LOCK_KEY)
            msg = f"another ingest is running (server pid {holder})"
            if not wait:
                conn.rollback()
                raise IngestBusy(f"{msg}; {what} not started: try again when it has finished")
            log.warning("%s; %s waits for it to finish", msg, what)
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": INGEST_LOCK_KEY})
        conn.commit()
        try:
            yield
        finally:
            try:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": INGEST_LOCK_KEY})
                conn.commit()
            except Exception as exc:  # noqa: BLE001 - the session ends and frees it anyway
                log.debug("releasing the ingest lock failed: %s", exc)


def start_run(engine: Engine, kind: str, origin: str, watermark: dict | None = None) -> int:
    """Record a new ingest run (committed at once, so a failed run stays visible)."""
    with engine.begin() as conn:
        return conn.execute(
            text(f"INSERT INTO {SCHEMA}.ingest_run (kind, origin, watermark) "
                 "VALUES (:k, :o, CAST(:w AS jsonb)) RETURNING run_id"),
            {"k": kind, "o": origin, "w": json.dumps(watermark) if watermark else None},
        ).scalar_one()


def add_counts(conn: Connection, run_id: int, *, new_detections: int = 0, new_sources: int = 0,
               duplicates: int = 0, rejected: int = 0) -> None:
    """Add to a run's counters (inside the transaction that made the change)."""
    conn.execute(
        text(f"UPDATE {SCHEMA}.ingest_run SET n_new_detections = n_new_detections + :d, "
             "n_new_sources = n_new_sources + :s, n_duplicates = n_duplicates + :u, "
             "n_rejected = n_rejected + :r WHERE run_id = :id"),
        {"d": new_detections, "s": new_sources, "u": duplicates, "r": rejected, "id": run_id},
    )


def finish_run(engine: Engine, run_id: int, status: str, message: str | None = None) -> dict:
    """Close a run; returns its row (counts included)."""
    with engine.begin() as conn:
        row = conn.execute(
            text(f"UPDATE {SCHEMA}.ingest_run SET status = :st, message = :m, "
                 "finished_at = now() WHERE run_id = :id RETURNING *"),
            {"st": status, "m": message, "id": run_id},
        ).mappings().one()
    return dict(row)


def ingested_obsids(conn: Connection) -> set[int]:
    """ObsIDs whose detections are stored."""
    return set(conn.execute(text(f"SELECT obsid FROM {SCHEMA}.observation")).scalars())


def record_observations(conn: Connection, observations: pd.DataFrame, run_id: int) -> None:
    """Mark ObsIDs as ingested (columns ``obsid``, ``obs_mjd``, ``n_detections``)."""
    if observations.empty:
        return
    frame = observations[["obsid", "obs_mjd", "n_detections"]].assign(ingest_run_id=run_id)
    copy_frame(conn, f"{SCHEMA}.observation", frame, list(frame.columns))


def record_rejected(conn: Connection, rejected: pd.DataFrame, run_id: int) -> None:
    """Keep rejected input rows with their reasons (columns ``row_number``, ``natural_key``,
    ``reason`` and optionally ``payload`` as JSON text)."""
    if rejected.empty:
        return
    frame = rejected.reindex(columns=["row_number", "natural_key", "reason", "payload"])
    frame = frame.assign(ingest_run_id=run_id)
    copy_frame(conn, f"{SCHEMA}.rejected_row", frame, list(frame.columns))


def pending_sources(conn: Connection, step: str, match_table: str, columns: str,
                    refresh_days: float | None, *, catalogue: str | None = None
                    ) -> pd.DataFrame:
    """``columns`` of the sources queued for ``step`` in ``catalog.source_pending`` (kept by
    triggers), plus those whose ``match_table`` row (of ``catalogue``, where the table has
    one per catalogue) was fetched more than ``refresh_days`` ago (by its index on
    ``fetched_at``). Neither reads every source. ``step``, ``match_table`` and ``columns``
    are the callers' constants, never user input."""
    params: dict = {"step": step, "secs": float(refresh_days or 0) * 86400.0}
    by_cat = ""
    if catalogue is not None:
        by_cat, params["cat"] = "AND m.catalogue = :cat ", catalogue
    stale = "" if refresh_days is None else (
        f"UNION SELECT m.source_id FROM {SCHEMA}.{match_table} m "
        f"WHERE m.fetched_at < now() - make_interval(secs => :secs) {by_cat}")
    return pd.read_sql_query(
        text(f"SELECT {columns} FROM {SCHEMA}.csc_source s "
             f"WHERE s.source_id IN (SELECT p.source_id FROM {SCHEMA}.source_pending p "
             f"WHERE p.step = :step {stale}) ORDER BY s.source_id"),
        conn, params=params)


def sources_for_simbad(conn: Connection, refresh_days: float | None) -> pd.DataFrame:
    """Sources never crossmatched, or last crossmatched more than ``refresh_days`` ago
    (:func:`pending_sources`, step ``simbad``)."""
    return pending_sources(conn, "simbad", "simbad_match", "s.source_id, s.name, s.ra, s.dec",
                           refresh_days)


def upsert_simbad(conn: Connection, matches: pd.DataFrame, run_id: int,
                  fetched_at: datetime) -> dict[str, int]:
    """Store crossmatch results by source name; changed matches move to the history.

    ``matches``: ``name, main_id, otype, separation_arcsec`` (``main_id`` NA: no match).
    Returns counts: ``new``, ``changed``, ``unchanged``, ``unknown_source``.
    """
    conn.exec_driver_sql("DROP TABLE IF EXISTS pg_temp.stage_simbad")
    conn.exec_driver_sql(
        "CREATE TEMP TABLE stage_simbad (name text, main_id text, otype text, "
        "separation_arcsec double precision) ON COMMIT DROP")
    cols = ["name", "main_id", "otype", "separation_arcsec"]
    copy_frame(conn, "pg_temp.stage_simbad", matches.reindex(columns=cols), cols)
    params = {"run": run_id, "at": fetched_at}
    counts = dict(conn.execute(text(f"""
        SELECT count(*) FILTER (WHERE s.source_id IS NULL) AS unknown_source,
               count(*) FILTER (WHERE s.source_id IS NOT NULL AND m.source_id IS NULL) AS new,
               count(*) FILTER (WHERE m.source_id IS NOT NULL AND
                   (m.main_id, m.otype) IS DISTINCT FROM (st.main_id, st.otype)) AS changed,
               count(*) FILTER (WHERE m.source_id IS NOT NULL AND
                   (m.main_id, m.otype) IS NOT DISTINCT FROM (st.main_id, st.otype)) AS unchanged
        FROM pg_temp.stage_simbad st
        LEFT JOIN {SCHEMA}.csc_source s ON s.name = st.name
        LEFT JOIN {SCHEMA}.simbad_match m ON m.source_id = s.source_id""")).mappings().one())
    # queue the sources whose match is new or changed, in this transaction: the next publish
    # rebuilds them (catalog.simbad_change; a publish running now does not see them)
    conn.execute(text(f"""
        INSERT INTO {SCHEMA}.simbad_change (source_id, ingest_run_id)
        SELECT DISTINCT s.source_id, CAST(:run AS integer) FROM pg_temp.stage_simbad st
        JOIN {SCHEMA}.csc_source s ON s.name = st.name
        LEFT JOIN {SCHEMA}.simbad_match m ON m.source_id = s.source_id
        WHERE m.source_id IS NULL
           OR (m.main_id, m.otype) IS DISTINCT FROM (st.main_id, st.otype)"""), params)
    conn.execute(text(f"""
        INSERT INTO {SCHEMA}.simbad_match_history
            (source_id, main_id, otype, separation_arcsec, fetched_at, replaced_at,
             ingest_run_id)
        SELECT m.source_id, m.main_id, m.otype, m.separation_arcsec, m.fetched_at, :at,
               m.ingest_run_id
        FROM pg_temp.stage_simbad st
        JOIN {SCHEMA}.csc_source s ON s.name = st.name
        JOIN {SCHEMA}.simbad_match m ON m.source_id = s.source_id
        WHERE (m.main_id, m.otype) IS DISTINCT FROM (st.main_id, st.otype)"""), params)
    conn.execute(text(f"""
        INSERT INTO {SCHEMA}.simbad_match AS m
            (source_id, main_id, otype, separation_arcsec, fetched_at, changed_at,
             ingest_run_id)
        SELECT DISTINCT ON (s.source_id) s.source_id, st.main_id, st.otype,
               st.separation_arcsec, :at, :at, :run
        FROM pg_temp.stage_simbad st JOIN {SCHEMA}.csc_source s ON s.name = st.name
        ORDER BY s.source_id, st.separation_arcsec NULLS LAST
        ON CONFLICT (source_id) DO UPDATE SET main_id = EXCLUDED.main_id,
            otype = EXCLUDED.otype, separation_arcsec = EXCLUDED.separation_arcsec,
            fetched_at = EXCLUDED.fetched_at, ingest_run_id = EXCLUDED.ingest_run_id,
            changed_at = CASE WHEN (m.main_id, m.otype) IS DISTINCT FROM
                                   (EXCLUDED.main_id, EXCLUDED.otype)
                              THEN EXCLUDED.changed_at ELSE m.changed_at END"""),
        params)
    conn.exec_driver_sql("DROP TABLE pg_temp.stage_simbad")
    return {k: int(v) for k, v in counts.items()}
