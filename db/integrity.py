"""Set-wise checks of the references the bulk tables keep without foreign keys."""

from __future__ import annotations

from sqlalchemy import Connection, text

from db.models import SCHEMA


def _orphans(table: str, column: str, parent: str, key: str) -> str:
    return (f"SELECT count(*) FROM {SCHEMA}.{table} c WHERE c.{column} IS NOT NULL AND NOT "
            f"EXISTS (SELECT 1 FROM {SCHEMA}.{parent} p WHERE p.{key} = c.{column})")


#: name -> query counting rows that break the rule.
CHECKS = {
    "detection without its source": f"""
        SELECT count(*) FROM {SCHEMA}.csc_detection d
        WHERE NOT EXISTS (SELECT 1 FROM {SCHEMA}.csc_source s WHERE s.source_id = d.source_id)""",
    "detection without its ingest run": f"""
        SELECT count(*) FROM {SCHEMA}.csc_detection d
        WHERE NOT EXISTS (SELECT 1 FROM {SCHEMA}.ingest_run r WHERE r.run_id = d.ingest_run_id)""",
    "source without its ingest run": f"""
        SELECT count(*) FROM {SCHEMA}.csc_source s
        WHERE NOT EXISTS (SELECT 1 FROM {SCHEMA}.ingest_run r WHERE r.run_id = s.ingest_run_id)""",
    "source pending for SIMBAD not as its match says": f"""
        SELECT count(*) FROM {SCHEMA}.csc_source s
        WHERE EXISTS (SELECT 1 FROM {SCHEMA}.simbad_match m WHERE m.source_id = s.source_id)
            = EXISTS (SELECT 1 FROM {SCHEMA}.source_pending p
                      WHERE p.step = 'simbad' AND p.source_id = s.source_id)""",
    "source pending for counterparts not as its match says": f"""
        SELECT count(*) FROM {SCHEMA}.csc_source s
        WHERE EXISTS (SELECT 1 FROM {SCHEMA}.counterpart_match m
                      WHERE m.source_id = s.source_id AND m.catalogue = 'gaia')
            = EXISTS (SELECT 1 FROM {SCHEMA}.source_pending p
                      WHERE p.step = 'counterparts' AND p.source_id = s.source_id)""",
    **{f"source pending for {fam} not as its results say": f"""
        SELECT count(*) FROM {SCHEMA}.csc_source s
        WHERE EXISTS (SELECT 1 FROM {SCHEMA}.family_source_result r WHERE r.family = '{fam}'
                      AND r.source_id = s.source_id AND r.valid_to IS NULL)
            = EXISTS (SELECT 1 FROM {SCHEMA}.source_pending p
                      WHERE p.step = '{fam}' AND p.source_id = s.source_id)"""
       for fam in ("muwclass", "claxboi", "gbm")},
    "SIMBAD type whose detection tally differs from a recount": f"""
        SELECT count(*) FROM (SELECT coalesce(m.otype, '') AS otype, count(*) AS n
                              FROM {SCHEMA}.csc_detection d LEFT JOIN {SCHEMA}.simbad_match m
                              ON m.source_id = d.source_id GROUP BY 1) r
        FULL JOIN (SELECT otype, sum(n_detections) AS n_detections
                   FROM {SCHEMA}.detection_tally GROUP BY otype
                   HAVING sum(n_detections) <> 0) t
        USING (otype) WHERE r.n IS DISTINCT FROM t.n_detections""",
    **{f"{table}.{column} without its {parent}": _orphans(table, column, parent, key)
       for table, column, parent, key in [
           ("detection_result", "detection_id", "csc_detection", "detection_id"),
           ("detection_result", "model_id", "fitted_model", "model_id"),
           ("detection_result", "valid_from", "release", "release_id"),
           ("detection_result", "valid_to", "release", "release_id"),
           ("detection_result", "classification_run_id", "classification_run", "run_id"),
           ("source_result", "source_id", "csc_source", "source_id"),
           ("source_result", "model_id", "fitted_model", "model_id"),
           ("source_result", "valid_from", "release", "release_id"),
           ("source_result", "valid_to", "release", "release_id"),
       ]},
}


def problems(conn: Connection) -> dict[str, int]:
    """The checks that fail, with how many rows fail them (empty: all is well)."""
    found = {name: conn.execute(text(sql)).scalar_one() for name, sql in CHECKS.items()}
    return {name: n for name, n in found.items() if n}
