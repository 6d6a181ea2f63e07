"""The family contract, checked for every family in classifier.FAMILIES."""

import io
import json
import zipfile

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone

from classifier import FAMILIES, ClusterThenLabel, NotFittedError, load, save
from classifier.families.features import FEATURE_SETS, MW_MAGS

CLASSES3 = ["A", "B", "C"]


def toy(n=240, seed=0, n_noflux=3):
    """Three classes separated in X-ray, optical/IR and CSC-style columns; missing
    counterparts, errors, unlabelled rows and ``n_noflux`` rows without any X-ray flux."""
    rng = np.random.default_rng(seed)
    k = rng.integers(0, 3, n)
    X = pd.DataFrame(index=pd.Index([f"src{i}" for i in range(n)], name="name"))
    for j, b in enumerate("smh"):
        f = 10 ** (-14 + (k - 1) * (0.4 - 0.4 * j) + rng.normal(0, 0.15, n))
        X[f"flux_{b}"] = f
        X[f"e_flux_{b}"] = 0.1 * f
    X["var_intra_prob"] = np.clip(0.3 * k + rng.normal(0, 0.1, n), 0, 1)
    X["var_inter_prob"] = np.where(rng.random(n) < 0.4, np.nan, rng.random(n))
    for j, m in enumerate(MW_MAGS):
        X[m] = 14 + 1.5 * k + 0.2 * j * k + rng.normal(0, 0.2, n)
        X[f"e_{m}"] = 0.03
    for survey in ("gaia_", "tmass_", "wise_"):  # missing counterparts are normal
        gone = rng.random(n) < 0.25
        X.loc[gone, [c for c in X.columns if c.startswith(survey)]] = np.nan
    X["gaia_plx"] = np.where(k == 0, 0.0, 2.0) + rng.normal(0, 0.3, n)
    X["gaia_pm"] = np.abs(rng.normal(5 * k, 1, n))
    X["powlaw_gamma"] = 1.5 + 0.5 * k + rng.normal(0, 0.2, n)
    X["nh_gal"] = rng.uniform(1, 50, n)
    X["ra"] = rng.uniform(0, 360, n)
    X["dec"] = np.clip(-30 + 20 * k + rng.normal(0, 10, n), -89, 89)
    X["hard_hm"] = np.clip(-0.5 + 0.4 * k + rng.normal(0, 0.1, n), -1, 1)
    X["hard_ms"] = np.clip(0.5 - 0.3 * k + rng.normal(0, 0.1, n), -1, 1)
    X["hard_hs"] = np.clip(0.2 * k + rng.normal(0, 0.1, n), -1, 1)
    X["bb_kt"] = rng.lognormal(k * 0.5, 0.3, n)
    for b in "bhs":
        X[f"var_prob_{b}"] = rng.random(n)
        X[f"var_ratio_{b}"] = rng.lognormal(-3 + k, 0.5, n)
    for c in ("flux_s", "flux_m", "flux_h"):
        X.iloc[:n_noflux, X.columns.get_loc(c)] = np.nan
    X.iloc[:n_noflux, [X.columns.get_loc(c) for c in FEATURE_SETS["csc_hr"].columns]] = np.nan
    y = pd.Series(np.array(CLASSES3, dtype=object)[k], index=X.index, dtype="object")
    y[rng.random(n) < 0.2] = None
    return X, y


def make(name, **kw):
    if name == "ctl":
        base = dict(features=["hard_hm", "hard_ms", "hard_hs", "bb_kt", "var_intra_prob"],
                    log_features=["bb_kt"], scale_features=[], classes=CLASSES3,
                    n_components=2, n_jobs=1)  # fmt: skip
    elif name == "muwclass":
        base = dict(feature_set="mw_plus", n_estimators=20, n_draws=5, n_jobs=1)
    elif name == "gbm":
        base = dict(feature_set="mw_plus", max_iter=30)
    else:
        base = dict(feature_set="mw_plus")
    base.update(kw)
    return FAMILIES[name](**base)


@pytest.fixture(scope="module")
def data():
    return toy()


@pytest.fixture(scope="module")
def fitted(data):
    X, y = data
    return {name: make(name).fit(X, y) for name in FAMILIES}


def test_registry_names():
    assert list(FAMILIES) == ["ctl", "muwclass", "claxboi", "gbm"]
    assert FAMILIES["ctl"].unit == "detection"
    assert all(FAMILIES[n].unit == "source" for n in ("muwclass", "claxboi", "gbm"))


@pytest.mark.parametrize("name", list(FAMILIES))
def test_fit_predict_shapes_and_reasons(name, data, fitted):
    X, y = data
    m = fitted[name]
    assert set(m.required_columns()) <= set(X.columns)
    P = m.predict_proba(X)
    assert list(P.columns) == list(m.classes_) and P.index.equals(X.index)
    out = m.predict(X)
    assert out.index.equals(X.index)
    assert {"predicted_class", "reason", *m.classes_} <= set(out.columns)
    bad = P.isna().any(axis=1).to_numpy()
    assert bad[:3].all()  # the rows without X-ray properties
    assert (P.isna().all(axis=1).to_numpy() == bad).all()  # NaN rows are all-NaN
    reasons = out["reason"].to_numpy(dtype=object)
    assert all(isinstance(r, str) and r for r in reasons[bad])
    assert all(r is None for r in reasons[~bad])
    assert out["predicted_class"].isna().to_numpy().tolist() == bad.tolist()
    np.testing.assert_allclose(P[~bad].sum(axis=1), 1.0, atol=1e-9)
    assert (P[~bad].to_numpy() >= 0).all()
    # the model learned something: most labelled training rows right
    lab = y.notna().to_numpy() & ~bad
    acc = (out["predicted_class"].to_numpy(dtype=object)[lab] == y.to_numpy()[lab]).mean()
    assert acc > 0.8, acc


