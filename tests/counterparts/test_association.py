"""The association method on hand-checked cases, and against NWAY's own implementation."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from ingest.association import (
    R95_PER_SIGMA,
    SEARCH_SIGMAS,
    associate,
    log_weights,
    ring_density,
    search_radius,
    xray_sigma,
)
from ingest.counterparts import (
    CATALOGUES,
    AssociationParams,
    associate_neighbours,
    neighbours_frame,
)


def test_constants_and_radius_formula():
    # 95% of a circular 2-D Gaussian lies within 2.4477 sigma; 1e-4 beyond 4.2919 sigma
    assert R95_PER_SIGMA == pytest.approx(2.44775, abs=1e-5)
    assert math.exp(-SEARCH_SIGMAS ** 2 / 2) == pytest.approx(1e-4)
    np.testing.assert_allclose(xray_sigma([2.44775, 0.01, np.nan]), [1.0, 0.1, 1 / 2.44775],
                               rtol=1e-5)
    r = search_radius(np.array([0.3, 1.0, 5.0]), 0.1)
    np.testing.assert_allclose(r, [4.2919 * math.sqrt(0.1), 4.2919 * math.sqrt(1.01), 10.0],
                               rtol=1e-4)
    # (n + 1) / (pi (R^2 - r^2)), arcsec^-2
    assert ring_density(9, 10.0, 30.0)[()] == pytest.approx(10 / (math.pi * 800))


def test_one_candidate_at_zero_and_one_at_three_sigma():
    """Same source, σ_x = 1", σ_c = 0: weights ∝ exp(-ψ²/2), so p_i = 1/(1 + e^-4.5)."""
    p_any, p_i = associate([0, 0], [0.0, 3.0], [1.0, 1.0], [0.0, 0.0], [1e-3, 1e-3], 0.5)
    assert p_i[0] == pytest.approx(1 / (1 + math.exp(-4.5)))
    assert p_i[1] == pytest.approx(math.exp(-4.5) / (1 + math.exp(-4.5)))
    w0 = 0.5 / (2 * math.pi * 1.0) / 1e-3  # c · f(0) / ρ by hand = 79.577
    s = w0 * (1 + math.exp(-4.5))
    assert p_any == pytest.approx([s / (1 + s)] * 2)
    assert log_weights(0.0, 1.0, 0.0, 1e-3, 0.5)[()] == pytest.approx(math.log(w0))


def test_density_dependence_and_error_dependence():
    """The same single candidate is less likely the counterpart where the sky is crowded,
    and a far candidate is likelier with a larger position error."""
    dens = np.array([1e-4, 1e-3, 1e-2, 1e-1])
    p_any, p_i = associate(np.arange(4), np.full(4, 1.0), np.ones(4), np.zeros(4), dens, 0.5)
    assert np.all(np.diff(p_any) < 0) and np.all(p_i == 1.0)
    w = 0.5 * math.exp(-0.5) / (2 * math.pi) / dens
    np.testing.assert_allclose(p_any, w / (1 + w))
    small, _ = associate([0], [3.0], [0.5], [0.0], [1e-3], 0.5)
    large, _ = associate([0], [3.0], [2.0], [0.0], [1e-3], 0.5)
    assert large[0] > small[0]
    # a prior completeness closer to 1 raises p_any; the p_i among candidates do not change
    lo = associate([0, 0], [0.5, 1.5], [1, 1], [0, 0], [1e-2, 1e-2], 0.2)
    hi = associate([0, 0], [0.5, 1.5], [1, 1], [0, 0], [1e-2, 1e-2], 0.9)
    assert hi[0][0] > lo[0][0]
    np.testing.assert_allclose(hi[1], lo[1])


def test_extreme_weights_do_not_overflow_and_groups_in_any_order():
    p_any, p_i = associate([7, 3, 7, 3], [0.0, 50.0, 40.0, 0.0], [0.01, 1.0, 0.01, 1.0],
                           [0.0, 0.0, 0.0, 0.0], [1e-9, 1e-9, 1e-9, 1e-9], 0.5)
    assert np.isfinite(p_any).all() and np.isfinite(p_i).all()
    assert p_i[0] == 1.0 and p_i[2] == 0.0 and p_any[0] == pytest.approx(1.0)
    assert p_any[1] == p_any[3] and p_i[1] + p_i[3] == pytest.approx(1.0)


def _frame(name, seps, sigma=0.01):
    cat = CATALOGUES["gaia"]
    n = len(seps)
    return neighbours_frame(cat, [name] * n, np.zeros(n), np.zeros(n), seps,
                            [f"{name}-{i}" for i in range(n)], None, None,
                            {"g_mag": np.arange(n, dtype=float)}).assign(sigma_arcsec=sigma)


