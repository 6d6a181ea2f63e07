"""Deterministic CSC-like sample catalog for tests, demos and benchmarks.

``generate_sample(n_sources=..., seed=...)`` or ``generate_sample(n_detections=...)`` builds
sources in Chandra fields (Galactic classes near the plane, extragalactic ones away from it),
ObsIDs dated 2000-2025, per-observation detections with every raw column of
``db.csc_columns`` inside its valid range, class-conditional features drawn from per-class
statistics of real CSC 2.1 data (``sample_stats.json``: per class, a Gaussian mixture over the
joint normal scores of all features and per-feature quantiles; see ``ingest.calibrate_sample``;
``tests/ingest/test_sample_realism.py`` checks the method behaves on it as on the real data),
and two SIMBAD snapshots. Everything is vectorized numpy; loops run over classes.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from db.csc_columns import DETECTION_COLUMNS, SOURCE_COLUMNS, names
from ingest.dates import mjd, until_mjd
from ingest.sky import crossmatch, csc_names, galactic_to_icrs, icrs_to_galactic

STATS_PATH = Path(__file__).with_name("sample_stats.json")
CHANDRA_MJDREF = 50814.0  # Chandra time zero, 1998-01-01 TT, as MJD
GALACTIC_CLASSES = ("HighMassXBin", "LowMassXBin", "XrayBin", "YSO", "TTauri*", "OrionV*")
EXTRAGALACTIC_CLASSES = ("QSO", "AGN", "Seyfert1", "Seyfert2")
MAX_DETECTIONS = 60
FIELD_RADIUS_ARCMIN = 10.0
SOURCES_PER_FIELD = 80
SIMBAD_RADIUS_ARCSEC = 1.0
#: Expected detections per source of the CSC-like multiplicity distribution (see _multiplicity).
MEAN_DETECTIONS = 0.78 + 0.11 * 2 + 0.10 * 6.5 + 0.01 * 25.0


@lru_cache(maxsize=4)
def load_stats(path: str = str(STATS_PATH)) -> dict:
    """Per-class feature statistics written by ``ingest.calibrate_sample``."""
    return json.loads(Path(path).read_text())


@dataclass
class Sample:
    """A generated catalog. Frames use cscat's stored column names."""

    sources: pd.DataFrame  # SOURCE_COLUMNS, one row per master source
    detections: pd.DataFrame  # SOURCE_COLUMNS + DETECTION_COLUMNS, one row per (source, detection)
    observations: pd.DataFrame  # obsid, gti_mjd_obs, obs_date, ra_pnt, dec_pnt, exposure
    simbad: pd.DataFrame  # expected crossmatch, epoch 1: name, main_id, otype, separation_arcsec
    simbad_epoch2: pd.DataFrame  # same, later snapshot with some types changed
    simbad_objects: pd.DataFrame  # the SIMBAD "catalog", epoch 1: main_id, ra, dec, otype
    simbad_objects_epoch2: pd.DataFrame
    truth: pd.DataFrame  # name, true_class, glon, glat (never sent by the services)
    seed: int = 0
    meta: dict = field(default_factory=dict)

    def detections_until(self, until: date | datetime | str | float) -> pd.DataFrame:
        """Detections of ObsIDs observed before the end of ``until`` (a date, or an MJD)."""
        return self.detections[self.detections["gti_mjd_obs"] < until_mjd(until)]

    def as_of(self, until: date | datetime | str | float) -> Sample:
        """The catalog as published at ``until``: its ObsIDs, detections and their sources."""
        bound = until_mjd(until)
        det = self.detections[self.detections["gti_mjd_obs"] < bound]
        keep = set(det["name"].unique())

        def by_name(df: pd.DataFrame) -> pd.DataFrame:
            return df[df["name"].isin(keep)].reset_index(drop=True)

        return replace(
            self,
            sources=by_name(self.sources),
            detections=det.reset_index(drop=True),
            observations=self.observations[self.observations["gti_mjd_obs"] < bound]
            .reset_index(drop=True),
            simbad=by_name(self.simbad),
            simbad_epoch2=by_name(self.simbad_epoch2),
            truth=by_name(self.truth),
        )


