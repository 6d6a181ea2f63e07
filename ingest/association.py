"""Probabilistic counterpart association (Budavári & Szalay 2008; NWAY, Salvato et al. 2018).

Pure numpy. For an X-ray source with circular 1σ position error σ_x and a candidate at
separation ψ with error σ_c (all arcsec), the two-way Bayes factor against "unrelated" is
``B = 2/s · exp(-ψ²/(2s))`` with ``s = σ_x² + σ_c²`` (in steradians; NWAY's ``log_bf2``),
and the prior of one pair being the same object is ``c / N_sky`` (``c``: the prior
completeness, the share of X-ray sources expected to have a counterpart in that catalogue;
``N_sky``: the catalogue's number of objects over the whole sky at the local density ρ,
counted as NWAY does with the candidate itself, N+1). Their product, the weight of candidate
``i``, is the likelihood ratio

    w_i = c · exp(-ψ_i² / (2 s_i)) / (2π s_i) / ρ     (ρ per arcsec², s in arcsec²)

and, exactly as NWAY's ``nway_match`` for two catalogues (the no-counterpart hypothesis has
weight 1):

    p_any = Σ w_i / (1 + Σ w_i)     (the source has some counterpart in the catalogue)
    p_i   = w_i / Σ w_i             (given one, candidate i is it)

computed in logarithms (log-sum-exp per source), so no weight under- or overflows.
"""

from __future__ import annotations

import math

import numpy as np

#: 95% containment radius of a circular 2-D Gaussian in units of σ: sqrt(2 ln 20).
R95_PER_SIGMA = math.sqrt(2.0 * math.log(20.0))
#: Search radius in σ of the combined error: a true counterpart lies farther out with
#: probability exp(-k²/2) = 1e-4 (Rayleigh distribution).
SEARCH_SIGMAS = math.sqrt(2.0 * math.log(1e4))


def xray_sigma(err_ellipse_r0, floor: float = 0.1) -> np.ndarray:
    """1σ circular X-ray position error (arcsec) from CSC's 95% ellipse major radius
    ``err_ellipse_r0``: r0 / sqrt(2 ln 20) (conservative: the major axis for both), at
    least ``floor``; a missing r0 counts as 1" (95%)."""
    r0 = np.asarray(err_ellipse_r0, dtype=float)
    r0 = np.where(np.isfinite(r0) & (r0 > 0), r0, 1.0)
    return np.maximum(r0 / R95_PER_SIGMA, floor)


def search_radius(sigma_x, sigma_cat: float, *, min_arcsec: float = 1.0,
                  max_arcsec: float = 10.0) -> np.ndarray:
    """Candidate radius (arcsec): k·sqrt(σ_x² + σ_cat²), k = sqrt(2 ln 10⁴) ≈ 4.29, clipped
    to [min_arcsec, max_arcsec]."""
    s = np.sqrt(np.asarray(sigma_x, float) ** 2 + sigma_cat ** 2)
    return np.clip(SEARCH_SIGMAS * s, min_arcsec, max_arcsec)


def ring_density(n_ring, inner_arcsec, outer_arcsec: float) -> np.ndarray:
    """Local density (objects per arcsec²) from the objects between the candidate radius and
    the density radius, counted as NWAY counts (N+1): (n + 1) / (π (R² - r²))."""
    inner = np.asarray(inner_arcsec, float)
    area = math.pi * (outer_arcsec ** 2 - inner ** 2)
    return (np.asarray(n_ring, float) + 1.0) / area


def log_weights(sep, sigma_x, sigma_c, density, completeness) -> np.ndarray:
    """ln w_i per candidate (see the module docstring)."""
    s = np.asarray(sigma_x, float) ** 2 + np.asarray(sigma_c, float) ** 2
    sep = np.asarray(sep, float)
    return (np.log(completeness) - sep * sep / (2.0 * s) - np.log(2.0 * math.pi * s)
            - np.log(np.asarray(density, float)))


def associate(group, sep, sigma_x, sigma_c, density, completeness
              ) -> tuple[np.ndarray, np.ndarray]:
    """(p_any per candidate's group, p_i per candidate).

    ``group``: integer id of each candidate's X-ray source (any order); the other arguments
    are per candidate (``sigma_x`` and ``density`` repeated for the candidates of a source).
    ``p_any`` is returned per candidate (equal within a group).
    """
    group = np.asarray(group)
    lw = log_weights(sep, sigma_x, sigma_c, density, completeness)
    if lw.size == 0:
        return np.empty(0), np.empty(0)
    _, inv = np.unique(group, return_inverse=True)
    n = int(inv.max()) + 1
    top = np.full(n, -np.inf)
    np.maximum.at(top, inv, lw)
    total = np.bincount(inv, weights=np.exp(lw - top[inv]), minlength=n)
    log_sum = top + np.log(total)
    p_i = np.exp(lw - log_sum[inv])
    p_any = 1.0 / (1.0 + np.exp(-log_sum))  # S / (1 + S), stable for any S
    return p_any[inv], p_i
