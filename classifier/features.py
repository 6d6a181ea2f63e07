"""Feature lists (the one place for them) and derivation from CSC per-observation columns."""

from __future__ import annotations

import numpy as np
import pandas as pd

#: Default features of Pérez-Díaz et al. (2024), in model order.
DEFAULT_FEATURES: list[str] = [
    "hard_hm",
    "hard_hs",
    "hard_ms",
    "powlaw_gamma",
    "bb_kt",
    "var_prob_b",
    "var_ratio_b",
    "var_prob_h",
    "var_ratio_h",
    "var_prob_s",
    "var_ratio_s",
    "var_newq_b",
]

#: Features transformed by x -> log(x + m/10) (m = smallest non-zero value), then min-max.
LOG_FEATURES: list[str] = ["bb_kt", "var_ratio_b", "var_ratio_h", "var_ratio_s", "var_newq_b"]

#: Features only min-max scaled.
SCALE_FEATURES: list[str] = ["powlaw_gamma"]

#: The 11-feature variant (CSC tables without var_max_b/var_min_b, e.g. the shared CSC 2.1 file).
FEATURES_NO_NEWQ: list[str] = [f for f in DEFAULT_FEATURES if f != "var_newq_b"]

#: Named feature sets (the ``features`` setting of the pipeline).
FEATURE_SETS: dict[str, list[str]] = {"paper12": DEFAULT_FEATURES, "paper11": FEATURES_NO_NEWQ}

#: CSC per-observation columns needed by :func:`derive_features`.
CSC_SOURCE_COLUMNS: list[str] = [
    "hard_hm",
    "hard_hs",
    "hard_ms",
    "powlaw_gamma",
    "bb_kt",
    "var_prob_b",
    "var_prob_h",
    "var_prob_s",
    "var_sigma_b",
    "var_mean_b",
    "var_sigma_h",
    "var_mean_h",
    "var_sigma_s",
    "var_mean_s",
    "var_max_b",
    "var_min_b",
]


def _ratio(num: pd.Series, den: pd.Series) -> pd.Series:
    num = pd.to_numeric(num, errors="coerce").astype("float64")
    den = pd.to_numeric(den, errors="coerce").astype("float64")
    with np.errstate(divide="ignore", invalid="ignore"):
        out = num.to_numpy() / den.to_numpy()
    out[~np.isfinite(out)] = np.nan  # division by zero (or inf) -> NaN
    return pd.Series(out, index=num.index)


def derive_features(df: pd.DataFrame) -> pd.DataFrame:
    """Return a copy of ``df`` with the derived features added.

    ``var_ratio_x = var_sigma_x / var_mean_x`` for x in b, h, s and
    ``var_newq_b = ((var_max_b + var_min_b) / 2) / var_mean_b``. A derived value is added only
    when its inputs are present; a zero (or missing) denominator gives NaN, which the model
    later reports as an invalid row. Existing columns of the same name are overwritten.
    """
    out = df.copy()
    for band in ("b", "h", "s"):
        sig, mean = f"var_sigma_{band}", f"var_mean_{band}"
        if sig in df.columns and mean in df.columns:
            out[f"var_ratio_{band}"] = _ratio(df[sig], df[mean])
    if {"var_max_b", "var_min_b", "var_mean_b"} <= set(df.columns):
        mid = (
            pd.to_numeric(df["var_max_b"], errors="coerce").astype("float64")
            + pd.to_numeric(df["var_min_b"], errors="coerce").astype("float64")
        ) / 2
        out["var_newq_b"] = _ratio(mid, df["var_mean_b"])
    return out
