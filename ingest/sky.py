"""Vectorized sky helpers: Galactic rotation, angular distance, crossmatch, CSC names."""

from __future__ import annotations

import itertools
import re

import numpy as np

#: ICRS -> Galactic rotation (Hipparcos definition, as in astropy); Galactic -> ICRS is its
#: transpose.
_ICRS_TO_GAL = np.array([
    [-0.0548755604162154, -0.8734370902348850, -0.4838350155487132],
    [+0.4941094278755837, -0.4448296299600112, +0.7469822444972189],
    [-0.8676661490190047, -0.1980763734312015, +0.4559837761750669],
])

#: CSC 2.x source name: ``2CXO Jhhmmss.s±ddmmss`` with an optional trailing ``X``.
NAME_PATTERN = r"2CXO J(\d{2})(\d{2})(\d{2})\.(\d)([+-])(\d{2})(\d{2})(\d{2})X?"
NAME_RE = re.compile(NAME_PATTERN)


def _to_xyz(lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    lon, lat = np.radians(lon), np.radians(lat)
    return np.stack([np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)])


def _from_xyz(xyz: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    lon = np.degrees(np.arctan2(xyz[1], xyz[0])) % 360.0
    lat = np.degrees(np.arcsin(np.clip(xyz[2], -1.0, 1.0)))
    return lon, lat


def galactic_to_icrs(l_deg, b_deg) -> tuple[np.ndarray, np.ndarray]:
    """(ra, dec) in degrees of Galactic (l, b) in degrees."""
    return _from_xyz(_ICRS_TO_GAL.T @ _to_xyz(np.asarray(l_deg), np.asarray(b_deg)))


def icrs_to_galactic(ra_deg, dec_deg) -> tuple[np.ndarray, np.ndarray]:
    """(l, b) in degrees of ICRS (ra, dec) in degrees."""
    return _from_xyz(_ICRS_TO_GAL @ _to_xyz(np.asarray(ra_deg), np.asarray(dec_deg)))


def separation_arcsec(ra1, dec1, ra2, dec2) -> np.ndarray:
    """Angular distance in arcsec (haversine, exact at small separations)."""
    ra1, dec1, ra2, dec2 = (np.radians(np.asarray(x, dtype=float)) for x in (ra1, dec1, ra2, dec2))
    h = np.sin((dec2 - dec1) / 2) ** 2 + np.cos(dec1) * np.cos(dec2) * np.sin((ra2 - ra1) / 2) ** 2
    return np.degrees(2 * np.arcsin(np.sqrt(np.clip(h, 0.0, 1.0)))) * 3600.0


class SkyIndex:
    """A k-d tree over a catalogue's unit vectors, built once: :meth:`pairs` costs what the
    queried positions find, not a pass over the whole catalogue (the sweep sorts it all at
    every call, so matching a catalogue in chunks was quadratic).

    Candidates are the points within a chord a little longer than the radius's
    (2 sin(r/2), plus a margin far above rounding); the kept pairs are those whose
    haversine separation is <= the radius, ordered by ``i1``, then by the catalogue
    position's place in its stable Dec order (the order of the Dec sweep this replaced)."""

    #: relative margin on the chord radius (rounding of the unit vectors is ~1e-16)
    MARGIN = 1e-9

    def __init__(self, ra, dec) -> None:
        from scipy.spatial import cKDTree

        self.ra, self.dec = np.asarray(ra, float), np.asarray(dec, float)
        self.tree = cKDTree(_to_xyz(self.ra, self.dec).T) if len(self.ra) else None
        order = np.argsort(self.dec, kind="stable")
        self.rank = np.empty(len(order), dtype=np.int64)  # place in the stable Dec order
        self.rank[order] = np.arange(len(order))

    def __len__(self) -> int:
        return len(self.ra)

    def pairs(self, ra1, dec1, radius_arcsec: float):
        """(i1, i2, sep_arcsec) of every pair within ``radius_arcsec``."""
        ra1, dec1 = np.asarray(ra1, float), np.asarray(dec1, float)
        empty = np.zeros(0, dtype=np.int64)
        if self.tree is None or len(ra1) == 0:
            return empty, empty, np.zeros(0)
        r = np.radians(min(float(radius_arcsec), 648000.0) / 3600.0)
        chord = 2.0 * np.sin(r / 2.0) * (1.0 + self.MARGIN) + 1e-15
        found = self.tree.query_ball_point(_to_xyz(ra1, dec1).T, chord)
        n = np.fromiter((len(f) for f in found), dtype=np.int64, count=len(found))
        i1 = np.repeat(np.arange(len(ra1), dtype=np.int64), n)
        i2 = np.fromiter(itertools.chain.from_iterable(found), dtype=np.int64,
                         count=int(n.sum()))
        sep = separation_arcsec(ra1[i1], dec1[i1], self.ra[i2], self.dec[i2])
        keep = sep <= radius_arcsec
        i1, i2, sep = i1[keep], i2[keep], sep[keep]
        order = np.lexsort((self.rank[i2], i1))
        return i1[order], i2[order], sep[order]


def crossmatch(ra1, dec1, ra2, dec2, radius_arcsec: float):
    """All pairs (i1, i2, sep_arcsec) with separation <= radius, in :class:`SkyIndex`'s
    order, through a :class:`SkyIndex` of cat2 (build one and keep it to match the same
    catalogue many times)."""
    return SkyIndex(ra2, dec2).pairs(ra1, dec1, radius_arcsec)


def _digits(values: np.ndarray, width: int) -> np.ndarray:
    """(N, width) ASCII digit codes of non-negative integers, zero padded."""
    powers = 10 ** np.arange(width - 1, -1, -1)
    return (values[:, None] // powers % 10 + ord("0")).astype(np.uint8)


def csc_names(ra_deg, dec_deg) -> np.ndarray:
    """CSC names ``2CXO Jhhmmss.s±ddmmss`` of positions, truncated (not rounded) like CSC."""
    ra = np.mod(np.asarray(ra_deg, float), 360.0)
    dec = np.asarray(dec_deg, float)
    tenths = np.floor(ra / 15.0 * 36000.0 + 1e-7).astype(np.int64) % (24 * 36000)
    arcsec = np.floor(np.abs(dec) * 3600.0 + 1e-7).astype(np.int64)
    n = len(ra)
    out = np.empty((n, 21), dtype=np.uint8)
    out[:, :6] = np.frombuffer(b"2CXO J", dtype=np.uint8)
    out[:, 6:8] = _digits(tenths // 36000, 2)
    out[:, 8:10] = _digits(tenths // 600 % 60, 2)
    out[:, 10:12] = _digits(tenths // 10 % 60, 2)
    out[:, 12] = ord(".")
    out[:, 13:14] = _digits(tenths % 10, 1)
    out[:, 14] = np.where(dec < 0, ord("-"), ord("+"))
    out[:, 15:17] = _digits(arcsec // 3600, 2)
    out[:, 17:19] = _digits(arcsec // 60 % 60, 2)
    out[:, 19:21] = _digits(arcsec % 60, 2)
    return out.view("S21").ravel().astype(str)
