"""The deterministic sample generator."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from db.csc_columns import DETECTION_COLUMNS, SOURCE_COLUMNS
from ingest.sample import GALACTIC_CLASSES, generate_sample
from ingest.sky import NAME_RE, csc_names, galactic_to_icrs, icrs_to_galactic


@pytest.fixture(scope="module")
def big():
    return generate_sample(20_000, seed=3)


def test_same_seed_same_frames():
    a, b = generate_sample(300, seed=11), generate_sample(300, seed=11)
    for f in ("sources", "detections", "observations", "simbad", "simbad_epoch2", "truth"):
        pd.testing.assert_frame_equal(getattr(a, f), getattr(b, f))
    c = generate_sample(300, seed=12)
    assert not c.sources["ra"].equals(a.sources["ra"])


def test_sizing_by_detections():
    s = generate_sample(n_detections=5000, seed=1)
    assert len(s.detections[s.detections["match_type"] == "u"]) + (
        s.detections["match_type"] == "a").sum() / 2 == pytest.approx(5000, rel=0.01)


def test_names_match_positions(big):
    src = big.sources
    parts = src["name"].str.extract(NAME_RE.pattern).drop(columns=4).astype(float)
    ra0 = (parts[0] + parts[1] / 60 + (parts[2] + parts[3] / 10) / 3600) * 15
    sign = np.where(src["name"].str[14] == "-", -1, 1)
    dec0 = parts[5] + parts[6] / 60 + parts[7] / 3600
    # truncation: the name is at or just below the position, by less than one unit
    dra = (src["ra"] - ra0) * 3600 / 15
    assert ((dra >= -1e-6) & (dra < 0.1 + 1e-6)).all()
    ddec = (np.abs(src["dec"]) - dec0) * 3600
    assert ((ddec >= -1e-6) & (ddec < 1 + 1e-6)).all()
    assert (np.sign(src["dec"]) == sign).all()
    assert src["name"].is_unique
    assert csc_names([10.781298349312351], [-9.383953646551543])[0] == "2CXO J004307.5-092302"


def test_detections_per_source_distribution(big):
    k = big.detections[big.detections["match_type"] == "u"].groupby("name").size()
    k = k.reindex(big.sources["name"], fill_value=0)
    frac = [(k == 1).mean(), (k == 2).mean(), k.between(3, 10).mean(), (k > 10).mean()]
    assert frac == pytest.approx([0.78, 0.11, 0.10, 0.01], abs=0.015)


def test_all_columns_within_valid_ranges(big):
    det = big.detections
    for col in (*SOURCE_COLUMNS, *DETECTION_COLUMNS):
        assert col.name in det.columns
        if col.required:
            assert det[col.name].notna().all(), col.name
        if col.valid:
            lo, hi = col.valid
            v = det[col.name].dropna()
            assert lo is None or (v >= lo).all(), col.name
            assert hi is None or (v <= hi).all(), col.name


def test_internal_consistency(big):
    d = big.detections
    for b in "bhms":
        assert (d[f"var_min_{b}"] <= d[f"var_mean_{b}"]).all()
        assert (d[f"var_mean_{b}"] <= d[f"var_max_{b}"]).all()
    for c in ("hard_hm", "flux_aper_b", "bb_kt", "powlaw_gamma"):
        assert (d[f"{c}_lolim"] <= d[c]).all() and (d[c] <= d[f"{c}_hilim"]).all()
    assert np.allclose(d["gti_start"] / 86400 + 50814.0, d["gti_mjd_obs"])
    assert (d["gti_stop"] > d["gti_start"]).all()
    assert not d.duplicated(["name", "obsid", "obi", "region_id"]).any()
    assert 0.005 < (d["match_type"] == "a").mean() < 0.02
    obs = big.observations
    assert obs["obsid"].is_unique and obs["obs_date"].dt.year.between(2000, 2025).all()
    assert (np.diff(obs.sort_values("obsid")["gti_mjd_obs"]) >= 0).all()


def test_galactic_classes_near_the_plane(big):
    t = big.truth
    gal = t["true_class"].isin(GALACTIC_CLASSES)
    assert (t.loc[gal, "glat"].abs() < 10).mean() > 0.8
    assert (t.loc[t["true_class"].isin(["QSO", "AGN"]), "glat"].abs() < 10).mean() < 0.1


def test_class_mix_and_simbad(big):
    mix = big.truth["true_class"].value_counts(normalize=True)
    assert mix["QSO"] == pytest.approx(2679 / 15706, abs=0.02)
    assert mix["other"] == pytest.approx(5947 / 15706, abs=0.02)
    sim = big.simbad
    assert 0.45 < sim["main_id"].notna().mean() < 0.55
    types = set(sim["otype"].dropna())
    assert {"QSO", "AGN", "Seyfert1", "YSO", "TTauri*", "OrionV*", "X", "Star"} <= types
    changed = sim.merge(big.simbad_epoch2, on="name", suffixes=("", "2"))
    pairs = set(zip(changed["otype"].fillna("-"), changed["otype2"].fillna("-"), strict=True))
    assert ("X", "YSO") in pairs and ("QSO", "AGN") in pairs and ("-", "QSO") in pairs


def test_as_of_date(big):
    early = big.as_of("2005-12-31")
    assert (early.detections["gti_mjd_obs"] < 53736.0 + 1).all()
    assert set(early.sources["name"]) == set(early.detections["name"])
    assert 0 < len(early.detections) < len(big.detections)
    assert len(big.detections_until("2005-12-31")) == len(early.detections)


def test_galactic_rotation_matches_astropy():
    from astropy.coordinates import SkyCoord

    ra, dec = galactic_to_icrs(np.array([0.0, 90.0, 200.0]), np.array([0.0, 0.0, -45.0]))
    c = SkyCoord(l=[0.0, 90.0, 200.0], b=[0.0, 0.0, -45.0], unit="deg", frame="galactic").icrs
    assert np.allclose(ra, c.ra.deg, atol=1e-8) and np.allclose(dec, c.dec.deg, atol=1e-8)
    gl, gb = icrs_to_galactic(ra, dec)
    dl = (gl - np.array([0.0, 90.0, 200.0]) + 180.0) % 360.0 - 180.0
    assert np.allclose(dl, 0.0, atol=1e-8) and np.allclose(gb, [0, 0, -45])
