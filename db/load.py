"""Bulk loading with PostgreSQL COPY (psycopg 3), then set-based SQL into the store.

A frame is COPYed (as CSV written by Arrow) into a temporary staging table; sources and
detections are then inserted from it with ``ON CONFLICT DO NOTHING`` on their natural keys,
so rows already stored and duplicates inside one input load once. Everything happens on
the caller's connection and transaction: the caller decides what commits together.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import pandas as pd
import psycopg
import pyarrow as pa
import pyarrow.csv as pacsv
from psycopg.copy import QueuedLibpqWriter
from sqlalchemy import Connection, text
from sqlalchemy.exc import DBAPIError

from db.copy_binary import HEADER, TRAILER, encode_parts
from db.csc_columns import (
    DERIVED_COLUMNS,
    DETECTION_COLUMNS,
    DETECTION_KEY,
    SOURCE_COLUMNS,
    Column,
)
from db.models import SCHEMA

#: A row naming a known source at a position farther than this from the source's is refused.
POSITION_TOLERANCE_ARCSEC = 0.01


@dataclass(frozen=True)
class LoadCounts:
    """What one load added; ``conflicts``: rows refused (index of the input, ``reason``)."""

    rows: int
    new_sources: int
    new_detections: int
    conflicts: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame({"reason": pd.Series(dtype="string")}))

    @property
    def duplicates(self) -> int:
        """Input rows that were already stored or repeated within the input."""
        return self.rows - self.new_detections


def read_frame(conn: Connection, select_sql: str) -> pd.DataFrame:
    """Run a SELECT through COPY ... TO STDOUT and parse it with Arrow (fast for big reads).

    ``select_sql`` must not take parameters (COPY cannot bind them): inline only ints.
    """
    raw = conn.connection.driver_connection
    buf = io.BytesIO()
    with raw.cursor() as cur:
        with cur.copy(f"COPY ({select_sql}) TO STDOUT WITH (FORMAT csv, HEADER)") as copy:
            for chunk in copy:
                buf.write(chunk)
    if buf.tell() == 0:
        return pd.DataFrame()
    buf.seek(0)
    # COPY writes NULL unquoted and '' quoted: keep them apart.
    opts = pacsv.ConvertOptions(strings_can_be_null=True, quoted_strings_can_be_null=False)
    return pacsv.read_csv(buf, convert_options=opts).to_pandas()


def copy_frame(conn: Connection, table: str, frame: pd.DataFrame,
               columns: Sequence[str]) -> None:
    """COPY ``frame[columns]`` into ``table`` (CSV written by Arrow; NA → NULL)."""
    arrow = pa.Table.from_pandas(frame[list(columns)], preserve_index=False)
    buf = io.BytesIO()
    pacsv.write_csv(arrow, buf, pacsv.WriteOptions(include_header=False,
                                                   quoting_style="needed"))
    cols = ", ".join(f'"{c}"' for c in columns)
    raw = conn.connection.driver_connection
    with raw.cursor() as cur:
        with cur.copy(f"COPY {table} ({cols}) FROM STDIN WITH (FORMAT csv)") as copy:
            view = buf.getbuffer()
            for start in range(0, len(view), 1 << 20):
                copy.write(view[start:start + (1 << 20)])


_BINARY_TYPES = {"int": "int4", "bigint": "int8", "double": "float8", "text": "text",
                 "bool": "bool"}
#: pg_advisory_xact_lock key: one detection load at a time (its anti-join must stay true).
LOAD_LOCK_KEY = 0x6373636C64


def copy_binary(conn: Connection, table: str, frame: pd.DataFrame,
                columns: Sequence[tuple[str, str]], rows_per_part: int = 50_000,
                freeze: bool = False) -> None:
    """Binary COPY of ``frame`` into ``table``; ``columns`` are (name, binary type).

    Encoded in parts handed to a writer thread, so the server ingests one part while the
    next is encoded. ``freeze``: COPY FREEZE (the table was truncated in this transaction).
    """
    cols = ", ".join(f'"{c}"' for c, _ in columns)
    with conn.connection.driver_connection.cursor() as cur:
        options = "FORMAT binary, FREEZE" if freeze else "FORMAT binary"
        statement = f"COPY {table} ({cols}) FROM STDIN WITH ({options})"
        with cur.copy(statement, writer=QueuedLibpqWriter(cur)) as copy:
            copy.write(HEADER)
            for start in range(0, len(frame), rows_per_part):
                part = frame.iloc[start:start + rows_per_part]
                for buf in encode_parts(part, columns, framing=False):
                    copy.write(buf)
            copy.write(TRAILER)


def _typed(columns: Sequence[Column]) -> list[tuple[str, str]]:
    return [(c.name, _BINARY_TYPES[c.sql_type]) for c in columns]


def _key_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """The natural key with NULL as -1 (never a valid value), for exact set operations."""
    return pd.DataFrame({c: frame[c].astype("Int64").fillna(-1).to_numpy("int64")
                         for c in ("source_id", *DETECTION_KEY)})


def _separation_arcsec(ra1, dec1, ra2, dec2) -> np.ndarray:
    """Angular separation (haversine), arcsec."""
    ra1, dec1, ra2, dec2 = (np.radians(np.asarray(x, dtype="float64"))
                            for x in (ra1, dec1, ra2, dec2))
    h = (np.sin((dec2 - dec1) / 2) ** 2
         + np.cos(dec1) * np.cos(dec2) * np.sin((ra2 - ra1) / 2) ** 2)
    return np.degrees(2 * np.arcsin(np.sqrt(np.clip(h, 0.0, 1.0)))) * 3600.0


_NO_SOURCES = pd.DataFrame({"name": pd.Series(dtype="string"), "source_id": [], "ra": [],
                            "dec": []})


def _known_sources(conn: Connection, names: pd.Series) -> pd.DataFrame:
    """Stored sources among ``names`` (repeats allowed): DataFrame[name, source_id, ra, dec]."""
    empty = _NO_SOURCES
    if not conn.execute(text(f"SELECT EXISTS (SELECT 1 FROM {SCHEMA}.csc_source)")).scalar():
        return empty  # an empty catalog (loads are serialised, so it stays empty until commit)
    conn.exec_driver_sql("CREATE TEMP TABLE stage_name (name text) ON COMMIT DROP")
    copy_binary(conn, "pg_temp.stage_name", pd.DataFrame({"name": names.drop_duplicates()}),
                [("name", "text")])
    conn.exec_driver_sql("ANALYZE pg_temp.stage_name")  # the join hashes the smaller side
    known = read_frame(conn, f"SELECT s.name, s.source_id, s.ra, s.dec "
                             f"FROM pg_temp.stage_name st "
                             f"JOIN {SCHEMA}.csc_source s USING (name)")
    conn.exec_driver_sql("DROP TABLE pg_temp.stage_name")
    return empty if known.empty else known.astype({"name": "string"})


class _Names(NamedTuple):
    """The source names of a frame, factorised once: ``codes`` (per row, into ``unique``, in
    order of first appearance), ``first`` (row position of each name's first row) and
    ``stored`` (per unique name: its row in the stored sources ``known``, or -1)."""

    codes: np.ndarray
    unique: pd.Index
    first: np.ndarray
    stored: np.ndarray


def _names(frame: pd.DataFrame, known: pd.DataFrame) -> _Names:
    codes, unique = pd.factorize(frame["name"])
    _, first = np.unique(codes, return_index=True)
    unique = pd.Index(unique)
    stored = (pd.Index(known["name"]).get_indexer(unique) if len(known)
              else np.full(len(unique), -1, np.int64))
    return _Names(codes, unique, first, stored)


def _position_conflicts(frame: pd.DataFrame, known: pd.DataFrame, names: _Names
                        ) -> pd.DataFrame:
    """Rows whose position differs from their source's (stored, else the name's first row in
    ``frame``) by more than POSITION_TOLERANCE_ARCSEC: DataFrame[reason], input index."""
    ra, dec = frame["ra"].to_numpy("float64"), frame["dec"].to_numpy("float64")
    is_stored = names.stored >= 0
    ref_ra, ref_dec = ra[names.first], dec[names.first]  # per name
    ref_ra[is_stored] = known["ra"].to_numpy("float64")[names.stored[is_stored]]
    ref_dec[is_stored] = known["dec"].to_numpy("float64")[names.stored[is_stored]]
    ref_ra, ref_dec = ref_ra[names.codes], ref_dec[names.codes]  # per row
    sep = _separation_arcsec(ref_ra, ref_dec, ra, dec)
    bad = sep > POSITION_TOLERANCE_ARCSEC
    if not bad.any():
        return LoadCounts(0, 0, 0).conflicts
    sub = frame[bad]
    where = np.where(is_stored[names.codes][bad], "is stored at",
                     "is at (its first row in this input)")
    reason = ("source " + sub["name"].astype(str) + " " + where + " ra="
              + pd.Series(ref_ra[bad], index=sub.index).map("{:.7f}".format) + ", dec="
              + pd.Series(ref_dec[bad], index=sub.index).map("{:.7f}".format)
              + "; this row gives ra=" + sub["ra"].map("{:.7f}".format) + ", dec="
              + sub["dec"].map("{:.7f}".format) + " ("
              + pd.Series(sep[bad], index=sub.index).map("{:.3g}".format)
              + f" arcsec away; tolerance {POSITION_TOLERANCE_ARCSEC:g})")
    return pd.DataFrame({"reason": reason.astype("string")}, index=sub.index)


def _source_ids(conn: Connection, frame: pd.DataFrame, known: pd.DataFrame, names: _Names,
                run_id: int, freeze: bool = False) -> tuple[np.ndarray, int]:
    """Source id per row of ``frame``; names not stored yet are inserted (from their first
    row) with ids reserved from the identity sequence. Returns (ids, new sources)."""
    ids = np.full(len(names.unique), -1, np.int64)
    is_stored = names.stored >= 0
    ids[is_stored] = known["source_id"].to_numpy("int64")[names.stored[is_stored]]
    todo = np.flatnonzero(~is_stored)  # in order of first appearance
    if len(todo):
        last = conn.execute(text(
            f"SELECT setval(pg_get_serial_sequence('{SCHEMA}.csc_source', 'source_id'), "
            f"nextval(pg_get_serial_sequence('{SCHEMA}.csc_source', 'source_id')) + :n - 1)"),
            {"n": len(todo)}).scalar_one()
        ids[todo] = np.arange(last - len(todo) + 1, last + 1)
        new = frame.iloc[names.first[todo]].assign(source_id=ids[todo], ingest_run_id=run_id)
        copy_binary(conn, f"{SCHEMA}.csc_source", new,
                    [("source_id", "int8"), *_typed(SOURCE_COLUMNS), ("ingest_run_id", "int4")],
                    freeze=freeze)
    return ids[names.codes], len(todo)


#: A load of at least this many rows into an empty catalog builds the secondary indexes
#: after its COPYs (:class:`_EmptyCatalogLoad`); smaller ones insert into them as usual.
BULK_MIN_ROWS = 20_000
#: How long the empty-catalog load waits for its table locks before loading as usual.
BULK_LOCK_TIMEOUT = "5s"
#: The tables a detection load writes, directly or through their triggers.
_LOADED = ("csc_source", "csc_detection", "source_pending", "unclassified_detection")
#: The tables of ``_LOADED`` and every table referencing them by foreign key, transitively
#: (TRUNCATE needs them all in one statement), as regclass text, from the server's catalog.
_TRUNCATED_SQL = f"""
WITH RECURSIVE t(oid) AS (
    SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = '{SCHEMA}' AND c.relname IN ({", ".join(f"'{t}'" for t in _LOADED)})
    UNION
    SELECT k.conrelid FROM pg_constraint k JOIN t ON k.confrelid = t.oid WHERE k.contype = 'f')
