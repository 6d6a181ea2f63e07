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


_WHAT = {1: "is NaN", 2: "is inf", 3: "is -inf"}


def row_reasons(
    A: np.ndarray,
    features: list[str],
    log_mask: np.ndarray | None = None,
    offset: np.ndarray | None = None,
) -> np.ndarray:
    """Per row: ``None`` (valid) or the reason it is invalid, vectorized over rows.

    E.g. ``"invalid features: bb_kt is NaN, var_ratio_b + 0.0001 <= 0 (log undefined)"``.
    With ``log_mask``/``offset``, finite values of log features with ``x + offset <= 0`` are
    invalid too.
    """
    A = np.asarray(A, dtype="float64")
    code = np.zeros(A.shape, dtype=np.int8)
    code[np.isnan(A)] = 1
    code[np.isposinf(A)] = 2
    code[np.isneginf(A)] = 3
    if log_mask is not None and log_mask.any():
        with np.errstate(invalid="ignore"):
            undefined = (A[:, log_mask] + offset[log_mask]) <= 0
        sub = code[:, log_mask]
        sub[undefined & (sub == 0)] = 4
        code[:, log_mask] = sub
    reasons = np.full(A.shape[0], None, dtype=object)
    bad_rows = np.flatnonzero(code.any(axis=1))
    if bad_rows.size == 0:
        return reasons
    patterns, inverse = np.unique(code[bad_rows], axis=0, return_inverse=True)
    messages = []
    for pat in patterns:
        parts = [
            f"{features[j]} {_WHAT[int(pat[j])]}" for j in np.flatnonzero((pat >= 1) & (pat <= 3))
        ]
        parts += [
            f"{features[j]} + {float(offset[j])!r} <= 0 (log undefined)"
            for j in np.flatnonzero(pat == 4)
        ]
        messages.append("invalid features: " + ", ".join(parts))
    reasons[bad_rows] = np.array(messages, dtype=object)[np.ravel(inverse)]
    return reasons


def nonfinite_reasons(A: np.ndarray, features: list[str]) -> np.ndarray:
    """Per row: ``None`` or a reason naming the non-finite features, e.g. ``'bb_kt is NaN'``."""
    return row_reasons(A, features)


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
        if len(A) and not ok.any():
            bad = (~np.isfinite(A)).sum(axis=0)
            parts = [f"{self.features[j]} is not finite in {bad[j]:,} of {len(A):,} rows"
                     for j in np.argsort(-bad, kind="stable") if bad[j]]
            raise ValueError(f"no row has all {d} features finite: {', '.join(parts)}")
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
        reasons = self._log_reasons(A)
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
    def _log_reasons(self, A: np.ndarray) -> np.ndarray:
        return row_reasons(A, self.features, self._is_log, self.offset_)

    def _log(self, A: np.ndarray) -> np.ndarray:
        out = np.array(A, dtype="float64", copy=True)
        for j in np.flatnonzero(self._is_log):
            out[:, j] = np.log(A[:, j] + self.offset_[j])
        return out

    def validate(self, A: np.ndarray) -> np.ndarray:
        """Per-row reasons (None = valid) for already-fitted offsets."""
        A = np.asarray(A, dtype="float64")
        return self._log_reasons(A)

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
