"""Read-side summaries of the catalog (what ``cscat demo`` and ``cscat status`` print)."""

from __future__ import annotations

from sqlalchemy import Engine, text

from db.models import SCHEMA
from db.queries import QueryResult


def _rows(engine: Engine, sql: str, **params) -> QueryResult:
    with engine.connect() as conn:
        result = conn.execute(text(sql), params)
        return QueryResult(list(result.keys()), [tuple(r) for r in result.fetchall()])


def versions(engine: Engine) -> QueryResult:
    """Catalog versions with the detections each classified and left unclassified (a
    result with a ``reason`` is unclassified)."""
    return _rows(engine, f"""
        SELECT v.catalog_version, to_char(v.created_at, 'YYYY-MM-DD HH24:MI:SS') AS created,
               v.model_id, coalesce(r.classified, 0) AS classified,
               coalesce(r.unclassified, 0) AS unclassified,
               (v.counts->>'sources_changed')::int AS sources_written
        FROM {SCHEMA}.catalog_version v
        LEFT JOIN (SELECT valid_from, count(*) FILTER (WHERE reason IS NULL) AS classified,
                          count(*) FILTER (WHERE reason IS NOT NULL) AS unclassified
                   FROM {SCHEMA}.detection_result GROUP BY valid_from) r
          ON r.valid_from = v.catalog_version
        ORDER BY 1""")


def release_detections(engine: Engine, version: int) -> dict:
    """Detection results written by catalog version ``version``: how many are classified,
    how many are not (they have a ``reason``) and the count per reason."""
    with engine.connect() as conn:
        rows = conn.execute(text(
            f"SELECT reason, count(*) FROM {SCHEMA}.detection_result WHERE valid_from = :v "
            "GROUP BY reason"), {"v": int(version)}).all()
    reasons = {r: int(n) for r, n in rows if r is not None}
    return {"classified": sum(int(n) for r, n in rows if r is None),
            "unclassified": sum(reasons.values()), "reasons": reasons}


def counts(engine: Engine) -> QueryResult:
    return _rows(engine, f"""
        SELECT (SELECT count(*) FROM {SCHEMA}.csc_source) AS sources,
               (SELECT count(*) FROM {SCHEMA}.csc_detection) AS detections,
               (SELECT count(*) FROM {SCHEMA}.observation) AS observations,
               (SELECT count(*) FROM {SCHEMA}.simbad_match WHERE main_id IS NOT NULL)
                   AS simbad_matches,
               (SELECT count(*) FROM {SCHEMA}.detection_result) AS detection_result_rows,
               (SELECT count(*) FROM {SCHEMA}.source_result) AS source_result_rows""")


def class_distribution(engine: Engine) -> QueryResult:
    return _rows(engine, f"""
        SELECT coalesce(agg_adopted_class, '(none)') AS agg_class,
               count(*) FILTER (WHERE label_origin = 'simbad') AS from_simbad,
               count(*) FILTER (WHERE label_origin = 'model') AS from_model,
               count(*) FILTER (WHERE label_origin = 'model' AND ambiguous) AS model_ambiguous,
               count(*) AS total
        FROM {SCHEMA}.source_class GROUP BY 1 ORDER BY 1""")


def active_model_validation(engine: Engine) -> dict | None:
    with engine.connect() as conn:
        row = conn.execute(text(
            f"SELECT model_id, n_detections, n_labeled, validation FROM {SCHEMA}.model_version "
            "WHERE status = 'active' AND family = 'ctl'")).mappings().one_or_none()
    return dict(row) if row else None


def ingest_origins(engine: Engine) -> list[str]:
    """Distinct origins of all ingest runs (to tell a demo catalog from a real one)."""
    with engine.connect() as conn:
        return list(conn.execute(text(
            f"SELECT DISTINCT origin FROM {SCHEMA}.ingest_run ORDER BY 1")).scalars())
