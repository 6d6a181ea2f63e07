"""The sky map's projections against their defining properties (no database)."""

from __future__ import annotations

import numpy as np
import pytest

from web.projection import EXTENT, galactic, project


def test_aitoff_is_linear_on_the_equator_and_the_central_meridian():
    lon = np.linspace(-179, 179, 37)
    x, y = project(lon, np.zeros_like(lon), "aitoff")
    assert np.allclose(x, -np.radians(lon)) and np.allclose(y, 0)  # east to the left
    lat = np.linspace(-89, 89, 37)
    x, y = project(np.zeros_like(lat), lat, "aitoff")
    assert np.allclose(x, 0) and np.allclose(y, np.radians(lat))


def test_mollweide_poles_equator_and_equal_area():
    x, y = project(np.array([0.0, 0.0, 90.0]), np.array([90.0, -90.0, 0.0]), "mollweide")
    assert np.allclose(y[:2], [np.sqrt(2), -np.sqrt(2)])
    assert np.isclose(x[2], -2 * np.sqrt(2) / np.pi * np.pi / 2)
    # Equal area: points uniform on the sphere are uniform in the ellipse, so the share with
    # |y| < b/2 is the band's share of the ellipse's area, 1/3 + sqrt(3)/(2 pi).
    rng = np.random.default_rng(1)
    n = 200_000
    lon, lat = rng.uniform(-180, 180, n), np.degrees(np.arcsin(rng.uniform(-1, 1, n)))
    x, y = project(lon, lat, "mollweide")
    a, b = EXTENT["mollweide"]
    assert np.all((x / a) ** 2 + (y / b) ** 2 <= 1 + 1e-9)
    share = np.mean(np.abs(y) < b / 2)
    assert share == pytest.approx(1 / 3 + np.sqrt(3) / (2 * np.pi), abs=0.005)


def test_every_point_lands_inside_its_ellipse():
    rng = np.random.default_rng(2)
    lon, lat = rng.uniform(-180, 180, 10_000), rng.uniform(-90, 90, 10_000)
    for proj in ("aitoff", "mollweide"):
        x, y = project(lon, lat, proj)
        a, b = EXTENT[proj]
        assert np.all(np.isfinite(x)) and np.all((x / a) ** 2 + (y / b) ** 2 <= 1 + 1e-9)


def test_galactic_centre_and_pole():
    lon, lat = galactic(np.array([266.40499, 192.85948]), np.array([-28.93617, 27.12825]))
    assert abs(((lon[0] + 180) % 360) - 180) < 0.01 and abs(lat[0]) < 0.01
    assert lat[1] == pytest.approx(90, abs=0.01)


def test_unknown_projection_is_refused():
    with pytest.raises(ValueError, match="unknown projection"):
        project(np.zeros(1), np.zeros(1), "hammer")
