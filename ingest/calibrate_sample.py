"""Compute small per-class feature statistics for the sample generator.

Reads the shared real-data CSV (never copied into the repository) and writes
``ingest/sample_stats.json``: per class, its count, per-feature quantiles and the
correlation matrix of the features' normal scores (a Gaussian copula). Run::

    python -m ingest.calibrate_sample [path/to/csc21_sources_simbad.csv]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from statistics import NormalDist

import numpy as np
import pandas as pd

DEFAULT_CSV = Path("/work/shared/data/csc21_sources_simbad.csv")
OUT = Path(__file__).with_name("sample_stats.json")

#: The paper's ten SIMBAD types (current long labels); everything else is "other".
PAPER_TYPES = (
    "QSO", "AGN", "Seyfert1", "Seyfert2", "HighMassXBin", "LowMassXBin", "XrayBin",
    "YSO", "TTauri*", "OrionV*",
)
FEATURES = (
    "hard_hm", "hard_ms", "hard_hs", "bb_kt", "powlaw_gamma",
    "var_prob_b", "var_prob_h", "var_prob_s", "var_ratio_b", "var_ratio_h", "var_ratio_s",
)
LEVELS = (0.0, 0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5,
          0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 0.975, 0.99, 0.995, 1.0)
TOP_OTHER_TYPES = 30


def _normal_scores(x: pd.DataFrame) -> np.ndarray:
    ranks = x.rank(method="average").to_numpy()
    inv = np.vectorize(NormalDist().inv_cdf)
    return inv(ranks / (len(x) + 1))


def class_stats(df: pd.DataFrame) -> dict:
    """Count, per-feature quantiles and normal-score correlation of one class."""
    feats = df[list(FEATURES)]
    q = feats.quantile(list(LEVELS)).to_numpy().T
    corr = np.corrcoef(_normal_scores(feats), rowvar=False)
    return {
        "count": int(len(df)),
        "quantiles": np.round(q, 6).tolist(),
        "corr": np.round(np.nan_to_num(corr), 4).tolist(),
    }


def calibrate(csv: Path) -> dict:
    """All statistics the sample generator needs, from the shared CSV."""
    df = pd.read_csv(csv, keep_default_na=False)
    label = df["simbad_otype"].where(df["simbad_otype"].isin(PAPER_TYPES), "other")
    others = df.loc[label == "other", "simbad_otype"].value_counts()
    return {
        "source": "per-class statistics of csc21_sources_simbad.csv (15,706 CSC 2.1 sources)",
        "features": list(FEATURES),
        "levels": list(LEVELS),
        "classes": {c: class_stats(df[label == c]) for c in (*PAPER_TYPES, "other")},
        "other_types": {k: int(v) for k, v in others.head(TOP_OTHER_TYPES).items()},
    }


def main(argv: list[str]) -> int:
    csv = Path(argv[1]) if len(argv) > 1 else DEFAULT_CSV
    if not csv.exists():
        print(f"{csv} not found; keeping {OUT}", file=sys.stderr)
        return 1
    OUT.write_text(json.dumps(calibrate(csv), separators=(",", ":")) + "\n")
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
