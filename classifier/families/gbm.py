"""gbm: a gradient-boosting baseline (scikit-learn HistGradientBoostingClassifier).

Missing features are handled natively (NaN). Calibration: temperature scaling of the raw
scores. A booster fitted on a stratified ``1 - calibration_fraction`` of the training rows
scores the rest, the temperature minimising the log loss of those held-out scores is stored
(``temperature_``), and the final booster, fitted on all training rows, has its scores
divided by it.

Number of boosting iterations: with ``select_iter``, the same held-out quarter also chooses
it (``n_iter_``): the booster's scores after every ``10``th iteration up to ``max_iter`` are
temperature-scaled and the iteration count of the lowest held-out log loss wins (a count
within 0.2% of that loss is taken if smaller: fewer trees predict faster). No test row is
ever seen: the choice is made inside ``fit`` on the training rows only.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.optimize import minimize_scalar
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.model_selection import train_test_split

from .base import Family, softmax


def _scores(model: HistGradientBoostingClassifier, F: np.ndarray) -> np.ndarray:
    s = model.decision_function(F)
    if s.ndim == 1:  # binary: one logit
        s = np.column_stack([np.zeros_like(s), s])
    return s


def _staged_scores(model, F: np.ndarray, C: int, every: int = 10):
    """(iterations, scores (n, C)) after every ``every``-th boosting iteration and the last."""
    n = model.n_iter_
    for i, s in enumerate(model.staged_decision_function(F), start=1):
        if i % every == 0 or i == n:
            s = s if s.ndim > 1 else np.column_stack([np.zeros_like(s), s])
            full = np.full((len(F), C), -1e3)  # a class absent from the fit part
            full[:, model.classes_] = s
            yield i, full


def log_loss_t(scores: np.ndarray, code: np.ndarray, t: float) -> float:
    """Mean log loss of softmax(scores / t) for the true classes ``code``."""
    z = scores / t
    z = z - z.max(axis=1, keepdims=True)
    lse = np.log(np.exp(z).sum(axis=1))
    return float(np.mean(lse - z[np.arange(len(code)), code]))


def fit_temperature(scores: np.ndarray, code: np.ndarray) -> float:
    """The T > 0 minimising the mean log loss of softmax(scores / T) for true classes code."""

    def nll(logt: float) -> float:
        return log_loss_t(scores, code, float(np.exp(logt)))

    res = minimize_scalar(nll, bounds=(np.log(0.05), np.log(20.0)), method="bounded")
    return float(np.exp(res.x))


class GBM(Family):
    """Histogram gradient boosting with temperature calibration.

    Parameters: ``feature_set`` (name in :data:`FEATURE_SETS`), the booster's
    ``max_iter, learning_rate, max_leaf_nodes, min_samples_leaf, l2_regularization``,
    ``max_features`` (share of the features drawn at random for each split; 1.0 = all, the
    draw seeded by ``random_state``),
    ``class_weight`` (None or "balanced"), ``calibrate`` (bool), ``calibration_fraction``,
    ``select_iter`` (choose the iteration count <= ``max_iter`` on the held-out part),
    ``random_state``.

    Fitted: ``classes_, features_, model_`` (the booster), ``temperature_`` (1.0 when not
    calibrated), ``n_iter_`` (iterations of ``model_``), ``n_fit_rows_``.
    """

    name = "gbm"
    unit = "source"
    _state = ("classes_", "features_", "n_fit_rows_", "model_", "temperature_", "n_iter_")

    def __init__(
        self,
        feature_set: str = "mw_plus",
        max_iter: int = 200,
        learning_rate: float = 0.1,
        max_leaf_nodes: int = 31,
        min_samples_leaf: int = 20,
        l2_regularization: float = 0.0,
        max_features: float = 1.0,
        class_weight: str | None = None,
        calibrate: bool = True,
        calibration_fraction: float = 0.25,
        select_iter: bool = True,
        random_state: int | None = 42,
    ) -> None:
        self.feature_set = feature_set
        self.max_iter = max_iter
        self.learning_rate = learning_rate
        self.max_leaf_nodes = max_leaf_nodes
        self.min_samples_leaf = min_samples_leaf
        self.l2_regularization = l2_regularization
        self.max_features = max_features
        self.class_weight = class_weight
        self.calibrate = calibrate
        self.calibration_fraction = calibration_fraction
        self.select_iter = select_iter
        self.random_state = random_state

    def _booster(self, max_iter: int | None = None) -> HistGradientBoostingClassifier:
        return HistGradientBoostingClassifier(
            max_iter=self.max_iter if max_iter is None else max_iter,
            learning_rate=self.learning_rate,
            max_leaf_nodes=self.max_leaf_nodes,
            min_samples_leaf=self.min_samples_leaf,
            l2_regularization=self.l2_regularization,
            max_features=self.max_features,
            class_weight=self.class_weight,
            early_stopping=False,
            random_state=self.random_state,
        )

    def _fit_arrays(self, F: np.ndarray, code: np.ndarray) -> None:
        self.temperature_ = 1.0
        self.n_iter_ = int(self.max_iter)
        C = len(self.classes_)
        counts = np.bincount(code, minlength=C)
        n_cal = int(len(F) * self.calibration_fraction)
        held_out = (self.calibrate or self.select_iter) and counts.min() >= 2
        if held_out and C <= n_cal < len(F) - C:
            tr, te = train_test_split(
                np.arange(len(F)), test_size=self.calibration_fraction,
                random_state=self.random_state, stratify=code,
            )  # fmt: skip
            m = self._booster().fit(F[tr], code[tr])
            stages = _staged_scores(m, F[te], C) if self.select_iter else [(m.n_iter_, None)]
            best = []
            for it, s in stages:
                if s is None:
                    s = np.full((len(te), C), -1e3)  # a class absent from the fit part
                    s[:, m.classes_] = _scores(m, F[te])
                t = fit_temperature(s, code[te]) if self.calibrate else 1.0
                best.append((log_loss_t(s, code[te], t), it, t))
            lowest = min(b[0] for b in best)
            _, it, t = min((b for b in best if b[0] <= lowest * 1.002), key=lambda b: b[1])
            self.n_iter_, self.temperature_ = int(it), float(t)
        self.model_ = self._booster(self.n_iter_).fit(F, code)

    def _predict_arrays(self, X: pd.DataFrame):
        F, reasons = self.feature_set_.build(X)
        ok = reasons == None  # noqa: E711
        P = np.full((len(X), len(self.classes_)), np.nan)
        if ok.any():
            s = np.full((int(ok.sum()), len(self.classes_)), -1e3)
            s[:, self.model_.classes_] = _scores(self.model_, F[ok])
            P[ok] = softmax(s / self.temperature_)
        return P, reasons, None
