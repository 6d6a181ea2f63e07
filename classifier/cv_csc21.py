"""Choose CSC 2.1 settings by cross-validation on the training part only.

Usage::

    python -m classifier.cv_csc21 [--data DIR] [--candidates gbm_plus,gbm_bands]
        [--folds 5] [--repeats 2] [--test NAME] [--out FILE.json]

The labelled rows of the CSC 2.1 file are split as ``classifier.compare`` splits them
(stratified 70/30 on the fine classes, seed 42). Only the 70 % training part is used here:
repeated stratified k-fold (seed 0 + repeat) on it, each candidate fitted on the aggregated
labels of k-1 folds and scored (aggregated accuracy) on the remaining one. ``--test NAME``
then fits NAME once on the whole training part and scores the 30 % test split: use it once,
for the candidate the CV chose.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import RepeatedStratifiedKFold, train_test_split

from .families import FAMILIES
from .families.datasets import load_csc21
from .taxonomy import AGG_CLASSES, AGGREGATION

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def _family(name: str, **params) -> Callable[[pd.DataFrame, pd.Series, pd.DataFrame], np.ndarray]:
    def run(Xf, yf, Xv):
        P = FAMILIES[name](**params).fit(Xf, yf).predict_proba(Xv)
        return P.reindex(columns=AGG_CLASSES, fill_value=0.0).to_numpy("float64")
    return run


def _gbm_bands(**params) -> Callable:
    """gbm on ``csc_hr_bands`` with a fixed iteration count unless ``params`` say otherwise."""
    return _family("gbm", **{"feature_set": "csc_hr_bands", "select_iter": False, **params})


def _family_fine(name: str, **params) -> Callable:
    """Fitted on the 10 fine classes, the probabilities summed over each aggregated class
    and the aggregated class their argmax (as ``classifier.compare`` scores a family listed
    in its ``AGGREGATE_FINE``)."""
    def run(Xf, yf, Xv):
        P = FAMILIES[name](**params).fit(Xf, yf).predict_proba(Xv)
        out = np.zeros((len(Xv), len(AGG_CLASSES)))
        for c in P.columns:
            out[:, AGG_CLASSES.index(AGGREGATION[c])] += P[c].to_numpy("float64")
        return out
    run.fine = True  # cv passes the fine labels
    return run


def _mean(*runs):
    """The mean of the runs' aggregated probabilities (each run given the fine labels if it
    is ``fine``, else their aggregation, so fine and aggregated runs may be mixed)."""
    def run(Xf, yf, Xv):
        fine = getattr(run, "fine", False)
        ps = []
        for r in runs:
            labels = yf if (getattr(r, "fine", False) or not fine) else yf.map(AGGREGATION)
            ps.append(r(Xf, labels, Xv))
        return np.mean(ps, axis=0)
    run.fine = any(getattr(r, "fine", False) for r in runs)
    return run


#: The candidates (compare's PARAMS["csc21"]["gbm"] is ``gbm_rot5_lr05``).
CANDIDATES: dict[str, Callable] = {
    "gbm_plus": _family("gbm", feature_set="csc_hr_plus", select_iter=False),
    "gbm_bands": _gbm_bands(),
    "gbm_bands_l2": _gbm_bands(l2_regularization=1.0),
    "gbm_bands_x2": _mean(_gbm_bands(random_state=42), _gbm_bands(random_state=7)),
    "gbm_muw_bands": _mean(_gbm_bands(), _family("muwclass", feature_set="csc_hr_bands")),
    # 2026-12-02 (acc2): fine labels summed, a small grid, derived features
    "gbm_bands_fine": _family_fine("gbm", feature_set="csc_hr_bands", select_iter=False),
    "gbm_bands_lr05": _gbm_bands(learning_rate=0.05, max_iter=400),
    "gbm_bands_leaf15": _gbm_bands(max_leaf_nodes=15),
    "gbm_bands_leaf63": _gbm_bands(max_leaf_nodes=63),
    "gbm_bands_msl50": _gbm_bands(min_samples_leaf=50),
    "gbm_bands_msl10": _gbm_bands(min_samples_leaf=10),
    "gbm_bands_sel400": _gbm_bands(select_iter=True, max_iter=400),
    "gbm_bands_iter300": _gbm_bands(max_iter=300),
    "gbm_bands_lr05_i600": _gbm_bands(learning_rate=0.05, max_iter=600),
    "gbm_bands_lr05_msl10": _gbm_bands(learning_rate=0.05, max_iter=400, min_samples_leaf=10),
    "gbm_bands_x_lr05": _family("gbm", feature_set="csc_hr_bands_x", select_iter=False,
                                learning_rate=0.05, max_iter=400),
    "gbm_bands_x": _family("gbm", feature_set="csc_hr_bands_x", select_iter=False),
    "gbm_bands_iter120": _gbm_bands(max_iter=120),
    # 2026-12-02 (acc3): feature subsampling per split, fine labels, seeds bagged
    "gbm_bands_lr05_mf50": _gbm_bands(learning_rate=0.05, max_iter=400, max_features=0.5),
    "gbm_bands_lr05_mf70": _gbm_bands(learning_rate=0.05, max_iter=400, max_features=0.7),
    "gbm_bands_lr05_mf30": _gbm_bands(learning_rate=0.05, max_iter=400, max_features=0.3),
    "gbm_bands_fine_lr05": _family_fine("gbm", feature_set="csc_hr_bands", select_iter=False,
                                        learning_rate=0.05, max_iter=400),
    # csc_hr_bands + sums/differences of the hardness ratios (rot: hm+ms, hm-ms, hs-ms;
    # rot5: also hs-hm, hs+hm)
    "gbm_rot_lr05": _family("gbm", feature_set="csc_hr_rot", select_iter=False,
                            learning_rate=0.05, max_iter=400),
    "gbm_rot5_lr05": _family("gbm", feature_set="csc_hr_rot5", select_iter=False,
                             learning_rate=0.05, max_iter=400),
    # the mean of gbm_rot5_lr05 and the same fitted on the 10 fine classes (summed)
    "gbm_rot5_lr05_and_fine": _mean(
        _family("gbm", feature_set="csc_hr_rot5", select_iter=False, learning_rate=0.05,
                max_iter=400),
        _family_fine("gbm", feature_set="csc_hr_rot5", select_iter=False, learning_rate=0.05,
                     max_iter=400)),
}


def training_part(data: Path):
    """(X, fine labels, aggregated labels) of the labelled rows, and the train/test positions
    of ``classifier.compare``'s split."""
    X, y = load_csc21(data / "csc21_sources_simbad.csv")
    lab = y.notna().to_numpy()
    X, y = X[lab], y[lab].astype("object")
    strat = y.to_numpy(dtype=object)
    train, test = train_test_split(np.arange(len(y)), test_size=0.3, random_state=42,
                                   stratify=strat)
    agg = y.map(AGGREGATION)
    return X, y, agg, np.sort(train), np.sort(test)


