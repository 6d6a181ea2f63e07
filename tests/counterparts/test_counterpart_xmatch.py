"""The counterpart client through astroquery's XMatch against the loopback fake, and the
sample's counterparts (realistic shares, chance neighbours, choice against the truth)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ingest import IngestError
from ingest.counterparts import (
    CATALOGUES,
    NEIGHBOUR_COLUMNS,
    CounterpartXMatch,
    associate_neighbours,
)
from ingest.sample_counterparts import (
    DENSITY_PER_DEG2,
    NEIGHBOUR_RADIUS_ARCSEC,
    SampleCounterparts,
    sample_counterparts,
    true_counterparts,
)
from ingest.sky import icrs_to_galactic


def test_three_vizier_tables_with_their_column_names_in_batches(fake, cp_sample):
    xm = CounterpartXMatch(fake.xmatch_url, batch_size=120, backoff=0.001)
    got = xm.neighbours(cp_sample.sources)
    assert list(got.columns) == list(NEIGHBOUR_COLUMNS)
    posts = [p for path, p in fake.requests("/xmatch/api/v1/sync") if path.endswith("/sync")]
    assert [p["cat2"] for p in posts] == (["vizier:I/355/gaiadr3"] * 3
                                          + ["vizier:II/246/out"] * 3
                                          + ["vizier:II/328/allwise"] * 3)
    assert {p["distMaxArcsec"] for p in posts} == {"20.0"}
    assert posts[0]["cat1"] == "<120 rows>" and posts[2]["cat1"] == "<60 rows>"
    # the in-memory sample source answers the same (the demo's path)
    mem = SampleCounterparts(cp_sample, 20.0).neighbours(cp_sample.sources)
    key = ["catalogue", "name", "cp_id"]
    a = got.sort_values(key, ignore_index=True)
    b = mem.sort_values(key, ignore_index=True)
    pd.testing.assert_frame_equal(a[key], b[key])
    np.testing.assert_allclose(a["separation_arcsec"], b["separation_arcsec"], atol=1e-5)
    np.testing.assert_allclose(a["g_mag"], b["g_mag"], rtol=1e-6)
    assert (got["separation_arcsec"] <= 20.0).all()
    gaia = got[got["catalogue"] == "gaia"]
    assert gaia["g_mag"].notna().all() and gaia["j_mag"].isna().all()
    assert (gaia["sigma_arcsec"] < 0.01).all()  # e_RA_ICRS in mas, as VizieR gives it


def test_the_chosen_counterpart_is_the_true_one(fake, cp_sample):
    nb = CounterpartXMatch(fake.xmatch_url).neighbours(cp_sample.sources)
    cands, matches = associate_neighbours(cp_sample.sources, nb)
    truth = true_counterparts(cp_sample)
    j = matches.merge(truth, on=["name", "catalogue"], how="left", suffixes=("", "_true"))
    chosen = j["cp_id"].notna()
    right = (j["cp_id"] == j["cp_id_true"]).fillna(False)
    assert right[chosen].mean() > 0.95, "a chosen counterpart is almost always the true one"
    has_true = j["cp_id_true"].notna()
    assert right[has_true].mean() > 0.9, "most true counterparts are found"
    # sources without a true counterpart rarely get one
    assert chosen[~has_true].mean() < 0.1
    # p_any tracks the truth: high for sources with a counterpart, low for the others
    assert j.loc[has_true, "p_any"].median() > 0.8 > 0.2 > j.loc[~has_true, "p_any"].median()
    # candidates of a source sum to one
    s = cands.groupby(["name", "catalogue"])["p_i"].sum()
    np.testing.assert_allclose(s, 1.0)


def test_sample_shares_and_chance_neighbour_densities(cp_sample):
    objs = sample_counterparts(cp_sample)
    truth = true_counterparts(cp_sample)
    n = len(cp_sample.sources)
    share = truth.groupby("catalogue").size() / n
    for cat in CATALOGUES:  # some sources have no counterpart in each catalogue
        assert 0.4 < share[cat] < 0.9
    none = ~cp_sample.sources["name"].isin(truth["name"])
    assert 0.05 < none.mean() < 0.3, "a realistic share has no counterpart at all"
    gl, gb = icrs_to_galactic(cp_sample.sources["ra"], cp_sample.sources["dec"])
    for cat, (floor, plane, h) in DENSITY_PER_DEG2.items():
        n_chance = (objs[cat].attrs["true_of"] < 0).sum()
        expect = ((floor + plane * np.exp(-np.abs(gb) / h))
                  * np.pi * (NEIGHBOUR_RADIUS_ARCSEC / 3600) ** 2).sum()
        assert abs(n_chance - expect) < 5 * np.sqrt(expect)


def test_colours_follow_the_class(cp_sample):
    """Stars are bright in G with parallaxes; AGN faint with none (as in MUWCLASS's set)."""
    truth = true_counterparts(cp_sample)
    gaia = sample_counterparts(cp_sample)["gaia"]
    t = truth[truth["catalogue"] == "gaia"].merge(
        gaia.assign(cp_id=gaia["Source"].astype(str)), on="cp_id")
    t = t.merge(cp_sample.truth[["name", "true_class"]], on="name")
    agn = t["true_class"].isin(["QSO", "AGN", "Seyfert1", "Seyfert2"])
    yso = t["true_class"].isin(["YSO", "TTauri*", "OrionV*"])
    assert agn.sum() > 20 and yso.sum() > 5
    assert t.loc[agn, "Gmag"].median() > t.loc[yso, "Gmag"].median()
    assert t.loc[agn, "Plx"].median() < t.loc[yso, "Plx"].median()
    # BP - RP of YSOs is redder than of AGN
    bprp = t["BPmag"] - t["RPmag"]
    assert bprp[yso].median() > bprp[agn].median()


def test_persistent_failure_is_an_ingest_error(fake, cp_sample):
    fake.fail(after=0, status=500, prefix="/xmatch/api/v1/sync")
    xm = CounterpartXMatch(fake.xmatch_url, retries=1, backoff=0.001)
    with pytest.raises(IngestError, match=r"I/355/gaiadr3.*2 attempts"):
        xm.neighbours(cp_sample.sources.head(5))


def test_schema_drift_is_an_ingest_error_naming_the_column():
    from ingest.fake_services import FakeServices
    from ingest.sample import generate_sample

    s = generate_sample(30, seed=3)
    objs = sample_counterparts(s)
    objs["gaia"] = objs["gaia"].drop(columns=["PM"])  # a table that lost a column
    with FakeServices(s) as fs:
        xm = CounterpartXMatch(fs.xmatch_url, retries=0)
        with pytest.raises(IngestError, match=r"gaiadr3.*missing columns \['PM'\]"):
            xm.neighbours(s.sources)


def test_a_failed_attempt_is_retried(fake, cp_sample):
    fake.fail(after=1, status=503, prefix="/xmatch/api/v1/sync", times=1)
    xm = CounterpartXMatch(fake.xmatch_url, retries=2, backoff=0.001)
    got = xm.neighbours(cp_sample.sources.head(20))
    assert set(got["catalogue"]) == set(CATALOGUES)
