"""claxboi: CLAXBOI (Tranin et al. 2022), naive Bayes over per-feature class likelihoods.

Following ``claxboi/classify_new.py`` (missing-value strategy ``splitpba``):

* per class c and feature j, a histogram of the labelled values (``n_bins`` equal bins over
  the feature's labelled range), normalised, zero-filled as ``(h + 0.01/nb) / (1 + 0.02/nb)``
  and normalised again; the likelihood ``L_cj(x)`` is its linear interpolation between bin
  centres (end values held to the range's edges; 1 for every class outside the range);
* the probability that feature j is present for class c:
  ``q_cj = (fraction present + 0.001) / 1.002``;
* per feature category k (hardness, spectrum, variability, multiwavelength, ...), with
  ``n_p`` present and ``n_m`` missing features of the source overall::

      pbCat_ck = (prod_{j in k, present} L_cj(x_j) q_cj * prod_{j in k, missing} (1-q_cj)^alpha)
                 ^ (5 w_k / (2 n_p + alpha n_m))

* ``pbCl_c = prior_c * (prod_k pbCat_ck) ^ (8 / sum_k w_k)``, probabilities ``pbCl / sum``.

``predict`` also gives ``outlier = -log10(max_c pbCl_c)`` (large when the source lies in the
tails of every class), ``margin = 2 max P - 1``, ``n_missing``, the marginal probability per
category ``p_<category>_<class> = pbCat_ck / sum_c pbCat_ck`` and, per category, the class
predicted without it (``alt_without_<category>``: the class when it differs from the predicted
one, else <NA>). Computed in log space (no underflow), vectorised.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .base import Family, softmax

LN10 = np.log(10.0)


class Claxboi(Family):
    """Naive Bayes over per-feature histograms with per-category weights.

    Parameters: ``feature_set``, ``n_bins``, ``category_weights`` (dict category -> weight,
    missing categories 1.0; None = all 1), ``alpha`` (weight of missing-value
    probabilities), ``prior`` ("train": labelled class fractions, "uniform", or a dict class
    -> prior), ``chunk_size`` (rows at a time at prediction; bounds memory).

    Fitted: ``classes_, features_, categories_`` (names), ``feature_category_`` (index per
    feature), ``weights_`` (per category), ``edges_`` (d, n_bins+1), ``density_``
    (C, d, n_bins), ``presence_`` (C, d), ``prior_`` (C,), ``n_fit_rows_``.
    """

    name = "claxboi"
    unit = "source"
    _state = (
        "classes_", "features_", "n_fit_rows_", "categories_", "feature_category_",
        "weights_", "edges_", "density_", "presence_", "prior_",
    )  # fmt: skip

    def __init__(
        self,
        feature_set: str = "mw_plus",
        n_bins: int = 30,
        category_weights: dict[str, float] | None = None,
        alpha: float = 1.0,
        prior: str | dict = "train",
        chunk_size: int = 50_000,
    ) -> None:
        self.feature_set = feature_set
        self.n_bins = n_bins
        self.category_weights = category_weights
        self.alpha = alpha
        self.prior = prior
        self.chunk_size = chunk_size

    def _fit_arrays(self, F: np.ndarray, code: np.ndarray) -> None:
        fs = self.feature_set_
        C, d, nb = len(self.classes_), F.shape[1], int(self.n_bins)
        if nb < 1:
            raise ValueError("n_bins must be >= 1")
        self.categories_ = fs.category_names
        cat_idx = {k: i for i, k in enumerate(self.categories_)}
        self.feature_category_ = np.array(
            [cat_idx[fs.categories[f]] for f in fs.features], dtype=np.int64
        )
        cw = dict(self.category_weights or {})
        unknown = set(cw) - set(self.categories_)
        if unknown:
            raise ValueError(f"unknown categories in category_weights: {sorted(unknown)}")
        self.weights_ = np.array([float(cw.get(k, 1.0)) for k in self.categories_])
        edges = np.full((d, nb + 1), np.nan)
        dens = np.ones((C, d, nb)) / nb
        present = ~np.isnan(F)
        for j in range(d):
            v = F[present[:, j], j]
            if v.size == 0:
                continue
            lo, hi = float(v.min()), float(v.max())
            if hi <= lo:
                hi = lo + 1.0
            edges[j] = np.linspace(lo, hi, nb + 1)
            for c in range(C):
                vc = F[present[:, j] & (code == c), j]
                h = np.histogram(vc, bins=edges[j])[0].astype("float64")
                h = h / h.sum() if h.sum() > 0 else np.full(nb, 1.0 / nb)
                h = (h + 0.01 / nb) / (1 + 0.02 / nb)
                dens[c, j] = h / h.sum()
        counts = np.bincount(code, minlength=C).astype("float64")
        frac = np.stack([present[code == c].mean(axis=0) for c in range(C)])
        self.edges_ = edges
        self.density_ = dens
        self.presence_ = (frac + 0.001) / 1.002
        if isinstance(self.prior, dict):
            prior = np.array([float(self.prior[c]) for c in self.classes_])
        elif self.prior == "uniform":
            prior = np.ones(C)
        elif self.prior == "train":
            prior = counts
        else:
            raise ValueError(f"prior must be 'train', 'uniform' or a dict, got {self.prior!r}")
        self.prior_ = prior / prior.sum()

    # --------------------------------------------------------------------- method
    def feature_likelihood(self, j: int, x: np.ndarray) -> np.ndarray:
        """L (n, C) of feature ``j``'s values ``x``: the class histograms interpolated linearly
        between bin centres (end values held up to the range's edges), 1 outside the range
        and where ``x`` is missing."""
        C = len(self.classes_)
        L = np.ones((len(x), C))
        e = self.edges_[j]
        if np.isnan(e).any():
            return L
        inside = (x >= e[0]) & (x <= e[-1])
        xi = x[inside]
        dens = self.density_[:, j, :]  # (C, nb)
        nb = dens.shape[1]
        if nb == 1:
            L[inside] = dens[:, 0]
            return L
        centres = (e[:-1] + e[1:]) / 2
        pos = np.clip(xi, centres[0], centres[-1])
        i = np.clip(np.searchsorted(centres, pos, side="right") - 1, 0, nb - 2)
        t = (pos - centres[i]) / (centres[i + 1] - centres[i])
        L[inside] = (dens[:, i] * (1 - t) + dens[:, i + 1] * t).T
        return L

    def category_log_terms(self, F: np.ndarray) -> np.ndarray:
        """log pbCat (n, C, K) of the module docstring (one feature at a time: O(n C K) memory)."""
        n, d = F.shape
        K = len(self.categories_)
        present = ~np.isnan(F)
        n_p = present.sum(axis=1).astype("float64")
        denom = 2 * n_p + self.alpha * (d - n_p)
        denom = np.where(denom > 0, denom, 1.0)
        out = np.zeros((n, len(self.classes_), K))
        with np.errstate(divide="ignore"):
            logq, log1mq = np.log(self.presence_), np.log1p(-self.presence_)  # (C, d)
        for j in range(d):
            k = self.feature_category_[j]
            pj = present[:, j]
            with np.errstate(divide="ignore"):
                term = np.log(self.feature_likelihood(j, F[:, j])) + logq[:, j]
            term[~pj] = self.alpha * log1mq[:, j]
            out[:, :, k] += term
        out *= (5 * self.weights_[None, :] / denom[:, None])[:, None, :]
        return out

    def _predict_arrays(self, X: pd.DataFrame):
        F, reasons = self.feature_set_.build(X)
        ok = reasons == None  # noqa: E711
        n, C, K = len(X), len(self.classes_), len(self.categories_)
        P = np.full((n, C), np.nan)
        extras = {"outlier": np.full(n, np.nan), "margin": np.full(n, np.nan)}
        extras["n_missing"] = np.isnan(F).sum(axis=1).astype(np.int64)
        cls = np.array(self.classes_, dtype=object)
        alt_cols = {k: np.full(n, None, dtype=object) for k in self.categories_}
        marg = np.full((n, C, K), np.nan)
        for s0 in range(0, n, self.chunk_size):
            sl = slice(s0, s0 + self.chunk_size)
            self._predict_chunk(
                F[sl], ok[sl], P[sl], marg[sl], extras["outlier"][sl], extras["margin"][sl],
                {k: v[sl] for k, v in alt_cols.items()}, cls,
            )  # fmt: skip
        for k, name in enumerate(self.categories_):
            for j, c in enumerate(self.classes_):
                extras[f"p_{name}_{c}"] = marg[:, j, k]
        for name in self.categories_:
            extras[f"alt_without_{name}"] = pd.array(alt_cols[name], dtype="string")
        return P, reasons, pd.DataFrame(extras, index=X.index)

    def _predict_chunk(self, F, ok, P, marg, outlier, margin, alts, cls) -> None:
        """Fill the views ``P, marg, outlier, margin, alts`` for one chunk of rows."""
        if not ok.any():
            return
        lc = self.category_log_terms(F[ok])
        logprior = np.log(self.prior_)
        total = lc.sum(axis=2)
        wsum = self.weights_.sum()
        logcl = (8.0 / wsum) * total + logprior
        Pok = softmax(logcl)
        P[ok] = Pok
        outlier[ok] = -logcl.max(axis=1) / LN10
        margin[ok] = 2 * Pok.max(axis=1) - 1
        best = logcl.argmax(axis=1)
        rows = np.flatnonzero(ok)
        for k, name in enumerate(self.categories_):
            marg[ok, :, k] = softmax(lc[:, :, k])
            rest = wsum - self.weights_[k]
            if rest <= 0:
                continue
            alt = ((8.0 / rest) * (total - lc[:, :, k]) + logprior).argmax(axis=1)
            diff = alt != best
            alts[name][rows[diff]] = cls[alt[diff]]
