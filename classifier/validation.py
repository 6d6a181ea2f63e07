"""Validation as in the paper: a stratified 70/30 split of the labeled detections.

The model is fitted on all detections with the 30% test labels removed (so the test detections
are "unlabeled", exactly like the detections the method classifies), and the test detections'
predicted classes are compared with their labels. Aggregated predictions are the aggregation of
the predicted fine class. Test detections the model cannot classify (invalid features, or a
cluster without a usable class) are counted in ``n_unclassified`` and left out of the matrices
and scores. A class with a single labeled detection cannot be split: that detection stays in
the training part (``train_only_classes``).

``calibration`` is the reliability diagram of the test predictions: the probability the model
gives its predicted class, binned (``CALIBRATION_EDGES``), against how often that class is
right in each bin, and the expected calibration error ECE = Σ_b (n_b / N)·|accuracy_b −
mean probability_b|. The method's probabilities, p ∝ exp(−d²), are not calibrated: on real
CSC data they are overconfident, so read them as a ranking and look at this curve for what a
probability is worth.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from .model import ClusterThenLabel
from .taxonomy import AGG_CLASSES, AGG_DESCRIPTION, AGGREGATION

#: Bin edges of the reliability diagram (the last bin is closed; 0.99-1 shows the top end).
CALIBRATION_EDGES: tuple[float, ...] = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9,
                                        0.99, 1.0)

#: Paper (Pérez-Díaz et al. 2024, Fig. 5, CSC 2.0): fraction correct per aggregated class.
PAPER_AGG_RECALL: dict[str, float] = {"AGN": 0.75, "XB": 0.66, "YSO": 0.88}


def _nan_to_none(a):
    a = np.asarray(a, dtype="float64")
    return (
        [None if np.isnan(v) else float(v) for v in a.ravel()]
        if a.ndim == 1
        else [_nan_to_none(r) for r in a]
    )


def _scores(true: np.ndarray, pred: np.ndarray, labels: list[str]) -> dict:
    idx = {c: i for i, c in enumerate(labels)}
    m = np.zeros((len(labels), len(labels)), dtype=np.int64)
    if len(true):
        np.add.at(m, ([idx[t] for t in true], [idx[p] for p in pred]), 1)
    row = m.sum(axis=1, keepdims=True)
    col = m.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        norm = m / row
        recall = np.diag(m) / row[:, 0]
        precision = np.diag(m) / col
    return {
        "labels": list(labels),
        "counts": m.tolist(),
        "confusion": _nan_to_none(norm),  # row-normalized: rows true, columns predicted
        "accuracy": float(np.trace(m) / m.sum()) if m.sum() else None,
        "support": {c: int(row[i, 0]) for i, c in enumerate(labels)},
        "recall": dict(zip(labels, _nan_to_none(recall), strict=True)),
        "precision": dict(zip(labels, _nan_to_none(precision), strict=True)),
    }


def calibration(probability: np.ndarray, correct: np.ndarray,
                edges: tuple[float, ...] = CALIBRATION_EDGES) -> dict:
    """Reliability diagram of predicted-class probabilities against correctness, and its ECE.

    Per bin ``[lo, hi)`` (the last one ``[lo, hi]``): ``n``, ``mean_probability`` and
    ``accuracy`` (None when empty). ``ece``: the bins' weighted mean |accuracy − probability|;
    ``max_gap``: the largest such gap over non-empty bins.
    """
    p = np.asarray(probability, dtype="float64")
    ok = np.asarray(correct, dtype=bool)
    e = np.asarray(edges, dtype="float64")
    nb = len(e) - 1
    b = np.clip(np.searchsorted(e, p, side="right") - 1, 0, nb - 1)
    n = np.bincount(b, minlength=nb)
    psum = np.bincount(b, weights=p, minlength=nb)
    hits = np.bincount(b, weights=ok.astype(float), minlength=nb)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_p, acc = psum / n, hits / n
    gap = np.abs(acc - mean_p)
    full = n > 0
    return {
        "edges": [float(v) for v in e],
        "bins": [{"lo": float(e[i]), "hi": float(e[i + 1]), "n": int(n[i]),
                  "mean_probability": float(mean_p[i]) if full[i] else None,
                  "accuracy": float(acc[i]) if full[i] else None} for i in range(nb)],
        "n": int(len(p)),
        "ece": float((n[full] * gap[full]).sum() / n.sum()) if n.sum() else None,
        "max_gap": float(gap[full].max()) if full.any() else None,
    }


def validate(
    X: pd.DataFrame,
    y: pd.Series,
    test_size: float = 0.3,
    random_state: int = 42,
    fitted: ClusterThenLabel | None = None,
    **model_params,
) -> dict:
    """Run the split, fit, predict and score; return a JSON-serializable report.

    ``fitted``: a model already fitted on this ``X`` (any labels); its transform and mixture
    are reused (they do not depend on labels), so only the class statistics are refitted.
    """
    if not isinstance(y, pd.Series) or not y.index.equals(X.index):
        raise ValueError("y must be a Series with the same index as X")
    model = fitted if fitted is not None else ClusterThenLabel(**model_params)
    classes = model._resolved()[3]
    pos = np.flatnonzero(y.notna().to_numpy())
    strat = y.iloc[pos].astype("object").to_numpy()
    vc = pd.Series(strat).value_counts()
    single = np.isin(strat, vc.index[vc < 2].to_numpy())  # cannot be split: training only
    train, test = train_test_split(
        pos[~single], test_size=test_size, random_state=random_state, stratify=strat[~single]
    )
    train = np.sort(np.concatenate([train, pos[single]]))
    test = np.sort(test)
    y_fit = y.astype("object").copy()
    y_fit.iloc[test] = None
    model = model.with_labels(X, y_fit) if fitted is not None else model.fit(X, y_fit)
    out = model.predict(X.iloc[test])
    true = y.iloc[test].astype("object").to_numpy()
    ok = out["predicted_class"].notna().to_numpy()
    pred = out["predicted_class"].astype("object").to_numpy()
    fine = _scores(true[ok], pred[ok], classes)
    agg_true = np.array([AGGREGATION[t] for t in true[ok]], dtype=object)
    agg_pred = np.array([AGGREGATION[p] for p in pred[ok]], dtype=object)
    agg = _scores(agg_true, agg_pred, AGG_CLASSES)
    P = out.loc[ok, list(classes)].to_numpy(dtype="float64").reshape(-1, len(classes))
    member = np.array([[AGGREGATION[c] == a for c in classes] for a in agg_pred], dtype=bool)
    calib = {
        "fine": calibration(P.max(axis=1, initial=0.0), true[ok] == pred[ok]),
        "aggregated": calibration((P * member.reshape(P.shape)).sum(axis=1),
                                  agg_true == agg_pred),
        "meaning": "probability of the predicted (fine or aggregated) class vs. how often it "
                   "is right, on the held-out labeled detections",
    }
    paper = {
        c: {
            "description": AGG_DESCRIPTION[c],
            "paper_recall": r,
            "recall": agg["recall"][c],
        }
        for c, r in PAPER_AGG_RECALL.items()
    }
    # Supplementary: AGN and Seyfert merged (all supermassive accretors), for comparison only.
    cnt = np.array(agg["counts"])
    ia = [AGG_CLASSES.index("AGN"), AGG_CLASSES.index("Seyfert")]
    sub = cnt[np.ix_(ia, ia)].sum()
    tot = cnt[ia].sum()
    paper["AGN"]["recall_agn_or_seyfert"] = float(sub / tot) if tot else None
    return {
        "n_detections": int(len(X)),
        "n_labeled": int(len(pos)),
        "n_train": int(len(train)),
        "n_test": int(len(test)),
        "n_unclassified": int((~ok).sum()),
        "unclassified_reasons": out.loc[~ok, "reason"].astype(str).value_counts().to_dict(),
        "n_invalid_fit_rows": int(len(model.invalid_rows_)),
        "train_only_classes": sorted(str(c) for c in vc.index[vc < 2]),
        "test_size": test_size,
        "random_state": random_state,
        "features": list(model.features_),
        "n_components": int(model.n_components),
        "fine": fine,
        "aggregated": agg,
        "paper_comparison": paper,
        "calibration": calib,
    }


def calibration_table(calib: dict) -> str:
    """The reliability diagrams of :func:`validate`'s report as text."""
    lines = [f"  {'probability':<13}{'fine n':>8}{'p':>7}{'right':>7}"
             f"{'agg n':>8}{'p':>7}{'right':>7}"]

    def cell(b: dict) -> str:
        if not b["n"]:
            return f"{0:>8}{'-':>7}{'-':>7}"
        return f"{b['n']:>8}{b['mean_probability']:>7.3f}{b['accuracy']:>7.3f}"

    for f, a in zip(calib["fine"]["bins"], calib["aggregated"]["bins"], strict=True):
        lines.append(f"  {f['lo']:.2f}-{f['hi']:.2f}".ljust(15) + cell(f) + cell(a))

    def ece(block: dict) -> str:
        return "-" if block["ece"] is None else f"{block['ece']:.3f}"

    lines.append(f"  ECE: fine {ece(calib['fine'])}, aggregated {ece(calib['aggregated'])}")
    return "\n".join(lines)


