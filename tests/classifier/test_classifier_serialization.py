import json

import numpy as np
import pandas as pd
import pytest

from classifier import FEATURES_NO_NEWQ, ClusterThenLabel, NotFittedError, simbad_to_class


def _toy(n=600, seed=3):
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(
        {
            "a": rng.normal(0, 1, n),
            "bb_kt": rng.lognormal(0, 1, n),
            "powlaw_gamma": rng.uniform(0, 5, n),
        }
    )
    y = pd.Series(rng.choice(["QSO", "AGN", "YSO", None], n, p=[0.2, 0.2, 0.2, 0.4]))
    return X, y


def test_round_trip_json_identical():
    X, y = _toy()
    m = ClusterThenLabel(["a", "bb_kt", "powlaw_gamma"], n_components=3).fit(X, y)
    d = m.to_dict()
    s = json.dumps(d, allow_nan=False)  # strict JSON
    m2 = ClusterThenLabel.from_dict(json.loads(s), known_features=["a", "bb_kt", "powlaw_gamma"])
    assert m2.to_dict() == d
    p1, p2 = m.predict(X), m2.predict(X)
    pd.testing.assert_frame_equal(p1, p2)
    assert np.array_equal(m.predict_cluster(X), m2.predict_cluster(X))
    # identical bits, not just close
    assert np.array_equal(
        m.predict_proba(X).to_numpy(), m2.predict_proba(X).to_numpy(), equal_nan=True
    )


def test_round_trip_shared_file(shared_csv):
    y = simbad_to_class(shared_csv.simbad_otype)
    m = ClusterThenLabel(features=FEATURES_NO_NEWQ).fit(shared_csv, y)
    m2 = ClusterThenLabel.from_dict(json.loads(json.dumps(m.to_dict(), allow_nan=False)))
    a, b = m.predict_proba(shared_csv).to_numpy(), m2.predict_proba(shared_csv).to_numpy()
    assert np.array_equal(a, b, equal_nan=True)


def test_from_dict_rejects_other_formats():
    with pytest.raises(ValueError, match="format"):
        ClusterThenLabel.from_dict({"format": "x"})
    X, y = _toy()
    d = ClusterThenLabel(["a"], [], [], n_components=2).fit(X, y).to_dict()
    with pytest.raises(ValueError, match="unknown name 'a'"):
        ClusterThenLabel.from_dict(d)  # not one of the known features
    assert ClusterThenLabel.from_dict(d, known_features=None).features_ == ["a"]
    d["version"] = 99
    with pytest.raises(ValueError, match="version"):
        ClusterThenLabel.from_dict(d)


def test_not_fitted():
    with pytest.raises(NotFittedError):
        ClusterThenLabel().predict_proba(pd.DataFrame())
