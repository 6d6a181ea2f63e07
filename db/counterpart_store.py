"""SQL of the counterpart step: which sources need a match, and storing candidates and matches
(a changed chosen counterpart moves the old match to the history, as for SIMBAD)."""

from __future__ import annotations

from datetime import datetime

import pandas as pd
from sqlalchemy import Connection, text

from db.ingest_store import pending_sources
from db.load import copy_frame
from db.models import COUNTERPART_CATALOGUES, COUNTERPART_ERRORS, SCHEMA
from db.models import COUNTERPART_VALUES as _VALUES

#: Value columns of a candidate: magnitudes, astrometry and the magnitudes' errors.
COUNTERPART_VALUES = _VALUES + COUNTERPART_ERRORS

CANDIDATE_COLUMNS = ("name", "catalogue", "cp_id", "ra", "dec", "separation_arcsec",
                     "sigma_arcsec", "p_any", "p_i", "chosen", *COUNTERPART_VALUES)
#: The catalogue whose match row takes a source off the counterpart queue (the triggers of
#: migration 0013 name it).
PENDING_CATALOGUE = "gaia"
assert COUNTERPART_CATALOGUES[0] == PENDING_CATALOGUE, "migration 0013's triggers name gaia"
MATCH_COLUMNS = ("name", "catalogue", "cp_id", "p_any", "p_i", "separation_arcsec",
                 "n_candidates")


def sources_for_counterparts(conn: Connection, refresh_days: float | None) -> pd.DataFrame:
    """Sources without a fresh match: never matched, or matched more than ``refresh_days``
    ago (None: never refreshed). A source's matches in every catalogue are written together,
    in one transaction (``store_counterparts``), so its first catalogue's row tells. Never
    matched: the queue ``catalog.source_pending`` (step ``counterparts``, kept by triggers on
    that catalogue's rows); stale: that catalogue's rows by the index on ``fetched_at``.
    Neither reads every source."""
    return pending_sources(conn, "counterparts", "counterpart_match",
                           "s.source_id, s.name, s.ra, s.dec, s.err_ellipse_r0", refresh_days,
                           catalogue=PENDING_CATALOGUE)