def format_report(report: dict) -> str:
    """Human-readable text of :func:`validate`'s report."""

    def matrix(block: dict) -> str:
        labels = block["labels"]
        w = max(9, *(len(c) for c in labels)) + 1
        lines = [" " * w + "".join(f"{c:>{w}}" for c in labels) + f"{'n':>{w}}"]
        for c, row in zip(labels, block["confusion"], strict=True):
            cells = "".join(f"{'-' if v is None else f'{v:.2f}':>{w}}" for v in row)
            lines.append(f"{c:<{w}}" + cells + f"{block['support'][c]:>{w}}")
        return "\n".join(lines)

    def scores(block: dict) -> str:
        lines = [f"{'class':<10}{'precision':>10}{'recall':>10}"]
        for c in block["labels"]:
            p, r = block["precision"][c], block["recall"][c]
            ps = "-" if p is None else f"{p:.3f}"
            rs = "-" if r is None else f"{r:.3f}"
            lines.append(f"{c:<10}{ps:>10}{rs:>10}")
        return "\n".join(lines)

    r = report
    out = [
        f"detections: {r['n_detections']}  labeled: {r['n_labeled']}  "
        f"train: {r['n_train']}  test: {r['n_test']}  unclassified test: {r['n_unclassified']}",
        f"features ({len(r['features'])}): {', '.join(r['features'])}",
        f"GMM components: {r['n_components']}  split random_state: {r['random_state']}",
        "",
        "Fine confusion matrix (row-normalized; rows true, columns predicted):",
        matrix(r["fine"]),
        f"fine accuracy: {r['fine']['accuracy']:.4f}",
        "",
        scores(r["fine"]),
        "",
        "Aggregated confusion matrix (row-normalized; rows true, columns predicted):",
        matrix(r["aggregated"]),
        f"aggregated accuracy: {r['aggregated']['accuracy']:.4f}",
        "",
        scores(r["aggregated"]),
        "",
        "Calibration (probability of the predicted class vs. fraction right):",
        calibration_table(r["calibration"]) if "calibration" in r else "  (not stored)",
        "",
        "Versus the paper (Fig. 5, CSC 2.0), fraction correct per aggregated class:",
    ]
    for c, v in r["paper_comparison"].items():
        got = "-" if v["recall"] is None else f"{v['recall']:.2f}"
        out.append(f"  {v['description']:<16} ({c}): here {got}   paper {v['paper_recall']:.2f}")
        if v.get("recall_agn_or_seyfert") is not None:
            out.append(
                f"  {'':<16} (AGN and Seyfert merged, supplementary): "
                f"here {v['recall_agn_or_seyfert']:.2f}"
            )
    return "\n".join(out)
