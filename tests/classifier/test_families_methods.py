"""Each family's method on small cases checked by hand."""

import math

import numpy as np
import pandas as pd
import pytest

from classifier.compare import expected_calibration_error, score
from classifier.families import GBM, Claxboi, MUWClass
from classifier.families import features as fmod
from classifier.families.features import FeatureSet
from classifier.families.gbm import fit_temperature
from classifier.families.muwclass import smote_with_missing


@pytest.fixture
def toy_sets(monkeypatch):
    """Two small feature sets used as they are (no derived features)."""
    sets = dict(fmod.FEATURE_SETS)
    sets["toy2"] = FeatureSet("toy2", ["a", "b"], ["a", "b"], {"a": "hardness", "b": "var"})
    sets["toy1"] = FeatureSet("toy1", ["x", "e_x"], ["x"], {"x": "hardness"}, {"x": "e_x"})
    monkeypatch.setattr(fmod, "FEATURE_SETS", sets)


# ---------------------------------------------------------------------------- claxboi
def _fill(h):
    """CLAXBOI's normalise, fill zeros, normalise, for a 2-bin histogram of counts."""
    h = [v / sum(h) for v in h]
    h = [(v + 0.01 / 2) / (1 + 0.02 / 2) for v in h]
    return [v / sum(h) for v in h]


def test_claxboi_naive_bayes_product_by_hand(toy_sets):
    nan = float("nan")
    # class X: a = 0, 0, 1 ; b = 0, 1, missing.   class Y: a = 1, 1, 0 ; b = 1, missing, missing
    X = pd.DataFrame({"a": [0, 0, 1, 1, 1, 0.0], "b": [0, 1, nan, 1, nan, nan]})
    y = pd.Series(["X", "X", "X", "Y", "Y", "Y"], dtype="object")
    m = Claxboi(feature_set="toy2", n_bins=2).fit(X, y)
    # by hand: bins [0, .5), [.5, 1]; centres .25 and .75
    LXa, LYa = _fill([2, 1]), _fill([1, 2])
    LXb, LYb = _fill([1, 1]), _fill([0, 1])
    qXa = qYa = (1 + 0.001) / 1.002
    qXb, qYb = (2 / 3 + 0.001) / 1.002, (1 / 3 + 0.001) / 1.002
    prior = 0.5

    # source 1: a = .25 (bin 0 centre), b = .75 (bin 1 centre): 2 present, 0 missing
    e = 5 * 1 / (2 * 2 + 0)
    catX = [(LXa[0] * qXa) ** e, (LXb[1] * qXb) ** e]
    catY = [(LYa[0] * qYa) ** e, (LYb[1] * qYb) ** e]
    clX = prior * (catX[0] * catX[1]) ** (8 / 2)
    clY = prior * (catY[0] * catY[1]) ** (8 / 2)
    # source 2: a = .25, b missing: 1 present, 1 missing (alpha = 1)
    e2 = 5 * 1 / (2 * 1 + 1)
    cat2X = [(LXa[0] * qXa) ** e2, (1 - qXb) ** e2]
    cat2Y = [(LYa[0] * qYa) ** e2, (1 - qYb) ** e2]
    cl2X = prior * (cat2X[0] * cat2X[1]) ** 4
    cl2Y = prior * (cat2Y[0] * cat2Y[1]) ** 4

    out = m.predict(pd.DataFrame({"a": [0.25, 0.25], "b": [0.75, nan]}))
    assert out["X"].tolist() == pytest.approx([clX / (clX + clY), cl2X / (cl2X + cl2Y)], rel=1e-12)
    assert out["outlier"].tolist() == pytest.approx(
        [-math.log10(max(clX, clY)), -math.log10(max(cl2X, cl2Y))], rel=1e-12
    )
    assert out["p_hardness_X"][0] == pytest.approx(catX[0] / (catX[0] + catY[0]), rel=1e-12)
    assert out["p_var_Y"][1] == pytest.approx(cat2Y[1] / (cat2X[1] + cat2Y[1]), rel=1e-12)
    assert out["margin"][0] == pytest.approx(2 * max(clX, clY) / (clX + clY) - 1, rel=1e-12)
    # alternative without a category: the other category alone, weights renormalised
    alone_b_X, alone_b_Y = prior * catX[1] ** 8, prior * catY[1] ** 8
    pred = "X" if clX > clY else "Y"
    alt = "X" if alone_b_X > alone_b_Y else "Y"
    assert out["predicted_class"][0] == pred
    expected = alt if alt != pred else None
    got = out["alt_without_hardness"][0]
    assert (got if got is not pd.NA else None) == expected
    # outside the training range every class has likelihood 1: only presence terms remain
    far = m.predict(pd.DataFrame({"a": [5.0], "b": [nan]}))
    fX = prior * (qXa**e2 * (1 - qXb) ** e2) ** 4
    fY = prior * (qYa**e2 * (1 - qYb) ** e2) ** 4
    assert far["X"][0] == pytest.approx(fX / (fX + fY), rel=1e-12)


