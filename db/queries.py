"""Read-only SQL for users (``cscat sql``) and the status summary."""

from __future__ import annotations

from dataclasses import dataclass, field

import psycopg
from psycopg.adapt import AdaptersMap
from psycopg.types.string import StrDumper, TextLoader
from sqlalchemy import Engine, text

from db.models import MAIN_TABLES, SCHEMA


class QueryError(RuntimeError):
    """A user query failed; the message is PostgreSQL's, on one line."""


@dataclass(frozen=True)
class QueryResult:
    columns: list[str]
    rows: list[tuple]
    #: Per column: is it a number (right-aligned)? None: guess from the values.
    numeric: list[bool] | None = field(default=None)


#: Type OIDs of PostgreSQL's numbers: int2, int4, int8, oid, float4, float8, numeric.
NUMERIC_OIDS = frozenset({21, 23, 20, 26, 700, 701, 1700})


def text_context() -> AdaptersMap:
    """An adaptation context that returns every value as PostgreSQL's own text.

    The server's text is what the user should see: floats in their shortest exact form (PG
    >= 12, ``extra_float_digits = 1``), JSON as JSON, arrays, timestamps and intervals as
    PostgreSQL writes them. Pass it as ``context=`` when connecting.
    """
    ctx = AdaptersMap()
    ctx.register_loader(0, TextLoader)  # the fallback of every type OID
    ctx.register_dumper(str, StrDumper)  # for cscat's own parameters
    return ctx


def _one_line(e: Exception) -> str:
    lines = str(e).strip().splitlines()
    return lines[0] if lines else type(e).__name__


def run_readonly(conn: psycopg.Connection, sql: str, *, timeout_s: float,
                 max_rows: int) -> QueryResult:
    """Run one statement in a READ ONLY transaction with a timeout and a row limit.

    ``conn`` should be the read-only role's (``db.engine.reader_connection``): its privileges
    are what makes this safe; the transaction mode and the limits add to them. The statement
    goes through the extended protocol, so PostgreSQL itself refuses a second statement, and
    its text is sent as is (no ``%`` placeholders). Rows are streamed: a result over
    ``max_rows`` is refused without being held in memory.
    """
    conn.autocommit = False
    conn.read_only = True
    rows: list[tuple] = []
    with conn.cursor() as cur:
        try:
            # First query of the transaction: from here on it cannot be made read-write.
            cur.execute("SELECT set_config('statement_timeout', %s, false)",
                        [str(max(1, round(timeout_s * 1000)))])
            for row in cur.stream(sql):
                if len(rows) >= max_rows:
                    raise QueryError(
                        f"refused: the result has more than {max_rows:,} rows (sql_max_rows, "
                        "CSCAT_SQL_MAX_ROWS); add a LIMIT or an aggregate, or raise the limit")
                rows.append(row)
        except psycopg.ProgrammingError as e:
            if "didn't produce a result" not in str(e):  # else: a command (SET, NOTIFY...)
                raise QueryError(_explain(e, timeout_s)) from None
        except psycopg.Error as e:
            raise QueryError(_explain(e, timeout_s)) from None
        desc = cur.description or []
        columns = [d.name for d in desc]
        numeric = [d.type_code in NUMERIC_OIDS for d in desc]
    conn.rollback()  # whatever the statement did (a NOTIFY, a SET) is undone
    return QueryResult(columns, rows, numeric)


def _explain(e: psycopg.Error, timeout_s: float) -> str:
    first = _one_line(e)
    state = getattr(e, "sqlstate", None)
    if state == "42601" and "multiple commands" in first:
        return "refused: cscat sql runs exactly one statement"
    if state in ("25006", "25001", "42501"):
        return f"refused: cscat sql runs read-only queries ({first})"
    if "EMPTY_QUERY" in first:
        return "refused: the query is empty"
    if state == "57014":
        return (f"the query was cancelled after the statement timeout of {timeout_s:g} s "
                "(sql_timeout_s, CSCAT_SQL_TIMEOUT_S)")
    return first


def table_counts(engine: Engine) -> dict[str, int | None]:
    """Row counts of the main tables (None where a table does not exist yet)."""
    counts: dict[str, int | None] = {}
    with engine.connect() as conn:
        present = set(conn.execute(
            text("SELECT table_name FROM information_schema.tables WHERE table_schema = :s"),
            {"s": SCHEMA},
        ).scalars())
        for table in MAIN_TABLES:
            counts[table] = (
                conn.execute(text(f"SELECT count(*) FROM {SCHEMA}.{table}")).scalar_one()
                if table in present else None
            )
    return counts


_FAMILY_COUNTS = f"""
WITH cur AS (
    SELECT model_id, master_class AS class FROM {SCHEMA}.source_result WHERE valid_to IS NULL
    UNION ALL
    SELECT model_id, predicted_class FROM {SCHEMA}.family_source_result WHERE valid_to IS NULL),
per AS (SELECT m.family, count(*) AS results, count(cur.class) AS classified
        FROM cur JOIN {SCHEMA}.fitted_model m USING (model_id) GROUP BY m.family),
active AS (SELECT family, max(model_id) AS model_id FROM {SCHEMA}.fitted_model
           WHERE status = 'active' GROUP BY family)
SELECT family, active.model_id, coalesce(per.results, 0), coalesce(per.classified, 0)
FROM per FULL JOIN active USING (family)
ORDER BY family <> 'ctl', family"""


def family_counts(engine: Engine) -> list[tuple[str, int | None, int, int]]:
    """Per classifier family: (family, active model id or None, sources with a current
    result, of which with a class), ctl first; families with neither are not listed."""
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text(_FAMILY_COUNTS))]


def counterpart_counts(engine: Engine) -> list[tuple[str, int, int]]:
    """Per counterpart catalogue: (catalogue, sources matched against it, of which with a
    chosen counterpart)."""
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text(
            f"SELECT catalogue, count(*), count(cp_id) FROM {SCHEMA}.counterpart_match "
            "GROUP BY catalogue ORDER BY catalogue"))]


def server_version(engine: Engine) -> str:
    with engine.connect() as conn:
        return conn.execute(text("SHOW server_version")).scalar_one()
