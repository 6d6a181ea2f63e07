"""The queues an update reads instead of every source or detection (migration 0013): the
sources pending SIMBAD and counterparts, and the detections per SIMBAD type. After every kind
of change they equal what the anti-joins and the join over every detection (the queries they
replace, kept here as the oracle) say, and ``db.integrity`` finds nothing."""

from __future__ import annotations

import pandas as pd
import pytest
from sqlalchemy import text

from db import catalog_store as store
from db import counterpart_store, family_store, ingest_store, integrity, migrate
from db.settings import Settings
from ingest.sample import generate_sample
from ingest.sample_counterparts import SampleCounterparts
from ingest.sample_source import SampleCsc, SampleSimbad
from pipeline import classify, counterparts, families, ingest


@pytest.fixture(scope="module")
def sample():
    return generate_sample(300, seed=21)


def _ids(conn, sql: str, **params) -> list[int]:
    return [int(x) for x in conn.execute(text(sql), params).scalars()]


def oracle_simbad(conn, refresh_days) -> list[int]:
    stale = "" if refresh_days is None else \
        " OR m.fetched_at < now() - make_interval(secs => :secs)"
    return _ids(conn, "SELECT s.source_id FROM catalog.csc_source s LEFT JOIN "
                      "catalog.simbad_match m USING (source_id) WHERE m.source_id IS NULL"
                      f"{stale} ORDER BY 1", secs=float(refresh_days or 0) * 86400)


def oracle_counterparts(conn, refresh_days) -> list[int]:
    fresh = "" if refresh_days is None else \
        " AND m.fetched_at >= now() - make_interval(secs => :secs)"
    return _ids(conn, "SELECT s.source_id FROM catalog.csc_source s WHERE NOT EXISTS (SELECT 1 "
                      "FROM catalog.counterpart_match m WHERE m.source_id = s.source_id AND "
                      f"m.catalogue = 'gaia'{fresh}) ORDER BY 1",
                secs=float(refresh_days or 0) * 86400)


def oracle_tally(conn) -> tuple[int, dict[str, int]]:
    n = conn.execute(text("SELECT count(*) FROM catalog.csc_detection")).scalar_one()
    rows = conn.execute(text(
        "SELECT m.otype, count(*) FROM catalog.simbad_match m JOIN catalog.csc_detection d "
        "ON d.source_id = m.source_id WHERE m.otype IS NOT NULL GROUP BY 1")).all()
    return int(n), {r[0]: int(r[1]) for r in rows}


def assert_consistent(engine) -> None:
    with engine.connect() as conn:
        assert integrity.problems(conn) == {}
        for days in (None, 0.5, 1e6):
            got = ingest_store.sources_for_simbad(conn, days)["source_id"].tolist()
            assert got == oracle_simbad(conn, days)
            got = counterpart_store.sources_for_counterparts(conn, days)["source_id"].tolist()
            assert got == oracle_counterparts(conn, days)
        n, per_otype = store.detections_per_otype(conn)
        assert (n, per_otype.to_dict()) == oracle_tally(conn)


