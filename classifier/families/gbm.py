"""gbm: a gradient-boosting baseline (scikit-learn HistGradientBoostingClassifier).

Missing features are handled natively (NaN). Calibration: temperature scaling of the raw
scores. A booster fitted on a stratified ``1 - calibration_fraction`` of the training rows
scores the rest, the temperature minimising the log loss of those held-out scores is stored
(``temperature_``), and the final booster, fitted on all training rows, has its scores
divided by it.
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


def fit_temperature(scores: np.ndarray, code: np.ndarray) -> float:
    """The T > 0 minimising the mean log loss of softmax(scores / T) for true classes code."""

    def nll(logt: float) -> float:
        z = scores / np.exp(logt)
        z = z - z.max(axis=1, keepdims=True)
        lse = np.log(np.exp(z).sum(axis=1))
        return float(np.mean(lse - z[np.arange(len(code)), code]))

    res = minimize_scalar(nll, bounds=(np.log(0.05), np.log(20.0)), method="bounded")
    return float(np.exp(res.x))


class GBM(Family):
    """Histogram gradient boosting with temperature calibration.

    Parameters: ``feature_set`` (name in :data:`FEATURE_SETS`), the booster's
    ``max_iter, learning_rate, max_leaf_nodes, min_samples_leaf, l2_regularization``,
    ``class_weight`` (None or "balanced"), ``calibrate`` (bool), ``calibration_fraction``,
    ``random_state``.

    Fitted: ``classes_, features_, model_`` (the booster), ``temperature_`` (1.0 when not
    calibrated), ``n_fit_rows_``.
    """

    name = "gbm"
    unit = "source"
    _state = ("classes_", "features_", "n_fit_rows_", "model_", "temperature_")

    def __init__(
        self,
        feature_set: str = "mw_plus",
        max_iter: int = 200,
        learning_rate: float = 0.1,
        max_leaf_nodes: int = 31,
        min_samples_leaf: int = 20,
        l2_regularization: float = 0.0,
        class_weight: str | None = None,
        calibrate: bool = True,
        calibration_fraction: float = 0.25,
        random_state: int | None = 42,
    ) -> None:
        self.feature_set = feature_set
        self.max_iter = max_iter
        self.learning_rate = learning_rate
        self.max_leaf_nodes = max_leaf_nodes
        self.min_samples_leaf = min_samples_leaf
        self.l2_regularization = l2_regularization
        self.class_weight = class_weight
        self.calibrate = calibrate
        self.calibration_fraction = calibration_fraction
        self.random_state = random_state

    def _booster(self) -> HistGradientBoostingClassifier:
        return HistGradientBoostingClassifier(
            max_iter=self.max_iter,
            learning_rate=self.learning_rate,
            max_leaf_nodes=self.max_leaf_nodes,
            min_samples_leaf=self.min_samples_leaf,
            l2_regularization=self.l2_regularization,
            class_weight=self.class_weight,
            early_stopping=False,
            random_state=self.random_state,
        )

    def _fit_arrays(self, F: np.ndarray, code: np.ndarray) -> None:
        self.temperature_ = 1.0
        C = len(self.classes_)
        counts = np.bincount(code, minlength=C)
        n_cal = int(len(F) * self.calibration_fraction)
        if self.calibrate and counts.min() >= 2 and C <= n_cal < len(F) - C:
            tr, te = train_test_split(
                np.arange(len(F)), test_size=self.calibration_fraction,
                random_state=self.random_state, stratify=code,
            )  # fmt: skip
            m = self._booster().fit(F[tr], code[tr])
            s = np.full((len(te), C), -1e3)  # a class absent from the fit part
            s[:, m.classes_] = _scores(m, F[te])
            self.temperature_ = fit_temperature(s, code[te])
        self.model_ = self._booster().fit(F, code)

    def _predict_arrays(self, X: pd.DataFrame):
        F, reasons = self.feature_set_.build(X)
        ok = reasons == None  # noqa: E711
        P = np.full((len(X), len(self.classes_)), np.nan)
        if ok.any():
            s = np.full((int(ok.sum()), len(self.classes_)), -1e3)
            s[:, self.model_.classes_] = _scores(self.model_, F[ok])
            P[ok] = softmax(s / self.temperature_)
        return P, reasons, None
