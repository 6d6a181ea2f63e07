"""Read CSC detection tables and SIMBAD crossmatch tables from VOTable, FITS, CSV, Parquet."""

from __future__ import annotations

import csv
import logging
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from db.csc_columns import TAP_ALIASES
from ingest.columns import PARSED, STORED
from ingest.errors import IngestError

log = logging.getLogger(__name__)
REQUIRED = [c.name for c in STORED if c.required]
PARSED_NAMES = [c.name for c in PARSED]
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


def _header(path: Path, fmt: str) -> list[str] | None:
    """The column names exactly as the file has them (readers rename duplicates)."""
    if fmt == "csv":
        with open(path, newline="", encoding="utf-8", errors="replace") as f:
            return next(csv.reader(f), [])
    if fmt == "parquet":
        import pyarrow.parquet as pq

        return list(pq.read_schema(path).names)
    return None


def _fields_per_row(raw: bytes) -> np.ndarray:
    """Number of fields of each non-blank line of a CSV (vectorized when nothing is quoted)."""
    if b'"' in raw:
        text = raw.decode("utf-8", "replace").splitlines(keepends=True)
        return np.array([len(r) for r in csv.reader(text) if r], dtype=np.int64)
    arr = np.frombuffer(raw, np.uint8)
    nl = np.flatnonzero(arr == ord("\n"))
    ends = nl if raw.endswith(b"\n") else np.append(nl, len(arr))
    starts = np.concatenate([[0], nl + 1])[:len(ends)]
    commas = np.concatenate([[0], np.cumsum(arr == ord(","))])
    fields = commas[ends] - commas[starts] + 1
    cr = (ends > starts) & (arr[np.maximum(ends - 1, 0)] == ord("\r"))
    return fields[(ends - starts - cr) > 0]


def _short_rows(path: Path, df: pd.DataFrame) -> dict[int, str]:
    """Rows of a CSV that cannot be trusted: fewer fields than the header (the reader fills
    the missing cells silently), or a last line without its newline (the file may have been
    cut inside it). 0-based row -> reason."""
    out: dict[int, str] = {}
    raw = path.read_bytes()
    fields = _fields_per_row(raw)
    ncol = len(df.columns)
    if len(fields) == len(df) + 1:  # header + rows, as the reader saw them
        for i in map(int, np.flatnonzero(fields[1:] < ncol)):
            out[i] = f"row has {fields[i + 1]} fields, the header {ncol}"
    if len(df) and not raw.endswith((b"\n", b"\r")):
        out[len(df) - 1] = ("the file does not end with a newline: its last row may be "
                            "truncated")
    return out


def _check_unique(path: Path, names: list[str]) -> None:
    lower = pd.Series([str(c).strip().lower() for c in names])
    dup = lower[lower.duplicated(keep=False)]
    if not dup.empty:
        shown = ", ".join(f"{c!r}" for c, lc in zip(names, lower, strict=True) if lc in set(dup))
        raise IngestError(f"{path}: duplicate column names {shown}: each column must be "
                          "named once (names are compared ignoring case)")


