"""The counterpart step on real PostgreSQL with the loopback fake X-Match: what it stores,
that it is incremental, history when a chosen counterpart changes, the reader's view."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd
import psycopg
import pytest
from sqlalchemy import text

from db import engine as dbe
from db.settings import Settings
from ingest.counterparts import CounterpartXMatch, associate_neighbours
from ingest.fake_services import FakeServices
from ingest.sample import generate_sample
from ingest.sample_counterparts import sample_counterparts
from ingest.sample_source import SampleCsc
from pipeline import ingest
from pipeline.counterparts import association_params, ingest_counterparts

SETTINGS = Settings()
POSTS = "/xmatch/api/v1/sync"


@pytest.fixture(scope="module")
def sample():
    return generate_sample(200, seed=12)


@pytest.fixture(scope="module")
def fake(sample) -> Iterator[FakeServices]:
    with FakeServices(sample) as fs:
        yield fs


def posts(fake) -> int:
    return sum(1 for path, p in fake.requests(POSTS) if path == POSTS)


def q(engine, sql: str, **params) -> pd.DataFrame:
    with engine.connect() as conn:
        return pd.read_sql_query(text(sql), conn, params=params)


def run(engine, fake, refresh_days=None):
    client = CounterpartXMatch(fake.xmatch_url, batch_size=100, backoff=0.001)
    return ingest_counterparts(engine, client, SETTINGS, refresh_days=refresh_days)


@pytest.fixture(scope="module")
def first(engine, sample, fake):
    ingest.ingest_csc(engine, SampleCsc(sample), until="2012-12-31")
    before = posts(fake)
    summary = run(engine, fake, refresh_days=90)
    return summary, posts(fake) - before


def test_first_run_matches_every_source_and_stores_every_candidate(engine, sample, fake,
                                                                    first):
    summary, n_posts = first
    n_src = q(engine, "SELECT count(*) AS n FROM catalog.csc_source")["n"].item()
    assert summary.status == "completed" and summary.kind == "counterparts"
    assert summary.counterparts["sources"] == n_src and summary.counterparts["new"] == 3 * n_src
    assert n_posts == 3 * int(np.ceil(n_src / 100))  # batched, three tables
    m = q(engine, "SELECT * FROM catalog.counterpart_match")
    assert len(m) == 3 * n_src and set(m["catalogue"]) == {"gaia", "2mass", "allwise"}
    # an oracle: the association recomputed from the fake's answer, outside the database
    src = q(engine, "SELECT name, ra, dec, err_ellipse_r0 FROM catalog.csc_source")
    nb = CounterpartXMatch(fake.xmatch_url).neighbours(src)
    cands, matches = associate_neighbours(src, nb, association_params(SETTINGS))
    view = q(engine, "SELECT * FROM catalog.counterpart")
    assert len(view) == len(cands) == summary.counterparts["candidates"]
    key = ["name", "catalogue", "counterpart_id"]
    got = view.sort_values(key, ignore_index=True)
    exp = cands.rename(columns={"cp_id": "counterpart_id"}).sort_values(key, ignore_index=True)
    pd.testing.assert_frame_equal(got[key], exp[key].astype(object), check_dtype=False)
    for col in ("separation_arcsec", "p_any", "p_i", "g_mag", "k_mag", "w2_mag", "parallax"):
        np.testing.assert_allclose(got[col].to_numpy(float), exp[col].to_numpy(float),
                                   rtol=1e-5, atol=1e-6, equal_nan=True)
    assert (got["chosen"].to_numpy() == exp["chosen"].to_numpy()).all()
    chosen = view[view["chosen"]]
    assert not chosen.duplicated(["name", "catalogue"]).any()
    assert summary.counterparts["chosen"] == len(chosen) == m["cp_id"].notna().sum()
    # some sources have no counterpart in a catalogue: their match says so (cp_id NULL)
    assert (m["cp_id"].isna() & (m["n_candidates"] == 0)).any()


def test_a_second_run_touches_nothing(engine, fake, first):
    before = posts(fake)
    again = run(engine, fake, refresh_days=90)
    assert again.counterparts == {"sources": 0} and posts(fake) == before


def test_new_sources_only_are_matched(engine, sample, fake, first):
    old = q(engine, "SELECT count(*) AS n FROM catalog.csc_source")["n"].item()
    added = ingest.ingest_csc(engine, SampleCsc(sample)).new_sources
    assert added > 0
    stamp = q(engine, "SELECT max(fetched_at) AS t FROM catalog.counterpart_match")["t"].item()
    summary = run(engine, fake, refresh_days=90)
    assert summary.counterparts["sources"] == added
    assert summary.counterparts["new"] == 3 * added
    older = q(engine, "SELECT count(DISTINCT source_id) AS n FROM catalog.counterpart_match "
                      "WHERE fetched_at <= :t", t=stamp)["n"].item()
    assert older == old  # the earlier sources' matches were not rewritten


def test_refresh_with_a_changed_counterpart_keeps_the_history(engine, sample, fake, first):
    # move the chosen Gaia counterpart of one source far away: the next match differs
    m = q(engine, "SELECT s.name, m.cp_id FROM catalog.counterpart_match m JOIN "
                  "catalog.csc_source s USING (source_id) WHERE m.catalogue = 'gaia' "
                  "AND m.cp_id IS NOT NULL ORDER BY s.name LIMIT 1")
    name, cp = m["name"].item(), m["cp_id"].item()
    tables = sample_counterparts(sample)
    gaia = tables["gaia"].copy()
    row = gaia["Source"].astype(str) == cp
    gaia.loc[row, "DE_ICRS"] = np.clip(gaia.loc[row, "DE_ICRS"] + 1.0, -89.0, 89.0)
    tables["gaia"] = gaia  # the catalogue as served from now on
    n_src = q(engine, "SELECT count(*) AS n FROM catalog.csc_source")["n"].item()
    summary = run(engine, fake, refresh_days=0)
    c = summary.counterparts
    assert c["sources"] == n_src and c["new"] == 0
    assert c["changed"] >= 1 and c["changed"] + c["unchanged"] == 3 * n_src
    hist = q(engine, "SELECT s.name, h.catalogue, h.cp_id FROM catalog.counterpart_match_history"
                     " h JOIN catalog.csc_source s USING (source_id)")
    assert len(hist) == c["changed"]
    assert ((hist["name"] == name) & (hist["catalogue"] == "gaia")
            & (hist["cp_id"] == cp)).sum() == 1
    now = q(engine, "SELECT m.cp_id, m.changed_at > m2.t AS moved FROM catalog.counterpart_match"
                    " m JOIN catalog.csc_source s USING (source_id), (SELECT min(fetched_at) t"
                    " FROM catalog.counterpart_match) m2 WHERE s.name = :n AND "
                    "m.catalogue = 'gaia'", n=name)
    assert now["cp_id"].item() != cp
    view = q(engine, "SELECT counterpart_id FROM catalog.counterpart WHERE name = :n "
                     "AND catalogue = 'gaia'", n=name)
    assert cp not in set(view["counterpart_id"])  # the candidates were replaced


def test_the_reader_reads_the_view_and_not_the_tables(engine, first):
    with dbe.reader_connection() as conn:
        rows = conn.execute("SELECT name, catalogue, counterpart_id, ra, dec, "
                            "separation_arcsec, p_any, p_i, chosen, g_mag, bp_mag, rp_mag, "
                            "parallax, pm, j_mag, h_mag, k_mag, w1_mag, w2_mag, w3_mag "
                            "FROM catalog.counterpart WHERE chosen LIMIT 5").fetchall()
        assert len(rows) == 5
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT * FROM catalog.counterpart_candidate LIMIT 1")
