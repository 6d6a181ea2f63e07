"""The class pseudo-inverse a fit stores passes the model check (symmetric within its
tolerance), and is numpy's own result whenever that already does."""

from __future__ import annotations

import numpy as np

from classifier.model import class_pinv
from classifier.model_check import REL_TOL, _psd


def _covariances(n: int = 200):
    rng = np.random.default_rng(0)
    for _ in range(n):
        rows, d = int(rng.integers(2, 6)), 6
        Z = rng.normal(size=(rows, d)) * 10.0 ** rng.uniform(-6, 3, size=d)
        yield np.cov(Z, rowvar=False, ddof=1)


def _asym(p: np.ndarray) -> float:
    return float(np.abs(p - p.T).max() / np.abs(p).max())


def test_an_asymmetric_pseudo_inverse_is_symmetrised_and_passes_the_check():
    covs = [c for c in _covariances() if _asym(np.linalg.pinv(c)) > REL_TOL]
    assert covs, "the draw has no near-singular covariance with an asymmetric pinv"
    for cov in covs:
        _psd(class_pinv(cov)[None], "class_pinv")  # refused before: "not symmetric"


def test_other_pseudo_inverses_are_left_bit_for_bit():
    kept = [c for c in _covariances() if _asym(np.linalg.pinv(c)) <= REL_TOL]
    assert kept
    for cov in kept:
        assert np.array_equal(class_pinv(cov), np.linalg.pinv(cov))