def test_queues_and_tally_follow_every_change(engine, sample):
    settings = Settings()
    cps = SampleCounterparts(sample, settings.counterpart_density_radius_arcsec)
    assert_consistent(engine)  # empty
    ingest.ingest_csc(engine, SampleCsc(sample), until="2010-12-31")
    with engine.connect() as conn:
        n_src = conn.execute(text("SELECT count(*) FROM catalog.csc_source")).scalar_one()
        assert len(ingest_store.sources_for_simbad(conn, None)) == n_src > 0
    assert_consistent(engine)
    ingest.ingest_simbad(engine, SampleSimbad(sample, 1), refresh_days=None)
    assert_consistent(engine)
    counterparts.ingest_counterparts(engine, cps, settings, refresh_days=None)
    with engine.connect() as conn:
        assert counterpart_store.sources_for_counterparts(conn, None).empty
        assert ingest_store.sources_for_simbad(conn, 90).empty
    assert_consistent(engine)

    ingest.ingest_csc(engine, SampleCsc(sample))  # new detections of old and new sources
    assert_consistent(engine)
    with engine.begin() as conn:  # half the matches a day old: stale for a refresh of 0.5 d
        conn.execute(text("UPDATE catalog.simbad_match SET fetched_at = fetched_at - "
                          "interval '1 day' WHERE source_id % 2 = 0"))
        conn.execute(text("UPDATE catalog.counterpart_match SET fetched_at = fetched_at - "
                          "interval '1 day' WHERE source_id % 3 = 0"))
    assert_consistent(engine)
    summary = ingest.ingest_simbad(engine, SampleSimbad(sample, 2), refresh_days=0.5)
    assert summary.simbad["changed"] > 0  # epoch 2 retypes some sources
    assert_consistent(engine)
    counterparts.ingest_counterparts(engine, cps, settings, refresh_days=0.5)
    assert_consistent(engine)

    with engine.begin() as conn:  # matches and detections removed by hand
        conn.execute(text("DELETE FROM catalog.simbad_match WHERE source_id % 5 = 0"))
        conn.execute(text("DELETE FROM catalog.counterpart_match WHERE source_id % 7 = 0 "
                          "AND catalogue IN ('gaia', '2mass')"))
        conn.execute(text("DELETE FROM catalog.counterpart_match WHERE source_id % 11 = 0 "
                          "AND catalogue = 'allwise'"))
        conn.execute(text(  # every source keeps a detection (a source has detections)
            "DELETE FROM catalog.csc_detection d WHERE d.detection_id % 4 = 0 AND EXISTS ("
            "SELECT 1 FROM catalog.csc_detection e WHERE e.source_id = d.source_id "
            "AND e.detection_id % 4 <> 0)"))
    assert_consistent(engine)
    with engine.connect() as conn:
        pending = ingest_store.sources_for_simbad(conn, None)["source_id"]
        assert len(pending) > 0 and (pending % 5 == 0).all()
    ingest.ingest_simbad(engine, SampleSimbad(sample, 2), refresh_days=None)
    counterparts.ingest_counterparts(engine, cps, settings, refresh_days=None)
    assert_consistent(engine)


def test_family_queues_follow_publishes_and_closed_results(engine, sample):
    settings = Settings(max_unclassifiable_share=1.0)
    fitted = classify.refit(engine, settings)
    fam = {f: families.refit_family(engine, settings, f).model_id
           for f in families.source_families(settings)}
    assert set(fam) == set(family_store.PENDING_FAMILIES)
    with engine.connect() as conn:
        assert not family_store.only_these_lack_result(conn, "gbm", fam["gbm"], [])
    classify.publish(engine, settings, promote=fitted.model_id, promote_families=fam)
    assert_consistent(engine)
    with engine.connect() as conn:
        one = int(conn.execute(text("SELECT min(source_id) FROM catalog.csc_source")).scalar())
        for f, mid in fam.items():
            assert family_store.only_these_lack_result(conn, f, mid, [])
            assert not family_store.only_these_lack_result(conn, f, mid + 1000, [])
    with engine.begin() as conn:  # one result closed, another deleted, by hand
        conn.execute(text("UPDATE catalog.family_source_result SET valid_to = valid_from "
                          "WHERE family = 'gbm' AND source_id = :s AND valid_to IS NULL"),
                     {"s": one})
        conn.execute(text("DELETE FROM catalog.family_source_result "
                          "WHERE family = 'claxboi' AND source_id = :s"), {"s": one})
    assert_consistent(engine)
    with engine.connect() as conn:
        for f in ("gbm", "claxboi"):
            assert not family_store.only_these_lack_result(conn, f, fam[f], [])
            assert family_store.only_these_lack_result(conn, f, fam[f], [one])
        assert family_store.only_these_lack_result(conn, "muwclass", fam["muwclass"], [])
    release = classify.publish(engine, settings)  # gives them their results back
    assert release.counts["families"]["gbm"]["sources_classified"] == 1
    assert release.counts["families"]["claxboi"]["sources_classified"] == 1
    assert_consistent(engine)


def test_upgrade_fills_the_queues_from_the_catalog(engine, sample):
    """A catalog changed while at 0009 (no triggers) gets correct queues from the upgrade."""
    migrate.downgrade(engine, "0009")
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM catalog.simbad_match WHERE source_id % 3 = 0"))
        conn.execute(text("DELETE FROM catalog.counterpart_match WHERE source_id % 4 = 0"))
        conn.execute(text("DELETE FROM catalog.family_source_result WHERE source_id % 6 = 0"))
    migrate.upgrade(engine)
    assert_consistent(engine)
    with engine.connect() as conn:
        assert not pd.Series(ingest_store.sources_for_simbad(conn, None)["source_id"]).empty