def store_counterparts(conn: Connection, candidates: pd.DataFrame, matches: pd.DataFrame,
                       run_id: int, fetched_at: datetime) -> dict[str, int]:
    """Replace the candidates and matches of the sources in ``matches`` (by name).

    Returns counts: ``sources``, ``candidates``, ``chosen``, ``new``, ``changed``,
    ``unchanged`` (matches by source and catalogue; changed: another chosen counterpart,
    or one where there was none, or none where there was one), ``queued`` (sources queued in
    ``counterpart_change``: their chosen counterpart or its values changed).
    """
    conn.exec_driver_sql("DROP TABLE IF EXISTS pg_temp.stage_cp_match")
    conn.exec_driver_sql(
        "CREATE TEMP TABLE stage_cp_match (name text, catalogue text, cp_id text, "
        "p_any double precision, p_i double precision, separation_arcsec double precision, "
        "n_candidates integer, source_id bigint) ON COMMIT DROP")
    cols = list(MATCH_COLUMNS)
    copy_frame(conn, "pg_temp.stage_cp_match", matches.reindex(columns=cols), cols)
    conn.execute(text(f"UPDATE pg_temp.stage_cp_match st SET source_id = s.source_id "
                      f"FROM {SCHEMA}.csc_source s WHERE s.name = st.name"))
    conn.exec_driver_sql("DELETE FROM pg_temp.stage_cp_match WHERE source_id IS NULL")
    conn.exec_driver_sql("ANALYZE pg_temp.stage_cp_match")  # plans for its real size
    cand = candidates.reindex(columns=list(CANDIDATE_COLUMNS))
    conn.exec_driver_sql("DROP TABLE IF EXISTS pg_temp.stage_cp_cand")
    conn.exec_driver_sql(
        "CREATE TEMP TABLE stage_cp_cand (name text, catalogue text, cp_id text, "
        "ra double precision, dec double precision, separation_arcsec double precision, "
        "sigma_arcsec double precision, p_any double precision, p_i double precision, "
        "chosen boolean, " + ", ".join(f"{c} double precision" for c in COUNTERPART_VALUES)
        + ") ON COMMIT DROP")
    copy_frame(conn, "pg_temp.stage_cp_cand", cand, list(CANDIDATE_COLUMNS))
    conn.exec_driver_sql("ANALYZE pg_temp.stage_cp_cand")
    params = {"run": run_id, "at": fetched_at}
    vals = ", ".join(COUNTERPART_VALUES)  # fixed identifiers from db.models
    # queue the sources whose chosen counterpart (or its values) changes, in this
    # transaction: the next publish reclassifies them with the families using counterpart
    # features (catalog.counterpart_change; a publish running now does not see them)
    queued = conn.execute(text(f"""
        INSERT INTO {SCHEMA}.counterpart_change (source_id, ingest_run_id)
        SELECT DISTINCT st.source_id, CAST(:run AS integer) FROM pg_temp.stage_cp_match st
        LEFT JOIN {SCHEMA}.counterpart_match m
          ON m.source_id = st.source_id AND m.catalogue = st.catalogue
        LEFT JOIN {SCHEMA}.counterpart_candidate o ON o.source_id = st.source_id
          AND o.catalogue = st.catalogue AND o.cp_id = m.cp_id
        LEFT JOIN (SELECT DISTINCT ON (name, catalogue, cp_id) name, catalogue, cp_id, {vals}
          FROM pg_temp.stage_cp_cand WHERE chosen
          ORDER BY name, catalogue, cp_id, separation_arcsec) n
          ON n.name = st.name AND n.catalogue = st.catalogue AND n.cp_id = st.cp_id
        WHERE m.cp_id IS DISTINCT FROM st.cp_id
           OR ({", ".join("o." + v for v in COUNTERPART_VALUES)}) IS DISTINCT FROM
              ({", ".join("n." + v for v in COUNTERPART_VALUES)})"""), params).rowcount
    counts = dict(conn.execute(text(f"""
        SELECT count(DISTINCT st.source_id) AS sources,
               count(*) FILTER (WHERE m.source_id IS NULL) AS new,
               count(*) FILTER (WHERE m.source_id IS NOT NULL
                                AND m.cp_id IS DISTINCT FROM st.cp_id) AS changed,
               count(*) FILTER (WHERE m.source_id IS NOT NULL
                                AND m.cp_id IS NOT DISTINCT FROM st.cp_id) AS unchanged,
               count(st.cp_id) AS chosen
        FROM pg_temp.stage_cp_match st LEFT JOIN {SCHEMA}.counterpart_match m
          ON m.source_id = st.source_id AND m.catalogue = st.catalogue""")).mappings().one())
    conn.execute(text(f"""
        INSERT INTO {SCHEMA}.counterpart_match_history
            (source_id, catalogue, cp_id, p_any, p_i, separation_arcsec, fetched_at,
             replaced_at, ingest_run_id)
        SELECT m.source_id, m.catalogue, m.cp_id, m.p_any, m.p_i, m.separation_arcsec,
               m.fetched_at, :at, m.ingest_run_id
        FROM pg_temp.stage_cp_match st JOIN {SCHEMA}.counterpart_match m
          ON m.source_id = st.source_id AND m.catalogue = st.catalogue
        WHERE m.cp_id IS DISTINCT FROM st.cp_id"""), params)
    conn.execute(text(f"""
        INSERT INTO {SCHEMA}.counterpart_match AS m
            (source_id, catalogue, cp_id, p_any, p_i, separation_arcsec, n_candidates,
             fetched_at, changed_at, ingest_run_id)
        SELECT source_id, catalogue, cp_id, p_any, p_i, separation_arcsec, n_candidates,
               :at, :at, :run FROM pg_temp.stage_cp_match
        ON CONFLICT (source_id, catalogue) DO UPDATE SET cp_id = EXCLUDED.cp_id,
            p_any = EXCLUDED.p_any, p_i = EXCLUDED.p_i,
            separation_arcsec = EXCLUDED.separation_arcsec,
            n_candidates = EXCLUDED.n_candidates, fetched_at = EXCLUDED.fetched_at,
            ingest_run_id = EXCLUDED.ingest_run_id,
            changed_at = CASE WHEN m.cp_id IS DISTINCT FROM EXCLUDED.cp_id
                              THEN EXCLUDED.changed_at ELSE m.changed_at END"""), params)
    conn.execute(text(f"""
        DELETE FROM {SCHEMA}.counterpart_candidate c USING pg_temp.stage_cp_match st
        WHERE c.source_id = st.source_id AND c.catalogue = st.catalogue"""))
    value_cols = vals
    n_cand = conn.execute(text(f"""
        INSERT INTO {SCHEMA}.counterpart_candidate
            (source_id, catalogue, cp_id, ra, dec, separation_arcsec, sigma_arcsec, p_any,
             p_i, chosen, {value_cols}, fetched_at, ingest_run_id)
        SELECT DISTINCT ON (st.source_id, c.catalogue, c.cp_id) st.source_id, c.catalogue,
               c.cp_id, c.ra, c.dec, c.separation_arcsec, c.sigma_arcsec, c.p_any, c.p_i,
               c.chosen, {", ".join("c." + v for v in COUNTERPART_VALUES)}, :at, :run
        FROM pg_temp.stage_cp_cand c JOIN pg_temp.stage_cp_match st
          ON st.name = c.name AND st.catalogue = c.catalogue
        ORDER BY st.source_id, c.catalogue, c.cp_id, c.separation_arcsec"""),
        params).rowcount
    conn.exec_driver_sql("DROP TABLE pg_temp.stage_cp_cand")
    conn.exec_driver_sql("DROP TABLE pg_temp.stage_cp_match")
    counts["candidates"] = n_cand
    counts["queued"] = queued
    return {k: int(v) for k, v in counts.items()}
