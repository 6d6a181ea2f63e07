"""Hard-vote ties on a total order, and the oracle's recomputation against master_vote.

Two implementations written apart (``classifier.voting.master_vote`` with pandas groupby,
``db.oracle.expected_results`` with numpy scatter-adds) must agree on every generated input,
and neither may depend on the order of the input rows.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from classifier.voting import master_vote
from db.oracle import column_name, expected_results

C3 = ["QSO", "AGN", "YSO"]


def one_hot(cls: list[str]) -> dict[str, list[float]]:
    return {c: [0.8 if k == c else 0.1 for k in cls] for c in C3}


def test_a_tie_within_one_obsid_goes_to_the_lower_obi_then_region():
    det = pd.DataFrame({"name": "s", "obsid": [100, 100, 200, 300, 100],
                        "obi": [1, 0, 0, 0, 0], "region_id": [5, 9, 1, 1, 3],
                        **one_hot(["QSO", "AGN", "QSO", "AGN", "YSO"])})
    # QSO 2, AGN 2, YSO 1; first in (obsid, obi, region): (100, 0, 3) YSO, then (100, 0, 9) AGN
    for seed in range(8):
        v = master_vote(det.sample(frac=1, random_state=seed), classes=C3)
        assert v.loc["s", "hard_class"] == "AGN"
    no_obi = master_vote(det.drop(columns=["obi", "region_id"]).iloc[::-1], classes=C3)
    assert no_obi.loc["s", "n_detections"] == 5  # without the columns: (name, obsid) only


def test_missing_obi_or_region_sorts_last():
    det = pd.DataFrame({"name": "s", "obsid": [7, 7], "obi": [None, 2], "region_id": [1, 1],
                        **one_hot(["QSO", "AGN"])})
    assert master_vote(det, classes=C3).loc["s", "hard_class"] == "AGN"
    assert master_vote(det.iloc[::-1], classes=C3).loc["s", "hard_class"] == "AGN"


detections = st.integers(1, 40).flatmap(lambda n: st.fixed_dictionaries({
    "source": st.lists(st.integers(0, 5), min_size=n, max_size=n),
    "obsid": st.lists(st.integers(1, 3), min_size=n, max_size=n),
    "obi": st.lists(st.one_of(st.none(), st.integers(0, 2)), min_size=n, max_size=n),
    "region": st.lists(st.integers(0, 3), min_size=n, max_size=n),
    "probs": st.lists(st.one_of(st.just(None), st.sampled_from([
        (0.5, 0.5, 0.0), (0.2, 0.3, 0.5), (1 / 3, 1 / 3, 1 / 3), (0.7, 0.2, 0.1),
        (0.1, 0.2, 0.7), (0.0, 1.0, 0.0)])), min_size=n, max_size=n),
    "seed": st.integers(0, 1000),
}))


@settings(max_examples=60, deadline=None)
@given(detections)
def test_the_oracle_and_master_vote_agree_whatever_the_row_order(d):
    n = len(d["source"])
    P = np.array([p if p is not None else (np.nan,) * 3 for p in d["probs"]], dtype=float)
    frame = pd.DataFrame({"source_id": d["source"], "name": [f"s{i}" for i in d["source"]],
                          "obsid": d["obsid"], "obi": pd.array(d["obi"], dtype="Int64"),
                          "region_id": d["region"]})
    frame = frame.assign(**{c: P[:, j] for j, c in enumerate(C3)})
    frame = frame.drop_duplicates(["source_id", "obsid", "obi", "region_id"])  # natural key
    shuffled = frame.sample(frac=1, random_state=d["seed"])
    votes = master_vote(shuffled, classes=C3).sort_index()
    assert votes.equals(master_vote(frame, classes=C3).sort_index())
    det = frame.rename(columns={c: f"p{j}" for j, c in enumerate(C3)})
    src = frame.drop_duplicates("source_id")[["source_id", "name"]].assign(otype=None)
    exp = expected_results(det, src, C3, False).set_index("name")
    exp = exp[exp["n_detections"] > 0].sort_index()
    assert list(exp.index) == list(votes.index)
    assert (exp["n_detections"].to_numpy() == votes["n_detections"].to_numpy()).all()
    assert list(exp["hard_class"]) == list(votes["hard_class"].astype(object))
    for c in C3:
        np.testing.assert_allclose(exp[f"mean_{column_name(c)}"], votes[f"mean_{c}"], 1e-12)
        np.testing.assert_allclose(exp[f"std_{column_name(c)}"], votes[f"std_{c}"], 1e-12,
                                   1e-15)
    means = votes[[f"mean_{c}" for c in C3]].to_numpy()
    soft_mean = means[np.arange(len(means)), [C3.index(c) for c in exp["soft_class"]]]
    np.testing.assert_allclose(soft_mean, means.max(axis=1), 0, 1e-12)  # a tie either way
    assert n >= len(frame)
