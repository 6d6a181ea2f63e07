"""The one place for the feature sets of the classifier families.

A :class:`FeatureSet` names the input columns it reads, the features it derives from them
(with the category of each, used by CLAXBOI's per-category weights), and which inputs carry
Gaussian errors (used by MUWCLASS's Monte Carlo draws). ``build`` derives the feature matrix
from a frame, optionally from one Monte Carlo draw of the inputs within their errors, and
returns a reason for each row that cannot be classified (None when it can).

Input columns (canonical names, per source; missing counterparts are NaN, never errors):

* X-ray, CSC hardness/variability (the CSC 2.1 file): ``hard_hm, hard_ms, hard_hs, bb_kt,
  powlaw_gamma, var_prob_{b,h,s}, var_ratio_{b,h,s}``.
* X-ray, averaged band fluxes (MUWCLASS): ``flux_{s,m,h}`` and ``e_flux_{s,m,h}``
  (erg/cm²/s, 0.5-1.2, 1.2-2, 2-7 keV), ``var_intra_prob``, ``var_inter_prob``,
  ``powlaw_gamma``, ``nh_gal`` (Galactic column, 1e20 cm⁻²).
* Gaia DR3 ``gaia_{g,bp,rp}`` (+ ``e_``), ``gaia_plx`` (mas), ``gaia_pm`` (mas/yr);
  2MASS ``tmass_{j,h,k}`` (+ ``e_``); WISE ``wise_{w1,w2,w3}`` (+ ``e_``), all Vega magnitudes.

The multiwavelength features follow MUWCLASS (Yang, Hare et al. 2022, ``postprocessing``):
magnitudes fainter than the survey limits are treated as non-detections, magnitudes become
band fluxes (zero point x 10^(-m/2.5) x band width) expressed as log10 of their ratio to the
0.5-7 keV X-ray flux, and 12 colours are added; X-ray band fluxes enter as log10 ratios to the
broad flux and as three hardness ratios.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

XRAY_BANDS = ("s", "m", "h")

#: MUWCLASS magnitude bands: (column, limiting magnitude, zero point erg/cm²/s/Å, width Å).
MW_BANDS: list[tuple[str, float, float, float]] = [
    ("gaia_g", 21.5, 2.5e-9, 4052.97),
    ("gaia_bp", 21.5, 4.08e-9, 2157.50),
    ("gaia_rp", 21.0, 1.27e-9, 2924.44),
    ("tmass_j", 18.5, 3.13e-10, 1624.32),
    ("tmass_h", 18.0, 1.13e-10, 2509.40),
    ("tmass_k", 17.0, 4.28e-11, 2618.87),
    ("wise_w1", 18.5, 8.18e-12, 6626.42),
    ("wise_w2", 17.5, 2.42e-12, 10422.66),
    ("wise_w3", 14.5, 6.52e-14, 55055.71),
]
MW_MAGS = [b[0] for b in MW_BANDS]

#: MUWCLASS's selected colours.
COLOURS: list[tuple[str, str]] = [
    ("gaia_g", "gaia_bp"), ("gaia_g", "gaia_rp"), ("gaia_g", "tmass_j"), ("gaia_g", "tmass_h"),
    ("gaia_g", "tmass_k"), ("gaia_bp", "gaia_rp"), ("tmass_j", "tmass_h"),
    ("tmass_j", "tmass_k"), ("tmass_h", "tmass_k"), ("wise_w1", "wise_w2"),
    ("wise_w1", "wise_w3"), ("wise_w2", "wise_w3"),
]  # fmt: skip

CSC_HR_COLUMNS = [
    "hard_hm", "hard_ms", "hard_hs", "bb_kt", "powlaw_gamma",
    "var_prob_b", "var_prob_h", "var_prob_s", "var_ratio_b", "var_ratio_h", "var_ratio_s",
]  # fmt: skip


@dataclass(frozen=True)
class FeatureSet:
    """A named set of derived features (built by the builder of the same name; a set
    without one uses its input columns as features)."""

    name: str
    columns: list[str]  # required input columns
    features: list[str]  # derived features, in model order
    categories: dict[str, str]  # feature -> category
    error_columns: dict[str, str] = field(default_factory=dict)  # value column -> error column

    @property
    def category_names(self) -> list[str]:
        return list(dict.fromkeys(self.categories[f] for f in self.features))

    def check_columns(self, X: pd.DataFrame) -> None:
        missing = [c for c in self.columns if c not in X.columns]
        if missing:
            raise ValueError(
                f"feature set {self.name!r} needs column(s) {', '.join(missing)}; "
                f"got {', '.join(map(str, X.columns[:20]))}"
            )

    def build(
        self, X: pd.DataFrame, rng: np.random.Generator | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(features (n, d) float64 with NaN for missing, reasons (n,) object, None = ok).

        With ``rng``, the inputs that have error columns are first drawn from Gaussians of
        those widths (fluxes redrawn until positive, as MUWCLASS's ``nonzero_sample``).
        """
        self.check_columns(X)
        return _BUILDERS.get(self.name, _build_identity)(self, X, rng)


