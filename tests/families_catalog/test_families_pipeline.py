"""Every family refitted, validated, promoted and reapplied, one atomic catalog version per
publish, on real PostgreSQL with the sample."""

from __future__ import annotations

import pandas as pd
import pytest
from sqlalchemy import text

from classifier import FAMILIES, load
from pipeline import classify, families
from tests.families_catalog.conftest import build_epoch1, build_epoch2

SOURCE_FAMILIES = ["muwclass", "claxboi", "gbm"]


def q(engine, sql: str, **params) -> pd.DataFrame:
    with engine.connect() as conn:
        return pd.read_sql_query(text(sql), conn, params=params)


def test_one_active_model_per_family_with_taxonomy_label_set_and_validation(engine, catalog):
    first, _ = catalog
    models = q(engine, "SELECT model_id, family, status, taxonomy, label_set, validation, "
                       "model_bytes FROM catalog.fitted_model ORDER BY model_id")
    active = models[models.status == "active"]
    assert sorted(active.family) == sorted(["ctl", *SOURCE_FAMILIES])
    for r in active.itertuples():
        assert r.label_set == "simbad" and len(r.taxonomy) >= 2
        assert r.validation["fine"]["accuracy"] is not None
        if r.family != "ctl":
            m = load(bytes(r.model_bytes))
            assert type(m) is FAMILIES[r.family] and list(m.classes_) == list(r.taxonomy)
            assert r.validation["unit"] == "source" and r.validation["n_test"] > 0
    # a second active model of a family is refused by the schema
    with pytest.raises(Exception, match="uq_fitted_model_one_active"):
        with engine.begin() as conn:
            conn.execute(text(
                "INSERT INTO catalog.fitted_model (status, family, params, model, "
                "n_detections, n_labeled) SELECT 'active', family, params, model, n_detections,"
                " n_labeled FROM catalog.fitted_model WHERE family = 'gbm'"))
    report = q(engine, "SELECT family, accuracy, agg_accuracy, coarse_accuracy, ece, "
                       "balanced_accuracy FROM catalog.family_model WHERE status = 'active'")
    assert report.set_index("family").loc[SOURCE_FAMILIES].notna().all().all()


def test_every_source_has_a_current_result_of_every_family(engine, catalog):
    n_src = q(engine, "SELECT count(DISTINCT source_id) AS n FROM catalog.csc_detection").n[0]
    per = q(engine, "SELECT family, count(*) AS n, count(DISTINCT source_id) AS s "
                    "FROM catalog.source_class_by_family GROUP BY 1").set_index("family")
    assert set(per.index) == {"ctl", *SOURCE_FAMILIES}
    assert (per.n == n_src).all() and (per.s == n_src).all()
    # probability of the class is its entry in the model's taxonomy order
    bad = q(engine, """SELECT count(*) AS n FROM catalog.family_source_result f
        JOIN catalog.fitted_model m USING (model_id) WHERE f.valid_to IS NULL
        AND f.predicted_class IS NOT NULL AND f.probabilities[array_position(m.taxonomy,
        f.predicted_class)] < (SELECT max(p) FROM unnest(f.probabilities) p)""").n[0]
    assert bad == 0
    # claxboi gives outlier measure and marginals, muwclass an interval
    ext = q(engine, "SELECT family, count(outlier) AS o, count(marginals) AS m, "
                    "count(prob_lo) AS lo FROM catalog.family_source_result "
                    "WHERE valid_to IS NULL GROUP BY 1").set_index("family")
    assert ext.loc["claxboi", "o"] > 0 and ext.loc["claxboi", "m"] > 0
    assert ext.loc["muwclass", "lo"] > 0 and ext.loc["gbm", "o"] == 0


def test_incremental_publish_classifies_only_what_is_new(engine, catalog):
    first, second = catalog
    fam2 = second.counts["families"]
    assert set(fam2) == set(SOURCE_FAMILIES)
    for f in SOURCE_FAMILIES:  # the sources ctl rebuilt (new detections or SIMBAD changes)
        assert fam2[f]["sources_classified"] == second.sources_rebuilt
    n_all = q(engine, "SELECT count(*) AS n FROM catalog.csc_source").n[0]
    assert all(fam2[f]["sources_classified"] < n_all for f in SOURCE_FAMILIES)
    versions = q(engine, "SELECT release_id FROM catalog.release ORDER BY 1").release_id
    assert list(versions) == [1, 2]
    # family rows are versioned in the same catalog versions as ctl's
    vf = set(q(engine, "SELECT DISTINCT valid_from FROM catalog.family_source_result").valid_from)
    assert vf == {1, 2}


def test_nothing_new_publishes_nothing(engine, catalog, settings):
    n = q(engine, "SELECT count(*) AS n FROM catalog.family_source_result").n[0]
    assert classify.publish(engine, settings) is None
    assert classify.publish(engine, settings, reclassify_all=True) is None
    assert q(engine, "SELECT count(*) AS n FROM catalog.family_source_result").n[0] == n