def test_claxboi_category_weights_and_prior(toy_sets):
    X = pd.DataFrame({"a": [0, 0, 1, 1, 1, 0.0], "b": [0, 1, 0, 1, 1, 1.0]})
    y = pd.Series(["X", "X", "X", "Y", "Y", "Y"], dtype="object")
    q = pd.DataFrame({"a": [0.25], "b": [0.75]})
    # weight 0 on 'var': only hardness counts, with exponent 8/1
    m = Claxboi(feature_set="toy2", n_bins=2, category_weights={"var": 0.0}).fit(X, y)
    LXa, LYa = _fill([2, 1]), _fill([1, 2])
    qa = 1.001 / 1.002
    cX, cY = (LXa[0] * qa) ** (5 / 4 * 8), (LYa[0] * qa) ** (5 / 4 * 8)
    assert m.predict_proba(q)["X"][0] == pytest.approx(cX / (cX + cY), rel=1e-12)
    m = Claxboi(feature_set="toy2", n_bins=2, prior={"X": 0.9, "Y": 0.1}).fit(X, y)
    assert m.prior_.tolist() == pytest.approx([0.9, 0.1])
    with pytest.raises(ValueError, match="unknown categories"):
        Claxboi(feature_set="toy2", category_weights={"nope": 1}).fit(X, y)


# ---------------------------------------------------------------------------- muwclass
def test_muwclass_mc_interval_on_a_toy(toy_sets):
    # class L below 0, class R above 0, clean threshold; test sources with errors
    xs = np.r_[np.linspace(-3, -0.5, 40), np.linspace(0.5, 3, 40)]
    X = pd.DataFrame({"x": xs, "e_x": 0.0})
    y = pd.Series(["L"] * 40 + ["R"] * 40, dtype="object")
    m = MUWClass(feature_set="toy1", n_estimators=25, n_draws=400, smote=False, n_jobs=1)
    m.fit(X, y)
    q = pd.DataFrame({"x": [-2.0, 0.0, 2.0, -2.0], "e_x": [0.1, 1.0, 0.1, 0.0]})
    out = m.predict(q)
    # far from the boundary: every draw agrees, the 2-sigma interval collapses
    assert out.loc[0, ["p_L_lo", "p_L_median", "p_L_hi"]].tolist() == [1.0, 1.0, 1.0]
    assert out.loc[2, ["p_R_lo", "p_R_median", "p_R_hi"]].tolist() == [1.0, 1.0, 1.0]
    # on the boundary with sigma = 1: ~half the draws fall each side, so the interval is [0, 1]
    assert out.loc[1, "p_L_lo"] == 0.0 and out.loc[1, "p_L_hi"] == 1.0
    draws, _ = m.draw_probabilities(q)
    frac_left = (draws[:, 1, 0] > 0.5).mean()
    assert 0.4 < frac_left < 0.6
    # zero error: all draws identical
    assert np.ptp(draws[:, 3, :], axis=0).max() == 0.0
    # medians and percentiles are the documented statistics of the draws
    assert out["p_L_median"].tolist() == np.median(draws[:, :, 0], axis=0).tolist()
    assert out["p_L_hi"].tolist() == np.percentile(draws[:, :, 0], 97.725, axis=0).tolist()


