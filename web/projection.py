"""Whole-sky projections in numpy (galactic coordinates, l increasing to the left)."""

from __future__ import annotations

import numpy as np

PROJECTIONS = ("aitoff", "mollweide")
#: Half-width and half-height of each projection's ellipse (its x and y ranges).
EXTENT = {"aitoff": (np.pi, np.pi / 2), "mollweide": (2 * np.sqrt(2), np.sqrt(2))}


def galactic(ra: np.ndarray, dec: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """ICRS (deg) to galactic l, b (deg), vectorised with astropy."""
    from astropy import units as u
    from astropy.coordinates import SkyCoord

    if len(ra) == 0:
        return np.zeros(0), np.zeros(0)
    g = SkyCoord(ra=ra * u.deg, dec=dec * u.deg, frame="icrs").galactic
    return g.l.deg, g.b.deg


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
