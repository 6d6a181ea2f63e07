"""Compute small per-class feature statistics for the sample generator.

Reads the shared real-data CSV (never copied into the repository) and writes
``ingest/sample_stats.json`` (statistics only, no rows). Per class: its count, per-feature
quantiles (on a grid of levels dense in the tails; log features as log10) and a Gaussian
mixture fitted to the features' joint normal scores, so the generator reproduces each class's
marginals exactly and its joint shape (clusters, curved relations between hardness ratios and
spectral fits) beyond pairwise correlations. Run::

    python -m ingest.calibrate_sample [path/to/csc21_sources_simbad.csv]
"""

from __future__ import annotations

import sys
from pathlib import Path
from statistics import NormalDist

import numpy as np
import pandas as pd
from sklearn.mixture import GaussianMixture

from ingest.calibrate_io import SHARED_DATA, run
from ingest.calibrate_io import sig as _sig

DEFAULT_CSV = SHARED_DATA / "csc21_sources_simbad.csv"
OUT = Path(__file__).with_name("sample_stats.json")
FORMAT = "cscat.sample_stats/2"

#: The paper's ten SIMBAD types (current long labels); everything else is "other".
PAPER_TYPES = (
    "QSO", "AGN", "Seyfert1", "Seyfert2", "HighMassXBin", "LowMassXBin", "XrayBin",
    "YSO", "TTauri*", "OrionV*",
)
FEATURES = (
    "hard_hm", "hard_ms", "hard_hs", "bb_kt", "powlaw_gamma",
    "var_prob_b", "var_prob_h", "var_prob_s", "var_ratio_b", "var_ratio_h", "var_ratio_s",
)
#: Features stored (and interpolated) as log10: positive, spanning many decades.
LOG10_FEATURES = ("bb_kt", "var_ratio_b", "var_ratio_h", "var_ratio_s")
#: Smallest value of a log feature (exact zeros are stored as this).
LOG10_FLOOR = -20.0
#: Quantile levels: the normal CDF of a grid from -3.6 to 3.6 in steps of 0.15, plus 0 and 1.
LEVELS = (0.0, *(NormalDist().cdf(z) for z in np.arange(-3.6, 3.6001, 0.15)), 1.0)
#: Mixture components per class: one per this many sources, at least 1, at most MAX.
SOURCES_PER_COMPONENT = 60
MAX_COMPONENTS = 12
TOP_OTHER_TYPES = 30


def _warp(feats: pd.DataFrame) -> np.ndarray:
    """Features as modelled: log features as log10 (exact zeros at LOG10_FLOOR)."""
    a = feats.to_numpy(dtype="float64").copy()
    for j, f in enumerate(FEATURES):
        if f in LOG10_FEATURES:
            with np.errstate(divide="ignore"):
                a[:, j] = np.maximum(np.log10(a[:, j]), LOG10_FLOOR)
    return a


def _normal_scores(a: np.ndarray) -> np.ndarray:
    ranks = pd.DataFrame(a).rank(method="average").to_numpy()
    inv = np.vectorize(NormalDist().inv_cdf)
    return inv(ranks / (len(a) + 1))


def class_stats(df: pd.DataFrame, seed: int = 0) -> dict:
    """Count, per-feature quantiles and the normal-score mixture of one class."""
    a = _warp(df[list(FEATURES)])
    q = np.quantile(a, LEVELS, axis=0).T
    z = _normal_scores(a)
    k = int(np.clip(len(a) // SOURCES_PER_COMPONENT, 1, MAX_COMPONENTS))
    gmm = GaussianMixture(k, covariance_type="full", reg_covar=1e-3, n_init=2,
                          random_state=seed).fit(z)
    tril = np.tril_indices(len(FEATURES))
    chol = [np.linalg.cholesky(c)[tril] for c in gmm.covariances_]
    return {
        "count": int(len(df)),
        "quantiles": _sig(q, 6),
        "mixture": {"weights": _sig(gmm.weights_), "means": _sig(gmm.means_, 4),
                    "chol": _sig(np.array(chol), 4)},
    }


def calibrate(csv: Path) -> dict:
    """All statistics the sample generator needs, from the shared CSV."""
    df = pd.read_csv(csv, keep_default_na=False)
    label = df["simbad_otype"].where(df["simbad_otype"].isin(PAPER_TYPES), "other")
    others = df.loc[label == "other", "simbad_otype"].value_counts()
    return {
        "format": FORMAT,
        "source": f"per-class statistics of {csv.name} ({len(df):,} CSC 2.1 sources)",
        "features": list(FEATURES),
        "log10_features": list(LOG10_FEATURES),
        "levels": _sig(LEVELS, 8),
        "classes": {c: class_stats(df[label == c]) for c in (*PAPER_TYPES, "other")},
        "other_types": {k: int(v) for k, v in others.head(TOP_OTHER_TYPES).items()},
    }


def main(argv: list[str]) -> int:
    return run(argv, DEFAULT_CSV, calibrate, OUT)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
