"""Counterparts in the families' features: muwclass reads each source's chosen Gaia/2MASS/
AllWISE counterpart (with errors: non-degenerate Monte Carlo intervals), and a changed
counterpart queues its source for the families using counterparts at the next publish."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import text

from classifier import load
from db import oracle
from db.settings import Settings
from ingest.sample import generate_sample
from ingest.sample_counterparts import SampleCounterparts, sample_counterparts
from ingest.sample_source import SampleCsc, SampleSimbad
from pipeline import classify, families, ingest
from pipeline.counterparts import ingest_counterparts

SETTINGS = Settings(n_components=6, random_state=42)
#: The feature name of each stored counterpart value (the README's mapping), written apart
#: from db.family_store and db.family_oracle.
NAMES = {("gaia", "g_mag"): "gaia_g", ("gaia", "bp_mag"): "gaia_bp",
         ("gaia", "rp_mag"): "gaia_rp", ("gaia", "parallax"): "gaia_plx",
         ("gaia", "pm"): "gaia_pm", ("2mass", "j_mag"): "tmass_j",
         ("2mass", "h_mag"): "tmass_h", ("2mass", "k_mag"): "tmass_k",
         ("allwise", "w1_mag"): "wise_w1", ("allwise", "w2_mag"): "wise_w2",
         ("allwise", "w3_mag"): "wise_w3"}


def q(engine, sql: str, **params) -> pd.DataFrame:
    with engine.connect() as conn:
        return pd.read_sql_query(text(sql), conn, params=params)


@pytest.fixture(scope="module")
def sample():
    return generate_sample(400, seed=7)


@pytest.fixture(scope="module")
def built(engine, sample):
    ingest.ingest_csc(engine, SampleCsc(sample), until="2014-12-31")
    ingest.ingest_simbad(engine, SampleSimbad(sample, 1), refresh_days=None)
    cp = ingest_counterparts(engine, SampleCounterparts(sample), SETTINGS, refresh_days=None)
    fitted = classify.refit(engine, SETTINGS)
    fam = {f: families.refit_family(engine, SETTINGS, f)
           for f in families.source_families(SETTINGS)}
    release = classify.publish(engine, SETTINGS, promote=fitted.model_id,
                               promote_families={f: r.model_id for f, r in fam.items()
                                                 if r.promote})
    assert release is not None and fam["muwclass"].promote, fam["muwclass"].reason
    return {"release": release, "counterparts": cp.counterparts}


def muwclass_inputs(engine) -> pd.DataFrame:
    """The inputs each current muwclass result was computed from, named by its model."""
    row = q(engine, "SELECT model_bytes FROM catalog.fitted_model WHERE family = 'muwclass' "
                    "AND status = 'active'")
    cols = load(bytes(row["model_bytes"].item())).required_columns()
    res = q(engine, "SELECT r.source_id, s.name, r.features, r.prob_lo, r.prob_hi "
                    "FROM catalog.family_source_result r JOIN catalog.csc_source s "
                    "USING (source_id) WHERE r.family = 'muwclass' AND r.valid_to IS NULL")
    F = pd.DataFrame(np.array([np.asarray(f, float) for f in res["features"]]),
                     columns=cols, index=res["name"])
    return F, res.set_index("name")


def chosen_values(engine) -> pd.DataFrame:
    """Independently: every source's chosen counterparts from the public view, as feature
    columns."""
    view = q(engine, "SELECT * FROM catalog.counterpart WHERE chosen")
    out = {}
    for (cat, col), feat in NAMES.items():
        v = view[view["catalogue"] == cat].set_index("name")
        out[feat] = v[col]
        if col.endswith("_mag"):
            out["e_" + feat] = v["e_" + col]
    return pd.DataFrame(out)


def test_the_features_muwclass_gets_are_the_chosen_counterparts(engine, built):
    assert built["counterparts"]["chosen"] > 0
    F, _ = muwclass_inputs(engine)
    exp = chosen_values(engine).reindex(F.index)
    cp_cols = list(exp.columns)
    assert set(cp_cols) <= set(F.columns)  # every counterpart column is an input
    got = F[cp_cols].to_numpy(float)
    want = exp.to_numpy(float)
    np.testing.assert_allclose(got, want, rtol=0, atol=0, equal_nan=True)
    have = exp.notna().any(axis=1)
    assert 0.3 < have.mean() < 1.0  # many sources have counterparts, some have none
    assert exp["e_gaia_g"].notna().sum() > 0.8 * exp["gaia_g"].notna().sum()


def test_muwclass_intervals_open_up_where_counterpart_errors_are_known(engine, built):
    F, res = muwclass_inputs(engine)
    lo = np.array([np.asarray(v, float) for v in res["prob_lo"]])
    hi = np.array([np.asarray(v, float) for v in res["prob_hi"]])
    width = np.nanmax(hi - lo, axis=1)
    mags = [c for c in F.columns if c.startswith(("gaia_", "tmass_", "wise_"))
            and c not in ("gaia_plx", "gaia_pm")]
    has_err = np.zeros(len(F), bool)
    for m in mags:
        has_err |= (F[m].notna() & (F["e_" + m] > 0)).to_numpy()
    no_cp = ~F[[c for c in F.columns if c.startswith(("gaia_", "tmass_", "wise_", "e_"))]
               ].notna().any(axis=1).to_numpy()
    assert has_err.sum() > 50 and no_cp.sum() > 10
    assert (width[has_err] > 0).mean() > 0.8  # draws within the errors differ
    assert (width[no_cp] == 0).all()  # X-ray only: one nominal input, lo = hi


def test_the_oracle_rebuilds_the_counterpart_features(engine, built):
    result = oracle.check(engine, SETTINGS)
    assert result.ok, oracle.format_differences(result)
    with engine.begin() as conn:  # a tampered counterpart value is seen through the features
        conn.execute(text(
            "UPDATE catalog.counterpart_candidate SET g_mag = g_mag + 0.5 WHERE chosen AND "
            "catalogue = 'gaia' AND source_id = (SELECT min(source_id) FROM "
            "catalog.counterpart_candidate WHERE chosen AND catalogue = 'gaia' AND g_mag < 20)"))
    try:
        bad = oracle.check(engine, SETTINGS)
        assert not bad.ok and set(bad.differences["column"]) == {"muwclass.features"}
        assert bad.differences["source_id"].nunique() == 1
    finally:
        with engine.begin() as conn:
            conn.execute(text("UPDATE catalog.counterpart_candidate SET g_mag = g_mag - 0.5 "
                              "WHERE chosen AND catalogue = 'gaia' AND source_id = (SELECT "
                              "min(source_id) FROM catalog.counterpart_candidate WHERE chosen "
                              "AND catalogue = 'gaia' AND g_mag < 20.5)"))
    assert oracle.check(engine, SETTINGS).ok


def test_a_changed_counterpart_is_reclassified_by_the_families_using_counterparts(
        engine, sample, built):
    before = q(engine, "SELECT max(release_id) AS v FROM catalog.release")["v"].item()
    # move the chosen Gaia counterparts of three sources far away: their matches differ
    m = q(engine, "SELECT s.source_id, s.name, m.cp_id FROM catalog.counterpart_match m JOIN "
                  "catalog.csc_source s USING (source_id) WHERE m.catalogue = 'gaia' "
                  "AND m.cp_id IS NOT NULL ORDER BY s.name LIMIT 3")
    tables = sample_counterparts(sample)
    gaia = tables["gaia"].copy()
    moved = gaia["Source"].astype(str).isin(set(m["cp_id"]))
    gaia.loc[moved, "DE_ICRS"] = np.clip(gaia.loc[moved, "DE_ICRS"] + 1.0, -89.0, 89.0)
    tables["gaia"] = gaia
    old_inputs, _ = muwclass_inputs(engine)
    cp = ingest_counterparts(engine, SampleCounterparts(sample), SETTINGS, refresh_days=0)
    assert cp.counterparts["changed"] >= 3
    queued = set(q(engine, "SELECT source_id FROM catalog.counterpart_change")["source_id"])
    hist = set(q(engine, "SELECT source_id FROM catalog.counterpart_match_history")["source_id"])
    assert set(m["source_id"]) <= queued and queued == hist  # the changed sources, only
    assert cp.counterparts["queued"] == len(queued)
    pend = oracle.check(engine, SETTINGS)  # ingested, not yet published: pending, not wrong
    assert pend.ok, oracle.format_differences(pend)
    release = classify.publish(engine, SETTINGS)
    assert release is not None
    new = q(engine, "SELECT family, source_id FROM catalog.family_source_result "
                    "WHERE valid_from = :v", v=release.catalog_version)
    assert set(new["family"]) == {"muwclass"}  # the X-ray-only families: untouched
    assert set(new["source_id"]) <= queued and set(m["source_id"]) <= set(new["source_id"])
    assert q(engine, "SELECT count(*) AS n FROM catalog.counterpart_change")["n"].item() == 0
    new_inputs, _ = muwclass_inputs(engine)
    names = set(m["name"])
    assert not np.allclose(old_inputs.loc[sorted(names), "gaia_g"].to_numpy(float),
                           new_inputs.loc[sorted(names), "gaia_g"].to_numpy(float),
                           equal_nan=True)
    changes = q(engine, "SELECT family, name, from_class, to_class FROM "
                        "catalog.family_class_changes(:a, :b)", a=before,
                b=release.catalog_version)
    cls = q(engine, "SELECT r.source_id, s.name, r.predicted_class, r.valid_from, r.valid_to "
                    "FROM catalog.family_source_result r JOIN catalog.csc_source s "
                    "USING (source_id) WHERE r.family = 'muwclass' AND (r.valid_to = :v OR "
                    "r.valid_from = :v)", v=release.catalog_version)
    old = cls[cls["valid_to"] == release.catalog_version].set_index("name")["predicted_class"]
    now = cls[cls["valid_from"] == release.catalog_version].set_index("name")["predicted_class"]
    differ = {n for n in now.index if str(old.get(n)) != str(now[n])}
    assert set(changes["family"]) <= {"muwclass"}
    assert set(changes["name"]) == differ
    after = oracle.check(engine, SETTINGS)
    assert after.ok, oracle.format_differences(after)


def test_source_features_by_key_equal_the_whole_read(engine, built, monkeypatch):
    """Read by key (the sources asked for, through the indexes), through the temp table (a
    large set) and for the whole catalog: the same rows and values."""
    from db import family_store as fs

    with engine.connect() as conn:
        whole = fs.source_features(conn)
        ids = whole["source_id"].to_numpy()[::3]
        by_key = fs.source_features(conn, list(ids[::-1]) + list(ids[:5]))  # any order, dups
        monkeypatch.setattr(fs, "KEYED_READ_MAX", 0)
        by_table = fs.source_features(conn, ids)
        conn.rollback()
    want = whole[whole["source_id"].isin(ids)].reset_index(drop=True)
    assert len(want) == len(ids) > 10
    pd.testing.assert_frame_equal(by_key, want)
    pd.testing.assert_frame_equal(by_table, want)