def test_smote_with_missing_keeps_missing_pattern():
    rng = np.random.default_rng(0)
    Z = rng.normal(size=(60, 3))
    code = np.r_[np.zeros(50, int), np.ones(10, int)]
    Z[50:, 2] = np.nan  # the minority class never has feature 2
    R, yr = smote_with_missing(Z, code, 4, 0)
    assert np.bincount(yr).tolist() == [50, 50]
    assert np.isnan(R[yr == 1, 2]).all()  # synthetic rows keep it missing
    assert np.array_equal(R[:60], Z, equal_nan=True)


def test_mw_features_by_hand():
    fs = fmod.FEATURE_SETS["mw"]
    row = {c: np.nan for c in fs.columns}
    row.update(flux_s=1e-14, flux_m=2e-14, flux_h=1e-14, gaia_g=15.0, gaia_bp=15.5,
               wise_w3=15.0, tmass_j=20.0)  # fmt: skip
    F, r = fs.build(pd.DataFrame([row]))
    f = dict(zip(fs.features, F[0], strict=True))
    assert r[0] is None
    assert f["log_flux_b"] == pytest.approx(math.log10(4e-14))
    assert f["hr_ms"] == pytest.approx((2 - 1) / 3)
    assert f["hr_hm"] == pytest.approx((1 - 2) / 3)
    assert f["hr_hms"] == pytest.approx((1 - 2 - 1) / 4)
    assert f["log_gaia_g_xray"] == pytest.approx(
        math.log10(2.5e-9 * 10 ** (-15 / 2.5) * 4052.97 / 4e-14)
    )
    assert f["gaia_g-gaia_bp"] == pytest.approx(-0.5)
    assert np.isnan(f["tmass_j-tmass_h"])  # J beyond the 2MASS limit (18.5): not detected
    assert np.isnan(f["wise_w1-wise_w3"])  # W3 beyond its limit (14.5)
    F, r = fs.build(pd.DataFrame([{**row, "flux_s": np.nan}]))
    assert r[0].startswith("no X-ray flux")


# ---------------------------------------------------------------------------- gbm
def test_temperature_scaling_by_hand():
    # every row has scores (1, 0); 3 of 4 rows are class 0: the best p0 is 3/4,
    # i.e. softmax(1/T) = 3/4, 1/T = ln 3
    scores = np.tile([1.0, 0.0], (400, 1))
    code = np.r_[np.zeros(300, int), np.ones(100, int)]
    assert fit_temperature(scores, code) == pytest.approx(1 / math.log(3), rel=1e-4)


def test_gbm_iteration_count_chosen_on_the_held_out_quarter(toy_sets):
    """Labels that are pure noise: every tree only over-fits, so the held-out log loss is
    lowest at the first checkpoint (10 iterations), far below max_iter; a clean signal
    needs more; select_iter=False keeps max_iter."""
    rng = np.random.default_rng(3)
    n = 800
    X = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n)})
    noise = pd.Series(np.where(rng.random(n) < 0.5, "p", "q"), index=X.index, dtype=object)
    m = GBM(feature_set="toy2", max_iter=200).fit(X, noise)
    assert m.n_iter_ == 10 and m.model_.n_iter_ == 10
    # a smooth boundary (a + b > 0, 5% flipped) keeps improving well past 10 iterations
    lab = (X["a"] + X["b"] > 0) ^ (rng.random(n) < 0.05)
    signal = pd.Series(np.where(lab, "p", "q"), index=X.index, dtype=object)
    m = GBM(feature_set="toy2", max_iter=200, learning_rate=0.05).fit(X, signal)
    assert 10 < m.n_iter_ <= 200 and m.model_.n_iter_ == m.n_iter_
    m = GBM(feature_set="toy2", max_iter=40, select_iter=False).fit(X, noise)
    assert m.n_iter_ == 40 and m.model_.n_iter_ == 40