SELECT t.oid::regclass::text FROM t ORDER BY 1"""
#: The indexes of ``_LOADED`` rebuilt after the COPYs: (DROP statement, CREATE statement),
#: both written by the server from its own catalog (names quoted by format/regclass). Left
#: in place: indexes a foreign key depends on, clustered or replica-identity ones and those
#: with a comment (a drop would lose what the rebuild cannot restore).
_INDEXES_SQL = f"""
SELECT CASE WHEN k.oid IS NULL
            THEN format('DROP INDEX %s', i.indexrelid::regclass)
            ELSE format('ALTER TABLE %s DROP CONSTRAINT %I', i.indrelid::regclass, k.conname)
       END,
       CASE WHEN k.oid IS NULL THEN pg_get_indexdef(i.indexrelid)
            ELSE format('ALTER TABLE %s ADD CONSTRAINT %I %s', i.indrelid::regclass,
                        k.conname, pg_get_constraintdef(k.oid))
       END
FROM pg_index i
JOIN pg_class c ON c.oid = i.indrelid JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_constraint k ON k.conindid = i.indexrelid AND k.conrelid = i.indrelid
                         AND k.contype IN ('p', 'u', 'x')
WHERE n.nspname = '{SCHEMA}' AND c.relname IN ({", ".join(f"'{t}'" for t in _LOADED)})
  AND NOT i.indisclustered AND NOT i.indisreplident
  AND NOT EXISTS (SELECT 1 FROM pg_constraint f WHERE f.contype = 'f'
                  AND f.conindid = i.indexrelid)
  AND obj_description(i.indexrelid, 'pg_class') IS NULL
  AND (k.oid IS NULL OR obj_description(k.oid, 'pg_constraint') IS NULL)
