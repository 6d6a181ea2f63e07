"""Gaia DR3 / 2MASS / AllWISE objects around a generated sample's sources (no network).

``sample_counterparts(sample)`` returns, per catalogue, a frame with the VizieR column names
CDS X-Match answers with (``ingest.counterparts.CATALOGUES``):

- the *true counterpart* of a source, for the share of its class that has one in that
  catalogue in the MUWCLASS training set (``counterpart_stats.json``, written by
  ``ingest.calibrate_counterparts``: the eight presence patterns per class), offset from the
  X-ray position by the combined position error, with magnitudes drawn per class from that
  set's quantiles through a Gaussian copula of its normal-score correlations (so colours
  such as G-RP or J-K follow the class);
- *chance neighbours*, Poisson at a sky density that rises towards the Galactic plane
  (:data:`DENSITY_PER_DEG2`: Gaia DR3's 1.8e9, 2MASS's 4.7e8 and AllWISE's 7.5e8 objects
  spread as ``a + b·exp(-|b|/h)``), uniform within :data:`NEIGHBOUR_RADIUS_ARCSEC` of each
  source, with field-star magnitudes (the LM-STAR class, 2 mag fainter).

Deterministic for a sample (its seed); cached in ``sample.meta`` (shared by ``as_of``).
"""

from __future__ import annotations

import json
import math
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from ingest.association import xray_sigma
from ingest.counterparts import CATALOGUES
from ingest.sample import _normal_cdf, _offset
from ingest.sky import icrs_to_galactic

STATS_PATH = Path(__file__).with_name("counterpart_stats.json")
#: Chance neighbours exist within this radius of each source (the default density radius).
NEIGHBOUR_RADIUS_ARCSEC = 30.0
#: (high-latitude floor, plane excess, scale height in degrees) of objects per deg².
DENSITY_PER_DEG2 = {"gaia": (5.0e3, 5.0e5, 4.0), "2mass": (2.0e3, 1.3e5, 4.0),
                    "allwise": (1.0e4, 9.0e4, 5.0)}
#: The sample's classes as MUWCLASS classes (``other`` sources are drawn from the stellar
#: and compact classes by their counts).
CLASS_MAP = {"QSO": "AGN", "AGN": "AGN", "Seyfert1": "AGN", "Seyfert2": "AGN",
             "HighMassXBin": "HMXB", "LowMassXBin": "LMXB", "YSO": "YSO", "TTauri*": "YSO",
             "OrionV*": "YSO"}
XRAYBIN = ("HMXB", "LMXB")
OTHER = ("LM-STAR", "HM-STAR", "CV", "NS")
PATTERN_BITS = {"gaia": 4, "2mass": 2, "allwise": 1}
FIELD_CLASS, FIELD_FAINTER_MAG = "LM-STAR", 2.0
#: Magnitude errors: log10(e) = a + b*mag, scatter s (dex), fitted on muwclass_td's Gaia,
#: 2MASS and AllWISE photometry (~2,000-2,800 counterparts per band).
MAG_ERRORS = {"g_mag": (-3.13, 0.0562, 0.26), "bp_mag": (-3.916, 0.1372, 0.38),
              "rp_mag": (-3.515, 0.1132, 0.34), "j_mag": (-2.415, 0.0798, 0.22),
              "h_mag": (-2.252, 0.0746, 0.24), "k_mag": (-2.472, 0.0895, 0.24),
              "w1_mag": (-1.841, 0.0291, 0.21), "w2_mag": (-2.242, 0.0652, 0.23),
              "w3_mag": (-2.663, 0.1578, 0.29)}


@lru_cache(maxsize=2)
def load_stats(path: str = str(STATS_PATH)) -> dict:
    return json.loads(Path(path).read_text())


