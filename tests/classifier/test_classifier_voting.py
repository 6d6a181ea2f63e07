import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from classifier import CLASSES
from classifier.voting import cohen_kappa, master_vote

C3 = ["QSO", "AGN", "YSO"]


def test_hand_example():
    det = pd.DataFrame(
        {
            "name": ["s1", "s1", "s1", "s2", "s2", "s3"],
            "obsid": [3, 1, 2, 9, 4, 7],
            "QSO": [0.1, 0.6, 0.2, 0.5, 0.4, 0.2],
            "AGN": [0.8, 0.3, 0.3, 0.3, 0.35, 0.3],
            "YSO": [0.1, 0.1, 0.5, 0.2, 0.25, 0.5],
        }
    )
    v = master_vote(det, classes=C3)
    # s1: obsid order 1 (QSO), 2 (YSO), 3 (AGN): 1-1-1 tie -> QSO (first seen); soft AGN
    assert v.loc["s1", "hard_class"] == "QSO"
    assert v.loc["s1", "soft_class"] == "AGN"  # means .3 .4667 .2333
    assert bool(v.loc["s1", "ambiguous"])
    assert v.loc["s2", "hard_class"] == "QSO" and v.loc["s2", "soft_class"] == "QSO"
    assert not v.loc["s2", "ambiguous"]
    assert v.loc["s1", "mean_AGN"] == pytest.approx((0.8 + 0.3 + 0.3) / 3)
    assert v.loc["s1", "std_AGN"] == pytest.approx(np.std([0.8, 0.3, 0.3], ddof=1))
    assert np.isnan(v.loc["s3", "std_QSO"]) and v.loc["s3", "n_detections"] == 1
    assert v.loc["s1", "agg_class"] == "AGN"


def test_unclassified_detections_ignored_and_missing_columns():
    det = pd.DataFrame({"name": ["a", "a", "b"], "obsid": [1, 2, 3], "QSO": [0.9, np.nan, np.nan]})
    det["AGN"] = 1 - det.QSO
    det["YSO"] = 0.0
    v = master_vote(det, classes=C3)
    assert list(v.index) == ["a"] and v.loc["a", "n_detections"] == 1
    with pytest.raises(ValueError, match="obsid"):
        master_vote(det.drop(columns="obsid"), classes=C3)


def test_kappa_known_values():
    assert cohen_kappa(pd.Series(["a", "b"]), pd.Series(["a", "b"])) == 1.0
    assert cohen_kappa(pd.Series(["a", "a"]), pd.Series(["a", "a"])) == 1.0
    assert cohen_kappa(pd.Series(["a", "b"]), pd.Series(["b", "a"])) == -1.0
    from sklearn.metrics import cohen_kappa_score

    a = ["x", "y", "x", "z", "y", "x"]
    b = ["x", "y", "y", "z", "x", "x"]
    assert cohen_kappa(pd.Series(a), pd.Series(b)) == pytest.approx(cohen_kappa_score(a, b))


@st.composite
def detections(draw):
    n = draw(st.integers(1, 40))
    names = draw(st.lists(st.sampled_from(["s1", "s2", "s3", "s4"]), min_size=n, max_size=n))
    obsids = draw(st.lists(st.integers(0, 10**6), min_size=n, max_size=n, unique=True))
    raw = draw(
        st.lists(st.lists(st.integers(0, 5), min_size=3, max_size=3), min_size=n, max_size=n)
    )  # small integers: ties happen often
    P = np.array(raw, dtype=float) + 1e-3
    P /= P.sum(axis=1, keepdims=True)
    det = pd.DataFrame(P, columns=C3)
    det["name"] = names
    det["obsid"] = obsids
    return det


@given(detections())
@settings(max_examples=150, deadline=None)
def test_vote_properties(det):
    v = master_vote(det, classes=C3)
    srt = det.sort_values(["name", "obsid"])
    for name, grp in srt.groupby("name"):
        cls = np.array(C3)[grp[C3].to_numpy().argmax(axis=1)]
        counts = pd.Series(cls).value_counts()
        top = counts[counts == counts.max()].index
        first = next(c for c in cls if c in set(top))
        assert v.loc[name, "hard_class"] == first  # a mode; tie -> first seen
        means = grp[C3].mean().to_numpy()
        assert v.loc[name, "soft_class"] == C3[int(np.argmax(means))]
        assert v.loc[name, "ambiguous"] == (v.loc[name, "hard_class"] != v.loc[name, "soft_class"])
        assert v.loc[name, "n_detections"] == len(grp)
    k = cohen_kappa(v.hard_class, v.soft_class)
    assert -1 - 1e-12 <= k <= 1 + 1e-12
    # the input row order does not matter (obsids unique within the whole frame)
    v2 = master_vote(det.sample(frac=1, random_state=1), classes=C3)
    pd.testing.assert_series_equal(v.soft_class, v2.soft_class)
    pd.testing.assert_series_equal(v.hard_class, v2.hard_class)
    np.testing.assert_allclose(v[[f"mean_{c}" for c in C3]], v2[[f"mean_{c}" for c in C3]])


def test_all_ten_classes_default():
    rng = np.random.default_rng(0)
    det = pd.DataFrame(rng.dirichlet(np.ones(10), 50), columns=CLASSES)
    det["name"] = rng.choice(list("abcde"), 50)
    det["obsid"] = np.arange(50)
    v = master_vote(det)
    assert {f"mean_{c}" for c in CLASSES} <= set(v.columns)
    assert v.n_detections.sum() == 50


def test_pipeline_predict_then_vote():
    from classifier import ClusterThenLabel

    rng = np.random.default_rng(5)
    n = 400
    X = pd.DataFrame({"a": rng.normal(0, 1, n), "b": rng.normal(0, 1, n)})
    y = pd.Series(rng.choice(["QSO", "YSO", None], n), dtype="object")
    X.loc[7, "a"] = np.nan
    m = ClusterThenLabel(["a", "b"], [], [], n_components=2).fit(X, y)
    det = m.predict(X)
    det["name"] = [f"src{i % 50}" for i in range(n)]
    det["obsid"] = np.arange(n)
    v = master_vote(det, classes=m.classes_)
    assert len(v) == 50 and v.n_detections.sum() == n - 1  # the invalid row is ignored
    assert set(v.hard_class) <= {"QSO", "YSO"} and set(v.soft_class) <= {"QSO", "YSO"}
    k = cohen_kappa(v.hard_class, v.soft_class)
    assert -1 <= k <= 1
