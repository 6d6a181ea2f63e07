"""Issue 4 acceptance: incremental CSC and SIMBAD ingest into PostgreSQL, end to end.

The real clients (``CscTapClient`` over pyvo, ``SimbadXMatch`` over astroquery) talk to the
loopback ``FakeServices`` serving a small generated sample; the pipeline steps load into this
module's own migrated database (``engine`` fixture).

State isolation: the module shares one database; the autouse ``clean`` fixture empties every
catalog table (``TRUNCATE ... RESTART IDENTITY CASCADE``) before each test, and each test
starts its own fake server, so no test sees another's rows, runs or request log.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import Engine, text

from db.csc_columns import DETECTION_COLUMNS, NOT_FROM_TAP, SOURCE_COLUMNS, names
from ingest import IngestError
from ingest.columns import conform
from ingest.csc_tap import CscTapClient
from ingest.fake_services import FakeServices
from ingest.sample import Sample, generate_sample
from ingest.simbad import SimbadXMatch
from pipeline.ingest import ingest_csc, ingest_simbad

KEY = ["name", "obsid", "obi", "region_id"]
CATALOG_TABLES = ("ingest_run", "observation", "rejected_row", "csc_source", "csc_detection",
                  "simbad_match", "simbad_match_history")
TAP_SYNC = "/tap/sync"
XMATCH = "/xmatch/api/v1/sync"
NOW = "2016-06-30"
LATER = "2021-12-31"


@pytest.fixture(scope="module")
def sample() -> Sample:
    """300 sources; 10% of detections fail the paper's cuts (so the cuts matter)."""
    return generate_sample(300, seed=11, below_cut_fraction=0.1)


def truncate(engine: Engine) -> None:
    """Empty the catalog tables (CASCADE also empties any table referring to them)."""
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "TRUNCATE " + ", ".join(f"catalog.{t}" for t in CATALOG_TABLES)
            + " RESTART IDENTITY CASCADE")


@pytest.fixture(autouse=True)
def clean(engine: Engine) -> None:
    truncate(engine)


@pytest.fixture
def fake(sample: Sample) -> Iterator[FakeServices]:
    with FakeServices(sample, now=NOW) as fs:
        yield fs


def tap(fake: FakeServices, **kw) -> CscTapClient:
    opts = {"chunk_size": 10, "maxrec": 5000, "retries": 1, "backoff": 0.001, "timeout": 10.0,
            "sleep": lambda s: None}
    return CscTapClient(fake.tap_url, **{**opts, **kw})


# -- expectations and DB snapshots ----------------------------------------------------------
def passing(det: pd.DataFrame) -> pd.DataFrame:
    ok = (det["flux_significance_b"] > 5) & det["powlaw_gamma"].notna() & det["bb_kt"].notna()
    return det[ok]


def expected(sample: Sample, now: str | None) -> pd.DataFrame:
    """The detections a complete ingest must store: published by ``now``, passing the cuts,
    without the columns the service does not deliver."""
    det = sample.detections if now is None else sample.detections_until(now)
    return conform(passing(det).drop(columns=list(NOT_FROM_TAP))).sort_values(
        KEY, ignore_index=True)


def published_obsids(sample: Sample, now: str | None) -> set[int]:
    det = sample.detections if now is None else sample.detections_until(now)
    return set(det["obsid"].astype(int))


def stored(engine: Engine) -> pd.DataFrame:
    """Every stored detection with its source's columns, as conformed stored columns."""
    src = ", ".join(f"s.{c}" for c in names(SOURCE_COLUMNS))
    det = ", ".join(f"d.{c}" for c in names(DETECTION_COLUMNS))
    with engine.connect() as conn:
        df = pd.read_sql_query(
            text(f"SELECT {src}, {det} FROM catalog.csc_detection d "
                 "JOIN catalog.csc_source s USING (source_id) "
                 "ORDER BY s.name, d.obsid, d.obi, d.region_id"), conn)
    return conform(df).sort_values(KEY, ignore_index=True)


def scalar(engine: Engine, sql: str, **params):
    with engine.connect() as conn:
        return conn.execute(text(sql), params).scalar_one()


def column(engine: Engine, sql: str, **params) -> list:
    with engine.connect() as conn:
        return list(conn.execute(text(sql), params).scalars())


def counts(engine: Engine) -> dict[str, int]:
    return {t: scalar(engine, f"SELECT count(*) FROM catalog.{t}")
            for t in ("csc_detection", "csc_source", "observation")}


