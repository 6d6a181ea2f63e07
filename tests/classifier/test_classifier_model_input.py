import numpy as np
import pandas as pd
import pytest

from classifier import ClusterThenLabel


def _data(n=300, seed=0):
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(
        {"a": rng.normal(0, 1, n), "bb_kt": rng.lognormal(0, 1, n)},
        index=pd.Index([f"d{i}" for i in range(n)], name="det"),
    )
    y = pd.Series(rng.choice(["QSO", "YSO", None], n), index=X.index, dtype="object")
    return X, y


def test_missing_columns_named():
    X, y = _data()
    m = ClusterThenLabel(["a", "bb_kt", "hard_hm", "var_prob_b"], n_components=2)
    with pytest.raises(ValueError, match="hard_hm, var_prob_b"):
        m.fit(X, y)
    m = ClusterThenLabel(["a", "bb_kt"], n_components=2).fit(X, y)
    with pytest.raises(ValueError, match="missing feature columns: bb_kt"):
        m.predict_proba(X.drop(columns="bb_kt"))


def test_unknown_labels_and_misaligned_y():
    X, y = _data()
    y2 = y.copy()
    y2.iloc[0] = "Pulsar"
    with pytest.raises(ValueError, match="Pulsar"):
        ClusterThenLabel(["a", "bb_kt"], n_components=2).fit(X, y2)
    with pytest.raises(ValueError, match="same index"):
        ClusterThenLabel(["a", "bb_kt"], n_components=2).fit(X, y.reset_index(drop=True))


def test_invalid_rows_excluded_from_fit_and_reported_in_predict():
    X, y = _data()
    X.loc["d3", "a"] = np.nan
    X.loc["d7", "bb_kt"] = np.inf
    X.loc["d9", "bb_kt"] = -100.0  # log(x + m/10) undefined
    X["bb_kt"] = X["bb_kt"].astype(object)
    X.loc["d11", "bb_kt"] = "oops"  # non-numeric -> NaN
    m = ClusterThenLabel(["a", "bb_kt"], n_components=2).fit(X, y)
    inv = m.invalid_rows_
    assert list(inv.index) == ["d3", "d7", "d9", "d11"]
    assert inv.loc["d3", "reason"] == "invalid features: a is NaN"
    assert inv.loc["d7", "reason"] == "invalid features: bb_kt is inf"
    assert "log undefined" in inv.loc["d9", "reason"]
    assert inv.loc["d11", "reason"] == "invalid features: bb_kt is NaN"
    assert m.n_fit_rows_ == len(X) - 4
    assert (m.labels_[[3, 7, 9, 11]] == -1).all()

    # the model equals one fitted without those rows
    keep = ~X.index.isin(inv.index)
    m2 = ClusterThenLabel(["a", "bb_kt"], n_components=2).fit(X[keep], y[keep])
    P = m.predict_proba(X[keep])
    pd.testing.assert_frame_equal(P, m2.predict_proba(X[keep]))

    out = m.predict(X)
    assert list(out.index) == list(X.index)
    bad = ["d3", "d7", "d9", "d11"]
    assert out.loc[bad, "cluster"].isna().all()
    assert out.loc[bad, "predicted_class"].isna().all()
    assert out.loc[bad, m.classes_].isna().all().all()
    assert (out.loc[bad, "reason"] == inv.reason).all()
    good = out.drop(index=bad)
    assert good.reason.isna().all() and good.predicted_class.notna().all()
    assert (m.predict_cluster(X)[[3, 7, 9, 11]] == -1).all()


def test_chunking_and_threads_do_not_change_results():
    X, y = _data(2000)
    a = ClusterThenLabel(["a", "bb_kt"], n_components=3, chunk_size=65_536, n_jobs=1).fit(X, y)
    b = ClusterThenLabel(["a", "bb_kt"], n_components=3, chunk_size=97, n_jobs=2).fit(X, y)
    np.testing.assert_array_equal(a.means_, b.means_)
    np.testing.assert_array_equal(a.predict_proba(X).to_numpy(), b.predict_proba(X).to_numpy())
    np.testing.assert_array_equal(a.predict_cluster(X), b.predict_cluster(X))


def test_gmm_same_as_plain_sklearn():
    from sklearn.mixture import GaussianMixture

    X, y = _data(5000)
    m = ClusterThenLabel(["a", "bb_kt"], n_components=4, chunk_size=512, n_jobs=2).fit(X, y)
    Z = m.transform_.transform(X[["a", "bb_kt"]].to_numpy())
    g = GaussianMixture(4, covariance_type="full", random_state=42).fit(Z)
    np.testing.assert_allclose(m.means_, g.means_, rtol=0, atol=1e-12)
    np.testing.assert_allclose(m.covariances_, g.covariances_, rtol=0, atol=1e-12)
    assert np.array_equal(m.labels_, g.predict(Z))
