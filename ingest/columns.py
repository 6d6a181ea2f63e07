"""Conform frames to the stored CSC columns of ``db.csc_columns`` (names, order, dtypes)."""

from __future__ import annotations

import pandas as pd

from db.csc_columns import DETECTION_COLUMNS, SOURCE_COLUMNS, Column

STORED: tuple[Column, ...] = SOURCE_COLUMNS + DETECTION_COLUMNS
STORED_NAMES: list[str] = [c.name for c in STORED]
_DTYPES = {"int": "Int64", "bigint": "Int64", "double": "float64", "text": "string",
           "bool": "boolean"}


def dtype_of(col: Column) -> str:
    """The pandas dtype ingest delivers for a stored column."""
    return _DTYPES[col.sql_type]


def conform(df: pd.DataFrame) -> pd.DataFrame:
    """Exactly the stored columns, in order, with canonical dtypes; absent ones are NA.

    Raises ValueError (with the column name) when a value cannot take its column's type.
    """
    out = {}
    for col in STORED:
        dtype = dtype_of(col)
        if col.name not in df.columns:
            na = float("nan") if dtype == "float64" else pd.NA
            out[col.name] = pd.Series(na, index=df.index, dtype=dtype)
            continue
        s = df[col.name]
        try:
            if dtype == "string":
                s = s.astype("string").str.strip().replace("", pd.NA)
            elif dtype == "Int64":
                s = pd.to_numeric(s, errors="raise").astype("Int64")
            elif dtype == "float64":
                s = pd.to_numeric(s, errors="raise").astype("float64")
            else:
                s = s.astype(dtype)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"column {col.name!r}: {exc}") from exc
        out[col.name] = s
    return pd.DataFrame(out, index=df.index)
