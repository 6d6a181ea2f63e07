"""Read-only SQL for users (``cscat sql``) and the status summary."""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

from db.models import MAIN_TABLES, SCHEMA


class QueryError(RuntimeError):
    """A user query failed; the message is PostgreSQL's, on one line."""


@dataclass(frozen=True)
class QueryResult:
    columns: list[str]
    rows: list[tuple]


# Quoted strings, quoted identifiers, dollar-quoted bodies and comments: where a ';' is text.
_NOT_CODE = re.compile(
    r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|(\$\w*\$).*?\1|--[^\n]*|/\*.*?\*/", re.S
)


def statement_count(sql: str) -> int:
    """How many SQL statements ``sql`` holds (semicolons outside strings and comments)."""
    code = _NOT_CODE.sub(" ", sql)
    return sum(1 for part in code.split(";") if part.strip())


def run_readonly(engine: Engine, sql: str, timeout_s: float = 300) -> QueryResult:
    """Run one statement in a READ ONLY transaction; writes are refused by PostgreSQL itself.

    Several statements are refused too: one could end the read-only transaction.
    """
    if statement_count(sql) != 1:
        raise QueryError("refused: cscat sql runs exactly one read-only statement")
    with engine.connect() as conn:
        conn.execute(text("SET TRANSACTION READ ONLY"))
        conn.execute(text(f"SET LOCAL statement_timeout = {int(timeout_s * 1000)}"))
        try:
            result = conn.exec_driver_sql(sql)
        except DBAPIError as e:
            first = str(e.orig).strip().splitlines()[0] if e.orig else str(e)
            if "read-only transaction" in first:
                raise QueryError(
                    f"refused: cscat sql runs read-only queries ({first})"
                ) from None
            raise QueryError(first) from None
        if not result.returns_rows:
            return QueryResult([], [])
        return QueryResult(list(result.keys()), [tuple(r) for r in result.fetchall()])


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


def server_version(engine: Engine) -> str:
    with engine.connect() as conn:
        return conn.execute(text("SHOW server_version")).scalar_one()