def test_associate_neighbours_candidates_density_ring_and_choice():
    r0 = 2.44775  # σ_x = 1": candidate radius 4.29", ring 4.29"..30"
    src = pd.DataFrame({"name": ["A", "B", "C"], "err_ellipse_r0": [r0, r0, r0]})
    nb = pd.concat([_frame("A", [0.2, 3.0, 12.0, 20.0, 29.0, 31.0]),
                    _frame("B", [4.0]),
                    _frame("C", [12.0] * 50)], ignore_index=True)
    params = AssociationParams(density_radius_arcsec=30.0, min_p_any=0.5)
    cands, matches = associate_neighbours(src, nb, params)
    gaia = matches[matches["catalogue"] == "gaia"].set_index("name")
    assert list(cands.loc[cands["name"] == "A", "cp_id"]) == ["A-0", "A-1"]
    ring = math.pi * (30.0 ** 2 - (SEARCH_SIGMAS * math.sqrt(1 + 1e-4)) ** 2)
    lw = log_weights(np.array([0.2, 3.0]), 1.0, 0.01, 4 / ring, 0.5)  # 3 in ring (+1)
    s = np.exp(lw).sum()
    assert gaia.loc["A", "p_any"] == pytest.approx(s / (1 + s))
    assert gaia.loc["A", "cp_id"] == "A-0" and gaia.loc["A", "n_candidates"] == 2
    assert cands.loc[cands["cp_id"] == "A-0", "chosen"].item()
    assert not cands.loc[cands["cp_id"] == "A-1", "chosen"].item()
    assert gaia.loc["B", "n_candidates"] == 1 and gaia.loc["B", "p_any"] < 0.5
    assert pd.isna(gaia.loc["B", "cp_id"])  # best candidate, but p_any below the cut
    assert gaia.loc["C", "n_candidates"] == 0 and gaia.loc["C", "p_any"] == 0.0
    assert pd.isna(gaia.loc["C", "cp_id"])
    assert len(matches) == 3 * len(CATALOGUES)  # every source in every catalogue


def test_equals_nway_on_random_fields():
    """Our vectorised numbers equal NWAY 4.8.0's nway_match for two catalogues at its
    (global) density, over random fields with several candidates per source."""
    nwaylib = pytest.importorskip("nwaylib")
    from nwaylib.logger import NullOutputLogger

    rng = np.random.default_rng(1)
    n_x, n_c, area_deg2 = 60, 6000, 0.05
    side = math.sqrt(area_deg2)
    xra, xdec = rng.uniform(0, side, n_x), rng.uniform(0, side, n_x)
    xerr = rng.uniform(0.3, 2.0, n_x)
    cra, cdec = rng.uniform(0, side, n_c), rng.uniform(0, side, n_c)
    true = rng.random(n_x) < 0.6  # put a real counterpart near 60% of the X-ray sources
    k = np.flatnonzero(true)
    cra[k] = xra[k] + rng.normal(0, xerr[k]) / 3600 / np.cos(np.radians(xdec[k]))
    cdec[k] = xdec[k] + rng.normal(0, xerr[k]) / 3600
    cerr = rng.uniform(0.05, 0.3, n_c)
    radius, c = 8.0, 0.7
    table = nwaylib.nway_match(
        [dict(name="X", ra=xra, dec=xdec, error=xerr, area=area_deg2, mags=[], maghists=[],
              magnames=[]),
         dict(name="C", ra=cra, dec=cdec, error=cerr, area=area_deg2, mags=[], maghists=[],
              magnames=[])],
        match_radius=radius, prior_completeness=c, logger=NullOutputLogger())
    # pandas 3 moves NWAY's group key (the X row) into the index: take it back from there
    t = table.reset_index(level=0) if "X" not in table.columns else table
    t = t.reset_index(drop=True)
    t = t[t["C"] >= 0]
    density = (n_c + 1) / (area_deg2 * 3600 ** 2)  # NWAY's N+1 over the area, per arcsec²
    ix, ic = t["X"].to_numpy(int), t["C"].to_numpy(int)
    p_any, p_i = associate(ix, t["Separation_X_C"].to_numpy(), xerr[ix], cerr[ic],
                           np.full(len(t), density), c)
    assert len(t) > n_x  # several candidates per source
    np.testing.assert_allclose(p_any, t["prob_has_match"].to_numpy(), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(p_i, t["prob_this_match"].to_numpy(), rtol=1e-9, atol=1e-12)
