"""muwclass: MUWCLASS (Yang, Hare et al. 2022): random forest + SMOTE + Monte Carlo errors.

Fit (as MUWCLASS's ``class_prepare``): standardise the features (NaN ignored), oversample the
minority classes with SMOTE (``k_neighbors=4``; missing values are replaced by a huge negative
number first, so neighbours share their missing pattern, and synthetic values below the
training minimum are set back to missing), replace missing values by -100 and fit a random
forest.

Predict: ``n_draws`` Monte Carlo draws of the inputs within their Gaussian errors (X-ray band
fluxes redrawn until positive, magnitudes Gaussian; see :mod:`classifier.families.features`),
each classified by the forest. Per class: the median probability over the draws and the 2σ
interval (2.275th and 97.725th percentiles), columns ``p_<class>_median``, ``_lo``, ``_hi`` of
``predict``. ``predict_proba`` returns the medians renormalised to sum to 1. Without error
columns in the feature set (e.g. ``csc_hr``) a single nominal draw is used.

Draws are seeded from ``random_state`` and keyed by each row's index value
(:class:`KeyedNormal`: a counter-based generator), so a row gets the same draws whichever
other rows it is predicted with: the catalog classifies the sources that changed, and its
oracle re-predicts any subset. The default
of 4 draws keeps 400,000 sources within a minute on 2 cores (``benchmarks/bench_families.py``);
``classifier.compare`` and the benchmark use the same 4.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from sklearn.ensemble import RandomForestClassifier

from .base import Family

EXNUM = -9999999.0  # MUWCLASS's stand-in for missing values before SMOTE
FILL = -100.0  # MUWCLASS's stand-in for missing values in the forest
Q_LO, Q_HI = 2.275, 97.725  # 2 sigma


def smote_with_missing(
    Z: np.ndarray, code: np.ndarray, k_neighbors: int, random_state
) -> tuple[np.ndarray, np.ndarray]:
    """MUWCLASS's ``oversampling``: SMOTE with missing values (see the module docstring)."""
    from imblearn.over_sampling import SMOTE

    counts = np.bincount(code)
    k = min(int(k_neighbors), int(counts[counts > 0].min()) - 1)
    if k < 1:
        return Z, code
    mins = np.nanmin(np.where(np.isnan(Z), np.inf, Z), axis=0)
    A = np.where(np.isnan(Z), EXNUM, Z)
    R, yr = SMOTE(k_neighbors=k, random_state=random_state).fit_resample(A, code)
    R = np.asarray(R, dtype="float64")
    R[R < mins] = np.nan
    return R, np.asarray(yr, dtype=np.int64)


