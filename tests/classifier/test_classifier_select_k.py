import json

import numpy as np
import pandas as pd

from classifier import bic_curve


def test_bic_curve_finds_three_blobs():
    rng = np.random.default_rng(0)
    centers = np.array([[0, 0], [6, 0], [0, 6]])
    Xv = centers[rng.integers(0, 3, 600)] + rng.normal(0, 0.5, (600, 2))
    X = pd.DataFrame(Xv, columns=["a", "b"])
    r = bic_curve(X, ["a", "b"], [], [], ks=range(1, 8), seeds=(0, 1), flat_fraction=0.1)
    json.dumps(r, allow_nan=False)
    assert r["ks"] == list(range(1, 8)) and len(r["bic"]) == 2
    assert int(np.argmin(r["bic_mean"])) + 1 == 3
    assert r["k_flat"] == 3
