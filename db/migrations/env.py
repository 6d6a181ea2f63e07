"""Alembic environment: runs migrations on the connection cscat hands in, or on its engine."""

from alembic import context
from sqlalchemy import text

from db.models import SCHEMA, Base

config = context.config
target_metadata = Base.metadata


def include_name(name, type_, parent_names):
    """Compare only cscat's own schema."""
    if type_ == "schema":
        return name == SCHEMA
    return True


#: pg_advisory_xact_lock key serialising migrations of one database across processes.
MIGRATION_LOCK_KEY = 0x63736D6967


def run_migrations(connection) -> None:
    # Concurrent cscat processes may all find the schema behind: one migrates, the others
    # wait here and then find it current.
    connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": MIGRATION_LOCK_KEY})
    connection.execute(text(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}"))
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        version_table_schema=SCHEMA,
        include_schemas=True,
        include_name=include_name,
        transaction_per_migration=True,
    )
    with context.begin_transaction():
        context.run_migrations()
    # The read-only role's privileges, re-applied after every upgrade (views of new migrations).
    from db.reader import apply_grants_if_current

    apply_grants_if_current(connection, context.get_context(), context.script)
    # Column comments (db.column_docs), likewise: views recreated later keep their comments.
    from db.column_docs import apply_comments_if_current

    apply_comments_if_current(connection, context.get_context(), context.script)


connection = config.attributes.get("connection")
if connection is not None:
    run_migrations(connection)
else:
    from db.engine import get_engine

    with get_engine().begin() as conn:
        run_migrations(conn)
