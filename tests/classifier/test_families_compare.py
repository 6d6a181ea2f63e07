"""classifier.compare on the real data (skipped without ../shared); a fast subset of the runs:
the full run is ``python -m classifier.compare``."""

import json

import numpy as np
import pandas as pd
import pytest

from classifier import FEATURES_NO_NEWQ, simbad_to_class, validate
from classifier.compare import main, run_csc21
from classifier.families.datasets import MUWCLASS_CLASSES, load_muwclass_td


def test_muwclass_td_loader(shared_data):
    X, y = load_muwclass_td(shared_data / "muwclass_td")
    assert sorted(y.unique()) == MUWCLASS_CLASSES  # NS_BIN left out
    assert X.index.is_unique and len(X) == len(y) > 3000
    assert (X["flux_s"] > 0).all()  # every kept source has averaged X-ray fluxes
    # missing counterparts are NaN, never the file's -99 / 1e20 codes
    mags = X[["gaia_g", "tmass_j", "wise_w1", "wise_w3"]].to_numpy()
    assert np.nanmax(mags) < 30 and np.nanmin(mags) > -20
    assert np.isnan(mags).any()
    # the first source of the file: a K3 star (G = 12.59, parallax 5.2 mas)
    first = X.loc["2CXO J000150.5+233015"]
    assert first["gaia_g"] == pytest.approx(12.588624)
    assert first["gaia_plx"] == pytest.approx(5.2353)


def test_ctl_in_compare_equals_the_paper_validation(shared_data, shared_csv):
    """compare's ctl run is exactly classifier.validate (the existing, unchanged method)."""
    res = run_csc21(shared_data / "csc21_sources_simbad.csv", ["ctl"])["ctl"]
    y = simbad_to_class(shared_csv.simbad_otype)
    X = shared_csv.set_index("row_id", drop=False)
    ref = validate(X, y.set_axis(X.index), features=FEATURES_NO_NEWQ)
    assert res["metrics_fine"]["accuracy"] == pytest.approx(ref["fine"]["accuracy"], abs=1e-12)
    assert res["metrics"]["n"] == sum(ref["aggregated"]["support"].values())
    assert res["metrics"]["accuracy"] == pytest.approx(ref["aggregated"]["accuracy"], abs=1e-12)
    assert res["confusion"]["counts"] == ref["aggregated"]["counts"]
    assert res["metrics_fine"]["n_test"] == ref["n_test"]
    assert 0.6 < res["metrics"]["accuracy"] < 0.75  # the 0.67 for the paper's method


def test_compare_command_writes_the_json(shared_data, tmp_path, capsys):
    out = tmp_path / "cmp.json"
    rc = main(["--data", str(shared_data), "--families", "claxboi", "--only", "muwclass_td",
               "--folds", "3", "--out", str(out)])  # fmt: skip
    assert rc == 0
    printed = capsys.readouterr().out
    assert "muwclass_td (8, CV)" in printed and "claxboi" in printed
    res = json.loads(out.read_text())
    pred = res["muwclass_td"]["claxboi"]["predictions"]
    X, y = load_muwclass_td(shared_data / "muwclass_td")
    assert set(pred) == set(X.index)  # every source held out once
    got = pd.Series(pred).reindex(X.index)
    acc = float((got == y).mean())
    m = res["muwclass_td"]["claxboi"]["metrics"]
    assert m["accuracy"] == pytest.approx(acc)  # the score is the predictions' score
    assert acc > 0.7
    cm = np.array(res["muwclass_td"]["claxboi"]["confusion"]["counts"])
    assert cm.sum() == len(X) and np.trace(cm) == round(acc * len(X))


def test_compare_rejects_unknown_family(shared_data, capsys):
    assert main(["--data", str(shared_data), "--families", "nope"]) == 2
    assert "unknown families" in capsys.readouterr().err