def sync_queries(fake: FakeServices, start: int = 0) -> list[str]:
    """ADQL of the TAP sync requests logged from position ``start`` of the log on."""
    return [" ".join(p["QUERY"].split()) for path, p in fake.log[start:]
            if path == TAP_SYNC and "QUERY" in p]


def is_detection_query(q: str) -> bool:
    return ".master_source m" in q


def obsids_of(query: str) -> list[int]:
    return [int(x) for x in re.search(r"o\.obsid IN \(([\d, ]+)\)", query).group(1).split(",")]


def requested_obsids(queries: list[str]) -> list[int]:
    return [i for q in queries if is_detection_query(q) for i in obsids_of(q)]


def assert_same_detections(got: pd.DataFrame, want: pd.DataFrame) -> None:
    assert not got.duplicated(KEY).any(), "duplicate detections stored"
    pd.testing.assert_frame_equal(got, want, check_exact=True)


# -- 1. first ingest loads everything, second loads nothing ---------------------------------
def test_first_ingest_loads_everything_second_loads_nothing(engine, fake, sample):
    want = expected(sample, NOW)
    assert 0 < len(want) < len(passing(sample.detections)), "NOW should hide some detections"

    first = ingest_csc(engine, tap(fake))
    assert first.status == "completed"
    assert_same_detections(stored(engine), want)
    assert counts(engine) == {"csc_detection": len(want),
                              "csc_source": want["name"].nunique(),
                              "observation": len(published_obsids(sample, NOW))}
    assert set(column(engine, "SELECT obsid FROM catalog.observation")) == \
        published_obsids(sample, NOW)
    assert (first.new_detections, first.new_sources) == (len(want), want["name"].nunique())
    # ObsIDs whose detections all fail the cuts are still recorded as covered (with 0 rows)
    per_obs = dict(zip(*[column(engine, f"SELECT {c} FROM catalog.observation ORDER BY obsid")
                         for c in ("obsid", "n_detections")], strict=True))
    want_per_obs = want.groupby("obsid").size()
    assert {o: n for o, n in per_obs.items() if n} == {int(o): int(n)
                                                      for o, n in want_per_obs.items()}
    with engine.connect() as conn:
        run = dict(conn.execute(text(
            "SELECT status, n_new_detections, n_new_sources, kind FROM catalog.ingest_run "
            "WHERE run_id = :r"), {"r": first.run_id}).mappings().one())
    assert run == {"status": "completed", "n_new_detections": len(want),
                   "n_new_sources": want["name"].nunique(), "kind": "csc"}
    first_queries = sync_queries(fake)
    assert sum(map(is_detection_query, first_queries)) >= 2

    mark = len(fake.log)
    second = ingest_csc(engine, tap(fake))
    assert second.status == "completed"
    assert (second.new_detections, second.new_sources, second.observations) == (0, 0, 0)
    assert counts(engine) == {"csc_detection": len(want), "csc_source": want["name"].nunique(),
                              "observation": len(published_obsids(sample, NOW))}
    queries = sync_queries(fake, mark)
    assert len(queries) == 1 and "observation_source o" in queries[0] \
        and queries[0].startswith("SELECT DISTINCT o.obsid, o.gti_mjd_obs ")
    assert not any(is_detection_query(q) for q in queries)


# -- 2. newly published ObsIDs, and only those, are fetched ---------------------------------
def test_new_obsids_only_are_requested_and_added(engine, fake, sample):
    ingest_csc(engine, tap(fake))
    before = stored(engine)
    first_run_ids = set(column(engine, "SELECT DISTINCT ingest_run_id FROM "
                                       "catalog.csc_detection"))

    fake.set_now(LATER)
    new_obsids = published_obsids(sample, LATER) - published_obsids(sample, NOW)
    assert len(new_obsids) > 10
    mark = len(fake.log)
    summary = ingest_csc(engine, tap(fake))

    requested = requested_obsids(sync_queries(fake, mark))
    assert len(requested) == len(set(requested)), "an ObsID was requested twice"
    assert set(requested) == new_obsids
    assert summary.observations == len(new_obsids)

    want = expected(sample, LATER)
    assert_same_detections(stored(engine), want)
    added = want[want["obsid"].isin(new_obsids)]
    assert summary.new_detections == len(added)
    # rows stored by the first run are untouched; the second run's rows are exactly the new
    pd.testing.assert_frame_equal(stored(engine).merge(before[KEY]), before)
    obs_of_second = set(column(engine, "SELECT DISTINCT obsid FROM catalog.csc_detection "
                                       "WHERE ingest_run_id = :r", r=summary.run_id))
    assert obs_of_second == set(added["obsid"].astype(int))
    assert scalar(engine, "SELECT count(*) FROM catalog.csc_detection WHERE ingest_run_id = :r",
                  r=summary.run_id) == len(added)
    assert set(column(engine, "SELECT DISTINCT ingest_run_id FROM catalog.csc_detection "
                              "WHERE ingest_run_id <> :r", r=summary.run_id)) == first_run_ids


