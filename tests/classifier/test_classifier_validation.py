import json

import numpy as np
import pandas as pd

from classifier import FEATURES_NO_NEWQ
from classifier.validate_file import main
from classifier.validation import format_report, validate


def test_validation_report_synthetic():
    rng = np.random.default_rng(0)
    n = 900
    cls = rng.choice(["QSO", "HMXB", "YSO"], n)
    centers = {"QSO": [0, 0], "HMXB": [3, 0], "YSO": [0, 3]}
    Xv = np.array([centers[c] for c in cls]) + rng.normal(0, 0.7, (n, 2))
    X = pd.DataFrame(Xv, columns=["a", "b"])
    y = pd.Series(cls, dtype="object").where(rng.random(n) < 0.6, None)
    rep = validate(X, y, features=["a", "b"], log_features=[], scale_features=[], n_components=2)
    json.dumps(rep, allow_nan=False)
    assert rep["n_test"] + rep["n_train"] == rep["n_labeled"] == int(y.notna().sum())
    assert abs(rep["n_test"] - 0.3 * rep["n_labeled"]) <= 1
    for block in (rep["fine"], rep["aggregated"]):
        for row, c in zip(block["confusion"], block["labels"], strict=True):
            if block["support"][c]:
                assert abs(sum(row) - 1) < 1e-9
    assert rep["aggregated"]["accuracy"] > 0.8
    assert "Aggregated confusion matrix" in format_report(rep)


def test_validate_file_command(shared_csv_path, capsys, tmp_path):
    out = tmp_path / "r.json"
    assert main([str(shared_csv_path), "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "aggregated accuracy" in text
    rep = json.loads(out.read_text())
    assert rep["features"] == FEATURES_NO_NEWQ
    assert rep["n_labeled"] == 9759 and rep["n_unclassified"] == 0


def test_validation_reusing_a_fitted_mixture_is_exactly_a_fresh_fit():
    """The transform and the mixture depend on X only: reusing them changes nothing."""
    from classifier import ClusterThenLabel

    rng = np.random.default_rng(3)
    n = 1200
    cls = rng.choice(["QSO", "HMXB", "YSO", "AGN"], n)
    centers = {"QSO": [0, 0, 1], "HMXB": [3, 0, 2], "YSO": [0, 3, 3], "AGN": [1, 1, 0.5]}
    Xv = np.array([centers[c] for c in cls]) + rng.normal(0, 0.8, (n, 3))
    X = pd.DataFrame(np.abs(Xv), columns=["a", "b", "c"])
    X.loc[5, "c"] = np.nan  # an invalid row must be handled alike
    y = pd.Series(cls, dtype="object").where(rng.random(n) < 0.5, None)
    params = dict(features=["a", "b", "c"], log_features=["c"], scale_features=["a"],
                  n_components=3)
    fitted = ClusterThenLabel(**params).fit(X, y)
    fresh = validate(X, y, **params)
    reused = validate(X, y, fitted=fitted)
    assert json.dumps(reused, sort_keys=True) == json.dumps(fresh, sort_keys=True)
    y2 = y.where(rng.random(n) < 0.5, None)
    relabeled, direct = fitted.with_labels(X, y2), ClusterThenLabel(**params).fit(X, y2)
    np.testing.assert_array_equal(relabeled.class_counts_, direct.class_counts_)
    np.testing.assert_array_equal(relabeled.class_means_, direct.class_means_)
    np.testing.assert_array_equal(relabeled.class_pinv_, direct.class_pinv_)
    pd.testing.assert_frame_equal(relabeled.predict_proba(X), direct.predict_proba(X))
