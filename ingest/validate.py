"""Vectorized validation of detection and SIMBAD frames before they are stored."""

from __future__ import annotations

from typing import NamedTuple

import pandas as pd

from db.csc_columns import DETECTION_KEY
from ingest.columns import STORED, conform
from ingest.sky import NAME_PATTERN

REJECT_COLUMNS = ["row", "name", "obsid", "obi", "region_id", "reason", "message"]


class Validation(NamedTuple):
    """Rows to store, rows rejected (with row number, key and reason), duplicates dropped."""

    good: pd.DataFrame
    rejected: pd.DataFrame
    duplicates: int


def _text(s: pd.Series) -> pd.Series:
    return s.astype("string").fillna("?")


def _fmt(x: float) -> str:
    return f"{x:g}"


def _bound(x: float | None) -> str:
    return "inf" if x is None else _fmt(x)


def _add(reasons: pd.Series, bad: pd.Series, msg) -> None:
    """Append ``msg`` (text, a Series, or a callable making the Series) where ``bad``; the
    callable runs only when some row is bad (building messages for every row is slow)."""
    bad = bad.fillna(False).astype(bool)
    if bad.any():
        msg = msg() if callable(msg) else msg
        part = msg[bad] if isinstance(msg, pd.Series) else msg
        reasons[bad] = reasons[bad] + "; " + part


def _reasons(df: pd.DataFrame) -> pd.Series:
    reasons = pd.Series("", index=df.index, dtype="string")
    for col in STORED:
        if col.name not in df.columns:
            if col.required:
                _add(reasons, pd.Series(True, index=df.index), f"{col.name} missing")
            continue
        raw = df[col.name]
        # A numeric column's values are never blank text nor unparsable: skip the text checks.
        numeric = pd.api.types.is_numeric_dtype(raw.dtype)
        if col.required:
            empty = raw.isna() if numeric else (
                raw.isna() | (raw.astype("string").str.strip() == ""))
            _add(reasons, empty, f"{col.name} missing")
        if col.sql_type in ("int", "bigint", "double"):
            num = pd.to_numeric(raw, errors="coerce")
            if not numeric:
                unparsable = (num.isna() & raw.notna()
                              & (raw.astype("string").str.strip() != ""))
                _add(reasons, unparsable,
                     lambda n=col.name, r=raw: n + "=" + r.astype(str) + " is not a number")
            if col.sql_type != "double":
                frac = num.notna() & (num != num.round())
                _add(reasons, frac,
                     lambda n=col.name, v=num: n + "=" + v.astype(str) + " is not an integer")
            if col.valid is not None:
                lo, hi = col.valid
                out = pd.Series(False, index=df.index)
                if lo is not None:
                    out |= num < lo
                if hi is not None:
                    out |= num > hi
                if out.any():
                    txt = num[out].map(_fmt)
                    _add(reasons, out, col.name + "=" + txt
                         + f" outside [{_bound(lo)}, {_bound(hi)}]")
    if "name" in df.columns:
        name = df["name"].astype("string")
        bad = name.notna() & ~name.str.fullmatch(NAME_PATTERN).fillna(False)
        _add(reasons, bad, lambda: "name " + name.astype(str) + " is not 2CXO Jhhmmss.s±ddmmss")
    return reasons.str.removeprefix("; ")


def validate_detections(df: pd.DataFrame) -> Validation:
    """Split rows into storable ones (conformed, duplicates collapsed) and rejected ones.

    Rejected rows keep their 1-based input row number, natural key and a reason such as
    ``row 17 (2CXO J004307.5-092302, obsid 4884): hard_hm=1.7 outside [-1, 1]``.
    """
    df = df.reset_index(drop=True)
    reasons = _reasons(df)
    bad = reasons != ""
    row = pd.Series(df.index + 1, index=df.index)
    key = {c: df[c] if c in df.columns else pd.Series(pd.NA, index=df.index)
           for c in ("name", *DETECTION_KEY)}
    rejected = pd.DataFrame({"row": row, **key, "reason": reasons})[bad]
    rejected["message"] = ("row " + rejected["row"].astype("string") + " ("
                           + _text(rejected["name"]) + ", obsid "
                           + _text(rejected["obsid"]) + "): " + rejected["reason"])
    good = conform(df[~bad])
    dup = good.duplicated(["name", *DETECTION_KEY], keep="first")
    good = good[~dup].reset_index(drop=True)
    return Validation(good, rejected[REJECT_COLUMNS].reset_index(drop=True), int(dup.sum()))


def validate_simbad(df: pd.DataFrame, radius_arcsec: float = 1.0) -> Validation:
    """Check a [name, main_id, otype, separation_arcsec] frame; keep the nearest per name."""
    df = df.reset_index(drop=True)
    reasons = pd.Series("", index=df.index, dtype="string")
    name = df["name"].astype("string") if "name" in df.columns else pd.Series(
        pd.NA, index=df.index, dtype="string")
    _add(reasons, name.isna(), "name missing")
    _add(reasons, name.notna() & ~name.str.fullmatch(NAME_PATTERN).fillna(False),
         "name " + name.astype(str) + " is not 2CXO Jhhmmss.s±ddmmss")
    main_id = df["main_id"].astype("string").str.strip().replace("", pd.NA)
    otype = df["otype"].astype("string").str.strip().replace("", pd.NA)
    sep = pd.to_numeric(df["separation_arcsec"], errors="coerce")
    _add(reasons, main_id.notna() & otype.isna(), "otype missing for a match")
    _add(reasons, main_id.notna() & (sep.isna() | (sep < 0) | (sep > radius_arcsec)),
         "separation_arcsec=" + sep.astype(str) + f" outside [0, {radius_arcsec:g}]")
    reasons = reasons.str.removeprefix("; ")
    bad = reasons != ""
    rejected = pd.DataFrame({"row": df.index + 1, "name": name, "reason": reasons})[bad]
    rejected["message"] = ("row " + rejected["row"].astype("string") + " ("
                           + _text(rejected["name"]) + "): " + rejected["reason"])
    good = pd.DataFrame({"name": name, "main_id": main_id,
                         "otype": otype.where(main_id.notna()),
                         "separation_arcsec": sep.where(main_id.notna())})[~bad]
    good = good.sort_values(["name", "separation_arcsec"], kind="stable", na_position="last")
    dup = good.duplicated("name", keep="first")
    good = good[~dup].sort_index().reset_index(drop=True)
    return Validation(good, rejected.reset_index(drop=True), int(dup.sum()))