# -- 3. a failure midway keeps the committed chunks; a rerun completes without duplicates --
def test_failure_midway_keeps_committed_chunks_and_rerun_completes(engine, fake, sample):
    # the uninterrupted ingest, as the reference
    ingest_csc(engine, tap(fake))
    reference = stored(engine)
    truncate(engine)

    good_chunks = 3
    # /tap/sync: 1 observation-list query, then `good_chunks` detection queries succeed
    fake.fail(after=1 + good_chunks, status=503, prefix=TAP_SYNC)
    mark = len(fake.log)
    with pytest.raises(IngestError, match="failed after 2 attempts"):
        ingest_csc(engine, tap(fake))
    done = requested_obsids(sync_queries(fake, mark))[:good_chunks * 10]
    ordered = sorted(published_obsids(sample, NOW))
    assert done == ordered[:good_chunks * 10]
    assert sorted(column(engine, "SELECT obsid FROM catalog.observation")) == done
    partial = stored(engine)
    assert set(partial["obsid"]) <= set(done)
    assert_same_detections(partial, reference[reference["obsid"].isin(done)]
                           .reset_index(drop=True))
    with engine.connect() as conn:
        runs = conn.execute(text("SELECT status, message, n_new_detections FROM "
                                 "catalog.ingest_run ORDER BY run_id")).all()
    assert len(runs) == 1
    status, message, n_new = runs[0]
    assert status == "failed" and "503" in message and "detections of" in message
    assert n_new == len(partial)

    fake.clear_failures()
    mark = len(fake.log)
    rerun = ingest_csc(engine, tap(fake))
    assert rerun.status == "completed"
    again = requested_obsids(sync_queries(fake, mark))
    assert set(again) == set(ordered) - set(done), "the rerun re-fetched committed ObsIDs"
    assert_same_detections(stored(engine), reference)
    assert rerun.new_detections == len(reference) - len(partial)
    assert scalar(engine, "SELECT count(*) FROM catalog.observation") == len(ordered)


