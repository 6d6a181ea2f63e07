"""Bulk loading with PostgreSQL COPY (psycopg 3), then set-based SQL into the store.

A frame is COPYed (as CSV written by Arrow) into a temporary staging table; sources and
detections are then inserted from it with ``ON CONFLICT DO NOTHING`` on their natural keys,
so rows already stored and duplicates inside one input load once. Everything happens on
the caller's connection and transaction: the caller decides what commits together.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
from sqlalchemy import Connection

from db.csc_columns import (
    DERIVED_COLUMNS,
    DETECTION_COLUMNS,
    DETECTION_KEY,
    SOURCE_COLUMNS,
    Column,
    names,
)
from db.models import SCHEMA

_PG_TYPES = {"int": "integer", "bigint": "bigint", "double": "double precision",
             "text": "text", "bool": "boolean"}
STAGED: tuple[Column, ...] = (*SOURCE_COLUMNS, *DETECTION_COLUMNS, *DERIVED_COLUMNS)


@dataclass(frozen=True)
class LoadCounts:
    """What one load added."""

    rows: int
    new_sources: int
    new_detections: int

    @property
    def duplicates(self) -> int:
        """Input rows that were already stored or repeated within the input."""
        return self.rows - self.new_detections


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


def _stage(conn: Connection, frame: pd.DataFrame) -> None:
    cols = ", ".join(f"{c.name} {_PG_TYPES[c.sql_type]}" for c in STAGED)
    conn.exec_driver_sql("DROP TABLE IF EXISTS pg_temp.stage_detection")
    conn.exec_driver_sql(
        f"CREATE TEMP TABLE stage_detection (row_no integer, {cols}) ON COMMIT DROP"
    )
    staged = frame.reindex(columns=names(STAGED))
    staged.insert(0, "row_no", range(len(staged)))
    copy_frame(conn, "pg_temp.stage_detection", staged, ["row_no", *names(STAGED)])


def load_detections(conn: Connection, frame: pd.DataFrame, run_id: int) -> LoadCounts:
    """Load validated source+detection rows (stored column names) and return what was new."""
    if frame.empty:
        return LoadCounts(0, 0, 0)
    _stage(conn, frame)
    src_cols = names(SOURCE_COLUMNS)
    new_sources = conn.exec_driver_sql(
        f"INSERT INTO {SCHEMA}.csc_source ({', '.join(src_cols)}, ingest_run_id) "
        f"SELECT DISTINCT ON (name) {', '.join(src_cols)}, {int(run_id)} "
        f"FROM pg_temp.stage_detection ORDER BY name, row_no "
        f"ON CONFLICT (name) DO NOTHING"
    ).rowcount
    det_cols = names(DETECTION_COLUMNS) + names(DERIVED_COLUMNS)
    key = ", ".join(["s.source_id", *(f"d.{k}" for k in DETECTION_KEY)])
    new_detections = conn.exec_driver_sql(
        f"INSERT INTO {SCHEMA}.csc_detection (source_id, {', '.join(det_cols)}, ingest_run_id) "
        f"SELECT DISTINCT ON ({key}) s.source_id, "
        f"{', '.join('d.' + c for c in det_cols)}, {int(run_id)} "
        f"FROM pg_temp.stage_detection d JOIN {SCHEMA}.csc_source s ON s.name = d.name "
        f"ORDER BY {key}, d.row_no "
        f"ON CONFLICT ON CONSTRAINT uq_csc_detection_source_id_obsid_obi_region_id DO NOTHING"
    ).rowcount
    conn.exec_driver_sql("DROP TABLE pg_temp.stage_detection")
    return LoadCounts(len(frame), new_sources, new_detections)