# ---------------------------------------------------------------------------- scores
def test_ece_and_scores_by_hand():
    P = np.array([[0.9, 0.1], [0.9, 0.1], [0.6, 0.4], [0.2, 0.8]])
    true = np.array([0, 1, 0, 1])
    # bins (15): 0.9 -> bin 13 (2 rows, acc 1/2, conf .9); 0.6 -> bin 9 (acc 1, conf .6);
    # 0.8 -> bin 12 (acc 1, conf .8)
    expected = 0.5 * abs(0.5 - 0.9) + 0.25 * abs(1 - 0.6) + 0.25 * abs(1 - 0.8)
    assert expected_calibration_error(P, true) == pytest.approx(expected)
    s = score(np.array(["a", "b", "a", "b"], dtype=object), pd.DataFrame(P, columns=["a", "b"]),
              ["a", "b"])  # fmt: skip
    assert s["accuracy"] == 0.75
    assert s["balanced_accuracy"] == pytest.approx((1 + 0.5) / 2)
    assert s["log_loss"] == pytest.approx(-np.mean(np.log([0.9, 0.1, 0.6, 0.8])))
    assert s["brier"] == pytest.approx(np.mean([2 * 0.1**2, 2 * 0.9**2, 2 * 0.4**2, 2 * 0.2**2]))
    assert s["per_class"]["a"]["precision"] == pytest.approx(2 / 3)
    assert s["confusion"]["counts"] == [[2, 0], [1, 1]]


# ---------------------------------------------------------------------------- features
def test_galactic_coordinates_by_hand_and_against_astropy():
    from astropy import units as u
    from astropy.coordinates import SkyCoord

    # the Galactic centre and north pole as the IAU defines them (ICRS, Hipparcos vol. 1)
    l0, b0 = fmod.galactic(np.array([266.40499]), np.array([-28.93617]))
    assert abs(l0[0]) < 1e-3 and abs(b0[0]) < 1e-3
    _, bp = fmod.galactic(np.array([192.85948]), np.array([27.12825]))
    assert bp[0] == pytest.approx(90.0, abs=1e-3)
    # the anticentre wraps to +-180, not 0..360
    la, _ = fmod.galactic(np.array([86.40499]), np.array([28.93617]))
    assert abs(abs(la[0]) - 180.0) < 1e-2
    rng = np.random.default_rng(0)
    ra, dec = rng.uniform(0, 360, 500), np.degrees(np.arcsin(rng.uniform(-1, 1, 500)))
    lon, lat = fmod.galactic(ra, dec)
    g = SkyCoord(ra * u.deg, dec * u.deg, frame="icrs").galactic
    assert np.abs((lon - g.l.deg + 180) % 360 - 180).max() < 2e-3  # < 7 arcsec
    assert np.abs(lat - g.b.deg).max() < 2e-3


def test_mw_gal_feature_set_adds_l_and_b():
    fs = fmod.FEATURE_SETS["mw_gal"]
    assert fs.features[-2:] == ["gal_l", "gal_b"] and {"ra", "dec"} <= set(fs.columns)
    assert fs.categories["gal_b"] == "position"
    row = {c: np.nan for c in fs.columns} | {"flux_s": 1e-14, "flux_m": 1e-14, "flux_h": 1e-14,
                                              "ra": 266.40499, "dec": -28.93617}
    F, r = fs.build(pd.DataFrame([row]))
    assert r[0] is None
    assert abs(F[0, -2]) < 1e-3 and abs(F[0, -1]) < 1e-3