_M1, _M2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser (uint64 arrays; wrap-around arithmetic)."""
    x = x ^ (x >> np.uint64(30))
    x = x * _M1
    x = x ^ (x >> np.uint64(27))
    x = x * _M2
    return x ^ (x >> np.uint64(31))


class KeyedNormal:
    """Standard normal draws that depend only on (seed, draw, call, row key).

    ``standard_normal(n)`` for the ``n`` rows of ``keys`` (uint64, e.g. hashed index values):
    the k-th call of draw ``draw`` gives row i the same number in any batch. A call of
    another size (a feature builder redrawing a subset) is keyed by its position instead.
    """

    def __init__(self, seed: int, draw: int, keys: np.ndarray) -> None:
        self.seed, self.draw, self.keys, self.calls = int(seed), int(draw), keys, 0

    def standard_normal(self, size) -> np.ndarray:
        from scipy.special import ndtri

        n = int(np.prod(size))
        self.calls += 1
        base = _mix(np.array([(self.seed & 0xFFFFFFFF) << 32 | (self.draw & 0xFFFF) << 16
                              | (self.calls & 0xFFFF)], dtype=np.uint64))
        keys = self.keys if n == len(self.keys) else np.arange(n, dtype=np.uint64)
        h = _mix(_mix(keys ^ base) + base)
        u = ((h >> np.uint64(11)).astype(np.float64) + 0.5) * 2.0**-53
        return ndtri(u).reshape(size)


def row_keys(index: pd.Index) -> np.ndarray:
    """uint64 key of each row: its index value, hashed (stable across runs)."""
    return pd.util.hash_array(np.asarray(index.to_numpy()), categorize=False)


class MUWClass(Family):
    """Random forest + SMOTE + Monte Carlo draws of the inputs within their errors.

    Parameters: ``feature_set``, ``n_estimators``, ``max_depth``, ``min_samples_leaf``,
    ``max_features``, ``max_leaf_nodes`` and ``max_samples`` (the forest's: leaves per tree
    and bootstrap rows per tree, an int capped at the training rows; None, the default and
    MUWCLASS's setting: unbounded), ``smote`` (bool), ``smote_k``, ``class_weight`` (forest's),
    ``train_draws`` (Monte Carlo copies of the labelled rows added to the training set, each
    drawn within the errors as at prediction), ``n_draws`` (Monte Carlo draws at
    prediction), ``chunk_size`` (rows per forest call; bounds memory), ``n_jobs``,
    ``random_state``.

    Fitted: ``classes_, features_, mean_, scale_`` (standardisation), ``forest_``,
    ``n_fit_rows_``.
    """

    name = "muwclass"
    unit = "source"
    _state = ("classes_", "features_", "n_fit_rows_", "mean_", "scale_", "forest_")

    def __init__(
        self,
        feature_set: str = "mw",
        n_estimators: int = 100,
        max_depth: int | None = None,
        min_samples_leaf: int = 1,
        max_features: str | float | None = "sqrt",
        max_leaf_nodes: int | None = None,
        max_samples: int | float | None = None,
        smote: bool = True,
        smote_k: int = 4,
        class_weight: str | None = None,
        train_draws: int = 0,
        n_draws: int = 4,
        chunk_size: int = 20_000,
        n_jobs: int | None = None,
        random_state: int | None = 42,
    ) -> None:
        self.feature_set = feature_set
        self.n_estimators = n_estimators
        self.max_depth = max_depth
        self.min_samples_leaf = min_samples_leaf
        self.max_features = max_features
        self.max_leaf_nodes = max_leaf_nodes
        self.max_samples = max_samples
        self.smote = smote
        self.smote_k = smote_k
        self.class_weight = class_weight
        self.train_draws = train_draws
        self.n_draws = n_draws
        self.chunk_size = chunk_size
        self.n_jobs = n_jobs
        self.random_state = random_state

    def _standardise(self, F: np.ndarray) -> np.ndarray:
        return (F - self.mean_) / self.scale_

    def _fit_arrays(self, F: np.ndarray, code: np.ndarray) -> None:
        with np.errstate(invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            mean = np.nanmean(F, axis=0)
            std = np.nanstd(F, axis=0)
        self.mean_ = np.where(np.isfinite(mean), mean, 0.0)
        self.scale_ = np.where(np.isfinite(std) & (std > 0), std, 1.0)
        Z = self._standardise(F)
        if self.smote:
            Z, code = smote_with_missing(Z, code, self.smote_k, self.random_state)
        rows = self.max_samples
        if isinstance(rows, (int, np.integer)) and not isinstance(rows, bool) and rows >= len(Z):
            rows = None  # fewer rows than the bound: every tree sees a full bootstrap
        self.forest_ = RandomForestClassifier(
            n_estimators=self.n_estimators,
            max_depth=self.max_depth,
            min_samples_leaf=self.min_samples_leaf,
            max_features=self.max_features,
            max_leaf_nodes=self.max_leaf_nodes,
            max_samples=rows,
            class_weight=self.class_weight,
            n_jobs=self.n_jobs,
            random_state=self.random_state,
        ).fit(np.where(np.isnan(Z), FILL, Z), code)

    def _augment(self, X: pd.DataFrame, F: np.ndarray, code: np.ndarray):
        n = int(self.train_draws) if self.feature_set_.error_columns else 0
        if n <= 0:
            return F, code
        seed = 0 if self.random_state is None else int(self.random_state)
        rng = np.random.default_rng([seed, 1 << 30])
        Fs = [F] + [self.feature_set_.build(X, rng)[0] for _ in range(n)]
        return np.concatenate(Fs), np.tile(code, n + 1)

    def _draws(self) -> int:
        return max(int(self.n_draws), 1) if self.feature_set_.error_columns else 1

    def draw_probabilities(self, X: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """(per-draw probabilities (draws, n, C) NaN for invalid rows, reasons (n,))."""
        self._check_fitted()
        fs = self.feature_set_
        D, n, C = self._draws(), len(X), len(self.classes_)
        out = np.full((D, n, C), np.nan)
        fs.check_columns(X)
        step = max(int(self.chunk_size), 1)
        reasons = np.full(n, None, dtype=object)
        for s in range(0, n, step):
            part = X.iloc[s : s + step]
            seed = 0 if self.random_state is None else int(self.random_state)
            keys = row_keys(part.index)
            Fs, ok = [], None
            for d in range(D):
                F, r = fs.build(part, KeyedNormal(seed, d, keys) if D > 1 else None)
                if d == 0:
                    ok = r == None  # noqa: E711
                    reasons[s : s + len(part)] = r
                Fs.append(self._standardise(F[ok]))
            if not ok.any():
                continue
            Z = np.concatenate(Fs)
            Z[np.isnan(Z)] = FILL
            P = np.zeros((len(Z), C))
            P[:, self.forest_.classes_] = self.forest_.predict_proba(Z)
            rows = np.flatnonzero(ok) + s
            out[:, rows] = P.reshape(D, int(ok.sum()), C)
        return out, reasons

    def _predict_arrays(self, X: pd.DataFrame):
        draws, reasons = self.draw_probabilities(X)
        with np.errstate(invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            med = np.median(draws, axis=0)
            lo, hi = np.percentile(draws, [Q_LO, Q_HI], axis=0)
            tot = med.sum(axis=1, keepdims=True)
            mean = draws.mean(axis=0)
            P = np.where(tot > 0, med / np.where(tot > 0, tot, 1.0), mean)
        extras = {}
        for j, c in enumerate(self.classes_):
            extras[f"p_{c}_median"] = med[:, j]
            extras[f"p_{c}_lo"] = lo[:, j]
            extras[f"p_{c}_hi"] = hi[:, j]
        extras["n_draws"] = np.full(len(X), draws.shape[0], dtype=np.int64)
        return P, reasons, pd.DataFrame(extras, index=X.index)