def _normal_cdf(z: np.ndarray) -> np.ndarray:
    """Standard normal CDF (Abramowitz-Stegun 7.1.26 erf, |error| < 1.5e-7)."""
    x = np.abs(z) / math.sqrt(2.0)
    t = 1.0 / (1.0 + 0.3275911 * x)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027
                                                                       + t * 1.061405429))))
    erf = 1.0 - poly * np.exp(-x * x)
    return 0.5 * (1.0 + np.sign(z) * erf)


def _multiplicity(rng: np.random.Generator, n: int) -> np.ndarray:
    """Detections per source: ~78% one, 11% two, 10% three to ten, 1% more (to 60)."""
    u = rng.random(n)
    k = np.ones(n, dtype=np.int64)
    k[u >= 0.78] = 2
    mid = (u >= 0.89) & (u < 0.99)
    k[mid] = rng.integers(3, 11, mid.sum())
    many = u >= 0.99
    k[many] = np.minimum(10 + rng.geometric(1 / 15.0, many.sum()), MAX_DETECTIONS)
    return k


#: Detections of one source share this much of their latent feature deviation (the rest is
#: per-observation scatter); the per-detection distribution equals the per-source one.
SOURCE_SHARE = 0.9


def _chol(mix: dict, d: int) -> np.ndarray:
    """The mixture's lower Cholesky factors, (K, d, d)."""
    tri = np.asarray(mix["chol"], float)
    out = np.zeros((len(tri), d, d))
    out[:, *np.tril_indices(d)] = tri
    return out


def _value_tables(st: dict, levels: np.ndarray, d: int) -> tuple[np.ndarray, np.ndarray]:
    """A latent grid (G,) and, per feature, the (warped) value at each grid point (d, G):
    the class's quantile function of its mixture's marginal CDF."""
    mix = st["mixture"]
    w = np.asarray(mix["weights"], float)
    mu = np.asarray(mix["means"], float).reshape(len(w), d)
    sd = np.sqrt(np.einsum("kij,kij->ki", *[_chol(mix, d)] * 2))
    grid = np.linspace(-8.0, 8.0, 3201)
    cdf = np.einsum("k,kfg->fg", w, _normal_cdf((grid - mu[:, :, None]) / sd[:, :, None]))
    cdf /= cdf[:, -1:]
    q = np.asarray(st["quantiles"], float)
    return grid, np.stack([np.interp(cdf[f], levels, q[f]) for f in range(d)])


def _features(rng, cls: np.ndarray, det_src: np.ndarray, stats: dict) -> dict[str, np.ndarray]:
    """Class-conditional feature values per detection.

    Per class: a latent vector from the class's Gaussian mixture over the real data's joint
    normal scores (one per source, shared by its detections up to per-observation scatter
    inside the source's component), mapped feature by feature through the mixture's marginal
    CDF onto the real class's quantiles (log features interpolated in log10).
    """
    feats, levels = stats["features"], np.asarray(stats["levels"])
    is_log = np.isin(feats, stats.get("log10_features", ()))
    d = len(feats)
    classes = list(stats["classes"])
    out = np.empty((len(det_src), d))
    det_cls = cls[det_src]
    for ci, cname in enumerate(classes):
        src_idx = np.flatnonzero(cls == ci)
        det_idx = np.flatnonzero(det_cls == ci)
        if len(det_idx) == 0:
            continue
        st = stats["classes"][cname]
        w = np.asarray(st["mixture"]["weights"], float)
        mu = np.asarray(st["mixture"]["means"], float).reshape(len(w), d)
        chol = _chol(st["mixture"], d)
        comp = rng.choice(len(w), len(src_idx), p=w / w.sum())
        e_src = rng.standard_normal((len(src_idx), d))
        pos = np.searchsorted(src_idx, det_src[det_idx])
        e_det = rng.standard_normal((len(det_idx), d))
        e = SOURCE_SHARE * e_src[pos] + math.sqrt(1 - SOURCE_SHARE**2) * e_det
        k = comp[pos]
        order = np.argsort(k, kind="stable")
        cuts = np.searchsorted(k[order], np.arange(len(w) + 1))
        z = np.empty_like(e)
        for kk in range(len(w)):
            rows = order[cuts[kk]:cuts[kk + 1]]
            z[rows] = mu[kk] + e[rows] @ chol[kk].T
        grid, table = _value_tables(st, levels, d)
        for fi in range(d):
            z[:, fi] = np.interp(z[:, fi], grid, table[fi])
        z[:, is_log] = 10.0 ** z[:, is_log]
        out[det_idx] = z
    return {f: out[:, i] for i, f in enumerate(feats)}


