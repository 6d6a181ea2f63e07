"""The method against values computed by hand (naive per-row loops, written independently)."""

import math

import numpy as np
import pandas as pd
import pytest

from classifier import ClusterThenLabel


def naive_probs(x, groups):
    """groups: {class: array of labeled rows}; straightforward per-row computation."""
    d2 = {}
    for c, rows in groups.items():
        n = len(rows)
        mu = [sum(r[j] for r in rows) / n for j in range(len(x))]
        cov = np.zeros((len(x), len(x)))
        for r in rows:
            diff = np.array([r[j] - mu[j] for j in range(len(x))])
            cov += np.outer(diff, diff)
        cov /= n - 1
        P = np.linalg.pinv(cov)
        diff = np.array([x[j] - mu[j] for j in range(len(x))])
        d2[c] = float(diff @ P @ diff)
    z = sum(math.exp(-v) for v in d2.values())
    return {c: math.exp(-v) / z for c, v in d2.items()}


def test_one_cluster_identity_transform():
    labeled = {
        "QSO": [[0.1, 0.2], [0.3, 0.1], [0.2, 0.4], [0.25, 0.3]],
        "AGN": [[0.8, 0.7], [0.6, 0.9], [0.7, 0.6]],
        "YSO": [[0.5, 0.5]],  # fewer than 2 features -> probability exactly 0
    }
    unl = [[0.3, 0.3], [0.65, 0.75], [0.5, 0.5], [0.0, 1.0]]
    rows, y = [], []
    for c, rs in labeled.items():
        rows += rs
        y += [c] * len(rs)
    rows += unl
    y += [None] * len(unl)
    X = pd.DataFrame(rows, columns=["a", "b"], index=[f"r{i}" for i in range(len(rows))])
    y = pd.Series(y, index=X.index, dtype="object")
    m = ClusterThenLabel(features=["a", "b"], log_features=[], scale_features=[], n_components=1)
    m.fit(X, y)
    Xu = pd.DataFrame(unl, columns=["a", "b"])
    P = m.predict_proba(Xu)
    assert list(P.columns) == m.classes_
    for i, x in enumerate(unl):
        exp = naive_probs(x, {c: labeled[c] for c in ("QSO", "AGN")})
        for c in m.classes_:
            assert P.loc[i, c] == pytest.approx(exp.get(c, 0.0), abs=1e-12)
        assert P.loc[i, "YSO"] == 0.0
    assert (m.predict_cluster(Xu) == 0).all()


def test_transform_by_hand_and_min_labeled_is_n_features():
    # feature "k" is a log feature with a zero, "g" a scale feature, "h" unchanged.
    rng = np.random.default_rng(0)
    n = 40
    X = pd.DataFrame(
        {
            "k": np.concatenate([[0.0], rng.uniform(0.05, 3, n - 1)]),
            "g": rng.uniform(1, 4, n),
            "h": rng.uniform(-1, 1, n),
        }
    )
    y = pd.Series([None] * n, dtype="object")
    y[:12] = "QSO"
    y[12:15] = "AGN"  # 3 >= 3 features -> usable
    y[15:17] = "HMXB"  # 2 < 3 features -> unusable
    m = ClusterThenLabel(
        features=["k", "g", "h"], log_features=["k"], scale_features=["g"], n_components=1
    ).fit(X, y)
    mpos = X.k[X.k != 0].min()
    lk = np.log(X.k + mpos / 10)
    T = pd.DataFrame(
        {
            "k": (lk - lk.min()) / (lk.max() - lk.min()),
            "g": (X.g - X.g.min()) / (X.g.max() - X.g.min()),
            "h": X.h,
        }
    )
    assert m.transform_.offset_[0] == mpos / 10
    np.testing.assert_allclose(m.transform_.transform(X.to_numpy()), T.to_numpy(), atol=1e-15)
    P = m.predict_proba(X)
    groups = {
        "QSO": T.iloc[:12].to_numpy().tolist(),
        "AGN": T.iloc[12:15].to_numpy().tolist(),
    }
    for i in range(17, n):
        exp = naive_probs(T.iloc[i].tolist(), groups)
        assert P.loc[i, "QSO"] == pytest.approx(exp["QSO"], abs=1e-9)
        assert P.loc[i, "AGN"] == pytest.approx(exp["AGN"], abs=1e-9)
        assert P.loc[i, "HMXB"] == 0.0
    assert m.usable_[0].tolist() == [c in ("QSO", "AGN") for c in m.classes_]


def test_far_away_rows_get_finite_probabilities():
    X = pd.DataFrame({"a": [0, 1, 0, 1, 10, 11, 10, 11], "b": [0, 0, 1, 1.5, 0, 0, 1, 1.2]})
    y = pd.Series(["QSO"] * 4 + ["AGN"] * 4, dtype="object")
    m = ClusterThenLabel(["a", "b"], [], [], n_components=1).fit(X, y)
    far = pd.DataFrame({"a": [1e4, -1e5], "b": [1e4, 3e3]})
    P = m.predict_proba(far)
    assert np.isfinite(P.to_numpy()).all()
    np.testing.assert_allclose(P.sum(axis=1), 1.0)


def test_two_clusters_one_without_usable_class_gives_reason():
    rng = np.random.default_rng(1)
    a = rng.normal(0, 0.1, (30, 2))
    b = rng.normal(5, 0.1, (30, 2))
    X = pd.DataFrame(np.vstack([a, b]), columns=["a", "b"])
    y = pd.Series([None] * 60, dtype="object")
    y[:10] = "YSO"  # only cluster of `a` has labels
    m = ClusterThenLabel(["a", "b"], [], [], n_components=2).fit(X, y)
    out = m.predict(X)
    kb = int(out.cluster.iloc[45])
    assert out.cluster.iloc[5] != kb
    assert out.reason.iloc[45] == f"cluster {kb} has no class with >= 2 labeled detections"
    assert out.loc[45, m.classes_].isna().all()
    assert pd.isna(out.predicted_class.iloc[45])
    assert out.reason.iloc[5] is None
    assert out.predicted_class.iloc[5] == "YSO"
    assert out.loc[5, "YSO"] == 1.0
    P = m.predict_proba(X)
    assert P.iloc[30:].isna().all().all()
