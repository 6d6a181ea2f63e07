"""Acceptance on the shared CSC 2.1 file (skipped when absent).

An independent, deliberately naive implementation of the method in the published code's style
(pandas transform, sklearn GMM, per cluster and class np.cov / np.linalg.pinv and the diagonal of
the full (X - mu) P (X - mu)^T matrix on small chunks) must agree with ClusterThenLabel on the
clusters and the probabilities of every unlabeled row to 1e-6.
"""

import numpy as np
import pandas as pd
import pytest
from sklearn.mixture import GaussianMixture

from classifier import CLASSES, FEATURES_NO_NEWQ, ClusterThenLabel, otype_kind, simbad_to_class

LOG = ["bb_kt", "var_ratio_b", "var_ratio_h", "var_ratio_s"]
SCALE = ["powlaw_gamma"]


def reference(df: pd.DataFrame, labels: pd.Series):
    X = df[FEATURES_NO_NEWQ].copy()
    for c in LOG:
        m = X[c][X[c] != 0].min()
        X[c] = np.log(X[c] + m / 10)
    for c in LOG + SCALE:
        X[c] = (X[c] - X[c].min()) / (X[c].max() - X[c].min())
    gmm = GaussianMixture(n_components=6, covariance_type="full", random_state=42)
    gmm.fit(X.values)
    X["cluster"] = gmm.predict(X.values)
    X["label"] = labels.values
    unl = X[X.label.isna()]
    lab = X[X.label.notna()]
    probs = pd.DataFrame(0.0, index=unl.index, columns=CLASSES)
    for k in range(6):
        u = unl[unl.cluster == k][FEATURES_NO_NEWQ]
        d2 = {}
        for c in CLASSES:
            ref = lab[(lab.cluster == k) & (lab.label == c)][FEATURES_NO_NEWQ]
            if len(ref) < len(FEATURES_NO_NEWQ):
                continue
            mu = ref.mean().values
            P = np.linalg.pinv(np.cov(ref.values.T))
            vals = []
            for s in range(0, len(u), 500):  # the n x n matrix, on small chunks
                D = u.values[s : s + 500] - mu
                vals.append(np.diag(D @ P @ D.T))
            d2[c] = np.concatenate(vals) if vals else np.empty(0)
        if not d2:
            probs.loc[u.index] = np.nan
            continue
        num = {c: np.exp(-v) for c, v in d2.items()}
        den = sum(num.values())
        for c, v in num.items():
            probs.loc[u.index, c] = v / den
    return X["cluster"], probs


@pytest.fixture(scope="module")
def fitted(shared_csv):
    y = simbad_to_class(shared_csv.simbad_otype)
    model = ClusterThenLabel(features=FEATURES_NO_NEWQ).fit(shared_csv, y)
    return model, y


def test_matches_independent_implementation(shared_csv, fitted):
    model, y = fitted
    ref_cluster, ref_probs = reference(shared_csv, y)
    out = model.predict(shared_csv)
    assert np.array_equal(out.cluster.to_numpy(dtype=int), ref_cluster.to_numpy())
    unl = y.isna().to_numpy()
    assert unl.sum() == len(ref_probs) == 15706 - 9759
    got = out.loc[unl, CLASSES].to_numpy()
    exp = ref_probs.to_numpy()
    assert np.isfinite(exp).all()  # the naive exp() did not underflow on this file
    np.testing.assert_allclose(got, exp, rtol=0, atol=1e-6)


def test_invariants(shared_csv, fitted):
    model, y = fitted
    assert len(model.invalid_rows_) == 0 and model.n_fit_rows_ == 15706
    kinds = otype_kind(shared_csv.simbad_otype)
    assert (kinds == "reference").sum() == y.notna().sum()
    out = model.predict(shared_csv)
    assert out.reason.isna().all()  # every cluster has a usable class on this file
    k = out.cluster.to_numpy(dtype=int)
    assert k.min() >= 0 and k.max() < 6
    P = out[CLASSES].to_numpy()
    assert np.isfinite(P).all() and (P >= 0).all() and (P <= 1).all()
    np.testing.assert_allclose(P.sum(axis=1), 1.0, atol=1e-12)
    # classes unusable in a cluster have probability exactly 0 there
    for kk in range(6):
        rows = P[k == kk]
        assert (rows[:, ~model.usable_[kk]] == 0).all()
        assert model.usable_[kk].sum() >= 1
    assert (model.class_counts_[model.usable_] >= 11).all()
    assert (model.class_counts_[~model.usable_] < 11).all()
    assert model.class_counts_.sum() == y.notna().sum()
    # predicted class is the argmax of the probabilities
    assert (out.predicted_class.to_numpy() == np.array(CLASSES)[P.argmax(axis=1)]).all()
    # row order does not matter for a fitted model
    perm = np.random.default_rng(0).permutation(len(shared_csv))
    P2 = model.predict_proba(shared_csv.iloc[perm])
    np.testing.assert_allclose(P2.loc[shared_csv.index].to_numpy(), P, atol=1e-12)