ORDER BY c.relname, i.indexrelid::regclass::text"""


class _EmptyCatalogLoad:
    """A large load into an empty catalog, as PostgreSQL loads fastest, in the load's own
    transaction: the (empty) tables it writes are truncated, so the COPYs freeze their rows
    and, under ``wal_level=minimal`` (the embedded server's), write no WAL (the files are
    synced at commit instead: nothing committed is lost in a crash); their secondary indexes
    and unique/primary-key constraints are dropped and built again after the COPYs, which
    checks every constraint over every row. The triggers fire as always. Any failure rolls
    the whole transaction back, indexes included. Readers of these tables wait for the
    commit (they would have found the catalog empty); one whose snapshot is older than the
    commit (REPEATABLE READ) then sees the committed rows, frozen, where the usual load would
    show it none: the documented price of COPY FREEZE, paid only by an empty catalog."""

    def __init__(self, rebuild: list[str]) -> None:
        self.rebuild = rebuild

    @classmethod
    def start(cls, conn: Connection, n_rows: int) -> _EmptyCatalogLoad | None:
        """Locks, checks, truncates and drops the indexes; None (nothing changed, nothing
        locked) when the catalog is not empty, the load is small or a lock is not granted
        within BULK_LOCK_TIMEOUT."""
        if n_rows < BULK_MIN_ROWS or conn.execute(
                text(f"SELECT EXISTS (SELECT 1 FROM {SCHEMA}.csc_source)")).scalar():
            return None
        tables = list(conn.execute(text(_TRUNCATED_SQL)).scalars())
        listed = ", ".join(tables)  # regclass text from pg_catalog: quoted identifiers
        sp = conn.begin_nested()
        try:
            old = conn.execute(text("SELECT current_setting('lock_timeout')")).scalar_one()
            conn.execute(text("SELECT set_config('lock_timeout', :v, true)"),
                         {"v": BULK_LOCK_TIMEOUT})
            conn.exec_driver_sql(f"LOCK TABLE {listed} IN ACCESS EXCLUSIVE MODE")
            conn.execute(text("SELECT set_config('lock_timeout', :v, true)"), {"v": old})
            empty = not conn.execute(text("SELECT " + " OR ".join(
                f"EXISTS (SELECT 1 FROM {t})" for t in tables))).scalar()
        except DBAPIError as exc:
            if not isinstance(exc.orig, psycopg.errors.LockNotAvailable):
                raise
            sp.rollback()
            return None
        if not empty:
            sp.rollback()  # releases the locks taken in the savepoint
            return None
        sp.commit()
        conn.exec_driver_sql(f"TRUNCATE {listed}")
        rebuild = []
        for drop, create in conn.execute(text(_INDEXES_SQL)).all():
            conn.exec_driver_sql(drop)
            rebuild.append(create)
        return cls(rebuild)

    def finish(self, conn: Connection) -> None:
        """Build the dropped indexes and constraints again (each checks every row)."""
        for create in self.rebuild:
            conn.exec_driver_sql(create)


def _stored_keys(conn: Connection, obsids: pd.Series) -> pd.MultiIndex | None:
    """Natural keys already stored for these ObsIDs (the only ones a new row can repeat).

    The ObsIDs with a stored detection are found first, one index probe each: new ObsIDs,
    the usual case, read no detection."""
    unique = obsids.unique()
    conn.exec_driver_sql("CREATE TEMP TABLE stage_obsid (obsid integer) ON COMMIT DROP")
    copy_binary(conn, "pg_temp.stage_obsid", pd.DataFrame({"obsid": unique}),
                [("obsid", "int4")])
    conn.exec_driver_sql("ANALYZE pg_temp.stage_obsid")
    gone = conn.exec_driver_sql(
        f"DELETE FROM pg_temp.stage_obsid o WHERE NOT EXISTS "
        f"(SELECT 1 FROM {SCHEMA}.csc_detection d WHERE d.obsid = o.obsid)").rowcount
    stored = pd.DataFrame()
    if gone < len(unique):
        stored = read_frame(conn, f"SELECT d.source_id, d.obsid, d.obi, d.region_id "
                                  f"FROM {SCHEMA}.csc_detection d "
                                  f"JOIN pg_temp.stage_obsid o USING (obsid)")
    conn.exec_driver_sql("DROP TABLE pg_temp.stage_obsid")
    return None if stored.empty else pd.MultiIndex.from_frame(_key_frame(stored))


def load_detections(conn: Connection, frame: pd.DataFrame, run_id: int) -> LoadCounts:
    """Load validated source+detection rows (stored column names) and return what was new.

    New source names are inserted; detections whose natural key (source, ObsID, OBI,
    region) is already stored, or repeated in ``frame``, are skipped; the rest go straight
    into ``catalog.csc_detection`` by binary COPY. A row naming a known source at another
    position (beyond POSITION_TOLERANCE_ARCSEC of the stored one, or of the name's first row
    in ``frame``) is not loaded: it is returned in ``conflicts`` with its reason. Loads are
    serialised by an advisory lock, so the check for stored keys stays true until commit.
    A load of BULK_MIN_ROWS or more into an empty catalog builds the indexes after its COPYs
    (:class:`_EmptyCatalogLoad`); what it stores is the same.
    """
    if frame.empty:
        return LoadCounts(0, 0, 0)
    conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": LOAD_LOCK_KEY})
    bulk = _EmptyCatalogLoad.start(conn, len(frame))
    known = _NO_SOURCES if bulk else _known_sources(conn, frame["name"])
    names = _names(frame, known)
    conflicts = _position_conflicts(frame, known, names)
    if not conflicts.empty:
        frame = frame[~frame.index.isin(conflicts.index)]
        names = _names(frame, known)
    ids, new_sources = _source_ids(conn, frame, known, names, run_id, freeze=bool(bulk))
    det = frame.assign(source_id=ids)
    key = _key_frame(det)
    fresh = ~key.duplicated(keep="first").to_numpy()
    stored = None if bulk else _stored_keys(conn, det["obsid"])
    if stored is not None:
        fresh &= ~pd.MultiIndex.from_frame(key).isin(stored)
    new = (det if fresh.all() else det[fresh]).assign(ingest_run_id=int(run_id))
    columns = [("source_id", "int8"), *_typed((*DETECTION_COLUMNS, *DERIVED_COLUMNS)),
               ("ingest_run_id", "int4")]
    copy_binary(conn, f"{SCHEMA}.csc_detection", new, columns, freeze=bool(bulk))
    if bulk:
        bulk.finish(conn)
    return LoadCounts(len(frame), new_sources, len(new), conflicts)
