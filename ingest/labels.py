"""Curated training sets: a table of CSC source names and classes (e.g. MUWCLASS's).

``read_labels(path)`` reads any table ``ingest.files`` reads (CSV, Parquet, FITS, VOTable)
with a ``name`` column and a ``class`` (or ``label``) column, any letter case; other columns
are ignored. A bad row stops the import with one line naming the file, the row (1-based, as
a spreadsheet shows data rows) and what was expected.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ingest.errors import IngestError
from ingest.files import _load
from ingest.sky import NAME_PATTERN

CLASS_SPELLINGS = ("class", "label")


def read_labels(path: str | Path) -> pd.DataFrame:
    """DataFrame[name, class], one row per source (a name repeated with the same class is
    kept once; with another class it is an error)."""
    path = Path(path)
    df = _load(path, as_text=True) if path.suffix.lower() == ".csv" else _load(path)
    if "name" not in df.columns:
        raise IngestError(f"{path}: no name column (the CSC source name, 2CXO Jhhmmss.s±ddmmss)")
    cls_col = next((c for c in CLASS_SPELLINGS if c in df.columns), None)
    if cls_col is None:
        raise IngestError(f"{path}: no class column (tried {', '.join(CLASS_SPELLINGS)})")
    if df.empty:
        raise IngestError(f"{path}: no rows")
    name = df["name"].astype("string").str.strip()
    cls = df[cls_col].astype("string").str.strip()
    row = pd.Series(range(1, len(df) + 1), index=df.index)
    bad_name = ~name.str.fullmatch(NAME_PATTERN).fillna(False)
    if bad_name.any():
        i = bad_name.idxmax()
        shown = "an empty cell" if pd.isna(name[i]) or not name[i] else repr(str(name[i]))
        raise IngestError(f"{path}: row {row[i]}: name is {shown}; expected a CSC name "
                          "2CXO Jhhmmss.s±ddmmss")
    bad_cls = cls.isna() | (cls == "")
    if bad_cls.any():
        i = bad_cls.idxmax()
        raise IngestError(f"{path}: row {row[i]} ({name[i]}): empty {cls_col}; expected a "
                          "class name")
    out = pd.DataFrame({"name": name, "class": cls, "row": row})
    first = out.drop_duplicates("name")
    merged = out.merge(first, on="name", suffixes=("", "_first"))
    conflict = merged["class"] != merged["class_first"]
    if conflict.any():
        r = merged[conflict].iloc[0]
        raise IngestError(f"{path}: row {r['row']} ({r['name']}): class {r['class']!r} "
                          f"differs from {r['class_first']!r} given in row {r['row_first']}")
    return first[["name", "class"]].reset_index(drop=True)