def _col(X: pd.DataFrame, c: str) -> np.ndarray:
    v = pd.to_numeric(X[c], errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    return np.where(np.isfinite(v), v, np.nan)


def _log10(a: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.log10(a)
    return np.where(np.isfinite(out), out, np.nan)


def _draw_positive(v: np.ndarray, e: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Gaussian draw of ``v`` within ``e``, redrawing non-positive values (at most 50 times)."""
    e = np.where(np.isfinite(e) & (e > 0), e, 0.0)
    out = v + rng.standard_normal(v.shape) * e
    for _ in range(50):
        bad = np.flatnonzero(~(out > 0) & (v > 0))
        if bad.size == 0:
            break
        out[bad] = v[bad] + rng.standard_normal(bad.size) * e[bad]
    bad = ~(out > 0) & (v > 0)
    out[bad] = v[bad]
    return out


def _build_identity(fs: FeatureSet, X: pd.DataFrame, rng) -> tuple[np.ndarray, np.ndarray]:
    """Features are input columns as they are (Gaussian draws within their error columns)."""
    cols = []
    for f in fs.features:
        v = _col(X, f)
        if rng is not None and f in fs.error_columns:
            e = _col(X, fs.error_columns[f])
            v = v + rng.standard_normal(len(v)) * np.where(np.isfinite(e), e, 0.0)
        cols.append(v)
    F = np.column_stack(cols) if cols else np.empty((len(X), 0))
    reasons = np.full(len(X), None, dtype=object)
    reasons[np.isnan(F).all(axis=1)] = "all features missing"
    return F, reasons


def hardness_closure(hm: np.ndarray, ms: np.ndarray, hs: np.ndarray) -> np.ndarray:
    """``hs`` minus the hard-soft ratio implied by ``hm`` and ``ms``.

    For band counts S, M, H the three ratios close exactly: with M/S = (1+ms)/(1-ms) and
    H/M = (1+hm)/(1-hm), hs = (H-S)/(H+S). The CSC's ratios are Bayesian posterior
    estimates, each shrunk towards 0 by its own counts, so the residual carries information
    on the counts in each band that the ratios alone do not.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        m = (1 + ms) / (1 - ms)
        h = m * (1 + hm) / (1 - hm)
        implied = np.where(np.isinf(h), 1.0, (h - 1) / (h + 1))
        return hs - implied


def _ratio(hr: np.ndarray) -> np.ndarray:
    """Band count ratio B/A implied by the hardness ratio (B-A)/(B+A)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return (1 + hr) / (1 - hr)


def _to_hr(r: np.ndarray) -> np.ndarray:
    """Hardness ratio (r-1)/(r+1) of a band count ratio r (NaN where undefined)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(np.isinf(r), 1.0, (r - 1) / (r + 1))
    return np.where(np.isfinite(out), out, np.nan)


def closures(hm: np.ndarray, ms: np.ndarray, hs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``hm`` minus the ratio implied by ``ms`` and ``hs``, and ``ms`` minus the ratio implied
    by ``hm`` and ``hs`` (the other two residuals of :func:`hardness_closure`)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        a, b, c = _ratio(ms), _ratio(hm), _ratio(hs)  # M/S, H/M, H/S
        return hm - _to_hr(c / a), ms - _to_hr(c / b)


def band_shares(hm: np.ndarray, ms: np.ndarray) -> tuple[np.ndarray, ...]:
    """Shares S/(S+M+H), M/(S+M+H), H/(S+M+H) of the band counts implied by the hardness
    ratios ``ms`` = (M-S)/(M+S) and ``hm`` = (H-M)/(H+M) (NaN where either is missing)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        # counts relative to the largest, so a ratio of +-1 stays finite: S ~ (1-ms)(1-hm)
        s = (1 - ms) * (1 - hm)
        m = (1 + ms) * (1 - hm)
        h = (1 + ms) * (1 + hm)
        tot = s + m + h
        return s / tot, m / tot, h / tot


def _build_csc_hr(fs: FeatureSet, X: pd.DataFrame, rng) -> tuple[np.ndarray, np.ndarray]:
    cols = {c: _col(X, c) for c in CSC_HR_COLUMNS}
    derived = {
        "hard_hs_closure": lambda: hardness_closure(
            cols["hard_hm"], cols["hard_ms"], cols["hard_hs"]
        ),
        "log_var_ratio_h_s": lambda: _log10(cols["var_ratio_h"] / cols["var_ratio_s"]),
        "var_prob_h_s": lambda: cols["var_prob_h"] - cols["var_prob_s"],
        "log_bb_kt_minus_gamma": lambda: _log10(cols["bb_kt"]) - cols["powlaw_gamma"],
        **{f"hard_share_{b}": (lambda i=i: band_shares(cols["hard_hm"], cols["hard_ms"])[i])
           for i, b in enumerate(XRAY_BANDS)},
        **{f"hard_{r}_closure": (lambda i=i: closures(
            cols["hard_hm"], cols["hard_ms"], cols["hard_hs"])[i])
           for i, r in enumerate(("hm", "ms"))},
        # oblique directions of the hardness plane (a tree splits on one axis at a time):
        # hm + ms the overall slope across S, M, H, hm - ms its curvature (M peaked or not)
        "hard_hm_plus_ms": lambda: cols["hard_hm"] + cols["hard_ms"],
        "hard_hm_minus_ms": lambda: cols["hard_hm"] - cols["hard_ms"],
        "hard_hs_minus_ms": lambda: cols["hard_hs"] - cols["hard_ms"],
        "hard_hs_minus_hm": lambda: cols["hard_hs"] - cols["hard_hm"],
        "hard_hs_plus_hm": lambda: cols["hard_hs"] + cols["hard_hm"],
        "var_prob_max": lambda: np.fmax(np.fmax(cols["var_prob_b"], cols["var_prob_h"]),
                                        cols["var_prob_s"]),
        "log_var_ratio_max": lambda: _log10(np.fmax(np.fmax(
            cols["var_ratio_b"], cols["var_ratio_h"]), cols["var_ratio_s"])),
    }
    out = []
    for f in fs.features:
        if f in derived:
            out.append(derived[f]())
        elif f.startswith("log_"):
            out.append(_log10(cols[f[4:]]))
        else:
            out.append(cols[f])
    F = np.column_stack(out) if out else np.empty((len(X), 0))
    reasons = np.full(len(X), None, dtype=object)
    reasons[np.isnan(F).all(axis=1)] = "no X-ray properties (all features missing)"
    return F, reasons


#: ICRS (J2000) equatorial -> Galactic rotation (Hipparcos, ESA 1997, vol. 1, eq. 1.5.11).
_ICRS_TO_GAL = np.array([
    [-0.0548755604162154, -0.8734370902348850, -0.4838350155487132],
    [+0.4941094278755837, -0.4448296299600112, +0.7469822444972189],
    [-0.8676661490190047, -0.1980763734312015, +0.4559837761750669],
])  # fmt: skip


def galactic(ra: np.ndarray, dec: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Galactic (l in (-180, 180], b) in degrees from ICRS ``ra``, ``dec`` in degrees.

    l is wrapped about the Galactic centre so the bulge is one contiguous range.
    """
    a, d = np.radians(ra), np.radians(dec)
    v = np.stack([np.cos(d) * np.cos(a), np.cos(d) * np.sin(a), np.sin(d)])
    g = _ICRS_TO_GAL @ v.reshape(3, -1)
    l_deg = np.degrees(np.arctan2(g[1], g[0]))
    b_deg = np.degrees(np.arcsin(np.clip(g[2], -1.0, 1.0)))
    return l_deg.reshape(np.shape(ra)), b_deg.reshape(np.shape(ra))


def _build_mw(fs: FeatureSet, X: pd.DataFrame, rng) -> tuple[np.ndarray, np.ndarray]:
    n = len(X)
    flux = {b: _col(X, f"flux_{b}") for b in XRAY_BANDS}
    mags = {m: _col(X, m) for m in MW_MAGS}
    if rng is not None:
        for b in XRAY_BANDS:
            flux[b] = _draw_positive(flux[b], _col(X, f"e_flux_{b}"), rng)
        for m in MW_MAGS:
            e = _col(X, f"e_{m}")
            e = np.where(np.isfinite(e) & (e > 0), e, 0.0)
            mags[m] = mags[m] + rng.standard_normal(n) * e
    for m, limit, _, _ in MW_BANDS:
        mags[m] = np.where(mags[m] < limit, mags[m], np.nan)  # non-detection beyond limit
    s, m_, h = flux["s"], flux["m"], flux["h"]
    fb = s + m_ + h
    with np.errstate(divide="ignore", invalid="ignore"):
        feats = {
            "log_flux_b": _log10(fb),
            "log_flux_s_b": _log10(s / fb),
            "log_flux_m_b": _log10(m_ / fb),
            "log_flux_h_b": _log10(h / fb),
            "hr_ms": (m_ - s) / (s + m_),
            "hr_hm": (h - m_) / (m_ + h),
            "hr_hms": (h - m_ - s) / fb,
        }
        for mag, _, zero, width in MW_BANDS:
            feats[f"log_{mag}_xray"] = _log10(zero * 10 ** (-mags[mag] / 2.5) * width / fb)
    for a, b in COLOURS:
        feats[f"{a}-{b}"] = mags[a] - mags[b]
    for c in ("var_intra_prob", "var_inter_prob", "powlaw_gamma", "gaia_plx", "gaia_pm"):
        if c in X.columns:
            feats[c] = _col(X, c)
    if "nh_gal" in X.columns:
        feats["log_nh_gal"] = _log10(_col(X, "nh_gal"))
    if "ra" in X.columns and "dec" in X.columns:
        feats["gal_l"], feats["gal_b"] = galactic(_col(X, "ra"), _col(X, "dec"))
    F = np.column_stack([np.asarray(feats[f], dtype="float64") for f in fs.features])
    F[~np.isfinite(F)] = np.nan
    reasons = np.full(n, None, dtype=object)
    reasons[~(fb > 0)] = "no X-ray flux (flux_s + flux_m + flux_h missing or not > 0)"
    return F, reasons


def _build_csc_hr_mw(fs: FeatureSet, X: pd.DataFrame, rng) -> tuple[np.ndarray, np.ndarray]:
    """csc_hr's X-ray features, then the counterparts' colours, magnitudes, parallax and
    proper motion (magnitudes drawn within their errors with ``rng``; beyond the survey
    limits: non-detections). A row is unclassifiable only without X-ray properties: a missing
    counterpart is NaN, as MUWCLASS treats it."""
    xray = [f for f in fs.features if f in _CSC_HR_FEATURES]
    F1, reasons = _build_csc_hr(FeatureSet("csc_hr", CSC_HR_COLUMNS, xray, {}), X, None)
    n = len(X)
    mags = {}
    for m, limit, _, _ in MW_BANDS:
        v = _col(X, m)
        if rng is not None:
            e = _col(X, f"e_{m}")
            v = v + rng.standard_normal(n) * np.where(np.isfinite(e) & (e > 0), e, 0.0)
        mags[m] = np.where(v < limit, v, np.nan)
    feats = {f"{a}-{b}": mags[a] - mags[b] for a, b in COLOURS}
    feats |= mags | {c: _col(X, c) for c in ("gaia_plx", "gaia_pm")}
    rest = [f for f in fs.features if f not in _CSC_HR_FEATURES]
    F2 = np.column_stack([feats[f] for f in rest]) if rest else np.empty((n, 0))
    return np.column_stack([F1, F2]), reasons


_BUILDERS = {
    "csc_hr": _build_csc_hr, "csc_hr_plus": _build_csc_hr, "csc_hr_bands": _build_csc_hr,
    "csc_hr_bands_x": _build_csc_hr, "csc_hr_rot": _build_csc_hr, "csc_hr_rot5": _build_csc_hr,
    "csc_hr_mw": _build_csc_hr_mw,
    "mw": _build_mw, "mw_plus": _build_mw, "mw_gal": _build_mw,
}  # fmt: skip

_XRAY_FLUX_FEATURES = ["log_flux_b", "log_flux_s_b", "log_flux_m_b", "log_flux_h_b"]
_HR_FEATURES = ["hr_ms", "hr_hm", "hr_hms"]
_MW_FEATURES = [f"log_{m}_xray" for m in MW_MAGS if m != "wise_w3"]
_COLOUR_FEATURES = [f"{a}-{b}" for a, b in COLOURS]
_MW_COLUMNS = (
    [f"flux_{b}" for b in XRAY_BANDS]
    + [f"e_flux_{b}" for b in XRAY_BANDS]
    + ["var_intra_prob", "var_inter_prob"]
    + MW_MAGS
    + [f"e_{m}" for m in MW_MAGS]
)
_MW_ERRORS = {f"flux_{b}": f"e_flux_{b}" for b in XRAY_BANDS} | {m: f"e_{m}" for m in MW_MAGS}


def _cats_mw(features: list[str]) -> dict[str, str]:
    cats = {}
    for f in features:
        if f in _XRAY_FLUX_FEATURES or f in _HR_FEATURES:
            cats[f] = "hardness"
        elif f.startswith("var_"):
            cats[f] = "variability"
        elif f in ("powlaw_gamma", "log_nh_gal"):
            cats[f] = "spectrum"
        elif f.startswith("gaia_p"):
            cats[f] = "astrometry"
        elif f.startswith("gal_"):
            cats[f] = "position"
        else:
            cats[f] = "multiwavelength"
    return cats


_CSC_HR_FEATURES = [
    "hard_hm", "hard_ms", "hard_hs", "log_bb_kt", "powlaw_gamma",
    "var_prob_b", "var_prob_h", "var_prob_s", "log_var_ratio_b", "log_var_ratio_h",
    "log_var_ratio_s",
]  # fmt: skip
_CSC_HR_PLUS = _CSC_HR_FEATURES + [
    "hard_hs_closure", "log_var_ratio_h_s", "var_prob_h_s", "log_bb_kt_minus_gamma",
]  # fmt: skip


#: csc_hr_plus + the band shares implied by the hardness ratios (a point of the simplex,
#: which a tree splits on more easily than on the two ratios)
_CSC_HR_BANDS = _CSC_HR_PLUS + [f"hard_share_{b}" for b in XRAY_BANDS]

#: csc_hr_bands + the other two hardness closures and the largest variability probability
#: and ratio over the three bands (tried by classifier.cv_csc21)
_CSC_HR_BANDS_X = _CSC_HR_BANDS + ["hard_hm_closure", "hard_ms_closure", "var_prob_max",
                                   "log_var_ratio_max"]

#: csc_hr_bands + sums and differences of the hardness ratios (oblique directions of the
#: hardness plane): three (tried) and five (chosen for compare's CSC 2.1 gbm by
#: classifier.cv_csc21 on the training part, README)
_CSC_HR_ROT = _CSC_HR_BANDS + ["hard_hm_plus_ms", "hard_hm_minus_ms", "hard_hs_minus_ms"]
_CSC_HR_ROT5 = _CSC_HR_ROT + ["hard_hs_minus_hm", "hard_hs_plus_hm"]


def _cats_csc(features: list[str]) -> dict[str, str]:
    return {
        f: "hardness" if f.startswith("hard") else
        "spectrum" if f in ("log_bb_kt", "powlaw_gamma", "log_bb_kt_minus_gamma") else
        "variability"
        for f in features
    }  # fmt: skip


_MUW = (
    _XRAY_FLUX_FEATURES + _HR_FEATURES + ["var_inter_prob", "var_intra_prob"]
    + _MW_FEATURES + _COLOUR_FEATURES
)  # fmt: skip
_MUW_PLUS = _MUW + ["powlaw_gamma", "gaia_plx", "gaia_pm", "log_nh_gal"]
_MUW_GAL = _MUW_PLUS + ["gal_l", "gal_b"]

#: The catalog's X-ray features with its stored counterparts (``db.family_store``): no X-ray
#: band fluxes in erg (the CSC detections carry only the broad aperture flux), so colours and
#: magnitudes rather than MUWCLASS's X-ray-to-optical ratios.
_CSC_HR_MW = _CSC_HR_FEATURES + _COLOUR_FEATURES + ["gaia_g", "tmass_j", "wise_w1",
                                                    "gaia_plx", "gaia_pm"]
_CSC_HR_MW_COLUMNS = (CSC_HR_COLUMNS + MW_MAGS + [f"e_{m}" for m in MW_MAGS]
                      + ["gaia_plx", "gaia_pm"])

#: Every feature set, by name.
FEATURE_SETS: dict[str, FeatureSet] = {
    "csc_hr": FeatureSet("csc_hr", CSC_HR_COLUMNS, _CSC_HR_FEATURES, _cats_csc(_CSC_HR_FEATURES)),
    "csc_hr_plus": FeatureSet(
        "csc_hr_plus", CSC_HR_COLUMNS, _CSC_HR_PLUS, _cats_csc(_CSC_HR_PLUS)
    ),
    "csc_hr_bands": FeatureSet(
        "csc_hr_bands", CSC_HR_COLUMNS, _CSC_HR_BANDS, _cats_csc(_CSC_HR_BANDS)
    ),
    "csc_hr_bands_x": FeatureSet(
        "csc_hr_bands_x", CSC_HR_COLUMNS, _CSC_HR_BANDS_X, _cats_csc(_CSC_HR_BANDS_X)
    ),
    "csc_hr_rot": FeatureSet("csc_hr_rot", CSC_HR_COLUMNS, _CSC_HR_ROT, _cats_csc(_CSC_HR_ROT)),
    "csc_hr_rot5": FeatureSet(
        "csc_hr_rot5", CSC_HR_COLUMNS, _CSC_HR_ROT5, _cats_csc(_CSC_HR_ROT5)
    ),
    "csc_hr_mw": FeatureSet(
        "csc_hr_mw", _CSC_HR_MW_COLUMNS, _CSC_HR_MW,
        _cats_csc(_CSC_HR_FEATURES) | _cats_mw(_CSC_HR_MW[len(_CSC_HR_FEATURES):]),
        {m: f"e_{m}" for m in MW_MAGS},
    ),
    "mw": FeatureSet("mw", _MW_COLUMNS, _MUW, _cats_mw(_MUW), _MW_ERRORS),
    "mw_plus": FeatureSet(
        "mw_plus",
        _MW_COLUMNS + ["powlaw_gamma", "gaia_plx", "gaia_pm", "nh_gal"],
        _MUW_PLUS,
        _cats_mw(_MUW_PLUS),
        _MW_ERRORS,
    ),
    "mw_gal": FeatureSet(
        "mw_gal",
        _MW_COLUMNS + ["powlaw_gamma", "gaia_plx", "gaia_pm", "nh_gal", "ra", "dec"],
        _MUW_GAL,
        _cats_mw(_MUW_GAL),
        _MW_ERRORS,
    ),
}


def feature_set(name: str) -> FeatureSet:
    """The feature set called ``name`` (ValueError naming the known ones otherwise)."""
    try:
        return FEATURE_SETS[name]
    except KeyError:
        raise ValueError(
            f"unknown feature set {name!r}; known: {', '.join(FEATURE_SETS)}"
        ) from None
