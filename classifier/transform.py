"""The paper's feature transform, as a fitted, serializable object.

For each *log feature*: ``x -> log(x + m/10)`` with ``m`` the smallest non-zero value of that
feature among the valid fit rows, then min-max to [0, 1]. The CSC log features (bb_kt,
var_ratio_*, var_newq_b) are non-negative, so ``m`` is taken as the smallest *positive* value:
identical for such data, and a stray negative value then makes only its own row invalid
(``x + m/10 <= 0``) instead of shifting the whole feature. For each *scale feature*: min-max
only. Other features pass unchanged. Min-max is ``(v - min) / (max - min)``; a constant
feature (max == min) is mapped to ``v - min`` (i.e. 0) instead of dividing by zero.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd


def check_columns(X: pd.DataFrame, features: list[str]) -> None:
    """Raise ``ValueError`` naming every feature column missing from ``X``."""
    if not isinstance(X, pd.DataFrame):
        raise TypeError(f"X must be a pandas DataFrame, got {type(X).__name__}")
    missing = [f for f in features if f not in X.columns]
    if missing:
        raise ValueError(f"missing feature columns: {', '.join(missing)}")


def feature_matrix(X: pd.DataFrame, features: list[str]) -> np.ndarray:
    """The feature columns of ``X`` as a float64 (n, d) array; non-numeric values become NaN."""
    check_columns(X, features)
    cols = []
    for f in features:
        col = X[f]
        if not pd.api.types.is_float_dtype(col.dtype) or isinstance(col.dtype, pd.ArrowDtype):
            col = pd.to_numeric(col, errors="coerce")
        cols.append(col.to_numpy(dtype="float64", na_value=np.nan))
    return np.column_stack(cols) if cols else np.empty((len(X), 0))


def nonfinite_reasons(A: np.ndarray, features: list[str]) -> np.ndarray:
    """Per row: ``None`` or a reason naming the non-finite features, e.g. ``'bb_kt is NaN'``."""
    reasons = np.full(A.shape[0], None, dtype=object)
    bad = ~np.isfinite(A)
    for i in np.flatnonzero(bad.any(axis=1)):
        parts = []
        for j in np.flatnonzero(bad[i]):
            v = A[i, j]
            what = "NaN" if np.isnan(v) else ("inf" if v > 0 else "-inf")
            parts.append(f"{features[j]} is {what}")
        reasons[i] = "invalid features: " + ", ".join(parts)
    return reasons


@dataclass
class FeatureTransform:
    """Fitted transform. Arrays are indexed like ``features``."""

    features: list[str]
    log_features: list[str]
    scale_features: list[str]
    offset_: np.ndarray = field(default=None)  # m/10 for log features, 0 elsewhere
    min_: np.ndarray = field(default=None)  # min of (log-)values for scaled features, 0 elsewhere
    range_: np.ndarray = field(default=None)  # max - min (1 if constant), 1 elsewhere

    def __post_init__(self) -> None:
        unknown = [f for f in [*self.log_features, *self.scale_features] if f not in self.features]
        if unknown:
            raise ValueError(f"log/scale features not in features: {', '.join(unknown)}")
        both = set(self.log_features) & set(self.scale_features)
        if both:
            raise ValueError(f"features both log and scale: {', '.join(sorted(both))}")
        if len(set(self.features)) != len(self.features):
            raise ValueError("duplicate feature names")
        self._is_log = np.array([f in self.log_features for f in self.features], dtype=bool)
        self._is_scaled = self._is_log | np.array(
            [f in self.scale_features for f in self.features], dtype=bool
        )

    # ------------------------------------------------------------------ fitting
    def fit(self, A: np.ndarray) -> np.ndarray:
        """Fit on the finite rows of ``A`` (n, d). Returns per-row reasons (None = valid).

        Rows with NaN/inf, or where ``x + m/10 <= 0`` for a log feature, are invalid and do not
        take part in the offsets or ranges.
        """
        A = np.asarray(A, dtype="float64")
        reasons = nonfinite_reasons(A, self.features)
        ok = reasons == None  # noqa: E711  (object array comparison)
        d = A.shape[1]
        offset = np.zeros(d)
        for j in np.flatnonzero(self._is_log):
            col = A[ok, j]
            nz = col[col > 0]
            if nz.size == 0:
                raise ValueError(
                    f"log feature {self.features[j]} has no positive finite value to fit on"
                )
            offset[j] = nz.min() / 10
        self.offset_ = offset
        self.min_ = np.zeros(d)
        self.range_ = np.ones(d)
        reasons = self._log_reasons(A, reasons)
        ok = reasons == None  # noqa: E711
        if not ok.any():
            raise ValueError("no valid rows to fit the transform on")
        L = self._log(A[ok])
        for j in np.flatnonzero(self._is_scaled):
            lo, hi = L[:, j].min(), L[:, j].max()
            self.min_[j] = lo
            self.range_[j] = (hi - lo) if hi > lo else 1.0
        return reasons

    # ------------------------------------------------------------------ applying
    def _log_reasons(self, A: np.ndarray, reasons: np.ndarray) -> np.ndarray:
        reasons = reasons.copy()
        with np.errstate(invalid="ignore"):
            shifted = A[:, self._is_log] + self.offset_[self._is_log]
            bad = shifted <= 0
        names = [f for f, is_log in zip(self.features, self._is_log, strict=True) if is_log]
        for i in np.flatnonzero(bad.any(axis=1)):
            parts = [
                f"{names[j]} + {self.offset_[self._is_log][j]!r} <= 0 (log undefined)"
                for j in np.flatnonzero(bad[i])
            ]
            detail = ", ".join(parts)
            reasons[i] = (
                f"invalid features: {detail}" if reasons[i] is None else f"{reasons[i]}, {detail}"
            )
        return reasons

    def _log(self, A: np.ndarray) -> np.ndarray:
        out = np.array(A, dtype="float64", copy=True)
        for j in np.flatnonzero(self._is_log):
            out[:, j] = np.log(A[:, j] + self.offset_[j])
        return out

    def validate(self, A: np.ndarray) -> np.ndarray:
        """Per-row reasons (None = valid) for already-fitted offsets."""
        A = np.asarray(A, dtype="float64")
        return self._log_reasons(A, nonfinite_reasons(A, self.features))

    def transform(self, A: np.ndarray) -> np.ndarray:
        """Transform valid rows (call :meth:`validate` first; invalid rows give NaN/inf)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            L = self._log(np.asarray(A, dtype="float64"))
        for j in np.flatnonzero(self._is_scaled):
            L[:, j] = (L[:, j] - self.min_[j]) / self.range_[j]
        return L

    # ------------------------------------------------------------------ serialization
    def to_dict(self) -> dict:
        return {
            "features": list(self.features),
            "log_features": list(self.log_features),
            "scale_features": list(self.scale_features),
            "offset": [float(v) for v in self.offset_],
            "min": [float(v) for v in self.min_],
            "range": [float(v) for v in self.range_],
        }

    @classmethod
    def from_dict(cls, d: dict) -> FeatureTransform:
        t = cls(list(d["features"]), list(d["log_features"]), list(d["scale_features"]))
        t.offset_ = np.asarray(d["offset"], dtype="float64")
        t.min_ = np.asarray(d["min"], dtype="float64")
        t.range_ = np.asarray(d["range"], dtype="float64")
        return t