def test_hardness_closure_by_hand():
    # counts S=10, M=20, H=40: hm = ms = 1/3, hs = 30/50 = 0.6 close exactly
    hm, ms = np.array([1 / 3, 1 / 3, 1.0]), np.array([1 / 3, 1 / 3, 0.2])
    hs = np.array([0.6, 0.5, 0.9])
    r = fmod.hardness_closure(hm, ms, hs)
    assert r[0] == pytest.approx(0.0, abs=1e-12)
    assert r[1] == pytest.approx(-0.1)  # a ratio shrunk towards 0 by few counts
    assert r[2] == pytest.approx(-0.1)  # hm = 1 (no medium counts): H/M infinite, implied hs = 1
    fs = fmod.FEATURE_SETS["csc_hr_plus"]
    row = dict(hard_hm=1 / 3, hard_ms=1 / 3, hard_hs=0.5, bb_kt=1.0, powlaw_gamma=2.0,
               var_prob_b=0.1, var_prob_h=0.7, var_prob_s=0.2, var_ratio_b=0.1,
               var_ratio_h=1.0, var_ratio_s=0.01)  # fmt: skip
    F, r = fs.build(pd.DataFrame([row]))
    f = dict(zip(fs.features, F[0], strict=True))
    assert f["hard_hs_closure"] == pytest.approx(-0.1)
    assert f["log_var_ratio_h_s"] == pytest.approx(2.0)
    assert f["var_prob_h_s"] == pytest.approx(0.5)
    assert f["log_bb_kt_minus_gamma"] == pytest.approx(-2.0)
    assert fs.features[: len(fmod.FEATURE_SETS["csc_hr"].features)] == (
        fmod.FEATURE_SETS["csc_hr"].features
    )


def test_band_shares_by_hand():
    # counts S=10, M=20, H=40: ms = hm = 1/3, shares 1/7, 2/7, 4/7
    s, m, h = fmod.band_shares(np.array([1 / 3, -1.0, np.nan]), np.array([1 / 3, 1.0, 0.0]))
    assert (s[0], m[0], h[0]) == (pytest.approx(1 / 7), pytest.approx(2 / 7), pytest.approx(4 / 7))
    # hm = -1 (no hard counts), ms = 1 (no soft counts): all medium
    assert (s[1], m[1], h[1]) == (0.0, 1.0, 0.0)
    assert np.isnan([s[2], m[2], h[2]]).all()  # a missing ratio: missing shares
    fs = fmod.FEATURE_SETS["csc_hr_bands"]
    assert fs.features[: len(fmod.FEATURE_SETS["csc_hr_plus"].features)] == (
        fmod.FEATURE_SETS["csc_hr_plus"].features
    )
    row = dict(hard_hm=1 / 3, hard_ms=1 / 3, hard_hs=0.6, bb_kt=1.0, powlaw_gamma=2.0,
               var_prob_b=0.1, var_prob_h=0.7, var_prob_s=0.2, var_ratio_b=0.1,
               var_ratio_h=1.0, var_ratio_s=0.01)  # fmt: skip
    F, r = fs.build(pd.DataFrame([row]))
    f = dict(zip(fs.features, F[0], strict=True))
    assert r[0] is None and fs.categories["hard_share_h"] == "hardness"
    assert f["hard_share_s"] == pytest.approx(1 / 7) and f["hard_share_h"] == pytest.approx(4 / 7)


