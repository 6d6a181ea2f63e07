"""ClusterThenLabel: the cluster-then-label classifier of Pérez-Díaz et al. (2024).

Fit: transform all valid detections (:mod:`classifier.transform`), fit
``GaussianMixture(n_components, covariance_type='full', random_state)`` on them in the given
order, assign each detection its most probable component, and inside each cluster compute, for
every class with at least ``n_features`` labeled detections there, the mean and the
pseudo-inverse of the unbiased (ddof=1) sample covariance.

Predict: ``d2_c = (x - mu_c)^T pinv(Sigma_c) (x - mu_c)`` for the usable classes of the
detection's cluster, ``p_c = exp(-d2_c) / sum exp(-d2)`` computed as a softmax shifted by the
smallest d2 (so far-away detections still get finite probabilities); unusable classes get
exactly 0.

Rows that cannot be classified are never silently NaN: :meth:`ClusterThenLabel.predict` gives a
``reason`` for each of them; :meth:`ClusterThenLabel.predict_proba` gives NaN probabilities
for exactly those rows (and is otherwise identical to the probability columns of ``predict``).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import numpy as np
import pandas as pd
from sklearn.mixture import GaussianMixture

from ._parallel import fit_gmm, map_chunks
from .features import DEFAULT_FEATURES, LOG_FEATURES, SCALE_FEATURES
from .model_check import FORMAT, FORMAT_VERSION, REL_TOL, InvalidModelError, check_model_dict
from .taxonomy import CLASSES
from .transform import FeatureTransform, check_columns, feature_matrix


def _plain_gmm(n_components: int, random_state, gd: dict) -> GaussianMixture:
    """A fitted scikit-learn ``GaussianMixture`` rebuilt from its arrays (``to_dict`` layout)."""

    def arr(x):
        return np.array(x, dtype="float64")

    g = GaussianMixture(
        n_components=n_components, covariance_type="full", random_state=random_state
    )
    g.weights_ = arr(gd["weights"])
    g.means_ = arr(gd["means"])
    g.covariances_ = arr(gd["covariances"])
    g.precisions_cholesky_ = arr(gd["precisions_cholesky"])
    g.precisions_ = arr(gd["precisions"])
    g.converged_ = bool(gd["converged"])
    g.n_iter_ = int(gd["n_iter"])
    g.lower_bound_ = float(gd["lower_bound"])
    g.n_features_in_ = g.means_.shape[1]
    return g


class NotFittedError(RuntimeError):
    """Raised when a model is used before :meth:`ClusterThenLabel.fit`."""


def class_pinv(cov: np.ndarray) -> np.ndarray:
    """Pseudo-inverse of a class covariance. ``np.linalg.pinv`` of a near-singular matrix
    can come out asymmetric beyond ``model_check``'s tolerance, and the model would then be
    refused on load: such a result is symmetrised; any other is kept bit for bit."""
    p = np.linalg.pinv(np.atleast_2d(cov))
    scale = max(float(np.abs(p).max()), np.finfo(float).tiny) if p.size else 1.0
    if p.size and np.abs(p - p.T).max() / scale > REL_TOL:
        p = (p + p.T) / 2
    return p


class ClusterThenLabel:
    """Cluster-then-label classifier (scikit-learn estimator conventions).

    Parameters
    ----------
    features : list of str, default :data:`classifier.features.DEFAULT_FEATURES`
    log_features : list of str, default the members of ``LOG_FEATURES`` present in ``features``
    scale_features : list of str, default the members of ``SCALE_FEATURES`` present in ``features``
    n_components : int, default 6
    random_state : int, default 42
    classes : list of str, default the paper's 10 classes
    min_labeled : int or None, default None (= number of features)
        Minimum labeled detections of a class in a cluster for the class to be usable there.
    chunk_size : int, default 65_536
        Rows processed at a time (bounds memory; does not change results).
    n_jobs : int or None, default None (= all cores)
        Threads for the row-parallel parts of fit (GMM E-step, per-component M-step) and of
        prediction. Per-row results do not depend on it; see ``classifier._parallel``.

    Fitted attributes
    -----------------
    classes_, features_, transform_ (FeatureTransform), gmm_ (sklearn GaussianMixture),
    weights_, means_, covariances_, precisions_cholesky_ (the mixture's arrays),
    class_counts_ (K, C) int, usable_ (K, C) bool, class_means_ (K, C, d) and
    class_pinv_ (K, C, d, d) (NaN where unusable), labels_ (cluster of each valid fit row,
    -1 for invalid rows, aligned with the fit ``X``), invalid_rows_ (DataFrame indexed like the
    fit ``X``: column ``reason``), n_fit_rows_.
    """

    def __init__(
        self,
        features: list[str] | None = None,
        log_features: list[str] | None = None,
        scale_features: list[str] | None = None,
        n_components: int = 6,
        random_state: int | None = 42,
        classes: list[str] | None = None,
        min_labeled: int | None = None,
        chunk_size: int = 65_536,
        n_jobs: int | None = None,
    ) -> None:
        self.features = features
        self.log_features = log_features
        self.scale_features = scale_features
        self.n_components = n_components
        self.random_state = random_state
        self.classes = classes
        self.min_labeled = min_labeled
        self.chunk_size = chunk_size
        self.n_jobs = n_jobs

    # ------------------------------------------------------------------ params
    def get_params(self, deep: bool = True) -> dict:
        return {
            "features": self.features,
            "log_features": self.log_features,
            "scale_features": self.scale_features,
            "n_components": self.n_components,
            "random_state": self.random_state,
            "classes": self.classes,
            "min_labeled": self.min_labeled,
            "chunk_size": self.chunk_size,
            "n_jobs": self.n_jobs,
        }

    def set_params(self, **params) -> ClusterThenLabel:
        for k, v in params.items():
            if k not in self.get_params():
                raise ValueError(f"unknown parameter {k!r}")
            setattr(self, k, v)
        return self

    def _resolved(self) -> tuple[list[str], list[str], list[str], list[str]]:
        feats = list(DEFAULT_FEATURES if self.features is None else self.features)
        logf = (
            [f for f in LOG_FEATURES if f in feats]
            if self.log_features is None
            else list(self.log_features)
        )
        scal = (
            [f for f in SCALE_FEATURES if f in feats]
            if self.scale_features is None
            else list(self.scale_features)
        )
        classes = list(CLASSES if self.classes is None else self.classes)
        return feats, logf, scal, classes

    # ------------------------------------------------------------------ fit
    def fit(self, X: pd.DataFrame, y: pd.Series | None = None) -> ClusterThenLabel:
        """Fit on all detections of ``X``; ``y`` gives a class name or missing per row."""
        feats, logf, scal, classes = self._resolved()
        if len(feats) == 0:
            raise ValueError("no features")
        if len(set(classes)) != len(classes):
            raise ValueError("duplicate class names")
        check_columns(X, feats)
        labels = self._check_labels(X, y, classes)
        A = feature_matrix(X, feats)
        transform = FeatureTransform(feats, logf, scal)
        reasons = transform.fit(A)
        ok = reasons == None  # noqa: E711
        n_ok = int(ok.sum())
        if n_ok < self.n_components:
            raise ValueError(f"only {n_ok} valid rows, fewer than n_components={self.n_components}")
        Z = transform.transform(A[ok])
        del A
        fitted = fit_gmm(Z, self.n_components, self.random_state, self.n_jobs)
        gmm = _plain_gmm(
            self.n_components,
            self.random_state,
            {
                "weights": fitted.weights_,
                "means": fitted.means_,
                "covariances": fitted.covariances_,
                "precisions_cholesky": fitted.precisions_cholesky_,
                "precisions": fitted.precisions_,
                "converged": fitted.converged_,
                "n_iter": fitted.n_iter_,
                "lower_bound": fitted.lower_bound_,
            },
        )

        self.features_ = feats
        self.classes_ = classes
        self.transform_ = transform
        self._set_gmm(gmm)
        cluster = self._cluster_of_transformed(Z)

        self._fit_class_stats(Z, cluster, labels[ok])
        self.n_fit_rows_ = n_ok
        labels_ = np.full(len(X), -1, dtype=np.int64)
        labels_[ok] = cluster
        self.labels_ = labels_
        self.invalid_rows_ = pd.DataFrame(
            {"reason": pd.Series(reasons[~ok], index=X.index[~ok], dtype="object")}
        )
        return self

    def _fit_class_stats(self, Z: np.ndarray, cluster: np.ndarray, code: np.ndarray) -> None:
        """Per cluster and class: counts, usability, mean and pseudo-inverse covariance.

        ``Z``: transformed valid rows, ``cluster``: their clusters, ``code``: class index per
        row (-1 unlabeled).
        """
        d, K, C = len(self.features_), self.n_components, len(self.classes_)
        # ddof=1 needs >= 2 rows in any case
        min_n = max(d if self.min_labeled is None else int(self.min_labeled), 2)
        counts = np.zeros((K, C), dtype=np.int64)
        np.add.at(counts, (cluster[code >= 0], code[code >= 0]), 1)
        usable = counts >= min_n
        means = np.full((K, C, d), np.nan)
        pinv = np.full((K, C, d, d), np.nan)
        for k, c in zip(*np.nonzero(usable), strict=True):
            Zc = Z[(cluster == k) & (code == c)]
            means[k, c] = Zc.mean(axis=0)
            pinv[k, c] = class_pinv(np.cov(Zc, rowvar=False, ddof=1))
        self.min_labeled_ = min_n
        self.class_counts_ = counts
        self.usable_ = usable
        self.class_means_ = means
        self.class_pinv_ = pinv

    def with_labels(self, X: pd.DataFrame, y: pd.Series | None) -> ClusterThenLabel:
        """A copy with this model's transform and mixture and class statistics from ``y``.

        The transform and the mixture depend on ``X`` only, so when this model was fitted on
        the same ``X`` this is exactly ``fit(X, y)``, without fitting the mixture again (the
        validation split uses it).
        """
        self._check_fitted()
        labels = self._check_labels(X, y, list(self.classes_))
        A = feature_matrix(X, self.features_)
        ok = self.transform_.validate(A) == None  # noqa: E711
        if int(ok.sum()) != self.n_fit_rows_:
            raise ValueError("with_labels needs the X this model was fitted on")
        Z = self.transform_.transform(A[ok])
        model = copy.deepcopy(self)
        model._fit_class_stats(Z, self.labels_[ok], labels[ok])
        return model

    @staticmethod
    def _check_labels(X: pd.DataFrame, y, classes: list[str]) -> np.ndarray:
        n = len(X)
        if y is None:
            return np.full(n, -1, dtype=np.int64)
        if isinstance(y, pd.Series):
            if len(y) != n or not y.index.equals(X.index):
                raise ValueError("y must be a Series with the same index as X")
            s = y.astype("object")
        else:
            s = pd.Series(np.asarray(y, dtype=object), index=X.index)
            if len(s) != n:
                raise ValueError(f"y has {len(s)} values, X has {n} rows")
        missing = s.isna().to_numpy()
        lookup = {c: i for i, c in enumerate(classes)}
        code = s.map(lookup)
        unknown = ~missing & code.isna().to_numpy()
        if unknown.any():
            bad = sorted({str(v) for v in s[unknown].unique()})[:10]
            raise ValueError(
                f"{int(unknown.sum())} labels are not classes of the model "
                f"(e.g. {', '.join(bad)}); map SIMBAD types with classifier.simbad_to_class"
            )
        return code.fillna(-1).to_numpy(dtype=np.int64)

    # ------------------------------------------------------------------ mixture
    def _set_gmm(self, gmm: GaussianMixture) -> None:
        self.gmm_ = gmm
        self.weights_ = gmm.weights_
        self.means_ = gmm.means_
        self.covariances_ = gmm.covariances_
        self.precisions_cholesky_ = gmm.precisions_cholesky_

    def _cluster_of_transformed(self, Z: np.ndarray, parallel: bool = True) -> np.ndarray:
        if not parallel:
            return self.gmm_.predict(Z).astype(np.int64)
        parts = map_chunks(
            lambda s, e: self.gmm_.predict(Z[s:e]), len(Z), self.chunk_size, self.n_jobs
        )
        return np.concatenate(parts).astype(np.int64) if parts else np.empty(0, np.int64)

    # ------------------------------------------------------------------ predict
    def _check_fitted(self) -> None:
        if not hasattr(self, "gmm_"):
            raise NotFittedError("ClusterThenLabel is not fitted; call fit() or from_dict()")

    def _predict_arrays(self, X: pd.DataFrame, proba: bool = True):
        """(cluster (-1 invalid), probabilities (n, C) or None, reasons (object, None = ok))."""
        self._check_fitted()
        check_columns(X, self.features_)
        n, C = len(X), len(self.classes_)
        cluster = np.full(n, -1, dtype=np.int64)
        P = np.full((n, C), np.nan) if proba else None
        reasons = np.full(n, None, dtype=object)
        step = max(int(self.chunk_size), 1)
        no_class = np.array(
            [
                f"cluster {k} has no class with >= {self.min_labeled_} labeled detections"
                for k in range(self.n_components)
            ],
            dtype=object,
        )
        usable_any = self.usable_.any(axis=1)

        def work(s: int, e: int) -> None:
            A = feature_matrix(X.iloc[s:e], self.features_)
            r = self.transform_.validate(A)
            ok = r == None  # noqa: E711
            if ok.any():
                Z = self.transform_.transform(A[ok])
                k = self._cluster_of_transformed(Z, parallel=False)
                rows = np.flatnonzero(ok) + s
                cluster[rows] = k
                dead = np.flatnonzero(~usable_any[k])
                r[rows[dead] - s] = no_class[k[dead]]
                if proba:
                    Pk = self._proba_transformed(Z, k)
                    # never a NaN probability without a reason (e.g. a d2 that overflowed)
                    bad = ~np.isfinite(Pk).all(axis=1) & usable_any[k]
                    if bad.any():
                        Pk[bad] = np.nan
                        r[rows[bad] - s] = "model gives non-finite probabilities"
                    P[rows] = Pk
            reasons[s:e] = r

        map_chunks(work, n, step, self.n_jobs)
        return cluster, P, reasons

    def _proba_transformed(self, Z: np.ndarray, k: np.ndarray) -> np.ndarray:
        """Probabilities for transformed rows ``Z`` in clusters ``k`` (NaN rows if unusable)."""
        C = len(self.classes_)
        out = np.full((len(Z), C), np.nan)
        for kk in np.unique(k):
            sel = np.flatnonzero(k == kk)
            cls = np.flatnonzero(self.usable_[kk])
            if cls.size == 0:
                continue
            Zk = Z[sel]
            d2 = np.empty((len(sel), cls.size))
            with np.errstate(over="ignore", invalid="ignore"):  # non-finite rows get a reason
                for j, c in enumerate(cls):
                    D = Zk - self.class_means_[kk, c]
                    d2[:, j] = np.einsum("ij,ij->i", D @ self.class_pinv_[kk, c], D)
                e = np.exp(-(d2 - d2.min(axis=1, keepdims=True)))
            pk = np.zeros((len(sel), C))
            pk[:, cls] = e / e.sum(axis=1, keepdims=True)
            out[sel] = pk
        return out

    def predict_proba(self, X: pd.DataFrame) -> pd.DataFrame:
        """Class probabilities, index of ``X``, one column per class in ``classes_``.

        Rows that cannot be classified (invalid features, or a cluster without any usable
        class) are all-NaN; :meth:`predict` gives the reason for each of them.
        """
        _, P, _ = self._predict_arrays(X)
        return pd.DataFrame(P, index=X.index, columns=list(self.classes_))

    def predict_cluster(self, X: pd.DataFrame) -> np.ndarray:
        """Cluster id of each row (int64); -1 for rows with invalid features."""
        cluster, _, _ = self._predict_arrays(X, proba=False)
        return cluster

    def predict(self, X: pd.DataFrame) -> pd.DataFrame:
        """Everything per row, index of ``X``.

        Columns: ``cluster`` (Int64, <NA> if invalid), ``predicted_class`` (string, <NA> when not
        classified), one probability column per class (NaN when not classified) and ``reason``
        (None when classified; otherwise e.g. ``"invalid features: bb_kt is NaN"`` or
        ``"cluster 3 has no class with >= 12 labeled detections"``).
        """
        cluster, P, reasons = self._predict_arrays(X)
        classified = ~np.isnan(P).any(axis=1) if P.shape[1] else np.zeros(len(X), bool)
        best = np.argmax(np.where(classified[:, None], P, -np.inf), axis=1) if P.shape[1] else []
        pred = np.array(self.classes_, dtype=object)[best] if len(best) else np.array([], object)
        out = pd.DataFrame(index=X.index)
        out["cluster"] = pd.array(np.where(cluster >= 0, cluster, 0), dtype="Int64")
        out.loc[cluster < 0, "cluster"] = pd.NA
        pc = pd.Series(pred, index=X.index, dtype="object").where(classified, None)
        out["predicted_class"] = pc.astype("string")
        for j, c in enumerate(self.classes_):
            out[c] = P[:, j]
        out["reason"] = pd.Series(reasons, index=X.index, dtype="object")
        return out

    # ------------------------------------------------------------------ serialization
    def to_dict(self) -> dict:
        """JSON-serializable description of the fitted model (no pickle)."""
        self._check_fitted()

        def arr(a: np.ndarray):
            a = np.asarray(a, dtype="float64")
            return np.where(np.isnan(a), None, a).tolist() if np.isnan(a).any() else a.tolist()

        g = self.gmm_
        return {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "params": {
                "features": list(self.features_),
                "log_features": list(self.transform_.log_features),
                "scale_features": list(self.transform_.scale_features),
                "n_components": int(self.n_components),
                "random_state": self.random_state,
                "classes": list(self.classes_),
                "min_labeled": self.min_labeled,
                "chunk_size": int(self.chunk_size),
                "n_jobs": self.n_jobs,
            },
            "classes": list(self.classes_),
            "min_labeled": int(self.min_labeled_),
            "n_fit_rows": int(self.n_fit_rows_),
            "transform": self.transform_.to_dict(),
            "gmm": {
                "weights": arr(g.weights_),
                "means": arr(g.means_),
                "covariances": arr(g.covariances_),
                "precisions_cholesky": arr(g.precisions_cholesky_),
                "precisions": arr(g.precisions_),
                "converged": bool(g.converged_),
                "n_iter": int(g.n_iter_),
                "lower_bound": float(g.lower_bound_),
            },
            "class_counts": self.class_counts_.tolist(),
            "class_means": arr(self.class_means_),
            "class_pinv": arr(self.class_pinv_),
        }

    @classmethod
    def from_dict(
        cls, d: dict, known_features: Sequence[str] | None = DEFAULT_FEATURES,
        known_classes: Sequence[str] | None = CLASSES,
    ) -> ClusterThenLabel:
        """Rebuild a fitted model from :meth:`to_dict` output (also after a JSON round trip).

        The dict is validated first (:func:`classifier.model_check.check_model_dict`):
        ``InvalidModelError`` (a ``ValueError``) names the first problem. ``known_features``:
        the feature names the model may use (default: the paper's; None: any);
        ``known_classes`` likewise (default: the paper's 10 classes).
        """
        check_model_dict(d, known_features, known_classes)

        def arr(x):
            return np.array(x, dtype="float64")  # None -> nan

        model = cls(**d["params"])
        model.features_ = list(d["params"]["features"])
        model.classes_ = list(d["classes"])
        model.transform_ = FeatureTransform.from_dict(d["transform"])
        g = _plain_gmm(model.n_components, model.random_state, d["gmm"])
        model._set_gmm(g)
        model.min_labeled_ = int(d["min_labeled"])
        model.n_fit_rows_ = int(d["n_fit_rows"])
        model.class_counts_ = np.array(d["class_counts"], dtype=np.int64).reshape(
            model.n_components, len(model.classes_)
        )
        model.usable_ = model.class_counts_ >= model.min_labeled_
        d_ = len(model.features_)
        K, C = model.n_components, len(model.classes_)
        model.class_means_ = arr(d["class_means"]).reshape(K, C, d_)
        model.class_pinv_ = arr(d["class_pinv"]).reshape(K, C, d_, d_)
        return model


__all__ = ["ClusterThenLabel", "InvalidModelError", "NotFittedError"]
