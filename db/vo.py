"""Read-only SQL of the VO and programmatic access: cone search, exports, the Python client.

Every query runs on a connection of the read-only role (``db.engine.reader_connection``)
with bound parameters; the only identifiers spelled into SQL are view and column names from
:mod:`db.column_docs` (a fixed, known list). Results are astropy Tables whose columns carry
the unit, UCD and description of :mod:`db.column_docs`, the same text as the database's
column comments.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal

import numpy as np
import pandas as pd
import psycopg

from db.column_docs import VIEWS, ColumnDoc, comment

#: The catalog's classification families, by the model versions it has published: a model
#: records its family in ``params["family"]``; models without one are the cluster-then-label
#: method (``classifier.ClusterThenLabel``, family ``ctl``), the only one published so far.
DEFAULT_MODEL_FAMILY = "ctl"

#: The angular distance from a cone's centre (a computed column, not a view's).
DISTANCE = ColumnDoc("angular distance from the centre of the cone", "deg", "pos.angDistance")

#: Columns of a cone search per verbosity (SCS VERB 1, 2, 3): (view, column).
CONE_COLUMNS: dict[int, list[tuple[str, str]]] = {
    1: [("source", "name"), ("source", "ra"), ("source", "dec"),
        ("source_class", "adopted_class")],
}
CONE_COLUMNS[2] = CONE_COLUMNS[1] + [
    ("source_class", "agg_adopted_class"), ("source_class", "label_origin"),
    ("source_class", "master_class"), ("source_class", "ambiguous"),
    ("source", "err_ellipse_r0"), ("source", "significance"), ("source", "likelihood_class"),
    ("source", "n_detections"), ("source", "simbad_main_id"), ("source", "simbad_otype"),
    ("source", "simbad_separation_arcsec"), ("source_class", "catalog_version"),
    ("source_class", "model_id")]
CONE_COLUMNS[3] = CONE_COLUMNS[2] + [("source", "source_id")] + [
    ("source", c) for c in VIEWS["source"] if ("source", c) not in CONE_COLUMNS[2]
    and c != "source_id"] + [
    ("source_class", c) for c in VIEWS["source_class"]
    if c not in {"source_id", "name", "ra", "dec", "n_detections", "simbad_otype",
                 "simbad_class"} and ("source_class", c) not in CONE_COLUMNS[2]]

#: PostgreSQL type OIDs: integers, floats/numeric, bool, json(b).
_INT_OIDS = {20, 21, 23, 26}
_FLOAT_OIDS = {700, 701, 1700}
_BOOL_OIDS = {16}
_JSON_OIDS = {114, 3802}


class VoError(ValueError):
    """A request that cannot be answered as asked (bad version, family, position...)."""


# -- running a query into a documented table -------------------------------------------------
#: Rows per chunk of a streamed (server-side cursor) fetch.
CHUNK_ROWS = 50_000


def fetch(conn: psycopg.Connection, sql: str, params: Sequence | dict | None = None,
          *, max_rows: int | None = None, stream: bool = False) -> pd.DataFrame:
    """Run one query in a read-only transaction (rolled back after); a frame with dtypes
    from the column types (NULL as NA). VoError with PostgreSQL's first line on failure.

    ``stream``: a SELECT read through a server-side cursor in chunks of
    :data:`CHUNK_ROWS`, each typed before the next arrives (exports of a whole catalog).
    """
    if conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE:
        conn.read_only = True  # else: the caller's transaction (the reader role's default
        # is read-only anyway), rolled back below
    chunks: list[pd.DataFrame] = []
    n = 0
    try:
        with (conn.cursor(name="cscat_vo") if stream else conn.cursor()) as cur:
            cur.execute(sql, params)
            desc = cur.description or []
            if not desc:
                raise VoError("the statement returns no rows")
            size = CHUNK_ROWS if max_rows is None else min(CHUNK_ROWS, max_rows + 1)
            while rows := cur.fetchmany(size):
                n += len(rows)
                if max_rows is not None and n > max_rows:
                    raise VoError(f"the result has more than {max_rows:,} rows")
                chunks.append(_frame(desc, rows))
    except psycopg.Error as e:
        conn.rollback()
        lines = str(e).strip().splitlines()
        raise VoError(lines[0] if lines else type(e).__name__) from None
    finally:
        if not conn.closed:
            conn.rollback()
    if not chunks:
        return _frame(desc, [])
    return chunks[0] if len(chunks) == 1 else pd.concat(chunks, ignore_index=True)


def _frame(desc, rows: list[tuple]) -> pd.DataFrame:
    names = [d.name for d in desc]
    cols = list(zip(*rows, strict=True)) if rows else [() for _ in names]
    return pd.DataFrame({d.name: _typed(d.type_code, values)
                         for d, values in zip(desc, cols, strict=True)}, columns=names)


def _typed(oid: int, values: tuple) -> pd.Series:
    if oid in _INT_OIDS:
        return pd.Series(pd.array(list(values), dtype="Int64"))
    if oid in _FLOAT_OIDS:
        return pd.Series([math.nan if v is None else float(v) for v in values],
                         dtype="float64")
    if oid in _BOOL_OIDS:
        return pd.Series(pd.array(list(values), dtype="boolean"))
    if oid in _JSON_OIDS:
        return pd.Series([None if v is None else json.dumps(v, sort_keys=True)
                          for v in values], dtype=object)
    return pd.Series([_text(v) for v in values], dtype=object)


def _text(v) -> str | None:
    if v is None or isinstance(v, str):
        return v
    if isinstance(v, datetime | date):
        return v.isoformat()
    if isinstance(v, Decimal):
        return str(v)
    return str(v)


def to_table(frame: pd.DataFrame, docs: dict[str, ColumnDoc]):
    """An astropy Table of ``frame`` with every column's unit, UCD and description (NULL
    cells masked; text as unicode, so every format can hold it)."""
    from astropy.table import MaskedColumn, Table

    table = Table()
    for name in frame.columns:
        s = frame[name]
        mask = s.isna().to_numpy(dtype=bool)
        if pd.api.types.is_integer_dtype(s.dtype):
            data = s.fillna(0).to_numpy(dtype="int64")
        elif pd.api.types.is_bool_dtype(s.dtype):
            data = s.fillna(False).to_numpy(dtype=bool)
        elif pd.api.types.is_float_dtype(s.dtype):
            data = s.to_numpy(dtype="float64")
        else:
            data = np.array(["" if m else str(v) for v, m in zip(s, mask, strict=True)],
                            dtype=str)
            if data.dtype.itemsize == 0:
                data = data.astype("U1")
        col = MaskedColumn(data, name=name, mask=mask)
        d = docs.get(name)
        if d is not None:
            col.description = comment(d)
            if d.unit:
                col.unit = d.unit
            if d.ucd:
                col.meta["ucd"] = d.ucd
        table.add_column(col)
    return table


# -- catalog state -----------------------------------------------------------------------------
def current_version(conn: psycopg.Connection) -> int | None:
    """The newest catalog version (None: nothing published yet)."""
    row = fetch(conn, "SELECT max(catalog_version) AS v FROM catalog.catalog_version")
    v = row["v"].iloc[0]
    return None if pd.isna(v) else int(v)


def check_version(conn: psycopg.Connection, version: int | None) -> int:
    """``version`` if it exists (None: the current one); VoError naming the choices."""
    known = fetch(conn, "SELECT catalog_version FROM catalog.catalog_version ORDER BY 1")
    versions = [int(v) for v in known["catalog_version"]]
    if not versions:
        raise VoError("the catalog has no published version yet (run `cscat update`)")
    if version is None:
        return versions[-1]
    if version not in versions:
        raise VoError(f"catalog version {version} does not exist; the versions are "
                      f"{versions[0]} to {versions[-1]}")
    return version


def families(conn: psycopg.Connection) -> list[str]:
    """The classification families of the models the catalog has published."""
    models = fetch(conn, """
        SELECT DISTINCT m.params->>'family' AS family
        FROM catalog.model_version m
        JOIN catalog.catalog_version v ON v.model_id = m.model_id""")
    return sorted({DEFAULT_MODEL_FAMILY if pd.isna(f) else str(f) for f in models["family"]})


def check_family(conn: psycopg.Connection, family: str | None) -> str:
    """``family`` if the catalog holds it (None: the catalog's one family)."""
    have = families(conn)
    if family is None:
        if len(have) > 1:
            raise VoError(f"the catalog holds several families ({', '.join(have)}): "
                          "choose one with --family")
        return have[0] if have else DEFAULT_MODEL_FAMILY
    if family not in have:
        raise VoError(f"--family {family!r}: the catalog holds results of "
                      f"{', '.join(have) or 'no family yet'} only")
    return family


def models_of(conn: psycopg.Connection, model_ids: Sequence[int]) -> list[dict]:
    """Model versions by id: id, created_at, status, family, params (for provenance)."""
    if not model_ids:
        return []
    frame = fetch(conn, """
        SELECT model_id, created_at, status, params FROM catalog.model_version
        WHERE model_id = ANY(%s) ORDER BY model_id""", [list(map(int, model_ids))])
    out = []
    for r in frame.itertuples(index=False):
        params = json.loads(r.params) if isinstance(r.params, str) else {}
        out.append({"model_id": int(r.model_id), "created_at": r.created_at,
                    "status": r.status, "family": params.get("family", DEFAULT_MODEL_FAMILY),
                    "params": params})
    return out


# -- cone search ---------------------------------------------------------------------------
def _cone_select(verb: int, as_of: bool) -> tuple[str, list[str], dict[str, ColumnDoc]]:
    alias = {"source": "s", "source_class": "c"}
    names, docs, exprs = [], {}, []
    for view, col in CONE_COLUMNS[verb]:
        exprs.append(f"{alias[view]}.{_ident(view, col)}")
        names.append(col)
        docs[col] = VIEWS[view][col]
    classes = ("catalog.source_class_as_of(%(version)s)" if as_of
               else "catalog.source_class")
    sql = f"""
WITH hit AS (
    SELECT s.source_id,
           degrees(2 * asin(least(1.0, sqrt(
               power(sin(radians(s.dec - %(dec)s) / 2), 2)
               + cos(radians(s.dec)) * cos(radians(%(dec)s))
                 * power(sin(radians(s.ra - %(ra)s) / 2), 2))))) AS dist
    FROM catalog.csc_source s
    WHERE s.dec BETWEEN %(dec)s - %(sr)s AND %(dec)s + %(sr)s
)
SELECT {", ".join(exprs)}, h.dist
FROM hit h
JOIN catalog.source s ON s.source_id = h.source_id
LEFT JOIN {classes} c ON c.source_id = h.source_id
WHERE h.dist <= %(sr)s
ORDER BY h.dist, s.name"""
    docs["dist"] = DISTANCE
    return sql, names + ["dist"], docs


def _ident(view: str, col: str) -> str:
    """A column name from the fixed docs, checked, double-quoted."""
    if col not in VIEWS[view] or not col.replace("_", "").isalnum():
        raise ValueError(f"unknown column {view}.{col}")
    return f'"{col}"'


def cone(conn: psycopg.Connection, ra: float, dec: float, radius_deg: float, *,
         verb: int = 2, version: int | None = None, max_rows: int | None = None):
    """Sources within ``radius_deg`` of (``ra``, ``dec``) (ICRS degrees), nearest first, with
    their classification (current, or as of catalog ``version``); an astropy Table."""
    for what, v, lo, hi in (("RA", ra, 0.0, 360.0), ("DEC", dec, -90.0, 90.0),
                            ("SR", radius_deg, 0.0, 180.0)):
        if not math.isfinite(v) or not lo <= v <= hi:
            raise VoError(f"{what}={v!r} is outside [{lo:g}, {hi:g}] degrees")
    if verb not in CONE_COLUMNS:
        raise VoError(f"VERB={verb!r}: expected 1, 2 or 3")
    if version is not None:
        version = check_version(conn, version)
    sql, _, docs = _cone_select(verb, version is not None)
    frame = fetch(conn, sql, {"ra": float(ra), "dec": float(dec), "sr": float(radius_deg),
                              "version": version}, max_rows=max_rows)
    return to_table(frame, docs)


# -- whole tables (exports, the client) ----------------------------------------------------------
def sources_query(version: int | None) -> tuple[str, dict]:
    """Per-source classification, current or as of ``version``; SQL and parameters."""
    if version is None:
        return "SELECT * FROM catalog.source_class ORDER BY name", {}
    return ("SELECT * FROM catalog.source_class_as_of(%(version)s) ORDER BY name",
            {"version": version})


#: Columns of catalog.source an exported detection row carries (so it re-ingests).
_SOURCE_FOR_DETECTIONS = ["ra", "dec", "err_ellipse_r0", "significance", "likelihood_class"]


def detections_query() -> tuple[str, list[str]]:
    """Every detection with its master source's CSC columns and its current
    per-detection result (NULL where it has none); SQL and the column names."""
    det = [c for c in VIEWS["detection"] if c not in ("ingest_run_id", "ingested_at",
                                                      "ingest_kind")]
    cls = [c for c in VIEWS["detection_class"]
           if c not in ("detection_id", "name", "source_id", "obsid", "obi", "region_id")]
    names = ["name", *_SOURCE_FOR_DETECTIONS, *[c for c in det if c != "name"], *cls]
    cols = ([f"d.{_ident('detection', 'name')}"]
            + [f"s.{_ident('source', c)}" for c in _SOURCE_FOR_DETECTIONS]
            + [f"d.{_ident('detection', c)}" for c in det if c != "name"]
            + [f"k.{_ident('detection_class', c)}" for c in cls])
    sql = (f"SELECT {', '.join(cols)} FROM catalog.detection d "
           "JOIN catalog.source s ON s.source_id = d.source_id "
           "LEFT JOIN catalog.detection_class k ON k.detection_id = d.detection_id "
           "ORDER BY d.name, d.obsid, d.obi, d.region_id")
    return sql, names


def detection_docs() -> dict[str, ColumnDoc]:
    """Docs of an exported detection row's columns."""
    return {**VIEWS["detection_class"], **{c: VIEWS["source"][c] for c in
                                           _SOURCE_FOR_DETECTIONS}, **VIEWS["detection"]}


def view_docs(sql_columns: Sequence[str]) -> dict[str, ColumnDoc]:
    """Docs for the columns of an arbitrary query: a column named like a view column gets
    the doc most views that have the name give it (none on a tie): ``ra`` is the source's
    position in every view but ``catalog.counterpart``."""
    out: dict[str, ColumnDoc] = {}
    for name in sql_columns:
        found = Counter(cols[name] for cols in VIEWS.values() if name in cols).most_common(2)
        if found and (len(found) == 1 or found[0][1] > found[1][1]):
            out[name] = found[0][0]
    return out

