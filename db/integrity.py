"""Set-wise checks of the references the bulk tables keep without foreign keys."""

from __future__ import annotations

from sqlalchemy import Connection, text

from db.models import SCHEMA

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
}


def problems(conn: Connection) -> dict[str, int]:
    """The checks that fail, with how many rows fail them (empty: all is well)."""
    found = {name: conn.execute(text(sql)).scalar_one() for name, sql in CHECKS.items()}
    return {name: n for name, n in found.items() if n}
