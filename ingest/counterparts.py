"""Optical/infrared counterparts of X-ray sources: Gaia DR3, 2MASS and AllWISE via CDS X-Match.

A *counterpart source* (the live :class:`CounterpartXMatch`, or the sample's in-memory one)
returns every catalogue object within the density radius of each X-ray source
(``neighbours``); :func:`associate_neighbours` turns them into candidates with NWAY's
probabilities (``ingest.association``) and chooses one per source and catalogue.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ingest.association import associate, ring_density, search_radius, xray_sigma
from ingest.errors import IngestError
from ingest.xmatch import XMATCH_URL, XMatchClient

#: Magnitude / astrometry columns stored per candidate (VizieR units: mag, mas, mas/yr).
VALUE_COLUMNS = ("g_mag", "bp_mag", "rp_mag", "parallax", "pm", "j_mag", "h_mag", "k_mag",
                 "w1_mag", "w2_mag", "w3_mag",
                 # their 1-sigma errors (db.models.COUNTERPART_ERRORS)
                 "e_g_mag", "e_bp_mag", "e_rp_mag", "e_j_mag", "e_h_mag", "e_k_mag",
                 "e_w1_mag", "e_w2_mag", "e_w3_mag")
NEIGHBOUR_COLUMNS = ("name", "catalogue", "cp_id", "ra", "dec", "separation_arcsec",
                     "sigma_arcsec", *VALUE_COLUMNS)


@dataclass(frozen=True)
class Catalogue:
    """A VizieR table as CDS X-Match returns it: its id, position and error columns."""

    name: str
    table: str
    id_col: str
    ra_col: str
    dec_col: str
    #: (major, minor) 1σ error columns and their unit in arcsec; None: ``default_sigma``.
    err_cols: tuple[str, str] | None
    err_scale: float
    #: typical 1σ position error (arcsec): the search radius and missing errors
    default_sigma: float
    values: dict[str, str]

    def columns(self) -> list[str]:
        """The VizieR columns cscat asks X-Match for (``cols2``)."""
        return [self.id_col, self.ra_col, self.dec_col, *(self.err_cols or ()),
                *self.values.values()]


CATALOGUES: dict[str, Catalogue] = {
    "gaia": Catalogue("gaia", "vizier:I/355/gaiadr3", "Source", "RA_ICRS", "DE_ICRS",
                      ("e_RA_ICRS", "e_DE_ICRS"), 1e-3, 0.01,
                      {"g_mag": "Gmag", "bp_mag": "BPmag", "rp_mag": "RPmag",
                       "parallax": "Plx", "pm": "PM", "e_g_mag": "e_Gmag",
                       "e_bp_mag": "e_BPmag", "e_rp_mag": "e_RPmag"}),
    "2mass": Catalogue("2mass", "vizier:II/246/out", "2MASS", "RAJ2000", "DEJ2000",
                       ("errHalfMaj", "errHalfMin"), 1.0, 0.1,
                       {"j_mag": "Jmag", "h_mag": "Hmag", "k_mag": "Kmag",
                        "e_j_mag": "e_Jmag", "e_h_mag": "e_Hmag", "e_k_mag": "e_Kmag"}),
    "allwise": Catalogue("allwise", "vizier:II/328/allwise", "AllWISE", "RAJ2000", "DEJ2000",
                         ("eeMaj", "eeMin"), 1.0, 0.2,
                         {"w1_mag": "W1mag", "w2_mag": "W2mag", "w3_mag": "W3mag",
                          "e_w1_mag": "e_W1mag", "e_w2_mag": "e_W2mag",
                          "e_w3_mag": "e_W3mag"}),
}


def neighbours_frame(cat: Catalogue, names, ra, dec, sep, ident, err_a, err_b,
                     values: dict[str, np.ndarray]) -> pd.DataFrame:
    """Rows of NEIGHBOUR_COLUMNS for one catalogue (errors in the catalogue's unit)."""
    n = len(names)
    if err_a is None:
        sigma = np.full(n, cat.default_sigma)
    else:
        a = np.asarray(err_a, float) * cat.err_scale
        b = np.asarray(err_b, float) * cat.err_scale
        sigma = np.sqrt((a * a + b * b) / 2.0)
        sigma = np.where(np.isfinite(sigma) & (sigma > 0), sigma, cat.default_sigma)
    out = pd.DataFrame({
        "name": pd.array(np.asarray(names).astype(str), dtype="string"),
        "catalogue": pd.array([cat.name] * n, dtype="string"),
        "cp_id": pd.array(np.asarray(ident).astype(str), dtype="string"),
        "ra": np.asarray(ra, float), "dec": np.asarray(dec, float),
        "separation_arcsec": np.asarray(sep, float), "sigma_arcsec": sigma,
    })
    for col in VALUE_COLUMNS:
        out[col] = np.asarray(values[col], float) if col in values else np.nan
    return out


def empty_neighbours() -> pd.DataFrame:
    """A NEIGHBOUR_COLUMNS frame without rows."""
    e = np.empty(0)
    return neighbours_frame(CATALOGUES["gaia"], e, e, e, e, e, None, None, {})


@dataclass(frozen=True)
class AssociationParams:
    """How candidates are chosen (``db.settings``: ``counterpart_*``)."""

    density_radius_arcsec: float = 20.0
    max_radius_arcsec: float = 10.0
    completeness: float = 0.5
    min_p_any: float = 0.5


def associate_neighbours(sources: pd.DataFrame, neighbours: pd.DataFrame,
                         params: AssociationParams = AssociationParams()
                         ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(candidates, matches) from every catalogue object near each source.

    ``sources``: ``name, err_ellipse_r0``. Candidates are the objects within the source's
    search radius (:func:`ingest.association.search_radius`); the objects between it and
    ``density_radius_arcsec`` give the local density. ``candidates``: NEIGHBOUR_COLUMNS +
    ``p_any, p_i, chosen``; ``matches``: one row per source and catalogue: ``name,
    catalogue, cp_id`` (the chosen one: highest ``p_i``, when ``p_any >= min_p_any``; else
    NA), ``p_any, p_i, separation_arcsec, n_candidates``.
    """
    src = sources[["name", "err_ellipse_r0"]].drop_duplicates("name").reset_index(drop=True)
    src_idx = pd.Index(src["name"].astype(str))
    sig_x = xray_sigma(src["err_ellipse_r0"].to_numpy(float))
    cands, matches = [], []
    for cat in CATALOGUES.values():
        nb = neighbours[neighbours["catalogue"] == cat.name]
        i = src_idx.get_indexer(nb["name"].astype(str))
        nb, i = nb[i >= 0], i[i >= 0]
        radius = search_radius(sig_x, cat.default_sigma,
                               max_arcsec=params.max_radius_arcsec)
        sep = nb["separation_arcsec"].to_numpy(float)
        inside = sep <= radius[i]
        ring = (~inside) & (sep <= params.density_radius_arcsec)
        n_ring = np.bincount(i[ring], minlength=len(src))
        density = ring_density(n_ring, radius, params.density_radius_arcsec)
        c, ci = nb[inside].reset_index(drop=True), i[inside]
        p_any, p_i = associate(ci, c["separation_arcsec"].to_numpy(float), sig_x[ci],
                               c["sigma_arcsec"].to_numpy(float), density[ci],
                               params.completeness)
        c = c.assign(p_any=p_any, p_i=p_i)
        # the best candidate of each source: highest p_i, then nearest, then id
        order = np.lexsort((c["cp_id"].to_numpy(str), c["separation_arcsec"].to_numpy(),
                            -c["p_i"].to_numpy(), ci))
        first = np.zeros(len(c), bool)
        if len(c):
            so = ci[order]
            first[order[np.r_[True, so[1:] != so[:-1]]]] = True
        c["chosen"] = first & (c["p_any"].to_numpy() >= params.min_p_any)
        cands.append(c)
        best = c[first]
        m = pd.DataFrame({"name": pd.array(src["name"].astype(str), dtype="string"),
                          "catalogue": pd.array([cat.name] * len(src), dtype="string")})
        bi = src_idx.get_indexer(best["name"].astype(str))
        cp = np.full(len(src), None, dtype=object)
        keep = best["chosen"].to_numpy()
        cp[bi[keep]] = best["cp_id"].to_numpy(object)[keep]
        m["cp_id"] = pd.array(cp, dtype="string")
        for col, fill in (("p_any", 0.0), ("p_i", np.nan), ("separation_arcsec", np.nan)):
            v = np.full(len(src), fill)
            v[bi] = best[col].to_numpy(float)
            m[col] = v
        m["n_candidates"] = np.bincount(ci, minlength=len(src)).astype(np.int64)
        matches.append(m)
    return (pd.concat(cands, ignore_index=True), pd.concat(matches, ignore_index=True))


class CounterpartXMatch(XMatchClient):
    """All Gaia DR3 / 2MASS / AllWISE objects within a radius of sources, via CDS X-Match,
    in batches, with retries (the settings of the SIMBAD crossmatch)."""

    known_tables = frozenset(c.table for c in CATALOGUES.values())
    radius_setting = "counterpart_density_radius_arcsec"

    def __init__(self, url: str = XMATCH_URL, *, radius_arcsec: float = 20.0,
                 batch_size: int = 5_000, **kw) -> None:
        super().__init__(url, radius_arcsec=radius_arcsec, batch_size=batch_size, **kw)

    def _query(self, cat: Catalogue, batch: pd.DataFrame, what: str) -> pd.DataFrame:
        def read_csv(resp) -> pd.DataFrame:
            return pd.read_csv(io.BytesIO(resp.content),
                               dtype={"cscat_name": str, cat.id_col: str})

        # CSV, and only the columns used: astropy's VOTable reader parses BINARY2 row by
        # row (16 s for 45,000 Gaia rows; pandas reads the CSV in 0.1 s)
        res = self.ask(batch, cat.table, read_csv,
                       label=f"counterpart X-Match {self.url} ({cat.table})",
                       asking=f"{cat.table} objects near {what}", what=what,
                       RESPONSEFORMAT="csv", cols2=",".join(cat.columns()))
        cols = set(res.columns)
        need = {"angDist", "cscat_name", cat.id_col, cat.ra_col, cat.dec_col,
                *cat.values.values()}
        if not need <= cols:
            raise IngestError(f"counterpart X-Match {self.url} ({cat.table}): {what}: missing "
                              f"columns {sorted(need - cols)}")

        def col(name: str) -> np.ndarray:
            return pd.to_numeric(res[name], errors="coerce").to_numpy(float)

        errs = cat.err_cols if cat.err_cols and set(cat.err_cols) <= cols else None
        return neighbours_frame(
            cat, np.asarray(res["cscat_name"]).astype(str), col(cat.ra_col), col(cat.dec_col),
            col("angDist"), np.asarray(res[cat.id_col]).astype(str),
            col(errs[0]) if errs else None, col(errs[1]) if errs else None,
            {k: col(v) for k, v in cat.values.items()})

    def neighbours(self, sources: pd.DataFrame,
                   on_progress: Callable[[int, int], None] | None = None) -> pd.DataFrame:
        """NEIGHBOUR_COLUMNS: every object of the three catalogues within the radius."""
        src = sources[["name", "ra", "dec"]].drop_duplicates("name").reset_index(drop=True)
        frames = [empty_neighbours()]
        total = len(src) * len(CATALOGUES)
        done = 0
        for cat in CATALOGUES.values():
            for batch, what in self.batches(src):
                frames.append(self._query(cat, batch, what))
                done += len(batch)
                if on_progress is not None:
                    on_progress(done, total)
        return pd.concat(frames[1:] or frames, ignore_index=True)