def test_other_closures_by_hand():
    # counts S=10, M=20, H=40 close exactly; hm shrunk to 0.2 and ms to 0.2 by few counts
    hm, ms, hs = np.array([1 / 3, 0.2, 1 / 3]), np.array([1 / 3, 1 / 3, 0.2]), np.full(3, 0.6)
    r_hm, r_ms = fmod.closures(hm, ms, hs)
    assert r_hm[0] == pytest.approx(0.0, abs=1e-12) and r_ms[0] == pytest.approx(0.0, abs=1e-12)
    assert r_hm[1] == pytest.approx(0.2 - 1 / 3)  # M/S = 2, H/S = 4: implied hm = 1/3
    assert r_ms[2] == pytest.approx(0.2 - 1 / 3)  # H/M = 2, H/S = 4: implied ms = 1/3
    fs = fmod.FEATURE_SETS["csc_hr_bands_x"]
    assert fs.features[: len(fmod.FEATURE_SETS["csc_hr_bands"].features)] == (
        fmod.FEATURE_SETS["csc_hr_bands"].features
    )
    row = dict(hard_hm=1 / 3, hard_ms=1 / 3, hard_hs=0.6, bb_kt=1.0, powlaw_gamma=2.0,
               var_prob_b=0.1, var_prob_h=0.7, var_prob_s=np.nan, var_ratio_b=0.1,
               var_ratio_h=1.0, var_ratio_s=0.01)  # fmt: skip
    F, r = fs.build(pd.DataFrame([row]))
    f = dict(zip(fs.features, F[0], strict=True))
    assert r[0] is None and f["hard_hm_closure"] == pytest.approx(0.0, abs=1e-12)
    assert f["var_prob_max"] == pytest.approx(0.7)  # a missing band is ignored
    assert f["log_var_ratio_max"] == pytest.approx(0.0)


def test_hardness_rotations_by_hand():
    fs, fs5 = fmod.FEATURE_SETS["csc_hr_rot"], fmod.FEATURE_SETS["csc_hr_rot5"]
    bands = fmod.FEATURE_SETS["csc_hr_bands"].features
    assert fs.features[: len(bands)] == bands and fs5.features[: len(fs.features)] == fs.features
    assert fs.columns == fmod.CSC_HR_COLUMNS  # the catalog's 11 X-ray columns, nothing else
    row = dict(hard_hm=0.25, hard_ms=-0.5, hard_hs=0.125, bb_kt=1.0, powlaw_gamma=2.0,
               var_prob_b=0.1, var_prob_h=0.7, var_prob_s=0.2, var_ratio_b=0.1,
               var_ratio_h=1.0, var_ratio_s=0.01)  # fmt: skip
    F, r = fs5.build(pd.DataFrame([row, {**row, "hard_ms": np.nan}]))
    f = dict(zip(fs5.features, F[0], strict=True))
    assert r[0] is None and r[1] is None
    assert f["hard_hm_plus_ms"] == -0.25 and f["hard_hm_minus_ms"] == 0.75
    assert f["hard_hs_minus_ms"] == 0.625 and f["hard_hs_minus_hm"] == -0.125
    assert f["hard_hs_plus_hm"] == 0.375
    assert all(fs5.categories[k] == "hardness" for k in fs5.features[len(bands):])
    g = dict(zip(fs5.features, F[1], strict=True))  # a missing ratio: its combinations missing
    assert np.isnan([g["hard_hm_plus_ms"], g["hard_hm_minus_ms"], g["hard_hs_minus_ms"]]).all()
    assert g["hard_hs_minus_hm"] == -0.125
    F3, _ = fs.build(pd.DataFrame([row]))
    assert np.array_equal(F3[0], F[0, : len(fs.features)])


def test_gbm_feature_subsampling_is_seeded():
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.uniform(-0.9, 0.9, (200, len(fmod.CSC_HR_COLUMNS))),
                     columns=fmod.CSC_HR_COLUMNS).abs()
    y = pd.Series(np.where(X["hard_hm"] + X["var_prob_b"] > 0.9, "A", "B"), index=X.index)

    def fit(**kw):
        m = GBM(feature_set="csc_hr_bands", max_iter=20, select_iter=False, **kw).fit(X, y)
        return m.predict_proba(X)

    pd.testing.assert_frame_equal(fit(max_features=0.5, random_state=3),
                                  fit(max_features=0.5, random_state=3))
    assert not fit(max_features=0.5, random_state=3).equals(fit())  # the draw changes the fit
