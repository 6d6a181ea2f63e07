"""Read CSC detection tables and SIMBAD crossmatch tables from VOTable, FITS, CSV, Parquet."""

from __future__ import annotations

import warnings
from pathlib import Path

import pandas as pd

from db.csc_columns import TAP_ALIASES
from ingest.columns import STORED, conform
from ingest.errors import IngestError
from ingest.simbad import nearest

REQUIRED = [c.name for c in STORED if c.required]
_SUFFIXES = {".vot": "votable", ".votable": "votable", ".xml": "votable", ".fits": "fits",
             ".fit": "fits", ".fts": "fits", ".csv": "csv", ".parquet": "parquet",
             ".pq": "parquet"}
#: Common spellings in crossmatch exports (TOPCAT, X-Match, astroquery), lower case.
SIMBAD_SPELLINGS = {
    "name": ("name", "csc_name", "name_1", "cscat_name", "source_name"),
    "main_id": ("main_id", "main_id_2", "simbad_main_id", "mainid"),
    "otype": ("otype", "main_type", "otype_s", "simbad_otype", "otype_2", "main_type_2"),
    "separation_arcsec": ("separation_arcsec", "angdist", "separation", "sep", "dist",
                          "ang_dist", "match_distance"),
}


def _format(path: Path) -> str:
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] == ".gz" and len(suffixes) > 1:
        suffixes.pop()
    fmt = _SUFFIXES.get(suffixes[-1] if suffixes else "")
    if fmt is None:
        raise IngestError(f"{path}: unknown table format (use .vot, .fits, .csv or .parquet)")
    return fmt


def _load(path: Path) -> pd.DataFrame:
    """Any supported file as a DataFrame with lower-case column names."""
    fmt = _format(path)
    if not path.exists():
        raise IngestError(f"{path}: no such file")
    try:
        if fmt == "csv":
            # text columns stay text: a file whose likelihood_class is all TRUE is not bool
            df = pd.read_csv(path, dtype={c.name: "string" for c in STORED
                                          if c.sql_type == "text"})
        elif fmt == "parquet":
            df = pd.read_parquet(path)
        else:
            from astropy.table import Table

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                kw = {"use_names_over_ids": True} if fmt == "votable" else {}
                table = Table.read(path, format=fmt, **kw)
            df = table.to_pandas()
    except IngestError:
        raise
    except Exception as exc:  # noqa: BLE001 - any parser failure is a malformed file
        raise IngestError(f"{path}: not a readable {fmt} table: {exc}") from exc
    df.columns = [str(c).strip().lower() for c in df.columns]
    for c in df.columns:
        if df[c].dtype == object and len(df) and isinstance(df[c].iloc[0], bytes):
            df[c] = df[c].str.decode("utf-8")
    return df


def read_table(path: str | Path) -> pd.DataFrame:
    """A CSC detections file (service names) as a frame of cscat's stored columns.

    ``ra``/``dec`` are the master-source position (as the CSC services deliver them); a
    detection position is read from ``det_ra``/``det_dec`` when present. Missing optional
    columns are NA; values are not range-checked here (see ``ingest.validate``).
    """
    path = Path(path)
    df = _load(path)
    for stored in TAP_ALIASES:
        if stored not in df.columns and f"o.{TAP_ALIASES[stored]}" in df.columns:
            df[stored] = df.pop(f"o.{TAP_ALIASES[stored]}")
    missing = [c for c in REQUIRED if c not in df.columns]
    if missing:
        raise IngestError(f"{path}: missing required column(s) {', '.join(missing)}; "
                          f"found {', '.join(df.columns[:12])}")
    try:
        return conform(df)
    except ValueError as exc:
        raise IngestError(f"{path}: {exc}") from exc


def read_simbad_table(path: str | Path) -> pd.DataFrame:
    """A SIMBAD crossmatch export as DataFrame[name, main_id, otype, separation_arcsec].

    Accepts common column spellings (angDist, main_type, ...); keeps the nearest match per
    name; names without a match have NA.
    """
    path = Path(path)
    df = _load(path)
    cols = {}
    for target, spellings in SIMBAD_SPELLINGS.items():
        found = next((s for s in spellings if s in df.columns), None)
        if found is None:
            raise IngestError(f"{path}: no {target} column (tried {', '.join(spellings)})")
        cols[target] = df[found]
    out = pd.DataFrame(cols)
    out["main_id"] = out["main_id"].astype("string").str.strip().replace("", pd.NA)
    out["otype"] = out["otype"].astype("string").str.strip().replace("", pd.NA)
    try:
        out["separation_arcsec"] = pd.to_numeric(out["separation_arcsec"], errors="raise")
    except ValueError as exc:
        raise IngestError(f"{path}: separation column: {exc}") from exc
    names = out["name"].astype("string").drop_duplicates()
    return nearest(out[out["main_id"].notna()], names)


def write_table(df: pd.DataFrame, path: str | Path) -> Path:
    """Write a frame as CSV, Parquet, FITS or VOTable (by suffix), for samples and tests."""
    path = Path(path)
    fmt = _format(path)
    if fmt == "csv":
        df.to_csv(path, index=False)
    elif fmt == "parquet":
        df.to_parquet(path, index=False)
    elif fmt == "votable":
        from ingest.votable_fast import votable_binary2

        path.write_bytes(votable_binary2(df))
    else:
        from astropy.table import Table

        t = Table.from_pandas(df.astype({c: str for c in df.columns
                                         if pd.api.types.is_string_dtype(df[c])}))
        t.write(path, format="fits", overwrite=True)
    return path
