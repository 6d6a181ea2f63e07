"""Vectorized validation of detection and SIMBAD frames before they are stored."""

from __future__ import annotations

from typing import NamedTuple

import pandas as pd

from db.csc_columns import DETECTION_KEY
from ingest.columns import PARSED, parse, printable
from ingest.sky import NAME_PATTERN

REJECT_COLUMNS = ["row", "name", "obsid", "obi", "region_id", "reason", "message"]


class Validation(NamedTuple):
    """Rows to store, rows rejected (with row number, key and reason), duplicates dropped."""

    good: pd.DataFrame
    rejected: pd.DataFrame
    duplicates: int


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


def _reasons(df: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series]:
    """(parsed frame, per-row reasons): values parsed once, then checked against the rules."""
    parsed = parse(df)
    frame = parsed.frame
    reasons = parsed.reasons()
    for col in PARSED:
        vals = frame[col.name]
        if col.required:
            unparsed = pd.Series(False, index=df.index)
            if col.name in parsed.problems:
                unparsed[parsed.problems[col.name].index] = True
            _add(reasons, vals.isna() & ~unparsed, f"{col.name} missing")
        if col.name not in parsed.given:
            continue
        if col.valid is not None:
            lo, hi = col.valid
            num = vals.astype("float64")
            out = pd.Series(False, index=df.index)
            if lo is not None:
                out |= num < lo
            if hi is not None:
                out |= num > hi
            if out.any():
                txt = num[out].map(_fmt)
                _add(reasons, out, col.name + "=" + txt
                     + f" outside [{_bound(lo)}, {_bound(hi)}]")
        if col.choices is not None:
            other = vals.notna() & ~vals.isin(col.choices).fillna(False)
            _add(reasons, other, lambda n=col.name, v=vals, c=col.choices:
                 n + " " + printable(v, quote=True) + " is not one of " + ", ".join(c))
    name = frame["name"]
    bad = name.notna() & ~name.str.fullmatch(NAME_PATTERN).fillna(False)
    _add(reasons, bad,
         lambda: "name " + printable(name, quote=True) + " is not 2CXO Jhhmmss.s±ddmmss")
    return frame, reasons.str.removeprefix("; ")


def validate_detections(df: pd.DataFrame) -> Validation:
    """Split rows into storable ones (parsed, duplicates collapsed) and rejected ones.

    Values are parsed once (``ingest.columns.parse``). ``good`` keeps the input's 0-based row
    positions as its index. Rejected rows keep their 1-based input row number, natural key
    (printable) and a reason such as
    ``row 17 (2CXO J004307.5-092302, obsid 4884): hard_hm=1.7 outside [-1, 1]``.
    """
    row_problems = dict(df.attrs.get("row_problems") or {})  # set by ingest.files.read_table
    df = df.reset_index(drop=True)
    frame, reasons = _reasons(df)
    if row_problems:
        at = pd.Series(row_problems, dtype="string")
        at = at[at.index.isin(reasons.index)]
        reasons[at.index] = (at + "; " + reasons[at.index]).str.removesuffix("; ")
    bad = reasons != ""
    row = pd.Series(df.index + 1, index=df.index)
    shown = {c: printable(df.loc[bad, c].astype("string").str.strip().replace("", pd.NA))
             if c in df.columns
             else pd.Series("?", index=df.index[bad], dtype="string") for c in ("name", "obsid")}
    key = {c: frame.loc[bad, c] for c in DETECTION_KEY}
    rejected = pd.DataFrame({"row": row[bad], "name": shown["name"], **key,
                             "reason": reasons[bad]})
    rejected["message"] = ("row " + rejected["row"].astype("string") + " ("
                           + rejected["name"] + ", obsid "
                           + shown["obsid"] + "): " + rejected["reason"])
    good = frame[~bad] if bad.any() else frame  # no copy of a clean frame
    dup = good.duplicated(["name", *DETECTION_KEY], keep="first")
    good = good[~dup] if dup.any() else good
    return Validation(good, rejected[REJECT_COLUMNS].reset_index(drop=True), int(dup.sum()))


def validate_simbad(df: pd.DataFrame, radius_arcsec: float = 1.0) -> Validation:
    """Check a [name, main_id, otype, separation_arcsec] frame; keep the nearest per name."""
    df = df.reset_index(drop=True)
    reasons = pd.Series("", index=df.index, dtype="string")
    name = df["name"].astype("string") if "name" in df.columns else pd.Series(
        pd.NA, index=df.index, dtype="string")
    _add(reasons, name.isna(), "name missing")
    _add(reasons, name.notna() & ~name.str.fullmatch(NAME_PATTERN).fillna(False),
         lambda: "name " + printable(name, quote=True) + " is not 2CXO Jhhmmss.s±ddmmss")
    main_id = df["main_id"].astype("string").str.strip().replace("", pd.NA)
    otype = df["otype"].astype("string").str.strip().replace("", pd.NA)
    sep = pd.to_numeric(df["separation_arcsec"], errors="coerce")
    _add(reasons, main_id.notna() & otype.isna(), "otype missing for a match")
    for col, vals in (("main_id", main_id), ("otype", otype)):
        ctrl = vals.str.contains(r"[\x00-\x1f\x7f]", regex=True).fillna(False)
        _add(reasons, ctrl, lambda c=col, v=vals: c + " " + printable(v, quote=True)
             + " contains a control character")
    _add(reasons, main_id.notna() & (sep.isna() | (sep < 0) | (sep > radius_arcsec)),
         "separation_arcsec=" + sep.astype(str) + f" outside [0, {radius_arcsec:g}]")
    reasons = reasons.str.removeprefix("; ")
    bad = reasons != ""
    rejected = pd.DataFrame({"row": df.index + 1, "name": printable(name),
                             "reason": reasons})[bad]
    rejected["message"] = ("row " + rejected["row"].astype("string") + " ("
                           + rejected["name"] + "): " + rejected["reason"])
    good = pd.DataFrame({"name": name, "main_id": main_id,
                         "otype": otype.where(main_id.notna()),
                         "separation_arcsec": sep.where(main_id.notna())})[~bad]
    good = good.sort_values(["name", "separation_arcsec"], kind="stable", na_position="last")
    dup = good.duplicated("name", keep="first")
    good = good[~dup].sort_index().reset_index(drop=True)
    return Validation(good, rejected.reset_index(drop=True), int(dup.sum()))