def _fields(rng, n_fields: int, galactic: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Field centres (ra, dec) and observation counts; at least one field as deep as needed."""
    if galactic:
        gl = np.mod(rng.normal(0.0, 60.0, n_fields), 360.0)
        gb = np.clip(rng.laplace(0.0, 1.5, n_fields), -20.0, 20.0)
    else:
        gl = rng.uniform(0.0, 360.0, n_fields)
        s = rng.uniform(math.sin(math.radians(15.0)), 1.0, n_fields)
        gb = np.degrees(np.arcsin(s)) * rng.choice([-1.0, 1.0], n_fields)
    ra, dec = galactic_to_icrs(gl, gb)
    u = rng.random(n_fields)
    nobs = np.where(u < 0.55, 1, np.where(u < 0.75, 2, rng.integers(3, 11, n_fields)))
    deep = u >= 0.92
    nobs[deep] = rng.integers(11, MAX_DETECTIONS + 1, deep.sum())
    nobs[0] = MAX_DETECTIONS
    return ra, dec, nobs


def _offset(ra, dec, r_deg, phi):
    """Positions at distance r_deg and position angle phi (small-angle tangent plane)."""
    new_dec = dec + r_deg * np.sin(phi)
    over = np.abs(new_dec) > 90.0
    new_dec[over] = np.sign(new_dec[over]) * 180.0 - new_dec[over]
    cosd = np.maximum(np.cos(np.radians(dec)), 1e-3)
    return np.mod(ra + r_deg * np.cos(phi) / cosd, 360.0), new_dec


def _unique_names(rng, ra, dec) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Names of positions, nudging the (rare) sources whose truncated names collide."""
    for _ in range(50):
        nm = csc_names(ra, dec)
        dup = pd.Series(nm).duplicated().to_numpy()
        if not dup.any():
            return ra, dec, nm
        dec = dec.copy()
        dec[dup] += rng.choice([-1.0, 1.0], dup.sum()) * rng.uniform(1.0, 3.0, dup.sum()) / 3600
        dec = np.clip(dec, -89.9999, 89.9999)
    raise RuntimeError("could not make unique source names")


def _choice_by_counts(rng, counts: dict[str, int], n: int) -> np.ndarray:
    labels = np.array(list(counts), dtype=object)
    p = np.asarray(list(counts.values()), float)
    return labels[rng.choice(len(labels), n, p=p / p.sum())]


def _simbad(rng, ra, dec, true_label, stats) -> tuple[pd.DataFrame, pd.DataFrame]:
    """SIMBAD objects near about half the sources (+ decoys), epoch 1 and epoch 2."""
    n = len(ra)
    matched = rng.random(n) < 0.5
    idx = np.flatnonzero(matched)
    r = SIMBAD_RADIUS_ARCSEC * 0.95 * np.sqrt(rng.random(len(idx))) / 3600
    o_ra, o_dec = _offset(ra[idx], dec[idx], r, rng.uniform(0, 2 * np.pi, len(idx)))
    otype = true_label[idx]
    # decoys: a second, farther object inside 1" for 3% of matches; one outside 1" for 10%
    near = idx[rng.random(len(idx)) < 0.03]
    r_near = (SIMBAD_RADIUS_ARCSEC * 0.96 + 0.03 * rng.random(len(near))) / 3600
    n_ra, n_dec = _offset(ra[near], dec[near], r_near, rng.uniform(0, 2 * np.pi, len(near)))
    far = np.flatnonzero(rng.random(n) < 0.10)
    r_far = rng.uniform(1.3, 5.0, len(far)) / 3600
    f_ra, f_dec = _offset(ra[far], dec[far], r_far, rng.uniform(0, 2 * np.pi, len(far)))
    decoy_types = _choice_by_counts(rng, {"Star": 5, "X": 3, "Galaxy": 2, "Radio": 1},
                                    len(near) + len(far))
    obj = pd.DataFrame({
        "ra": np.concatenate([o_ra, n_ra, f_ra]),
        "dec": np.concatenate([o_dec, n_dec, f_dec]),
        "otype": np.concatenate([otype, decoy_types]).astype(str),
    })
    obj.insert(0, "main_id", [f"SIM {i:07d}" for i in range(len(obj))])
    # epoch 2: X -> YSO, QSO -> AGN, Star -> TTauri* for some; new objects for 5% of unmatched
    obj2 = obj.copy()
    t = obj2["otype"].to_numpy().copy()
    u = rng.random(len(t))
    t[(t == "X") & (u < 0.25)] = "YSO"
    t[(t == "QSO") & (u < 0.10)] = "AGN"
    t[(t == "Star") & (u < 0.10)] = "TTauri*"
    obj2["otype"] = t
    new = np.flatnonzero(~matched & (rng.random(n) < 0.05))
    r2 = SIMBAD_RADIUS_ARCSEC * 0.95 * np.sqrt(rng.random(len(new))) / 3600
    a2, d2 = _offset(ra[new], dec[new], r2, rng.uniform(0, 2 * np.pi, len(new)))
    add = pd.DataFrame({"main_id": [f"SIM {i:07d}" for i in range(len(obj), len(obj) + len(new))],
                        "ra": a2, "dec": d2, "otype": true_label[new].astype(str)})
    return obj, pd.concat([obj2, add], ignore_index=True)


def expected_crossmatch(names_, ra, dec, objects: pd.DataFrame,
                        radius_arcsec: float = SIMBAD_RADIUS_ARCSEC) -> pd.DataFrame:
    """Nearest SIMBAD object within the radius for every source (NA where none)."""
    i1, i2, sep = crossmatch(ra, dec, objects["ra"].to_numpy(), objects["dec"].to_numpy(),
                             radius_arcsec)
    order = np.lexsort((sep, i1))
    i1, i2, sep = i1[order], i2[order], sep[order]
    first = np.r_[True, i1[1:] != i1[:-1]]
    i1, i2, sep = i1[first], i2[first], sep[first]
    out = pd.DataFrame({"name": pd.array(names_, dtype="string")})
    main_id = np.full(len(out), None, dtype=object)
    otype = np.full(len(out), None, dtype=object)
    separation = np.full(len(out), np.nan)
    main_id[i1] = objects["main_id"].to_numpy()[i2]
    otype[i1] = objects["otype"].to_numpy()[i2]
    separation[i1] = sep
    out["main_id"] = pd.array(main_id, dtype="string")
    out["otype"] = pd.array(otype, dtype="string")
    out["separation_arcsec"] = separation
    return out


def generate_sample(n_sources: int | None = None, *, n_detections: int | None = None,
                    seed: int = 0, start: date = date(2000, 1, 1), end: date = date(2025, 12, 31),
                    below_cut_fraction: float = 0.0, stats: dict | None = None) -> Sample:
    """A deterministic CSC-like catalog with ``n_sources`` sources or ``n_detections`` rows.

    ``below_cut_fraction`` of detections fail the paper's cuts (flux_significance_b <= 5 or
    powlaw_gamma / bb_kt null), so that services applying the cuts return fewer rows.
    With ``n_detections`` the detections frame has exactly that many rows before the ~1%
    ambiguous duplicates (match_type 'a') are added.
    """
    if (n_sources is None) == (n_detections is None):
        raise ValueError("give exactly one of n_sources and n_detections")
    stats = stats or load_stats()
    rng = np.random.default_rng(seed)
    if n_detections is not None:
        guess = int(n_detections / MEAN_DETECTIONS * 1.1) + 20
        k = _multiplicity(rng, guess)
        while k.sum() < n_detections:
            k = np.concatenate([k, _multiplicity(rng, guess)])
        cum = np.cumsum(k)
        ns = int(np.searchsorted(cum, n_detections)) + 1
        k = k[:ns]
        k[-1] -= cum[ns - 1] - n_detections
    else:
        ns = int(n_sources)
        k = _multiplicity(rng, ns)

    # classes and their Galactic / extragalactic field pools
    classes = list(stats["classes"])
    counts = np.array([stats["classes"][c]["count"] for c in classes], float)
    cls = rng.choice(len(classes), ns, p=counts / counts.sum())
    cls_names = np.array(classes, dtype=object)[cls]
    galactic = np.isin(cls_names, GALACTIC_CLASSES)
    other = cls_names == "other"
    galactic[other] = rng.random(other.sum()) < 0.5

    # fields (pool 0 Galactic, pool 1 extragalactic), each with nobs observations
    f_ra, f_dec, f_nobs, src_field = [], [], [], np.empty(ns, dtype=np.int64)
    base = 0
    for pool_gal in (True, False):
        members = np.flatnonzero(galactic == pool_gal)
        nf = max(2, math.ceil(len(members) / SOURCES_PER_FIELD))
        ra_c, dec_c, nobs = _fields(rng, nf, pool_gal)
        order = np.argsort(nobs, kind="stable")
        nobs_sorted = nobs[order]
        lo = np.searchsorted(nobs_sorted, k[members], "left")
        pick = lo + np.floor(rng.random(len(members)) * (nf - lo)).astype(np.int64)
        src_field[members] = base + order[pick]
        f_ra.append(ra_c)
        f_dec.append(dec_c)
        f_nobs.append(nobs)
        base += nf
    f_ra, f_dec, f_nobs = map(np.concatenate, (f_ra, f_dec, f_nobs))
    n_fields = len(f_nobs)

    # observations: dated uniformly, ObsIDs increasing with date, randomly given to fields
    n_obs = int(f_nobs.sum())
    mjd0, mjd1 = mjd(start), mjd(end) + 1.0
    obs_mjd = np.sort(rng.uniform(mjd0, mjd1, n_obs))
    obsid = np.sort(rng.choice(np.arange(1, max(30000, 3 * n_obs)), n_obs, replace=False))
    field_obs = rng.permutation(n_obs)  # field f owns field_obs[f_start[f]: f_start[f]+nobs]
    f_start = np.cumsum(f_nobs) - f_nobs
    obs_field = np.empty(n_obs, dtype=np.int64)
    obs_field[field_obs] = np.repeat(np.arange(n_fields), f_nobs)
    jit = rng.uniform(0, 1.0 / 60, n_obs)
    p_ra, p_dec = _offset(f_ra[obs_field], f_dec[obs_field], jit, rng.uniform(0, 2 * np.pi, n_obs))
    exposure = np.clip(rng.lognormal(math.log(20e3), 0.8, n_obs), 1e3, 2e5)

    # source positions in their fields and unique CSC names
    r = FIELD_RADIUS_ARCMIN / 60 * np.sqrt(rng.random(ns))
    s_ra, s_dec = _offset(f_ra[src_field], f_dec[src_field], r, rng.uniform(0, 2 * np.pi, ns))
    s_ra, s_dec, s_name = _unique_names(rng, s_ra, s_dec)

    # detections: source s is seen in k[s] consecutive observations of its field
    n_det = int(k.sum())
    det_src = np.repeat(np.arange(ns), k)
    j = np.arange(n_det) - np.repeat(np.cumsum(k) - k, k)
    fld = src_field[det_src]
    first = np.floor(rng.random(ns) * f_nobs[src_field]).astype(np.int64)
    det_obs = field_obs[f_start[fld] + (first[det_src] + j) % f_nobs[fld]]

    # features from their own stream: the feature model does not move positions or SIMBAD
    d = _features(np.random.default_rng([seed, 1]), cls, det_src, stats)
    d.update(_detection_columns(rng, d, det_src, det_obs, s_ra, s_dec, p_ra, p_dec,
                                obs_mjd, exposure, below_cut_fraction))
    d["obsid"] = obsid[det_obs]

    # master-source columns
    sig = d["flux_significance_b"]
    starts = np.cumsum(k) - k
    src = {
        "name": s_name, "ra": s_ra, "dec": s_dec,
        "err_ellipse_r0": np.clip(rng.lognormal(math.log(0.9), 0.5, ns), 0.1, 30.0),
        "significance": np.maximum.reduceat(sig, starts),
        "likelihood_class": np.where(rng.random(ns) < 0.95, "TRUE", "MARGINAL"),
    }
    sources = pd.DataFrame(src)[names(SOURCE_COLUMNS)]

    # region ids within each ObsID, then ~1% ambiguous rows duplicated under a field neighbour
    d["obi"] = np.zeros(n_det, dtype=np.int64)
    order = np.argsort(det_obs, kind="stable")
    grp_first = np.r_[True, det_obs[order][1:] != det_obs[order][:-1]]
    grp_start = np.maximum.accumulate(np.where(grp_first, np.arange(n_det), 0))
    region = np.empty(n_det, dtype=np.int64)
    region[order] = np.arange(n_det) - grp_start + 1
    d["region_id"] = region
    by_field = np.argsort(src_field, kind="stable")
    neighbour = np.full(ns, -1)
    same = src_field[by_field[1:]] == src_field[by_field[:-1]]
    neighbour[by_field[:-1][same]] = by_field[1:][same]
    cand = np.flatnonzero((neighbour[det_src] >= 0) & (rng.random(n_det) < 0.005))
    rows = np.concatenate([np.arange(n_det), cand])
    row_src = np.concatenate([det_src, neighbour[det_src[cand]]])
    match = np.full(n_det, "u", dtype=object)
    match[cand] = "a"
    d["match_type"] = match
    resort = np.lexsort((d["obsid"][rows], row_src))
    rows, row_src = rows[resort], row_src[resort]
    det_cols = pd.DataFrame({c: np.asarray(d[c])[rows] for c in names(DETECTION_COLUMNS)})
    det_cols["match_type"] = det_cols["match_type"].astype("string")
    detections = pd.concat([sources.take(row_src).reset_index(drop=True), det_cols], axis=1)

    observations = pd.DataFrame({
        "obsid": obsid, "gti_mjd_obs": obs_mjd,
        "obs_date": pd.to_datetime(obs_mjd - 40587.0, unit="D").normalize(),
        "ra_pnt": p_ra, "dec_pnt": p_dec, "exposure": exposure,
    })

    true_label = cls_names.copy()
    oth = np.flatnonzero(other)
    true_label[oth] = _choice_by_counts(rng, stats["other_types"], len(oth))
    objs, objs2 = _simbad(rng, s_ra, s_dec, true_label, stats)
    gl, gb = icrs_to_galactic(s_ra, s_dec)
    return Sample(
        sources=sources, detections=detections, observations=observations,
        simbad=expected_crossmatch(s_name, s_ra, s_dec, objs),
        simbad_epoch2=expected_crossmatch(s_name, s_ra, s_dec, objs2),
        simbad_objects=objs, simbad_objects_epoch2=objs2,
        truth=pd.DataFrame({"name": s_name, "true_class": cls_names.astype(str),
                            "label": true_label.astype(str), "glon": gl, "glat": gb}),
        seed=seed, meta={"n_fields": n_fields, "n_observations": n_obs},
    )


def _detection_columns(rng, f, det_src, det_obs, s_ra, s_dec, p_ra, p_dec, obs_mjd, exposure,
                       below_cut_fraction) -> dict[str, np.ndarray]:
    """All raw per-observation columns besides the features, consistent with them."""
    n = len(det_src)
    out: dict[str, np.ndarray] = {}
    ra, dec = s_ra[det_src], s_dec[det_src]
    pos_err = rng.normal(0.0, 0.3 / 3600, (2, n))
    out["det_ra"] = np.mod(ra + pos_err[0] / np.maximum(np.cos(np.radians(dec)), 1e-3), 360.0)
    out["det_dec"] = np.clip(dec + pos_err[1], -90.0, 90.0)
    dra = (ra - p_ra[det_obs] + 180.0) % 360.0 - 180.0
    out["theta"] = np.hypot(dra * np.cos(np.radians(dec)), dec - p_dec[det_obs]) * 60.0
    sig = 5.0 + rng.lognormal(math.log(3.0), 0.9, n)
    fail = rng.random(n) < below_cut_fraction
    sig[fail] = rng.uniform(1.0, 5.0, fail.sum())
    out["flux_significance_b"] = sig
    out["likelihood"] = np.maximum(0.5 * sig**2 + rng.normal(0, 2.0, n), 0.0)
    rate = np.clip(rng.lognormal(math.log(3e-3), 1.2, n), 1e-6, None)
    flux = rate / rng.uniform(250.0, 500.0, n)
    rel = 1.645 / sig
    out.update(flux_aper_b=flux, flux_aper_b_lolim=flux * np.clip(1 - rel, 0, None),
               flux_aper_b_hilim=flux * (1 + rel))
    for hr in ("hard_hm", "hard_hs", "hard_ms"):
        h = np.clip(f[hr], -1.0, 1.0)
        e = rng.uniform(0.03, 0.25, n)
        out[hr] = h
        out[f"{hr}_lolim"] = np.clip(h - e, -1.0, 1.0)
        out[f"{hr}_hilim"] = np.clip(h + e, -1.0, 1.0)
    g, kt = f["powlaw_gamma"], f["bb_kt"]
    eg = rng.uniform(0.1, 0.6, n) * (1 + np.abs(g))
    out.update(powlaw_gamma=g, powlaw_gamma_lolim=g - eg, powlaw_gamma_hilim=g + eg)
    out["powlaw_nh"] = np.clip(rng.lognormal(math.log(20.0), 1.2, n), 0.01, 1e5)
    out.update(bb_kt=kt, bb_kt_lolim=kt * rng.uniform(0.6, 0.95, n),
               bb_kt_hilim=kt * rng.uniform(1.05, 1.6, n))
    nulls = fail & (rng.random(n) < 0.5)
    for c in ("powlaw_gamma", "powlaw_gamma_lolim", "powlaw_gamma_hilim", "bb_kt",
              "bb_kt_lolim", "bb_kt_hilim"):
        out[c] = np.where(nulls, np.nan, out[c])
    # band count rates from the hardness ratios: M/S and H/M from hard_ms and hard_hm
    ms = np.clip(out["hard_ms"], -0.999, 0.999)
    hm = np.clip(out["hard_hm"], -0.999, 0.999)
    m_s = (1 + ms) / (1 - ms)
    h_m = (1 + hm) / (1 - hm)
    s_rate = rate / (1 + m_s + m_s * h_m)
    means = {"b": rate, "s": s_rate, "m": s_rate * m_s, "h": s_rate * m_s * h_m}
    ratios = {"b": f["var_ratio_b"], "h": f["var_ratio_h"], "s": f["var_ratio_s"]}
    ratios["m"] = np.sqrt(ratios["h"] * ratios["s"])
    probs = {"b": f["var_prob_b"], "h": f["var_prob_h"], "s": f["var_prob_s"]}
    probs["m"] = np.clip((probs["h"] + probs["s"]) / 2 + rng.normal(0, 0.05, n), 0.0, 1.0)
    for b in "bhms":
        mean, ratio = means[b], np.clip(ratios[b], 0.0, None)
        spread = ratio * rng.uniform(1.0, 2.5, n)
        out[f"var_prob_{b}"] = np.clip(probs[b], 0.0, 1.0)
        out[f"var_mean_{b}"] = mean
        out[f"var_sigma_{b}"] = ratio * mean
        out[f"var_min_{b}"] = mean * np.clip(1 - spread, 0.0, 1.0)
        out[f"var_max_{b}"] = mean * (1 + spread * rng.uniform(0.8, 1.5, n))
        out[f"ks_prob_{b}"] = np.clip(probs[b] + rng.normal(0, 0.1, n), 0.0, 1.0)
        out[f"kp_prob_{b}"] = np.clip(probs[b] + rng.normal(0, 0.1, n), 0.0, 1.0)
    t0 = (obs_mjd[det_obs] - CHANDRA_MJDREF) * 86400.0
    out.update(gti_start=t0, gti_stop=t0 + exposure[det_obs], gti_mjd_obs=obs_mjd[det_obs])
    return out
