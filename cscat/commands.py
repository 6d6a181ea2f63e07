"""What each ``cscat`` subcommand does, given parsed arguments."""

from __future__ import annotations

import argparse

from sqlalchemy import Engine

from cscat.render import aligned_table, csv_table
from db import engine as dbe
from db import migrate, queries
from db.embedded import EmbeddedServerError
from db.settings import get_settings

#: Errors shown to the user as one line, without a traceback.
UserError = (dbe.DatabaseError, EmbeddedServerError, queries.QueryError)


def migrated_engine() -> Engine:
    """The engine, with the schema upgraded to head first if needed."""
    engine = dbe.get_engine()
    migrate.ensure_current(engine)
    return engine


def db_upgrade(args: argparse.Namespace) -> None:
    engine = dbe.get_engine()
    before = migrate.current_revision(engine)
    migrate.upgrade(engine)
    after = migrate.current_revision(engine)
    print(f"schema at {after}" + ("" if before == after else f" (was {before or 'empty'})"))


def db_url(args: argparse.Namespace) -> None:
    settings = get_settings()
    if settings.database_url:
        url = dbe.sqlalchemy_url(settings.database_url).set(drivername="postgresql")
        print(url.render_as_string(hide_password=False))
        return
    info = dbe.embedded_server().info()
    if info is None:
        raise dbe.DatabaseError(
            "the embedded server is not running; start it with `cscat db start`"
        )
    print(info.url())


def db_start(args: argparse.Namespace) -> None:
    if get_settings().database_url:
        raise dbe.DatabaseError("CSCAT_DATABASE_URL is set: cscat does not manage that server")
    info = dbe.embedded_server().acquire(keep_running=True, port=get_settings().embedded_port)
    migrate.ensure_current(dbe.get_engine())
    print(f"embedded PostgreSQL running (pid {info.pid}) on 127.0.0.1:{info.port}, "
          f"data in {info.data_dir}")
    print("connect with: psql \"$(cscat db url)\"   stop with: cscat db stop")


def db_stop(args: argparse.Namespace) -> None:
    if get_settings().database_url:
        raise dbe.DatabaseError("CSCAT_DATABASE_URL is set: cscat does not manage that server")
    stopped = dbe.embedded_server().stop()
    print("embedded PostgreSQL stopped" if stopped else "embedded PostgreSQL was not running")


def sql(args: argparse.Namespace) -> None:
    result = queries.run_readonly(migrated_engine(), args.query)
    render = csv_table if args.format == "csv" else aligned_table
    print(render(result.columns, result.rows), end="\n" if args.format == "table" else "")


def status(args: argparse.Namespace) -> None:
    settings = get_settings()
    engine = migrated_engine()
    if settings.database_url:
        print(f"database:  {dbe.masked(engine.url)} (CSCAT_DATABASE_URL)")
    else:
        info = dbe.embedded_server().info()
        where = f"127.0.0.1:{info.port}, pid {info.pid}" if info else "not running"
        print(f"database:  embedded PostgreSQL in {settings.data_dir} ({where})")
    print(f"server:    PostgreSQL {queries.server_version(engine)}")
    current, head = migrate.current_revision(engine), migrate.head_revision()
    print(f"schema:    {current}" + ("" if current == head else f" (newest is {head})"))
    counts = queries.table_counts(engine)
    print(aligned_table(["table", "rows"], [(f"catalog.{t}", n) for t, n in counts.items()]))
