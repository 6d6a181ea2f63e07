"""Master class per source from per-detection probabilities (vectorized, no Python loops).

Rules (Pérez-Díaz et al. 2024, as their code does them):

* each detection's class is the argmax of its probabilities (ties: first class in column order);
* **hard vote**: the most common detection class of a source; a tie goes to the class seen
  first in the total order (name, obsid, obi, region_id), missing values last (``obi`` and
  ``region_id`` are used when the frame has them; then the result does not depend on the
  order of the input rows);
* **soft vote**: the class with the highest mean probability (ties: first class in column order);
* ``ambiguous`` is True when hard and soft differ (*unique* otherwise);
* ``mean_<class>`` and ``std_<class>``: mean and sample standard deviation (**ddof=1**, as
  pandas' ``std``) of each class probability; a source with one detection has std **NaN**
  (undefined; ``n_detections`` says why);
* ``agg_class``: aggregated class of the soft vote, ``agg_hard_class``: of the hard vote.

Detections whose probabilities are missing (NaN: not classified, see ``ClusterThenLabel.predict``)
are ignored; a source with no classified detection does not appear in the output.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .taxonomy import AGGREGATION, CLASSES


def master_vote(
    detections: pd.DataFrame,
    classes: list[str] | None = None,
    name_col: str = "name",
    obsid_col: str = "obsid",
    order_cols: tuple[str, ...] = ("obi", "region_id"),
) -> pd.DataFrame:
    """One row per source (index ``name_col``), sorted by name. See the module docstring.

    ``order_cols``: the columns after (name, obsid) that break hard-vote ties (those present).
    """
    classes = list(CLASSES if classes is None else classes)
    missing = [c for c in [name_col, obsid_col, *classes] if c not in detections.columns]
    if missing:
        raise ValueError(f"missing columns: {', '.join(missing)}")
    probs = detections[classes].to_numpy(dtype="float64", na_value=np.nan)
    keep = ~np.isnan(probs).any(axis=1)
    extra = [c for c in order_cols if c in detections.columns]
    det = pd.DataFrame(
        {
            "name": detections[name_col].to_numpy()[keep],
            "obsid": detections[obsid_col].to_numpy()[keep],
            **{f"_o{i}": detections[c].to_numpy()[keep] for i, c in enumerate(extra)},
        }
    )
    P = probs[keep]
    det["cls"] = P.argmax(axis=1) if len(P) else np.empty(0, dtype=np.int64)
    det = det.sort_values(["name", "obsid", *(f"_o{i}" for i in range(len(extra)))],
                          kind="stable", na_position="last")
    det["pos"] = np.arange(len(det))
    P = P[det.index.to_numpy()]
    det = det.reset_index(drop=True)

    # hard vote: highest count, then earliest first appearance in the total order
    hv = (
        det.groupby(["name", "cls"], sort=False)["pos"]
        .agg(["size", "min"])
        .reset_index()
        .sort_values(["name", "size", "min"], ascending=[True, False, True], kind="stable")
        .drop_duplicates("name")
        .set_index("name")["cls"]
    )

    pdf = pd.DataFrame(P, columns=classes)
    pdf["name"] = det["name"].to_numpy()
    g = pdf.groupby("name", sort=True)
    mean = g[classes].mean()
    std = g[classes].std(ddof=1)
    n = g.size()
    soft_code = mean.to_numpy().argmax(axis=1) if len(mean) else np.empty(0, dtype=np.int64)

    cls_arr = np.array(classes, dtype=object)
    out = pd.DataFrame(index=mean.index)
    out.index.name = name_col
    out["n_detections"] = n.to_numpy().astype(np.int64)
    out["hard_class"] = cls_arr[hv.reindex(mean.index).to_numpy(dtype=np.int64)]
    out["soft_class"] = cls_arr[soft_code]
    out["ambiguous"] = out["hard_class"] != out["soft_class"]
    out["agg_class"] = out["soft_class"].map(AGGREGATION)
    out["agg_hard_class"] = out["hard_class"].map(AGGREGATION)
    for c in classes:
        out[f"mean_{c}"] = mean[c].to_numpy()
    for c in classes:
        out[f"std_{c}"] = std[c].to_numpy()
    for c in ("hard_class", "soft_class", "agg_class", "agg_hard_class"):
        out[c] = out[c].astype("string")
    return out


def cohen_kappa(a: pd.Series, b: pd.Series) -> float:
    """Cohen's kappa between two label series (e.g. hard and soft vote over all sources).

    When chance agreement is 1 (both raters always give the same single label) kappa is
    defined here as 1.0 (perfect agreement) instead of 0/0. Empty input gives NaN.
    """
    a = pd.Series(a).astype("string").to_numpy(dtype=object)
    b = pd.Series(b).astype("string").to_numpy(dtype=object)
    if len(a) != len(b):
        raise ValueError("label series differ in length")
    n = len(a)
    if n == 0:
        return float("nan")
    labels, codes = np.unique(np.concatenate([a, b]).astype(str), return_inverse=True)
    ca, cb = codes[:n], codes[n:]
    po = float(np.mean(ca == cb))
    pa = np.bincount(ca, minlength=len(labels)) / n
    pb = np.bincount(cb, minlength=len(labels)) / n
    pe = float(pa @ pb)
    if pe >= 1.0:
        return 1.0
    return (po - pe) / (1.0 - pe)