def _psd(c: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh((c + c.T) / 2)
    c = (v * np.maximum(w, 1e-6)) @ v.T
    d = np.sqrt(np.diag(c))
    return c / np.outer(d, d)


def _values(rng, mw_class: np.ndarray, stats: dict) -> dict[str, np.ndarray]:
    """Per-source quantities drawn per class through the copula (NaN where no quantiles)."""
    qs = stats["quantities"]
    levels = np.asarray(stats["levels"], float)
    out = np.full((len(mw_class), len(qs)), np.nan)
    for cname, st in stats["classes"].items():
        rows = np.flatnonzero(mw_class == cname)
        if not len(rows):
            continue
        chol = np.linalg.cholesky(_psd(np.asarray(st["corr"], float)))
        u = _normal_cdf(rng.standard_normal((len(rows), len(qs))) @ chol.T)
        for j, q in enumerate(qs):
            if st["quantiles"][q] is not None:
                out[rows, j] = np.interp(u[:, j], levels, st["quantiles"][q])
    return {q: out[:, j] for j, q in enumerate(qs)}


def _errors(rng, name: str, n: int) -> dict[str, np.ndarray]:
    if name == "gaia":  # mas
        a = rng.lognormal(math.log(0.2), 0.7, n)
        return {"e_RA_ICRS": a, "e_DE_ICRS": a * rng.uniform(0.7, 1.3, n)}
    if name == "2mass":  # arcsec
        a = rng.uniform(0.06, 0.2, n)
        return {"errHalfMaj": a, "errHalfMin": a * rng.uniform(0.6, 1.0, n)}
    a = rng.lognormal(math.log(0.15), 0.5, n)  # AllWISE, arcsec
    return {"eeMaj": a, "eeMin": a * rng.uniform(0.6, 1.0, n)}


def _frame(name: str, ra, dec, vals: dict[str, np.ndarray], errs: dict, start: int
           ) -> pd.DataFrame:
    cat = CATALOGUES[name]
    n = len(ra)
    ids = np.arange(start, start + n)
    ident = (4_000_000_000_000_000_000 + ids if name == "gaia" else
             np.char.add("2M", np.char.zfill(ids.astype(str), 10)) if name == "2mass" else
             np.char.add("J", np.char.zfill(ids.astype(str), 12)))
    df = pd.DataFrame({cat.id_col: ident, cat.ra_col: np.mod(ra, 360.0), cat.dec_col: dec})
    for k, v in errs.items():
        df[k] = v
    # magnitude errors from their own stream (the other quantities' draws stay as they were)
    erng = np.random.default_rng([start, n, PATTERN_BITS[name], 4])
    for q, col in cat.values.items():
        if q in vals:
            df[col] = vals[q]
        else:  # e_<mag>
            a, b, sd = MAG_ERRORS[q[2:]]
            m = np.asarray(vals[q[2:]], float)
            df[col] = 10 ** (a + b * m + sd * erng.standard_normal(n))
    return df


def generate_counterparts(sources: pd.DataFrame, true_class: np.ndarray, seed: int,
                          stats: dict | None = None) -> dict[str, pd.DataFrame]:
    """Per catalogue: the objects (VizieR columns) around ``sources`` (name, ra, dec,
    err_ellipse_r0); ``true_class``: the sample's class of each source."""
    stats = stats or load_stats()
    rng = np.random.default_rng([seed, 3])
    n = len(sources)
    ra, dec = sources["ra"].to_numpy(float), sources["dec"].to_numpy(float)
    tc = np.asarray(true_class).astype(str)
    mw = np.array([CLASS_MAP.get(c, "") for c in tc], dtype=object)
    xb = tc == "XrayBin"
    mw[xb] = np.array(XRAYBIN, dtype=object)[rng.integers(0, 2, xb.sum())]
    oth = mw == ""
    counts = np.array([stats["classes"][c]["count"] for c in OTHER], float)
    mw[oth] = np.array(OTHER, dtype=object)[rng.choice(len(OTHER), oth.sum(),
                                                       p=counts / counts.sum())]
    pattern = np.zeros(n, dtype=np.int64)
    for cname, st in stats["classes"].items():
        rows = np.flatnonzero(mw == cname)
        p = np.asarray(st["patterns"], float)
        pattern[rows] = rng.choice(8, len(rows), p=p / p.sum())
    vals = _values(rng, mw, stats)
    field = _values(rng, np.full(n, FIELD_CLASS, dtype=object), stats)
    _, glat = icrs_to_galactic(ra, dec)
    sig_x = xray_sigma(sources["err_ellipse_r0"].to_numpy(float))
    out: dict[str, pd.DataFrame] = {}
    for name, bit in PATTERN_BITS.items():
        has = (pattern & bit) > 0
        idx = np.flatnonzero(has)
        errs = _errors(rng, name, len(idx))
        cat = CATALOGUES[name]
        a, b = (errs[c] * cat.err_scale for c in cat.err_cols)
        sig = np.sqrt(sig_x[idx] ** 2 + (a * a + b * b) / 2)
        r = sig * np.sqrt(-2.0 * np.log(rng.random(len(idx)))) / 3600  # Rayleigh offset
        t_ra, t_dec = _offset(ra[idx], dec[idx], r, rng.uniform(0, 2 * np.pi, len(idx)))
        true = _frame(name, t_ra, t_dec, {q: v[idx] for q, v in vals.items()}, errs, 0)
        floor, plane, h = DENSITY_PER_DEG2[name]
        rho = floor + plane * np.exp(-np.abs(glat) / h)
        k = rng.poisson(rho * math.pi * (NEIGHBOUR_RADIUS_ARCSEC / 3600) ** 2)
        owner = np.repeat(np.arange(n), k)
        r = NEIGHBOUR_RADIUS_ARCSEC * np.sqrt(rng.random(len(owner))) / 3600
        c_ra, c_dec = _offset(ra[owner], dec[owner], r, rng.uniform(0, 2 * np.pi, len(owner)))
        fv = {}
        for q, v in field.items():
            v = v[owner]
            fv[q] = v + FIELD_FAINTER_MAG if q.endswith("_mag") else v / 4.0
        chance = _frame(name, c_ra, c_dec, fv, _errors(rng, name, len(owner)), len(idx))
        out[name] = pd.concat([true, chance], ignore_index=True)
        out[name].attrs["true_of"] = np.concatenate([idx, np.full(len(owner), -1)])
    return out


def sample_counterparts(sample) -> dict[str, pd.DataFrame]:
    """The sample's catalogue objects (generated once, kept in ``sample.meta``)."""
    if "counterparts" not in sample.meta:
        truth = sample.truth.set_index("name").reindex(sample.sources["name"])
        sample.meta["counterparts"] = generate_counterparts(
            sample.sources, truth["true_class"].to_numpy(), sample.seed)
    return sample.meta["counterparts"]


def true_counterparts(sample) -> pd.DataFrame:
    """name, catalogue, cp_id of every source's true counterpart (the generator's truth)."""
    rows = []
    names = sample.sources["name"].to_numpy()
    for name, df in sample_counterparts(sample).items():
        own = df.attrs["true_of"]
        keep = own >= 0
        rows.append(pd.DataFrame({"name": names[own[keep]], "catalogue": name,
                                  "cp_id": df.loc[keep, CATALOGUES[name].id_col]
                                  .astype(str).to_numpy()}))
    return pd.concat(rows, ignore_index=True)


class SampleCounterparts:
    """Answers ``neighbours`` from the sample's generated catalogues, in memory, as
    :class:`ingest.counterparts.CounterpartXMatch` does from CDS X-Match."""

    def __init__(self, sample, radius_arcsec: float = NEIGHBOUR_RADIUS_ARCSEC) -> None:
        self.sample, self.radius = sample, radius_arcsec
        self.url = f"sample-counterparts:seed={sample.seed}"
        self._index: dict[str, tuple] = {}  # per table: (table, k-d tree, rows)

    def _sky_index(self, name: str, obj: pd.DataFrame):
        from ingest.sky import SkyIndex

        if self._index.get(name, (None,))[0] is not obj:
            cat = CATALOGUES[name]
            # rows are taken from a shallow copy without attrs: pandas deep-copies attrs
            # (the generator's ``true_of``, one value per object) in every iloc
            rows = obj.copy(deep=False)
            rows.attrs = {}
            self._index[name] = (obj, SkyIndex(obj[cat.ra_col].to_numpy(),
                                               obj[cat.dec_col].to_numpy()), rows)
        return self._index[name][1], self._index[name][2]

    def neighbours(self, sources: pd.DataFrame, on_progress=None) -> pd.DataFrame:
        from ingest.counterparts import neighbours_frame

        src = sources[["name", "ra", "dec"]].drop_duplicates("name").reset_index(drop=True)
        frames = []
        for name, obj in sample_counterparts(self.sample).items():
            cat = CATALOGUES[name]
            index, rows = self._sky_index(name, obj)
            i1, i2, sep = index.pairs(src["ra"].to_numpy(float), src["dec"].to_numpy(float),
                                      self.radius)
            o = rows.iloc[i2]
            frames.append(neighbours_frame(
                cat, src["name"].to_numpy()[i1], o[cat.ra_col], o[cat.dec_col], sep,
                o[cat.id_col], o[cat.err_cols[0]], o[cat.err_cols[1]],
                {k: o[v].to_numpy(float) for k, v in cat.values.items()}))
        if on_progress is not None:
            on_progress(len(src), len(src))
        return pd.concat(frames, ignore_index=True)
