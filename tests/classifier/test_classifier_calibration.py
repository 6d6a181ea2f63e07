"""The calibration curve stored with every validation (reliability diagram, ECE)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from classifier import FEATURES_NO_NEWQ, derive_features, simbad_to_class
from classifier.validation import CALIBRATION_EDGES, calibration, validate


def test_bins_and_ece_of_a_hand_example():
    # 100 predictions at p = 0.95, 56 right; 4 at p = 0.25, 1 right (calibrated); 2 at p = 1.0
    p = np.r_[np.full(100, 0.95), np.full(4, 0.25), [1.0, 0.995]]
    right = np.r_[np.arange(100) < 56, [True, False, False, False], [True, False]]
    c = calibration(p, right)
    bins = {(b["lo"], b["hi"]): b for b in c["bins"]}
    assert bins[(0.9, 0.99)]["n"] == 100 and bins[(0.9, 0.99)]["accuracy"] == pytest.approx(0.56)
    assert bins[(0.2, 0.3)]["accuracy"] == pytest.approx(0.25)
    top = bins[(0.99, 1.0)]  # the last bin is closed: p = 1.0 is in it
    assert top["n"] == 2 and top["mean_probability"] == pytest.approx(0.9975)
    assert top["accuracy"] == 0.5
    assert bins[(0.0, 0.1)]["accuracy"] is None and bins[(0.0, 0.1)]["n"] == 0
    expected = (100 * abs(0.56 - 0.95) + 4 * 0 + 2 * abs(0.5 - 0.9975)) / 106
    assert c["ece"] == pytest.approx(expected)
    assert c["max_gap"] == pytest.approx(0.4975)
    assert c["edges"] == list(CALIBRATION_EDGES) and c["n"] == 106


def test_a_calibrated_model_has_an_ece_near_zero():
    rng = np.random.default_rng(0)
    p = rng.uniform(0.1, 1.0, 200_000)
    c = calibration(p, rng.uniform(size=p.size) < p)
    assert c["ece"] < 0.005


def _report(df: pd.DataFrame) -> dict:
    y = simbad_to_class(df["simbad_otype"])
    return validate(df[FEATURES_NO_NEWQ], y, features=FEATURES_NO_NEWQ)


def test_the_validation_report_carries_the_curves_and_they_add_up(shared_data):
    df = derive_features(pd.read_csv(shared_data / "csc21_sources_simbad.csv"))
    report = _report(df)
    cal = report["calibration"]
    classified = report["n_test"] - report["n_unclassified"]
    for level in ("fine", "aggregated"):
        bins = cal[level]["bins"]
        assert sum(b["n"] for b in bins) == cal[level]["n"] == classified
        right = sum(b["n"] * b["accuracy"] for b in bins if b["n"])
        assert right / classified == pytest.approx(report[level]["accuracy"])
    top = cal["fine"]["bins"][-1]
    # overconfident, as the issue measured: fine classes at p >= 0.99 are right about half
    # of the time, so a probability is no statement of certainty
    assert top["mean_probability"] > 0.99 and top["accuracy"] < 0.7
    assert cal["fine"]["ece"] > 0.2