# -- 4. an overflowing chunk is split, nothing is truncated ---------------------------------
def test_overflowing_chunk_is_split_and_nothing_truncated(engine, fake, sample):
    want = expected(sample, NOW)
    per_obs = want.groupby("obsid").size()
    fake.row_limit = int(per_obs.max())  # any one ObsID fits, most chunks of 10 do not
    chunks = -(-len(published_obsids(sample, NOW)) // 10)
    summary = ingest_csc(engine, tap(fake))
    assert summary.status == "completed"
    det_queries = [q for q in sync_queries(fake) if is_detection_query(q)]
    assert len(det_queries) > chunks, "no chunk was split"
    assert_same_detections(stored(engine), want)
    got_per_obs = dict(zip(*[column(engine, f"SELECT {c} FROM catalog.observation "
                                            "WHERE n_detections > 0 ORDER BY obsid")
                             for c in ("obsid", "n_detections")], strict=True))
    assert got_per_obs == {int(o): int(n) for o, n in per_obs.items()}


# -- 5. SIMBAD: first crossmatch, refresh of stale rows, history of changed types -----------
def xmatch_upload_sizes(fake: FakeServices, start: int = 0) -> list[int]:
    sizes = []
    for path, p in fake.log[start:]:
        if path == XMATCH and "cat1" in p:
            m = re.fullmatch(r"<(\d+) rows>", p["cat1"])
            assert m, p["cat1"]
            sizes.append(int(m.group(1)))
    return sizes


def simbad_rows(engine: Engine) -> pd.DataFrame:
    with engine.connect() as conn:
        return pd.read_sql_query(text(
            "SELECT s.source_id, s.name, m.main_id, m.otype, m.separation_arcsec, m.fetched_at, "
            "m.changed_at FROM catalog.simbad_match m JOIN catalog.csc_source s "
            "USING (source_id) ORDER BY s.name"), conn)


def test_simbad_crossmatch_refresh_and_history(engine, fake, sample):
    fake.set_now(None)
    ingest_csc(engine, tap(fake))
    n_sources = scalar(engine, "SELECT count(*) FROM catalog.csc_source")
    assert n_sources == passing(sample.detections)["name"].nunique()
    xm = SimbadXMatch(fake.xmatch_url, batch_size=100, backoff=0.001, retries=1)

    # first crossmatch: every source gets a row, matched or not, with fetched_at
    mark = len(fake.log)
    first = ingest_simbad(engine, xm, refresh_days=30)
    assert first.status == "completed"
    assert sum(xmatch_upload_sizes(fake, mark)) == n_sources
    rows = simbad_rows(engine)
    assert len(rows) == n_sources and rows["fetched_at"].notna().all()
    want1 = sample.simbad.set_index("name").loc[rows["name"]].reset_index()
    assert rows["main_id"].fillna("-").tolist() == want1["main_id"].fillna("-").tolist()
    assert rows["otype"].fillna("-").tolist() == want1["otype"].fillna("-").tolist()
    no_match = rows["main_id"].isna()
    assert 0 < no_match.sum() < len(rows)
    assert rows.loc[no_match, ["otype", "separation_arcsec"]].isna().all().all()
    np.testing.assert_allclose(rows.loc[~no_match, "separation_arcsec"],
                               want1.loc[~no_match, "separation_arcsec"], atol=1e-5)
    assert first.simbad == {"new": n_sources, "changed": 0, "unchanged": 0,
                            "unknown_source": 0}

    # nothing stale: a refresh uploads nothing
    mark = len(fake.log)
    ingest_simbad(engine, xm, refresh_days=30)
    assert xmatch_upload_sizes(fake, mark) == []

    # a third of the rows made stale: only those are re-queried, and their fetched_at renewed
    with engine.begin() as conn:
        stale = set(conn.execute(text(
            "UPDATE catalog.simbad_match SET fetched_at = now() - interval '100 days' "
            "WHERE source_id % 3 = 0 RETURNING source_id")).scalars())
    assert 0 < len(stale) < n_sources
    before = simbad_rows(engine).set_index("source_id")
    mark = len(fake.log)
    refresh = ingest_simbad(engine, xm, refresh_days=30)
    assert sum(xmatch_upload_sizes(fake, mark)) == len(stale)
    assert refresh.simbad == {"new": 0, "changed": 0, "unchanged": len(stale),
                              "unknown_source": 0}
    after = simbad_rows(engine).set_index("source_id")
    renewed = set(after.index[after["fetched_at"] > before["fetched_at"]])
    assert renewed == stale
    assert scalar(engine, "SELECT count(*) FROM catalog.simbad_match_history") == 0

    # SIMBAD epoch 2: changed types move the old value to the history, unchanged ones don't
    fake.set_simbad_epoch(2)
    with engine.begin() as conn:
        conn.execute(text("UPDATE catalog.simbad_match "
                          "SET fetched_at = now() - interval '100 days'"))
    old = simbad_rows(engine).set_index("name")
    mark = len(fake.log)
    third = ingest_simbad(engine, xm, refresh_days=30)
    assert sum(xmatch_upload_sizes(fake, mark)) == n_sources
    e1 = sample.simbad.set_index("name").loc[old.index]
    e2 = sample.simbad_epoch2.set_index("name").loc[old.index]
    changed = (e1["main_id"].fillna("-") != e2["main_id"].fillna("-")) | \
        (e1["otype"].fillna("-") != e2["otype"].fillna("-"))
    assert changed.any() and not changed.all()
    assert third.simbad == {"new": 0, "changed": int(changed.sum()),
                            "unchanged": int((~changed).sum()), "unknown_source": 0}
    with engine.connect() as conn:
        hist = pd.read_sql_query(text(
            "SELECT s.name, h.main_id, h.otype, h.fetched_at, h.replaced_at, h.ingest_run_id "
            "FROM catalog.simbad_match_history h JOIN catalog.csc_source s USING (source_id) "
            "ORDER BY s.name"), conn).set_index("name")
    assert list(hist.index) == sorted(changed.index[changed])
    old_changed = old.loc[hist.index]
    assert hist["main_id"].fillna("-").tolist() == old_changed["main_id"].fillna("-").tolist()
    assert hist["otype"].fillna("-").tolist() == old_changed["otype"].fillna("-").tolist()
    assert (hist["fetched_at"] == old_changed["fetched_at"]).all()
    assert (hist["ingest_run_id"] != third.run_id).all()
    now_rows = simbad_rows(engine).set_index("name")
    assert now_rows["otype"].fillna("-").tolist() == \
        sample.simbad_epoch2.set_index("name").loc[now_rows.index, "otype"].fillna("-").tolist()
    # changed_at moves only for changed rows
    moved = now_rows["changed_at"] != old["changed_at"].loc[now_rows.index]
    assert set(moved.index[moved]) == set(changed.index[changed])
