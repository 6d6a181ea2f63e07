"""Per-class counterpart statistics for the sample generator, from the MUWCLASS training set.

Reads ``../shared/data/muwclass_td`` (never copied into the repository) and writes
``ingest/counterpart_stats.json`` (statistics only, no rows). Per MUWCLASS class: its count,
the share of sources with a Gaia DR3, 2MASS and AllWISE counterpart (the eight presence
patterns), per-quantity quantiles of the counterparts' G, BP, RP, parallax, proper motion,
J, H, K, W1, W2, W3 (VizieR units: mag, mas, mas/yr) and the correlation matrix of their
normal scores (pairwise complete), so the generator draws magnitudes whose colours follow
each class. Run::

    python -m ingest.calibrate_counterparts [path/to/muwclass_td]
"""

from __future__ import annotations

import sys
from pathlib import Path
from statistics import NormalDist

import numpy as np
import pandas as pd

from ingest.calibrate_io import SHARED_DATA, run
from ingest.calibrate_io import sig as _sig

DEFAULT_DIR = SHARED_DATA / "muwclass_td"
OUT = Path(__file__).with_name("counterpart_stats.json")
FORMAT = "cscat.counterpart_stats/1"

#: Quantity -> (MUWCLASS column, scale to VizieR units, catalogue).
QUANTITIES = {
    "g_mag": ("GAIA_Gmag", 1.0, "gaia"), "bp_mag": ("GAIA_BPmag", 1.0, "gaia"),
    "rp_mag": ("GAIA_RPmag", 1.0, "gaia"),
    # MUWCLASS stores parallax and proper motion in arcsec and arcsec/yr
    "parallax": ("GAIA_Plx", 1000.0, "gaia"), "pm": ("GAIA_PM", 1000.0, "gaia"),
    "j_mag": ("TMASS_Jmag", 1.0, "2mass"), "h_mag": ("TMASS_Hmag", 1.0, "2mass"),
    "k_mag": ("TMASS_Kmag", 1.0, "2mass"),
    "w1_mag": ("ALLWISE_W1mag", 1.0, "allwise"), "w2_mag": ("ALLWISE_W2mag", 1.0, "allwise"),
    "w3_mag": ("ALLWISE_W3mag", 1.0, "allwise"),
}
CATALOGUES = ("gaia", "2mass", "allwise")
LEVELS = tuple(np.linspace(0.0, 1.0, 41))


def _present(v: pd.Series) -> pd.Series:
    """MUWCLASS codes missing values as -99 or 1e20 (or an empty cell)."""
    return v.notna() & (v > -90) & (v < 1e19)


def _normal_scores(v: pd.Series) -> pd.Series:
    ok = v.dropna()
    inv = np.vectorize(NormalDist().inv_cdf)
    return pd.Series(inv(ok.rank(method="average") / (len(ok) + 1)), index=ok.index)


def class_stats(df: pd.DataFrame) -> dict:
    """Presence patterns, quantiles and normal-score correlations of one class."""
    vals = pd.DataFrame({q: df[col].where(_present(df[col])) * scale
                         for q, (col, scale, _) in QUANTITIES.items()})
    has = pd.DataFrame({c: vals[[q for q, v in QUANTITIES.items() if v[2] == c]].notna().any(
        axis=1) for c in CATALOGUES})
    pattern = (has["gaia"].astype(int) * 4 + has["2mass"].astype(int) * 2
               + has["allwise"].astype(int))
    counts = np.bincount(pattern.to_numpy(), minlength=8)
    quant = {}
    for q in QUANTITIES:
        v = vals[q].dropna()
        quant[q] = _sig(np.quantile(v, LEVELS)) if len(v) >= 5 else None
    z = pd.DataFrame({q: _normal_scores(vals[q]) for q in QUANTITIES})
    corr = z.corr(min_periods=10).fillna(0.0).to_numpy().copy()
    np.fill_diagonal(corr, 1.0)
    return {"count": int(len(df)), "patterns": counts.tolist(), "quantiles": quant,
            "corr": _sig(corr, 3)}


def calibrate(folder: Path) -> dict:
    mw = pd.read_csv(folder / "td_multiwavelength.csv")
    cls = pd.read_csv(folder / "td_classes.csv", usecols=["name", "Class"])
    df = mw.merge(cls, on="name", how="inner")
    return {
        "format": FORMAT,
        "source": f"per-class counterpart statistics of {folder.name} "
                  f"({len(df):,} MUWCLASS training sources)",
        "quantities": list(QUANTITIES),
        "catalogue_of": {q: v[2] for q, v in QUANTITIES.items()},
        "patterns": "index = 4*gaia + 2*2mass + allwise",
        "levels": _sig(LEVELS, 6),
        "classes": {c: class_stats(g) for c, g in df.groupby("Class")},
    }


def main(argv: list[str]) -> int:
    return run(argv, DEFAULT_DIR, calibrate, OUT, probe="td_multiwavelength.csv")


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