def test_refit_on_the_same_input_stores_nothing(engine, catalog, settings):
    fresh = families.refit_family(engine, settings, "claxboi")  # epoch 2's input is new
    assert fresh.new_model
    release = classify.publish(engine, settings, promote_families={"claxboi": fresh.model_id})
    assert release is not None and release.counts["families"]["claxboi"]["promoted_model"]
    n = q(engine, "SELECT count(*) AS n FROM catalog.fitted_model").n[0]
    r = families.refit_family(engine, settings, "claxboi")
    assert not r.new_model and "no new model" in r.reason
    assert q(engine, "SELECT count(*) AS n FROM catalog.fitted_model").n[0] == n


def test_a_worse_refit_is_not_promoted(engine, catalog, settings):
    with engine.begin() as conn:  # the active model claims a much better accuracy
        conn.execute(text(
            "UPDATE catalog.fitted_model SET input_digest = 'other', validation = "
            "jsonb_set(validation, '{aggregated,accuracy}', '1.0') "
            "WHERE family = 'claxboi' AND status = 'active'"))
    r = families.refit_family(engine, settings, "claxboi")
    assert r.new_model and not r.promote and "worse than the active claxboi" in r.reason
    status = q(engine, "SELECT status FROM catalog.fitted_model WHERE model_id = :m",
               m=r.model_id).status[0]
    assert status == "rejected"


def test_a_publish_failing_in_a_family_writes_nothing(engine, pg_server, settings, sample,
                                                      monkeypatch):
    from sqlalchemy import create_engine

    from tests.conftest import create_database

    other = create_engine(create_database(pg_server, "t_families_atomic"))
    build_epoch1(other, settings, sample)
    before = q(other, "SELECT (SELECT count(*) FROM catalog.release) AS r, "
                      "(SELECT count(*) FROM catalog.family_source_result) AS f, "
                      "(SELECT count(*) FROM catalog.detection_result) AS d")
    real = families.classify_sources

    def fail_on_gbm(conn, family, *a, **k):
        if family == "gbm":
            raise RuntimeError("boom in gbm")
        return real(conn, family, *a, **k)

    monkeypatch.setattr(families, "classify_sources", fail_on_gbm)
    with pytest.raises(RuntimeError, match="boom in gbm"):
        build_epoch2(other, settings, sample)
    after = q(other, "SELECT (SELECT count(*) FROM catalog.release) AS r, "
                     "(SELECT count(*) FROM catalog.family_source_result) AS f, "
                     "(SELECT count(*) FROM catalog.detection_result) AS d")
    other.dispose()
    assert before.equals(after)


def test_sources_added_while_a_family_was_disabled_get_its_results(pg_server, settings,
                                                                    sample):
    from sqlalchemy import create_engine

    from db.settings import Settings
    from tests.conftest import create_database

    other = create_engine(create_database(pg_server, "t_families_disabled"))
    build_epoch1(other, settings, sample)
    only_ctl = Settings(n_components=6, random_state=42, families=["ctl"])
    release = build_epoch2(other, only_ctl, sample)  # gbm & co. not applied
    assert release is not None and release.counts["families"] == {}
    missing = q(other, "SELECT count(*) AS n FROM catalog.csc_source s WHERE NOT EXISTS ("
                       "SELECT 1 FROM catalog.family_source_result r WHERE r.family = 'gbm' "
                       "AND r.source_id = s.source_id AND r.valid_to IS NULL)").n[0]
    assert missing > 0
    again = classify.publish(other, settings)  # enabled again: nothing new, but the gap
    assert again is not None
    assert again.counts["families"]["gbm"]["sources_classified"] == missing
    left = q(other, "SELECT count(*) AS n FROM catalog.csc_source s WHERE NOT EXISTS ("
                    "SELECT 1 FROM catalog.family_source_result r WHERE r.family = 'gbm' "
                    "AND r.source_id = s.source_id AND r.valid_to IS NULL)").n[0]
    assert left == 0
    assert classify.publish(other, settings) is None
    other.dispose()


def test_a_refit_cut_short_before_its_publish_is_reused_then_promoted(engine, catalog,
                                                                      settings):
    """A run killed between a family refit's commit and the publish leaves a candidate; the
    rerun reuses it (a seeded twin would make the rerun differ from an uninterrupted run),
    and the publish that promotes it does not note it "not promoted"."""
    with engine.begin() as conn:  # the active model was fitted on other input, and worse
        conn.execute(text(
            "UPDATE catalog.fitted_model SET input_digest = 'other', validation = "
            "jsonb_set(validation, '{aggregated,accuracy}', '0.0') "
            "WHERE family = 'claxboi' AND status = 'active'"))
    first = families.refit_family(engine, settings, "claxboi")  # then the run is killed
    assert first.new_model and first.promote
    n = q(engine, "SELECT count(*) AS n FROM catalog.fitted_model").n[0]
    again = families.refit_family(engine, settings, "claxboi")  # the rerun
    assert (again.model_id, again.promote, again.new_model) == (first.model_id, True, False)
    assert q(engine, "SELECT count(*) AS n FROM catalog.fitted_model").n[0] == n
    release = classify.publish(engine, settings, promote_families={"claxboi": again.model_id})
    assert release is not None
    row = q(engine, "SELECT status, note FROM catalog.fitted_model WHERE model_id = :m",
            m=again.model_id).iloc[0]
    assert row.status == "active" and "not promoted" not in (row.note or ""), row.note