def _load(path: Path, *, as_text: bool = False) -> pd.DataFrame:
    """Any supported file as a DataFrame with lower-case column names.

    ``as_text``: CSV cells are read as text (parsed later, once, by ``ingest.columns``).
    Duplicate column names are an error naming them.
    """
    fmt = _format(path)
    if not path.exists():
        raise IngestError(f"{path}: no such file")
    try:
        header = _header(path, fmt)
        if header is not None:
            _check_unique(path, header)
        problems: dict[int, str] = {}
        if fmt == "csv":
            # text columns stay text: a file whose likelihood_class is all TRUE is not bool
            text_cols = {c.name: "string" for c in STORED if c.sql_type == "text"}
            df = pd.read_csv(path, dtype=str if as_text else text_cols,
                             encoding_errors="replace", keep_default_na=not as_text)
            if as_text:
                problems = _short_rows(path, df)
        elif fmt == "parquet":
            import pyarrow.parquet as pq

            # split_blocks: one array per column, no copy into a consolidated 2-D block
            df = pq.read_table(path).to_pandas(split_blocks=True, self_destruct=True)
        elif fmt == "votable":
            from astropy.io.votable import parse

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                votable = parse(str(path))
                first = votable.get_first_table()
                _check_unique(path, [f.name for f in first.fields])
                df = first.to_table(use_names_over_ids=True).to_pandas()
        else:
            from astropy.table import Table

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                table = Table.read(path, format=fmt)
            _check_unique(path, table.colnames)
            df = table.to_pandas()
    except IngestError:
        raise
    except Exception as exc:  # noqa: BLE001 - any parser failure is a malformed file
        text = " ".join(str(exc).split())[:300]
        raise IngestError(f"{path}: not a readable {fmt} table: {text}") from exc
    df.columns = [str(c).strip().lower() for c in df.columns]
    _check_unique(path, list(df.columns))
    df.attrs["row_problems"] = problems
    for c in df.columns:
        if df[c].dtype == object and len(df) and isinstance(df[c].iloc[0], bytes):
            df[c] = df[c].map(lambda v: v.decode("utf-8", "replace")
                              if isinstance(v, bytes) else v)
    return df


def _to_stored_names(path: Path, df: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Rename CSC export names (``flux_aper_lolim_b``, ``likelihood_b``) to stored ones;
    returns the frame of known columns and the names of the columns it ignores."""
    ignored: list[str] = []
    renames = {}
    for stored, export in TAP_ALIASES.items():
        if export in df.columns:
            renames[export] = stored
            if stored in df.columns:  # e.g. a master-level ``likelihood`` beside likelihood_b
                ignored.append(f"{stored} (superseded by {export})")
    df = df.drop(columns=[s for s, e in TAP_ALIASES.items()
                          if e in df.columns and s in df.columns]).rename(columns=renames)
    known = set(PARSED_NAMES)
    ignored += [c for c in df.columns if c not in known]
    if ignored:
        log.warning("%s: ignoring %d column(s) cscat does not store: %s", path, len(ignored),
                    ", ".join(ignored))
    return df[[c for c in df.columns if c in known]], ignored


def read_table(path: str | Path) -> pd.DataFrame:
    """A CSC detections file (service or stored names) as a frame of cscat's column names.

    Values are left as read (a CSV's as text): ``ingest.validate`` parses them once and
    rejects the rows it cannot parse, with reasons. ``ra``/``dec`` are the master-source
    position (as the CSC services deliver them); ``det_ra``/``det_dec`` a detection position.
    CSC's export names (``flux_aper_lolim_b``, ``likelihood_b``, ...) map to the stored ones;
    derived features (``var_ratio_*``, ``var_newq_b``) are kept for rows whose raw inputs are
    absent. The columns it ignores are listed in ``attrs["ignored_columns"]`` (and logged).
    """
    path = Path(path)
    loaded = _load(path, as_text=True)
    problems = loaded.attrs.get("row_problems", {})
    df, ignored = _to_stored_names(path, loaded)
    missing = [c for c in REQUIRED if c not in df.columns]
    if missing:
        raise IngestError(f"{path}: missing required column(s) {', '.join(missing)}; "
                          f"found {', '.join(df.columns[:12])}")
    df.attrs["ignored_columns"] = ignored
    df.attrs["row_problems"] = problems
    return df


def read_simbad_table(path: str | Path) -> pd.DataFrame:
    """A SIMBAD crossmatch export as DataFrame[name, main_id, otype, separation_arcsec].

    Accepts common column spellings (angDist, main_type, ...); keeps the nearest match per
    name; names without a match have NA.
    """
    from ingest.simbad import nearest  # astropy/astroquery: not needed for detection files

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

        text = [c for c in df.columns if pd.api.types.is_string_dtype(df[c])]
        t = Table.from_pandas(df.drop(columns=text))
        for c in text:  # FITS text is bytes: UTF-8, so non-ASCII survives
            t[c] = np.char.encode(df[c].astype("string").fillna("").to_numpy(dtype=str),
                                  "utf-8")
        t = t[list(df.columns)]
        t.write(path, format="fits", overwrite=True)
    return path
