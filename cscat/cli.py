"""The ``cscat`` command: parses arguments and calls into ``db``, ``ingest`` and ``flows``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from cscat import commands


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="cscat", description="A living classification catalog of Chandra X-ray sources."
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    db = sub.add_parser("db", help="manage the database").add_subparsers(
        dest="db_command", required=True, metavar="ACTION")
    db.add_parser("upgrade", help="migrate the schema to the newest revision").set_defaults(
        func=commands.db_upgrade)
    db.add_parser("url", help="print a libpq URL for psql, TOPCAT (JDBC) or pandas").set_defaults(
        func=commands.db_url)
    start = db.add_parser("start", help="start the embedded server and keep it running")
    start.set_defaults(func=commands.db_start)
    db.add_parser("stop", help="stop the embedded server").set_defaults(func=commands.db_stop)

    sql = sub.add_parser("sql", help="run one read-only SQL query and print the result")
    sql.add_argument("query", help='e.g. "SELECT count(*) FROM catalog.csc_source"')
    sql.add_argument("--format", choices=["table", "csv"], default="table")
    sql.set_defaults(func=commands.sql)

    sub.add_parser("status", help="database location, schema revision, row counts").set_defaults(
        func=commands.status)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    args = _parser().parse_args(argv)
    func: Callable[[argparse.Namespace], int | None] = args.func
    try:
        return func(args) or 0
    except commands.UserError as e:
        print(f"cscat: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("cscat: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
