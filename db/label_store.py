"""SQL of curated label sets (``catalog.label_set``, ``catalog.label``)."""

from __future__ import annotations

import hashlib

import pandas as pd
from sqlalchemy import Connection, Engine, text

from db.load import copy_frame
from db.models import SCHEMA


class LabelSetConflict(ValueError):
    """A label set of that name exists with other labels."""


def digest(labels: pd.DataFrame) -> str:
    """sha256 of the sorted (name, class) rows."""
    rows = labels.sort_values(["name", "class"])[["name", "class"]].astype(str)
    body = "\n".join(rows["name"] + "\t" + rows["class"])
    return hashlib.sha256(body.encode()).hexdigest()


def store_label_set(conn: Connection, name: str, origin: str, labels: pd.DataFrame,
                    run_id: int) -> dict:
    """Store ``labels`` (name, class) as label set ``name``. The same set again is a no-op
    (``status`` "unchanged"); other labels under an existing name raise LabelSetConflict
    (a model trained on a set must find it as it was)."""
    d = digest(labels)
    row = conn.execute(text(f"SELECT set_id, digest, n_labels FROM {SCHEMA}.label_set "
                            "WHERE name = :n FOR UPDATE"), {"n": name}).mappings().first()
    if row is not None:
        if row["digest"] == d:
            return {"set_id": row["set_id"], "n_labels": row["n_labels"], "status": "unchanged"}
        raise LabelSetConflict(
            f"label set {name!r} exists with other labels ({row['n_labels']} rows); a label "
            "set is never changed once stored: import under another --set name")
    set_id = conn.execute(text(
        f"INSERT INTO {SCHEMA}.label_set (name, origin, n_labels, digest, ingest_run_id) "
        "VALUES (:n, :o, :k, :d, :r) RETURNING set_id"),
        {"n": name, "o": origin, "k": len(labels), "d": d, "r": run_id}).scalar_one()
    frame = labels[["name", "class"]].assign(set_id=set_id)
    copy_frame(conn, f"{SCHEMA}.label", frame, ["set_id", "name", "class"])
    return {"set_id": set_id, "n_labels": len(labels), "status": "new"}


def label_set(name: str, engine: Engine | None = None) -> pd.DataFrame:
    """The labels of set ``name``: DataFrame[name, class, source_id] (source_id <NA> for
    sources not ingested); LookupError if there is no such set."""
    if engine is None:
        from db.engine import migrated_engine

        engine = migrated_engine()
    with engine.connect() as conn:
        set_id = conn.execute(text(f"SELECT set_id FROM {SCHEMA}.label_set WHERE name = :n"),
                              {"n": name}).scalar()
        if set_id is None:
            known = conn.execute(text(f"SELECT name FROM {SCHEMA}.label_set ORDER BY 1")
                                 ).scalars().all()
            raise LookupError(f"no label set {name!r} (known: {', '.join(known) or 'none'})")
        df = pd.read_sql_query(text(
            f"SELECT l.name, l.class, s.source_id FROM {SCHEMA}.label l "
            f"LEFT JOIN {SCHEMA}.csc_source s ON s.name = l.name WHERE l.set_id = :id "
            "ORDER BY l.name"), conn, params={"id": set_id})
    return df.astype({"name": "string", "class": "string", "source_id": "Int64"})
