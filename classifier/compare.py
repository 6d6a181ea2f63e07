"""Compare every classifier family on the two real labelled data sets.

Usage::

    python -m classifier.compare [--data DIR] [--out FILE.json] [--families ctl,gbm]
        [--folds 10] [--only csc21|muwclass_td]

* ``csc21`` (``DIR/csc21_sources_simbad.csv``, X-ray only): the paper's split, a stratified
  70/30 split (seed 42, stratified on the fine classes) of the labelled rows, exactly as
  :func:`classifier.validate`. Each family is fitted on every row with the test labels removed
  (only ``ctl`` uses the unlabelled rows) and scored on the test rows, on the 4 aggregated
  classes (families other than ``ctl`` are fitted on the aggregated labels; ``ctl`` on the
  fine ones: its aggregated class is the aggregation of its fine class, as in the paper,
  and its aggregated probability the sum over each group) and on the 10 fine
  classes (fitted on the fine labels).
* ``muwclass_td`` (``DIR/muwclass_td``, X-ray + Gaia/2MASS/WISE, 8 classes, NS_BIN left out as
  MUWCLASS does): stratified 10-fold cross-validation (shuffled, seed 42); the held-out
  predictions of all folds are pooled and scored; times are summed over the folds.

Scores (on the rows a family classifies; ``n_unclassified`` counts the others): accuracy,
balanced accuracy (class-averaged recall), per-class precision/recall/F1, log loss, Brier score
(sum over classes, mean over rows), expected calibration error (top label, 15 equal bins),
fit and predict time (wall clock), saved model size (:func:`classifier.save`, last model).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import precision_recall_fscore_support
from sklearn.model_selection import StratifiedKFold, train_test_split

from .families import FAMILIES, MUWClass, save
from .families.datasets import MUWCLASS_CLASSES, load_csc21, load_muwclass_td
from .features import FEATURES_NO_NEWQ
from .taxonomy import AGG_CLASSES, AGGREGATION, CLASSES

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

#: Monte Carlo draws of ``muwclass`` at prediction: its default, also used by the benchmark
#: (400,000 sources within a minute on 2 cores).
MUWCLASS_DRAWS = MUWClass().n_draws

#: Parameters of each family per data set.
PARAMS: dict[str, dict[str, dict]] = {
    "csc21": {
        "ctl": {"features": FEATURES_NO_NEWQ},
        "muwclass": {"feature_set": "csc_hr"},
        "claxboi": {"feature_set": "csc_hr"},
        # csc_hr_rot5 (csc_hr_bands + sums/differences of the hardness ratios) and a fixed 400
        # iterations at learning rate 0.05, 31 leaves: the best of the settings tried by CV on
        # the 70% training part only (classifier.cv_csc21 gbm_rot5_lr05, README)
        "gbm": {"feature_set": "csc_hr_rot5", "select_iter": False, "learning_rate": 0.05,
                "max_iter": 400},
    },
    "muwclass_td": {
        "ctl": {
            "features": ["hard_hm", "hard_hs", "hard_ms", "var_intra_prob"],
            "log_features": [],
            "scale_features": [],
            "classes": MUWCLASS_CLASSES,
        },
        "muwclass": {
            "feature_set": "mw_gal",
            "train_draws": 2,
            "class_weight": "balanced_subsample",
            "n_draws": MUWCLASS_DRAWS,
        },
        "claxboi": {"feature_set": "mw_gal"},
        "gbm": {"feature_set": "mw_gal"},
    },
}


# --------------------------------------------------------------------------- metrics
def expected_calibration_error(P: np.ndarray, true_idx: np.ndarray, bins: int = 15) -> float:
    """Top-label ECE: sum over equal-width confidence bins of (n_b/n) |accuracy - confidence|."""
    conf = P.max(axis=1)
    correct = P.argmax(axis=1) == true_idx
    b = np.minimum((conf * bins).astype(int), bins - 1)
    ece = 0.0
    for k in range(bins):
        sel = b == k
        if sel.any():
            ece += sel.mean() * abs(correct[sel].mean() - conf[sel].mean())
    return float(ece)


def score(
    true: np.ndarray, proba: pd.DataFrame, classes: list[str], pred: np.ndarray | None = None
) -> dict:
    """Every score of the module docstring; ``true`` class names, ``proba`` one column each;
    ``pred``: the predicted classes when they are not the most probable (ctl's aggregation)."""
    P = proba[classes].to_numpy(dtype="float64")
    ok = ~np.isnan(P).any(axis=1)
    P, t = P[ok], np.asarray(true, dtype=object)[ok]
    idx = {c: i for i, c in enumerate(classes)}
    ti = np.array([idx[c] for c in t], dtype=np.int64)
    if pred is None:
        pred = np.array(classes, dtype=object)[P.argmax(axis=1)] if len(P) else np.array([])
    else:
        pred = np.asarray(pred, dtype=object)[ok]
    pi = np.array([idx[c] for c in pred], dtype=np.int64)
    prec, rec, f1, sup = precision_recall_fscore_support(
        t, pred, labels=classes, zero_division=0
    )
    present = sup > 0
    cm = np.zeros((len(classes), len(classes)), dtype=np.int64)
    np.add.at(cm, (ti, pi), 1)
    Pn = P / P.sum(axis=1, keepdims=True)
    onehot = np.eye(len(classes))[ti]
    return {
        "n": int(ok.sum()),
        "n_unclassified": int((~ok).sum()),
        "accuracy": float((pred == t).mean()),
        "balanced_accuracy": float(rec[present].mean()),
        "log_loss": float(-np.mean(np.log(np.clip(Pn[np.arange(len(ti)), ti], 1e-15, 1)))),
        "brier": float(np.mean(((Pn - onehot) ** 2).sum(axis=1))),
        "ece": expected_calibration_error(Pn, ti),
        "per_class": {
            c: {"precision": float(prec[i]), "recall": float(rec[i]), "f1": float(f1[i]),
                "support": int(sup[i])}
            for i, c in enumerate(classes)
        },  # fmt: skip
        "confusion": {"labels": list(classes), "counts": cm.tolist()},
    }


def _aggregate_proba(P: pd.DataFrame) -> pd.DataFrame:
    out = pd.DataFrame(0.0, index=P.index, columns=AGG_CLASSES)
    for c in P.columns:
        out[AGGREGATION[c]] += P[c]
    return out


def _timed(f, *a):
    t = time.perf_counter()
    r = f(*a)
    return r, time.perf_counter() - t


def _best(P: pd.DataFrame) -> np.ndarray:
    """Most probable class per row (None where not classified)."""
    A = P.to_numpy()
    ok = ~np.isnan(A).any(axis=1)
    best = np.array(P.columns, dtype=object)[np.argmax(np.where(ok[:, None], A, -np.inf), 1)]
    return np.where(ok, best, None)


def _predictions(P: pd.DataFrame, pred: np.ndarray | None = None) -> dict:
    pred = _best(P) if pred is None else pred
    return {str(k): (None if b is None else str(b)) for k, b in zip(P.index, pred, strict=True)}


# --------------------------------------------------------------------------- data sets
def run_csc21(path: Path, families: list[str]) -> dict:
    X, y = load_csc21(path)
    pos = np.flatnonzero(y.notna().to_numpy())
    strat = y.iloc[pos].astype("object").to_numpy()
    _, test = train_test_split(pos, test_size=0.3, random_state=42, stratify=strat)
    test = np.sort(test)
    y_fine = y.astype("object").where(y.notna(), None)
    y_fit = y_fine.copy()
    y_fit.iloc[test] = None
    y_agg_fit = y_fit.map(lambda c: AGGREGATION.get(c) if c is not None else None)
    Xt = X.iloc[test]
    true_fine = y_fine.iloc[test].to_numpy(dtype=object)
    true_agg = np.array([AGGREGATION[c] for c in true_fine], dtype=object)
    out = {}
    for name in families:
        cls, params = FAMILIES[name], PARAMS["csc21"][name]
        res: dict = {}
        m_fine, t_fit = _timed(cls(**params).fit, X, y_fit)
        P_fine, t_pred = _timed(m_fine.predict_proba, Xt)
        pred_agg = None
        if name == "ctl":  # the paper's aggregation: of the predicted fine class
            P_agg, t_fit_a, t_pred_a, size_a = _aggregate_proba(P_fine), t_fit, t_pred, None
            pred_agg = np.array([AGGREGATION.get(c) for c in _best(P_fine)], dtype=object)
        else:
            m_agg, t_fit_a = _timed(cls(**params).fit, X, y_agg_fit)
            P_agg, t_pred_a = _timed(m_agg.predict_proba, Xt)
            size_a = len(save(m_agg))
        size_f = len(save(m_fine))
        res["metrics"] = score(true_agg, P_agg, AGG_CLASSES, pred_agg)
        res["metrics"].update(
            fit_s=t_fit_a, predict_s=t_pred_a, model_bytes=size_a or size_f, n_test=len(test)
        )
        res["metrics_fine"] = score(true_fine, P_fine.reindex(columns=CLASSES), CLASSES)
        res["metrics_fine"].update(
            fit_s=t_fit, predict_s=t_pred, model_bytes=size_f, n_test=len(test)
        )
        res["confusion"] = res["metrics"]["confusion"]
        res["confusion_fine"] = res["metrics_fine"]["confusion"]
        res["predictions"] = _predictions(P_agg, pred_agg)
        res["predictions_fine"] = _predictions(P_fine)
        out[name] = res
        _progress("csc21", name, res["metrics"])
    return out


def run_muwclass_td(folder: Path, families: list[str], folds: int = 10) -> dict:
    X, y = load_muwclass_td(folder)
    skf = StratifiedKFold(folds, shuffle=True, random_state=42)
    splits = list(skf.split(X, y))
    out = {}
    for name in families:
        cls, params = FAMILIES[name], PARAMS["muwclass_td"][name]
        P = pd.DataFrame(np.nan, index=X.index, columns=MUWCLASS_CLASSES)
        t_fit = t_pred = 0.0
        model = None
        for _, te in splits:
            y_fit = y.astype("object").copy()
            y_fit.iloc[te] = None
            model, t = _timed(cls(**params).fit, X, y_fit)
            t_fit += t
            p, t = _timed(model.predict_proba, X.iloc[te])
            t_pred += t
            P.iloc[te] = p.reindex(columns=MUWCLASS_CLASSES).to_numpy()
        m = score(y.to_numpy(dtype=object), P, MUWCLASS_CLASSES)
        m.update(fit_s=t_fit, predict_s=t_pred, model_bytes=len(save(model)), folds=folds)
        out[name] = {"metrics": m, "confusion": m["confusion"], "predictions": _predictions(P)}
        _progress("muwclass_td", name, m)
    return out


def _progress(ds: str, name: str, m: dict) -> None:
    print(
        f"  {ds:12s} {name:9s} acc={m['accuracy']:.3f} bal={m['balanced_accuracy']:.3f} "
        f"({m['fit_s']:.1f}s fit)",
        file=sys.stderr,
        flush=True,
    )


# --------------------------------------------------------------------------- report
def format_table(result: dict) -> str:
    """The summary table and the per-class precision/recall/F1 tables."""
    head = (
        f"{'data set':<22}{'family':<10}{'acc':>6}{'bal':>6}{'logloss':>8}{'brier':>7}"
        f"{'ece':>6}{'fit s':>8}{'pred s':>8}{'size kB':>9}{'n':>6}{'uncl':>6}"
    )
    lines = [head, "-" * len(head)]
    blocks = []
    for ds, task, key in (
        ("csc21", "csc21 (4 agg.)", "metrics"),
        ("csc21", "csc21 (10 fine)", "metrics_fine"),
        ("muwclass_td", "muwclass_td (8, CV)", "metrics"),
    ):
        for fam, res in result.get(ds, {}).items():
            m = res[key]
            lines.append(
                f"{task:<22}{fam:<10}{m['accuracy']:6.3f}{m['balanced_accuracy']:6.3f}"
                f"{m['log_loss']:8.3f}{m['brier']:7.3f}{m['ece']:6.3f}{m['fit_s']:8.1f}"
                f"{m['predict_s']:8.2f}{m['model_bytes'] / 1000:9.0f}{m['n']:6d}"
                f"{m['n_unclassified']:6d}"
            )
            pc = m["per_class"]
            row = "  ".join(
                f"{c}:{v['precision']:.2f}/{v['recall']:.2f}/{v['f1']:.2f}" for c, v in pc.items()
            )
            blocks.append(f"{task} {fam} P/R/F1  {row}")
    return "\n".join(lines + [""] + blocks)


def compare(
    data: Path, families: list[str], folds: int = 10, only: str | None = None
) -> dict:
    result: dict = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
    }
    if only in (None, "csc21"):
        result["csc21"] = run_csc21(data / "csc21_sources_simbad.csv", families)
    if only in (None, "muwclass_td"):
        result["muwclass_td"] = run_muwclass_td(data / "muwclass_td", families, folds)
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m classifier.compare", description=__doc__.split("\n")[0]
    )
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder of the real data")
    ap.add_argument("--out", type=Path, help="write every score and prediction as JSON here")
    ap.add_argument("--families", default=",".join(FAMILIES), help="comma-separated names")
    ap.add_argument("--folds", type=int, default=10, help="CV folds for muwclass_td")
    ap.add_argument("--only", choices=["csc21", "muwclass_td"], help="one data set only")
    a = ap.parse_args(argv)
    fams = [f.strip() for f in a.families.split(",") if f.strip()]
    unknown = [f for f in fams if f not in FAMILIES]
    if unknown:
        print(f"compare: error: unknown families {unknown}; known: {list(FAMILIES)}",
              file=sys.stderr)
        return 2
    if not a.data.is_dir():
        print(f"compare: error: data folder {a.data} not found", file=sys.stderr)
        return 2
    result = compare(a.data, fams, a.folds, a.only)
    print(format_table(result))
    if a.out:
        a.out.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
