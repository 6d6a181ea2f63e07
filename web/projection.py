"""Whole-sky projections in numpy (galactic coordinates, l increasing to the left)."""

from __future__ import annotations

import functools

import numpy as np

PROJECTIONS = ("aitoff", "mollweide")
#: Half-width and half-height of each projection's ellipse (its x and y ranges).
EXTENT = {"aitoff": (np.pi, np.pi / 2), "mollweide": (2 * np.sqrt(2), np.sqrt(2))}


def galactic(ra: np.ndarray, dec: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """ICRS (deg) to galactic l, b (deg): astropy's ICRS-to-galactic rotation (a fixed
    matrix, taken from astropy once) applied to unit vectors in numpy."""
    ra = np.radians(np.asarray(ra, float))
    dec = np.radians(np.asarray(dec, float))
    v = np.stack([np.cos(dec) * np.cos(ra), np.cos(dec) * np.sin(ra), np.sin(dec)])
    g = _icrs_to_galactic() @ v.reshape(3, -1)
    lon = np.degrees(np.arctan2(g[1], g[0])) % 360.0
    lat = np.degrees(np.arcsin(np.clip(g[2], -1.0, 1.0)))
    return lon.reshape(ra.shape), lat.reshape(ra.shape)


@functools.cache
def _icrs_to_galactic() -> np.ndarray:
    """The rotation matrix: astropy's galactic coordinates of the ICRS axes (its rows)."""
    from astropy import units as u
    from astropy.coordinates import SkyCoord

    axes = SkyCoord(ra=[0, 90, 0] * u.deg, dec=[0, 0, 90] * u.deg, frame="icrs").galactic
    return np.asarray(axes.cartesian.xyz.value, float)  # columns: images of x, y, z


def project(lon: np.ndarray, lat: np.ndarray, projection: str) -> tuple[np.ndarray, np.ndarray]:
    """(lon, lat) in degrees to plane x, y; lon is wrapped to (-180, 180] and mirrored
    (astronomical convention: east to the left)."""
    lam = -np.radians((np.asarray(lon, float) + 180.0) % 360.0 - 180.0)
    phi = np.radians(np.asarray(lat, float))
    if projection == "aitoff":
        alpha = np.arccos(np.cos(phi) * np.cos(lam / 2))
        sinc = np.sinc(alpha / np.pi)  # numpy's sinc is sin(pi x)/(pi x)
        return 2 * np.cos(phi) * np.sin(lam / 2) / sinc, np.sin(phi) / sinc
    if projection == "mollweide":
        theta = phi.copy()
        target = np.pi * np.sin(phi)
        for _ in range(50):  # Newton on 2θ + sin 2θ = π sin φ
            f = 2 * theta + np.sin(2 * theta) - target
            d = 2 + 2 * np.cos(2 * theta)
            step = np.divide(f, d, out=np.zeros_like(f), where=d > 1e-12)
            theta -= step
            if np.max(np.abs(step), initial=0.0) < 1e-10:
                break
        return 2 * np.sqrt(2) / np.pi * lam * np.cos(theta), np.sqrt(2) * np.sin(theta)
    raise ValueError(f"unknown projection {projection!r}: expected one of {PROJECTIONS}")


def graticule(projection: str, step: float = 30.0) -> tuple[list, list]:
    """Lines of constant longitude and latitude (every ``step`` deg) and the outline."""
    xs, ys = [], []
    t = np.linspace(-90, 90, 91)
    for lon in np.arange(-180, 180.1, step):
        lo = np.clip(lon, -179.999, 179.999)
        x, y = project(np.full_like(t, lo), t, projection)
        xs.append(x.tolist())
        ys.append(y.tolist())
    s = np.linspace(-179.999, 179.999, 181)
    for lat in np.arange(-90 + step, 90, step):
        x, y = project(s, np.full_like(s, lat), projection)
        xs.append(x.tolist())
        ys.append(y.tolist())
    return xs, ys
