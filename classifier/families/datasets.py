"""Loaders of the two real labelled data sets (``../shared/data``) into canonical columns."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..taxonomy import aggregate, simbad_to_class

#: MUWCLASS's classes (NS_BIN is left out, as MUWCLASS's own ``class_labels`` does).
MUWCLASS_CLASSES = ["AGN", "CV", "HM-STAR", "HMXB", "LM-STAR", "LMXB", "NS", "YSO"]

_MW_MAP = {
    "GAIA_Gmag": "gaia_g", "GAIA_BPmag": "gaia_bp", "GAIA_RPmag": "gaia_rp",
    "GAIA_e_Gmag": "e_gaia_g", "GAIA_e_BPmag": "e_gaia_bp", "GAIA_e_RPmag": "e_gaia_rp",
    "TMASS_Jmag": "tmass_j", "TMASS_Hmag": "tmass_h", "TMASS_Kmag": "tmass_k",
    "TMASS_e_Jmag": "e_tmass_j", "TMASS_e_Hmag": "e_tmass_h", "TMASS_e_Kmag": "e_tmass_k",
    "ALLWISE_W1mag": "wise_w1", "ALLWISE_W2mag": "wise_w2", "ALLWISE_W3mag": "wise_w3",
    "ALLWISE_e_W1mag": "e_wise_w1", "ALLWISE_e_W2mag": "e_wise_w2",
    "ALLWISE_e_W3mag": "e_wise_w3",
}  # fmt: skip


def load_csc21(path: str | Path) -> tuple[pd.DataFrame, pd.Series]:
    """The CSC 2.1 SIMBAD file: (X indexed by ``row_id``, fine class or <NA> per row).

    All rows are returned (the cluster-then-label method fits its mixture on unlabelled rows
    too); labels are the paper's 10 classes via :func:`classifier.simbad_to_class`.
    """
    df = pd.read_csv(path)
    df = df.set_index("row_id", drop=False)
    y = simbad_to_class(df["simbad_otype"]).rename("class")
    return df.drop(columns=["simbad_otype"]), y


def csc21_aggregated(y: pd.Series) -> pd.Series:
    """Fine classes -> the 4 aggregated classes (<NA> stays <NA>)."""
    return aggregate(y)


def _clean_mag(v: pd.Series) -> pd.Series:
    v = pd.to_numeric(v, errors="coerce")
    return v.where((v > -90) & (v < 1e19))


def load_muwclass_td(folder: str | Path, keep_ns_bin: bool = False):
    """MUWCLASS's training set: (X indexed by CSC ``name``, class per row).

    The three files are joined on ``name``; only sources with averaged X-ray properties are
    kept (the others cannot be classified from X-rays). ``-99`` / ``1e20`` magnitudes are
    missing. Parallax and proper motion are converted to mas (the file stores arcsec).
    NS_BIN is dropped unless ``keep_ns_bin``.
    """
    folder = Path(folder)
    cls = pd.read_csv(folder / "td_classes.csv", usecols=["name", "Class"])
    xr = pd.read_csv(folder / "td_xray_averaged.csv")
    mw = pd.read_csv(folder / "td_multiwavelength.csv")
    df = cls.merge(xr, on="name", how="inner").merge(mw, on="name", how="left")
    if not keep_ns_bin:
        df = df[df["Class"] != "NS_BIN"]
    out = pd.DataFrame(index=pd.Index(df["name"].to_numpy(), name="name"))
    for b in ("s", "m", "h", "b"):
        out[f"flux_{b}"] = df[f"flux_aper90_ave_{b}"].to_numpy()
        out[f"e_flux_{b}"] = df[f"e_flux_aper90_ave_{b}"].to_numpy()
    out["var_intra_prob"] = df["kp_prob_b_max"].to_numpy()
    out["var_inter_prob"] = df["var_inter_prob"].to_numpy()
    out["powlaw_gamma"] = df["powlaw_gamma_mean"].to_numpy()
    out["nh_gal"] = df["nh_gal"].to_numpy()
    out["ra"] = df["ra"].to_numpy()  # CSC position (deg, ICRS)
    out["dec"] = df["dec"].to_numpy()
    for src, dst in _MW_MAP.items():
        out[dst] = _clean_mag(df[src]).to_numpy()
    # W1/W2: AllWISE, else CatWISE (as MUWCLASS combines the WISE catalogues)
    for w in ("1", "2"):
        cat = _clean_mag(df[f"CATWISE_W{w}mproPM"]).to_numpy()
        ecat = _clean_mag(df[f"CATWISE_e_W{w}mproPM"]).to_numpy()
        miss = np.isnan(out[f"wise_w{w}"].to_numpy())
        out.loc[miss, f"wise_w{w}"] = cat[miss]
        out.loc[miss, f"e_wise_w{w}"] = ecat[miss]
    plx = _clean_mag(df["GAIA_Plx"]).to_numpy() * 1000.0
    out["gaia_plx"] = plx
    out["e_gaia_plx"] = _clean_mag(df["GAIA_e_Plx"]).to_numpy() * 1000.0
    out["gaia_pm"] = _clean_mag(df["GAIA_PM"]).to_numpy() * 1000.0
    # CSC-style hardness ratios from the averaged fluxes (for the cluster-then-label method)
    s, m, h = (out[f"flux_{b}"].to_numpy() for b in ("s", "m", "h"))
    with np.errstate(divide="ignore", invalid="ignore"):
        out["hard_hm"] = (h - m) / (h + m)
        out["hard_ms"] = (m - s) / (m + s)
        out["hard_hs"] = (h - s) / (h + s)
    y = pd.Series(df["Class"].to_numpy(), index=out.index, name="class", dtype="object")
    return out, y
