"""Choosing the number of GMM components: BIC over K and seeds, its gradient, the flat point.

The paper fitted K = 2..20 and chose K = 6 where the BIC curve flattens. :func:`bic_curve`
returns the data for that plot. ``k_flat`` is the first K from which adding one more component
lowers the mean BIC by less than ``flat_fraction`` of the largest such drop (forward
differences ``BIC(K+1) - BIC(K)``, also returned as ``step``; ``gradient`` is ``np.gradient``
of the mean BIC, central differences, for plotting).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from ._parallel import fit_gmm
from .features import DEFAULT_FEATURES, LOG_FEATURES, SCALE_FEATURES
from .transform import FeatureTransform, feature_matrix


def bic_curve(
    X: pd.DataFrame,
    features: list[str] | None = None,
    log_features: list[str] | None = None,
    scale_features: list[str] | None = None,
    ks: Iterable[int] = range(2, 21),
    seeds: Iterable[int] = (0, 1, 2, 3, 4),
    flat_fraction: float = 0.1,
    n_jobs: int | None = None,
) -> dict:
    """BIC of ``GaussianMixture(k, 'full', random_state=seed)`` on the transformed valid rows.

    Returns a JSON-serializable dict: ``ks``, ``seeds``, ``bic`` (one list per seed),
    ``bic_mean``, ``bic_std``, ``gradient`` (``np.gradient`` of the mean over ``ks``),
    ``step``, ``k_flat``, ``n_rows`` and ``n_invalid``.
    """
    feats = list(DEFAULT_FEATURES if features is None else features)
    logf = [f for f in LOG_FEATURES if f in feats] if log_features is None else list(log_features)
    scal = (
        [f for f in SCALE_FEATURES if f in feats]
        if scale_features is None
        else list(scale_features)
    )
    ks, seeds = [int(k) for k in ks], [int(s) for s in seeds]
    A = feature_matrix(X, feats)
    t = FeatureTransform(feats, logf, scal)
    reasons = t.fit(A)
    ok = reasons == None  # noqa: E711
    Z = t.transform(A[ok])
    bic = np.array([[fit_gmm(Z, k, s, n_jobs).bic(Z) for k in ks] for s in seeds])
    mean = bic.mean(axis=0)
    grad = np.gradient(mean, np.array(ks, dtype=float)) if len(ks) > 1 else np.zeros(len(ks))
    step = np.diff(mean)  # BIC(K+1) - BIC(K), for consecutive entries of ks
    gain = np.maximum(-step, 0.0)
    if gain.size and gain.max() > 0:
        flat = np.flatnonzero(gain < flat_fraction * gain.max())
        k_flat = int(ks[flat[0]]) if flat.size else None  # None: still dropping at the end
    else:
        k_flat = ks[0] if ks else None  # adding components never helps
    return {
        "ks": ks,
        "seeds": seeds,
        "bic": bic.tolist(),
        "bic_mean": mean.tolist(),
        "bic_std": bic.std(axis=0, ddof=1).tolist() if len(seeds) > 1 else [0.0] * len(ks),
        "gradient": grad.tolist(),
        "step": step.tolist(),
        "flat_fraction": flat_fraction,
        "k_flat": k_flat,
        "n_rows": int(ok.sum()),
        "n_invalid": int((~ok).sum()),
    }
