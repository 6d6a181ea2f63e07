"""Migration 0010's position index serves the cone queries the explorer's search, ``/scs``
and ``Catalog.cone`` actually run: PostgreSQL's plan for each reads ``csc_source`` through
``ix_csc_source_dec_ra`` (a range scan of the Dec band), not a sequential scan, on a catalog
of 200,000 sources; and the rows are still exactly the sources in the cone."""

from __future__ import annotations

import numpy as np
import psycopg
import pytest
from sqlalchemy import text

from db import vo
from db import web_queries as q

N_SOURCES = 200_000
INDEX = "ix_csc_source_dec_ra"


@pytest.fixture(scope="module")
def sky(engine):
    """N_SOURCES sources spread over the sky (uniform on the sphere) with a current
    result each, analysed."""
    rng = np.random.default_rng(3)
    ra = rng.uniform(0, 360, N_SOURCES)
    dec = np.degrees(np.arcsin(rng.uniform(-1, 1, N_SOURCES)))
    with engine.begin() as conn:
        run = conn.execute(text("INSERT INTO catalog.ingest_run (kind, origin) "
                                "VALUES ('file', 'cone index test') RETURNING run_id")
                           ).scalar_one()
        conn.execute(text(
            "INSERT INTO catalog.csc_source (name, ra, dec, ingest_run_id) "
            "SELECT 'T' || i, r, d, :run FROM unnest(CAST(:ra AS float8[]), "
            "CAST(:dec AS float8[])) WITH ORDINALITY AS u(r, d, i)"),
            {"ra": ra.tolist(), "dec": dec.tolist(), "run": run})
        # a current result each, so catalog.source_class holds every source
        conn.execute(text(
            "INSERT INTO catalog.source_result (source_id, valid_from, model_id, "
            "n_detections, adopted_class, label_origin) "
            "SELECT source_id, 1, 1, 1, 'QSO', 'model' FROM catalog.csc_source"))
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("ANALYZE catalog.csc_source")
        conn.exec_driver_sql("ANALYZE catalog.source_result")
    return ra, dec


def _plan(engine, sql: str, params) -> str:
    url = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(url) as conn:
        return "\n".join(r[0] for r in conn.execute("EXPLAIN " + sql, params).fetchall())


def test_the_explorer_search_cone_uses_the_index(engine, sky):
    s = q.Search(ra=150.0, dec=20.0, radius_deg=1 / 60)
    sql, params = q.search_sql(s, limit=50)
    with engine.connect() as conn:
        plan = "\n".join(r[0] for r in conn.execute(text("EXPLAIN " + sql), params))
        where, cparams, _ = s.where()
        count_plan = "\n".join(r[0] for r in conn.execute(text(
            f"EXPLAIN SELECT count(*) FROM catalog.source_class c WHERE {where}"), cparams))
    assert INDEX in plan, plan
    assert INDEX in count_plan, count_plan


@pytest.mark.parametrize("as_of", [False, True])
@pytest.mark.parametrize("verb", [1, 2, 3])
def test_scs_and_client_cone_use_the_index(engine, sky, verb, as_of):
    sql, _, _ = vo._cone_select(verb, as_of)
    plan = _plan(engine, sql, {"ra": 150.0, "dec": 20.0, "sr": 1 / 60, "version": 1})
    assert INDEX in plan and "Seq Scan on csc_source" not in plan, plan


def test_a_cone_still_returns_exactly_the_sources_in_it(engine, sky):
    ra, dec = sky
    k = int(np.argmin(np.abs(dec - 45.0)))  # a source near Dec 45: RA spans 1/cos(dec)
    r0, d0, radius = float(ra[k]), float(dec[k]), 30 / 60
    sep = np.degrees(np.arccos(np.clip(
        np.sin(np.radians(dec)) * np.sin(np.radians(d0))
        + np.cos(np.radians(dec)) * np.cos(np.radians(d0)) * np.cos(np.radians(ra - r0)),
        -1, 1)))
    want = {f"T{i + 1}" for i in np.flatnonzero(sep <= radius)}
    assert len(want) >= 2
    url = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(url) as conn:
        got = vo.cone(conn, r0, d0, radius, verb=1)
    assert set(str(n) for n in got["name"]) == want
