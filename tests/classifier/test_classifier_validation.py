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
