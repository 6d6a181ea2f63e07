"""Parse frames into the stored CSC columns of ``db.csc_columns`` (names, order, dtypes), once.

``parse`` turns every value into its column's type in one pass and says, per cell, what could
not be: unparsable numbers, fractional or out-of-range integers, infinities, text with control
characters. Those cells become NA and their reasons are kept, so a caller rejects exactly the
rows concerned and loads the rest. ``conform`` is the strict form for trusted input.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pandas as pd

from db.csc_columns import DERIVED_COLUMNS, DETECTION_COLUMNS, INT_RANGE, SOURCE_COLUMNS, Column

STORED: tuple[Column, ...] = SOURCE_COLUMNS + DETECTION_COLUMNS
STORED_NAMES: list[str] = [c.name for c in STORED]
#: What ``parse`` delivers: the stored columns, then the derived ones a file may give.
PARSED: tuple[Column, ...] = STORED + DERIVED_COLUMNS
_DTYPES = {"int": "Int64", "bigint": "Int64", "double": "float64", "text": "string",
           "bool": "boolean"}
_CONTROL = r"[\x00-\x1f\x7f]"
_SHOW_MAX = 40


def dtype_of(col: Column) -> str:
    """The pandas dtype ingest delivers for a stored column."""
    return _DTYPES[col.sql_type]


def printable(s: pd.Series, limit: int = _SHOW_MAX, quote: bool = False) -> pd.Series:
    """Values as text fit for a message: control characters escaped (``\\x00``), long
    values cut to ``limit`` characters with ``…``, NA as ``?``. ``quote``: a value with
    spaces, quotes or ``;`` (or empty) is shown in single quotes, ``'`` and ``;`` escaped, so
    that a reason (``; ``-joined) reads unambiguously."""
    text = s.astype("string").fillna("?")
    odd = (text.str.contains(r"[\s;'\\]", regex=True) | (text == "")) if quote else None
    if quote and odd.any():
        text = text.where(~odd, text.str.replace("\\", "\\\\", regex=False)
                          .str.replace("'", "\\'", regex=False)
                          .str.replace(";", "\\x3b", regex=False))
    if text.str.contains(_CONTROL, regex=True).any():
        text = text.str.replace(_CONTROL, lambda m: f"\\x{ord(m.group(0)):02x}", regex=True)
    long = text.str.len() > limit
    if long.any():
        text = text.where(~long, text.str.slice(0, limit - 1) + "…")
    if quote and odd.any():
        text = text.where(~odd, "'" + text + "'")
    return text


class Parsed(NamedTuple):
    """Typed columns (bad cells NA), and per column the reasons of its bad cells."""

    frame: pd.DataFrame
    problems: dict[str, pd.Series]  # column -> reason text at the bad rows only
    given: frozenset[str]  # the columns the input had

    def reasons(self) -> pd.Series:
        """Per row: every problem, ``; ``-joined ('' when none)."""
        out = pd.Series("", index=self.frame.index, dtype="string")
        for msg in self.problems.values():
            out[msg.index] = out[msg.index] + "; " + msg
        return out.str.removeprefix("; ")


def _show(name: str, values: pd.Series) -> pd.Series:
    return name + "=" + printable(values, quote=True)


def _numeric(col: Column, raw: pd.Series) -> tuple[pd.Series, pd.Series | None]:
    """(float64 values with bad cells NaN, reasons at bad rows or None)."""
    name = col.name
    bad_msg = []
    if pd.api.types.is_bool_dtype(raw.dtype):
        vals = pd.Series(np.nan, index=raw.index)
        bad = raw.notna()
        bad_msg.append((bad, lambda b: _show(name, raw[b]) + " is not a number"))
    elif pd.api.types.is_numeric_dtype(raw.dtype):
        vals = raw.astype("float64")
        if pd.api.types.is_integer_dtype(raw.dtype) and col.sql_type in INT_RANGE:
            lo, hi = INT_RANGE[col.sql_type]
            ints = raw.astype("Int64")
            out = ints.notna() & ((ints < lo) | (ints > hi))
            bad_msg.append((out.fillna(False), lambda b: _show(name, raw[b])
                            + f" outside the {col.sql_type} range [{lo}, {hi}]"))
            vals = vals.where(~out.fillna(False).to_numpy())
    else:
        text = raw.astype("string").str.strip()
        vals = pd.to_numeric(text, errors="coerce").astype("float64")
        bad = vals.isna() & text.notna() & (text != "") & ~text.str.lower().isin(
            ["nan", "null", "na", "none", "--"])
        bad_msg.append((bad, lambda b: _show(name, raw[b]) + " is not a number"))
    inf = np.isinf(vals.to_numpy())
    if inf.any():
        inf_s = pd.Series(inf, index=raw.index)
        bad_msg.append((inf_s, lambda b: _show(name, raw[b]) + " is not finite"))
        vals = vals.where(~inf)
    if col.sql_type in INT_RANGE:
        lo, hi = INT_RANGE[col.sql_type]
        frac = vals.notna() & (vals != np.round(vals))
        bad_msg.append((frac, lambda b: _show(name, raw[b]) + " is not an integer"))
        out = vals.notna() & ~frac & ((vals < lo) | (vals > hi))
        bad_msg.append((out, lambda b: _show(name, raw[b])
                        + f" outside the {col.sql_type} range [{lo}, {hi}]"))
        vals = vals.where(~(frac | out))
    msgs = [mk(mask) for mask, mk in bad_msg if mask.any()]
    if not msgs:
        return vals, None
    merged = pd.concat(msgs)
    merged = merged.groupby(level=0, sort=True).agg("; ".join)
    return vals, merged.astype("string")


def _text(col: Column, raw: pd.Series) -> tuple[pd.Series, pd.Series | None]:
    if raw.dtype == object and len(raw):
        raw = raw.map(lambda v: v.decode("utf-8", "replace") if isinstance(v, bytes) else v)
    s = raw.astype("string").str.strip().replace("", pd.NA)
    if col.choices is not None or col.name == "name":
        return s, None  # its own rule (choices, the name pattern) refuses control characters
    ctrl = s.str.contains(_CONTROL, regex=True).fillna(False)
    if not ctrl.any():
        return s, None
    msg = col.name + " " + printable(s[ctrl], quote=True) + " contains a control character"
    msg = msg.astype("string")
    return s.where(~ctrl), msg


def parse(df: pd.DataFrame, columns: tuple[Column, ...] = PARSED) -> Parsed:
    """Every column of ``columns`` typed, in order; absent ones NA, bad cells NA with reasons.

    The frame keeps ``df``'s index.
    """
    out: dict[str, pd.Series] = {}
    problems: dict[str, pd.Series] = {}
    for col in columns:
        dtype = dtype_of(col)
        if col.name not in df.columns:
            na = float("nan") if dtype == "float64" else pd.NA
            out[col.name] = pd.Series(na, index=df.index, dtype=dtype)
            continue
        raw = df[col.name]
        if dtype == "string":
            vals, msg = _text(col, raw)
        elif dtype in ("Int64", "float64"):
            vals, msg = _numeric(col, raw)
            if dtype == "Int64":
                vals = pd.array(vals.to_numpy(), dtype="Float64").astype("Int64")
                vals = pd.Series(vals, index=df.index)
        else:
            vals, msg = raw.astype(dtype), None
        out[col.name] = vals
        if msg is not None:
            problems[col.name] = msg
    frame = pd.DataFrame(out, index=df.index)
    return Parsed(frame, problems, frozenset(c.name for c in columns if c.name in df.columns))


def conform(df: pd.DataFrame) -> pd.DataFrame:
    """Exactly the stored columns, in order, with canonical dtypes; absent ones are NA.

    Strict: raises ValueError (naming the column and the first bad value) when a value cannot
    take its column's type. Input from files goes through ``parse`` instead.
    """
    parsed = parse(df, STORED)
    if parsed.problems:
        col, msg = next(iter(parsed.problems.items()))
        raise ValueError(f"column {col!r}: {msg.iloc[0]}")
    return parsed.frame
