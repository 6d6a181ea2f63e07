"""classifier.compare on the real data (skipped without ../shared); a fast subset of the runs:
the full run is ``python -m classifier.compare``."""

import json

import numpy as np
import pandas as pd
import pytest

from classifier import FEATURES_NO_NEWQ, simbad_to_class, validate
from classifier.compare import PARAMS, main, run_csc21
from classifier.families import MUWClass
from classifier.families.datasets import MUWCLASS_CLASSES, load_muwclass_td
from classifier.families.features import FEATURE_SETS


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


def test_galactic_features_match_the_published_coordinates(shared_data):
    """gal_l/gal_b from the CSC ra/dec equal the MUWCLASS file's own Galactic coordinates
    (its GLAT column holds longitudes and GLON latitudes: swapped in the source file)."""
    X, _ = load_muwclass_td(shared_data / "muwclass_td")
    F, _ = FEATURE_SETS["mw_gal"].build(X)
    lon, lat = F[:, -2], F[:, -1]
    ref = pd.read_csv(shared_data / "muwclass_td" / "td_classes.csv").set_index("name")
    ref = ref.loc[X.index]
    assert np.abs((lon - ref["GLAT"].to_numpy() + 180) % 360 - 180).max() < 2e-3
    assert np.abs(lat - ref["GLON"].to_numpy()).max() < 2e-3
    # LMXBs crowd the Galactic plane, AGN avoid it (the physics the feature is for)
    _, y = load_muwclass_td(shared_data / "muwclass_td")
    b = pd.Series(np.abs(lat), index=X.index)
    assert b[y == "LMXB"].median() < 10 < b[y == "AGN"].median()


def test_compare_uses_the_default_number_of_draws():
    """compare, the benchmark (which takes compare's parameters) and the default agree."""
    assert PARAMS["muwclass_td"]["muwclass"]["n_draws"] == MUWClass().n_draws == 4


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


def test_csc21_gbm_is_the_cv_chosen_candidate():
    """compare's CSC 2.1 gbm is cv_csc21's gbm_rot5_lr05, on a set of the 11 X-ray columns
    the catalog stores per source (nothing else: it must be computable there the same way)."""
    from classifier.cv_csc21 import CANDIDATES

    cell = CANDIDATES["gbm_rot5_lr05"].__closure__
    params = next(c.cell_contents for c in cell if isinstance(c.cell_contents, dict))
    assert params == PARAMS["csc21"]["gbm"]
    fs = FEATURE_SETS[params["feature_set"]]
    assert set(fs.columns) <= set(FEATURE_SETS["csc_hr"].columns)


def test_csc_hr_rot5_on_the_real_file(shared_csv):
    fs = FEATURE_SETS["csc_hr_rot5"]
    F, reasons = fs.build(shared_csv)
    assert F.shape == (len(shared_csv), len(fs.features)) and (reasons == None).all()  # noqa: E711
    i = fs.features.index("hard_hm_minus_ms")
    expect = shared_csv["hard_hm"].to_numpy() - shared_csv["hard_ms"].to_numpy()
    assert np.array_equal(F[:, i], expect, equal_nan=True)


def test_cv_mean_gives_each_run_its_labels():
    """cv_csc21._mean: a fine run gets the fine labels, an aggregated one their aggregation."""
    from classifier.cv_csc21 import _mean
    from classifier.taxonomy import AGG_CLASSES, AGGREGATION

    seen = {}

    def agg_run(Xf, yf, Xv):
        seen["agg"] = list(yf)
        return np.tile([1.0, 0, 0, 0], (len(Xv), 1))

    def fine_run(Xf, yf, Xv):
        seen["fine"] = list(yf)
        return np.tile([0, 1.0, 0, 0], (len(Xv), 1))

    fine_run.fine = True
    run = _mean(agg_run, fine_run)
    assert run.fine and not getattr(_mean(agg_run, agg_run), "fine", False)
    y = pd.Series(["QSO", "HMXB", "TTau*"])
    P = run(None, y, [0, 1])
    assert seen["fine"] == list(y) and seen["agg"] == [AGGREGATION[c] for c in y]
    assert P.tolist() == [[0.5, 0.5, 0, 0]] * 2 and len(AGG_CLASSES) == 4