@pytest.mark.parametrize("version", [1, 2])
@pytest.mark.parametrize("name", list(FAMILIES))
def test_save_load_bit_identical(name, version, data, fitted):
    X, _ = data
    m = fitted[name]
    blob = save(m, version=version)
    assert isinstance(blob, bytes)
    m2 = load(blob)
    assert type(m2) is type(m)
    pd.testing.assert_frame_equal(m.predict(X), m2.predict(X))
    assert np.array_equal(
        m.predict_proba(X).to_numpy(), m2.predict_proba(X).to_numpy(), equal_nan=True
    )


@pytest.mark.parametrize("name", list(FAMILIES))
def test_deterministic_with_seed(name, data):
    X, y = data
    a = make(name).fit(X, y).predict_proba(X).to_numpy()
    b = make(name).fit(X, y).predict_proba(X).to_numpy()
    assert np.array_equal(a, b, equal_nan=True)


@pytest.mark.parametrize("name", list(FAMILIES))
def test_sklearn_conventions(name, fitted):
    m = fitted[name]
    c = clone(m)
    assert c.get_params() == m.get_params()
    assert not hasattr(c, "classes_")
    with pytest.raises(NotFittedError):
        c.predict_proba(pd.DataFrame({k: [1.0] for k in m.required_columns()}))


@pytest.mark.parametrize("name", [n for n in FAMILIES if n != "ctl"])
def test_missing_column_names_it(name, data):
    X, y = data
    with pytest.raises(ValueError, match="flux_s"):
        make(name).fit(X.drop(columns=["flux_s"]), y)


def test_unknown_feature_set():
    X, y = toy(60)
    with pytest.raises(ValueError, match="unknown feature set 'nope'"):
        FAMILIES["gbm"](feature_set="nope").fit(X, y)


@pytest.mark.parametrize("fs", ["csc_hr", "csc_hr_plus", "csc_hr_bands", "csc_hr_bands_x",
                                "csc_hr_rot", "csc_hr_rot5"])
def test_csc_hr_feature_set(data, fs):
    X, y = data
    for name in ("muwclass", "claxboi", "gbm"):
        m = make(name, feature_set=fs).fit(X, y)
        out = m.predict(X)
        assert out["predicted_class"].isna().sum() == 3
        if name == "muwclass":  # no error columns -> a single nominal draw
            assert (out["n_draws"] == 1).all()


@pytest.mark.parametrize("name", ["muwclass", "claxboi", "gbm"])
def test_mw_gal_feature_set(name, data):
    """Galactic coordinates need ra/dec; the rest of the contract is unchanged."""
    X, y = data
    m = make(name, feature_set="mw_gal").fit(X, y)
    assert {"ra", "dec"} <= set(m.required_columns())
    assert m.features_[-2:] == ["gal_l", "gal_b"]
    out = m.predict(X)
    assert out["predicted_class"].isna().sum() == 3
    pd.testing.assert_frame_equal(load(save(m)).predict(X), out)
    with pytest.raises(ValueError, match="dec"):
        m.predict(X.drop(columns=["dec"]))


def test_ctl_is_cluster_then_label_exactly(data):
    X, y = data
    params = make("ctl").get_params()
    a = make("ctl").fit(X, y)
    b = ClusterThenLabel(**params).fit(X, y)
    pd.testing.assert_frame_equal(a.predict(X), b.predict(X))
    assert np.array_equal(
        a.predict_proba(X).to_numpy(), b.predict_proba(X).to_numpy(), equal_nan=True
    )
    assert a.to_dict() == b.to_dict()


def test_muwclass_uncertainty_columns(data, fitted):
    X, _ = data
    out = fitted["muwclass"].predict(X)
    ok = out["reason"].isna().to_numpy()
    for c in CLASSES3:
        lo, med, hi = (out[f"p_{c}_{s}"].to_numpy()[ok] for s in ("lo", "median", "hi"))
        assert (lo <= med + 1e-12).all() and (med <= hi + 1e-12).all()
    assert (out["n_draws"] == 5).all()


def test_claxboi_extra_columns(data, fitted):
    X, _ = data
    m = fitted["claxboi"]
    out = m.predict(X)
    for k in m.categories_:
        assert f"alt_without_{k}" in out.columns
        marg = out[[f"p_{k}_{c}" for c in m.classes_]].to_numpy()[3:]
        np.testing.assert_allclose(marg.sum(axis=1), 1.0)
    assert np.isfinite(out["outlier"].to_numpy()[3:]).all()
    assert ((out["margin"].to_numpy()[3:] >= 0) & (out["margin"].to_numpy()[3:] <= 1)).all()


def test_load_rejects_garbage_and_untrusted_types(fitted):
    with pytest.raises(ValueError, match="not a saved"):
        load(b"not a zip")
    blob = save(fitted["gbm"], version=1)  # format 1: the booster in skops
    import skops.io as sio
    from sklearn.linear_model import LogisticRegression

    zin = zipfile.ZipFile(io.BytesIO(blob))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for item in zin.namelist():
            data = zin.read(item)
            if item == "estimators.skops":
                data = sio.dumps({"model_": LogisticRegression()})
            z.writestr(item, data)
    with pytest.raises(ValueError, match="not trusted"):
        load(buf.getvalue())
    meta = json.loads(zin.read("meta.json"))
    meta["family"] = "evil"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("meta.json", json.dumps(meta))
    with pytest.raises(ValueError, match="unknown family 'evil'"):
        load(buf.getvalue())