def cv(data: Path, names: list[str], folds: int = 5, repeats: int = 2) -> dict:
    X, y, agg, train, _ = training_part(data)
    Xt, yt, at = X.iloc[train], y.iloc[train], agg.iloc[train]
    rskf = RepeatedStratifiedKFold(n_splits=folds, n_repeats=repeats, random_state=0)
    splits = list(rskf.split(Xt, yt.to_numpy(dtype=object)))
    out = {}
    for name in names:
        accs = []
        run = CANDIDATES[name]
        labels = yt if getattr(run, "fine", False) else at
        for fi, va in splits:
            P = run(Xt.iloc[fi], labels.iloc[fi], Xt.iloc[va])
            pred = np.array(AGG_CLASSES, dtype=object)[P.argmax(axis=1)]
            accs.append(float((pred == at.iloc[va].to_numpy(dtype=object)).mean()))
        # the mean over each repeat's folds, then mean and sd over the repeats
        per_repeat = np.array(accs).reshape(repeats, folds).mean(axis=1)
        out[name] = {"folds": accs, "mean": float(np.mean(accs)),
                     "sd_repeats": float(per_repeat.std(ddof=1)) if repeats > 1 else None}
        print(f"{name:16} CV acc {out[name]['mean']:.4f} +- "
              f"{out[name]['sd_repeats'] if repeats > 1 else float('nan'):.4f} "
              f"({folds}-fold x {repeats})", flush=True)
    return out


def test_score(data: Path, name: str) -> float:
    X, y, agg, train, test = training_part(data)
    run = CANDIDATES[name]
    labels = y if getattr(run, "fine", False) else agg
    P = run(X.iloc[train], labels.iloc[train], X.iloc[test])
    pred = np.array(AGG_CLASSES, dtype=object)[P.argmax(axis=1)]
    return float((pred == agg.iloc[test].to_numpy(dtype=object)).mean())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m classifier.cv_csc21",
                                 description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--candidates", default="gbm_plus,gbm_bands")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--test", help="score this candidate once on the 30 %% test split")
    ap.add_argument("--out", type=Path)
    a = ap.parse_args(argv)
    names = [n.strip() for n in a.candidates.split(",") if n.strip()]
    bad = [n for n in [*names, *([a.test] if a.test else [])] if n not in CANDIDATES]
    if bad:
        ap.error(f"unknown candidates {bad}; known: {', '.join(CANDIDATES)}")
    result: dict = {}
    if a.test:
        result["test"] = {a.test: test_score(a.data, a.test)}
        print(f"{a.test}: test accuracy {result['test'][a.test]:.4f}")
    else:
        result["cv"] = cv(a.data, names, a.folds, a.repeats)
    if a.out:
        a.out.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
