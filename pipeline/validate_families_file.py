"""Held-out scores of the catalog's source families, fitted as the catalog fits them, on a
CSV of CSC sources with SIMBAD types (the CSC 2.1 file of ``../shared/data``).

Usage::

    python -m pipeline.validate_families_file [PATH] [--families gbm,muwclass]
        [--random-state 42] [--json OUT.json]

Each family gets its catalog parameters (:data:`pipeline.families.CATALOG_PARAMS`, the seed
``--random-state`` as the settings give it) and the catalog's labels (reference SIMBAD types
only, :func:`pipeline.classify.training_labels`, the 10 fine classes). The labelled rows are
split 70/30, stratified on the fine class (seed 42, as ``classifier.compare``); the family is
fitted on the 70 % and scored on the 30 %: accuracy, balanced accuracy, log loss, Brier score
and expected calibration error (top label, 15 equal bins: ``classifier.compare``'s), on the
fine class the catalog adopts and on its aggregation (probabilities summed per group).
Families that need counterparts (``muwclass``'s ``csc_hr_mw``) see them missing: the file has
none.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from classifier import DEFAULT_FAMILY, FAMILIES
from classifier.compare import DEFAULT_DATA, score
from classifier.taxonomy import AGG_CLASSES, AGGREGATION, CLASSES
from pipeline.classify import training_labels
from pipeline.families import CATALOG_PARAMS

DEFAULT_PATH = DEFAULT_DATA / "csc21_sources_simbad.csv"


def catalog_params(family: str, random_state: int) -> dict:
    """The family's parameters in the catalog (as :func:`pipeline.families.family_params`)."""
    params = dict(CATALOG_PARAMS.get(family, {}))
    if "random_state" in FAMILIES[family]().get_params():
        params["random_state"] = random_state
    return params


def held_out(path: Path, family: str, random_state: int = 42) -> dict:
    """Fine and aggregated held-out scores of ``family`` with its catalog parameters."""
    df = pd.read_csv(path).set_index("row_id", drop=False)
    y = training_labels(df["simbad_otype"]).astype("object")
    X = df.drop(columns=["simbad_otype"])
    pos = np.flatnonzero(y.notna().to_numpy())
    strat = y.iloc[pos].to_numpy(dtype=object)
    train, test = train_test_split(pos, test_size=0.3, random_state=42, stratify=strat)
    train, test = np.sort(train), np.sort(test)
    model = FAMILIES[family](**catalog_params(family, random_state))
    model.fit(X.iloc[train], y.iloc[train])
    P = model.predict_proba(X.iloc[test]).reindex(columns=CLASSES, fill_value=0.0)
    true = y.iloc[test].to_numpy(dtype=object)
    P_agg = pd.DataFrame(0.0, index=P.index, columns=AGG_CLASSES)
    for c in CLASSES:
        P_agg[AGGREGATION[c]] += P[c]
    true_agg = np.array([AGGREGATION[c] for c in true], dtype=object)
    keep = ("n", "n_unclassified", "accuracy", "balanced_accuracy", "log_loss", "brier", "ece")
    fine = {k: v for k, v in score(true, P, CLASSES).items() if k in keep}
    agg = {k: v for k, v in score(true_agg, P_agg, AGG_CLASSES).items() if k in keep}
    return {"family": family, "params": catalog_params(family, random_state),
            "n_labeled": int(len(pos)), "n_train": int(len(train)), "n_test": int(len(test)),
            "fine": fine, "aggregated": agg}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pipeline.validate_families_file",
                                 description=__doc__.split("\n")[0])
    ap.add_argument("path", nargs="?", type=Path, default=DEFAULT_PATH)
    ap.add_argument("--families", default=DEFAULT_FAMILY, help="comma-separated names")
    ap.add_argument("--random-state", type=int, default=42, help="the families' seed")
    ap.add_argument("--json", type=Path, help="also write the scores as JSON here")
    a = ap.parse_args(argv)
    fams = [f.strip() for f in a.families.split(",") if f.strip()]
    unknown = [f for f in fams if f not in FAMILIES or FAMILIES[f].unit != "source"]
    if unknown:
        ap.error(f"not a source family: {unknown}")
    if not a.path.is_file():
        ap.error(f"{a.path} not found")
    out = [held_out(a.path, f, a.random_state) for f in fams]
    print(f"{'family':10} {'classes':11} {'acc':>6} {'bal':>6} {'logloss':>8} {'brier':>6} "
          f"{'ece':>6} {'n':>6}")
    for r in out:
        for kind in ("fine", "aggregated"):
            m = r[kind]
            print(f"{r['family']:10} {kind:11} {m['accuracy']:6.3f} "
                  f"{m['balanced_accuracy']:6.3f} {m['log_loss']:8.3f} {m['brier']:6.3f} "
                  f"{m['ece']:6.3f} {m['n']:6d}")
    if a.json:
        a.json.write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
