"""The contract every classifier family follows (what the catalog relies on).

* ``fit(X: DataFrame, y: Series)``: ``y`` has the index of ``X``; a missing label means
  unlabelled (used only by families that use unlabelled rows, e.g. ``ctl``).
* ``predict_proba(X) -> DataFrame``: index of ``X``, one column per class of ``classes_``;
  rows the family cannot classify are all-NaN.
* ``predict(X) -> DataFrame``: ``predicted_class`` (string, <NA> when not classified), the
  probability columns, ``reason`` (None when classified, else why not) and the family's
  extra columns (uncertainty, outlier measure, ...).
* class attribute ``unit``: ``"source"`` or ``"detection"``; ``required_columns()``: the
  input columns it reads.
* Learned state is listed in ``_state`` so :func:`classifier.save` can store it without
  pickle (arrays, JSON values and scikit-learn estimators via skops).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator

from .features import FeatureSet, feature_set


class Family(BaseEstimator):
    """Base class of the supervised families (see the module docstring)."""

    name: ClassVar[str] = ""
    unit: ClassVar[str] = "source"
    _state: ClassVar[tuple[str, ...]] = ()

    # ----------------------------------------------------------------- to override
    def _fit_arrays(self, F: np.ndarray, code: np.ndarray) -> None:
        """Learn from valid labelled rows: features ``F``, class index ``code``."""
        raise NotImplementedError

    def _predict_arrays(self, X: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
        """(P (n, C) NaN rows for unclassifiable, reasons (n,) object, extras frame)."""
        raise NotImplementedError

    # ----------------------------------------------------------------- contract
    @property
    def feature_set_(self) -> FeatureSet:
        return feature_set(self.feature_set)

    def required_columns(self) -> list[str]:
        return list(feature_set(self.feature_set).columns)

    def fit(self, X: pd.DataFrame, y: pd.Series) -> Family:
        fs = feature_set(self.feature_set)
        labels = _check_y(X, y)
        F, reasons = fs.build(X)
        keep = pd.notna(labels) & (reasons == None)  # noqa: E711
        if not keep.any():
            raise ValueError("no labelled row with valid features to fit on")
        classes = sorted({str(v) for v in labels[keep]})
        if len(classes) < 2:
            raise ValueError(f"need at least 2 classes to fit, got {classes}")
        lookup = {c: i for i, c in enumerate(classes)}
        code = np.array([lookup[str(v)] for v in labels[keep]], dtype=np.int64)
        self.classes_ = classes
        self.features_ = list(fs.features)
        self.n_fit_rows_ = int(keep.sum())
        Fk, code = self._augment(X.iloc[np.flatnonzero(keep)], F[keep], code)
        self._fit_arrays(Fk, code)
        return self

    def _augment(self, X: pd.DataFrame, F: np.ndarray, code: np.ndarray):
        """Training rows from the valid labelled rows (default: as they are)."""
        return F, code

    def _check_fitted(self) -> None:
        if not hasattr(self, "classes_"):
            from ..model import NotFittedError

            raise NotFittedError(f"{type(self).__name__} is not fitted; call fit() or load()")

    def predict_proba(self, X: pd.DataFrame) -> pd.DataFrame:
        self._check_fitted()
        P, _, _ = self._predict_arrays(X)
        return pd.DataFrame(P, index=X.index, columns=list(self.classes_))

    def predict(self, X: pd.DataFrame) -> pd.DataFrame:
        self._check_fitted()
        P, reasons, extras = self._predict_arrays(X)
        return assemble(X.index, list(self.classes_), P, reasons, extras)


def assemble(index, classes, P, reasons, extras=None) -> pd.DataFrame:
    """The ``predict`` frame from probabilities, reasons and extra columns."""
    ok = ~np.isnan(P).any(axis=1) if P.shape[1] else np.zeros(len(P), bool)
    best = np.argmax(np.where(ok[:, None], P, -np.inf), axis=1)
    pred = np.array(classes, dtype=object)[best] if len(best) else np.array([], object)
    out = pd.DataFrame(index=index)
    out["predicted_class"] = pd.Series(pred, index=index, dtype="object").where(ok, None)
    out["predicted_class"] = out["predicted_class"].astype("string")
    for j, c in enumerate(classes):
        out[c] = P[:, j]
    out["reason"] = pd.Series(reasons, index=index, dtype="object")
    if extras is not None:
        for c in extras.columns:
            out[c] = extras[c].to_numpy()
    return out


def _check_y(X: pd.DataFrame, y) -> np.ndarray:
    if not isinstance(X, pd.DataFrame):
        raise TypeError("X must be a pandas DataFrame")
    if isinstance(y, pd.Series):
        if len(y) != len(X) or not y.index.equals(X.index):
            raise ValueError("y must be a Series with the same index as X")
        s = y.astype("object")
    else:
        s = pd.Series(np.asarray(y, dtype=object), index=X.index)
    return s.where(s.notna(), None).to_numpy(dtype=object)


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)
