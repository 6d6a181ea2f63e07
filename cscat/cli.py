"""The ``cscat`` command: parses arguments and calls into ``db``, ``ingest`` and ``flows``."""

from __future__ import annotations

import argparse
import atexit
import logging
import math
import os
import signal
import sys
import threading
import traceback
from collections.abc import Callable, Sequence
from datetime import date
from importlib.metadata import PackageNotFoundError, version

from cscat import commands


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line: ``cscat: error: ...`` (exit 2)."""

    def error(self, message: str):  # noqa: D102
        where = self.prog.partition(" ")[2]
        self.exit(2, f"cscat: error: {where + ': ' if where else ''}{message} "
                     f"(see `{self.prog} --help`)\n")


def _date(value: str) -> str:
    """``--until``: an ISO date, checked before anything starts."""
    try:
        return date.fromisoformat(value).isoformat()
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not a date: expected YYYY-MM-DD, e.g. 2016-12-31") from None


def _days(value: str) -> float:
    """``--refresh-days``: a finite number of days, >= 0."""
    try:
        days = float(value)
    except ValueError:
        days = math.nan
    if not (math.isfinite(days) and days >= 0):
        raise argparse.ArgumentTypeError(f"{value!r} is not a number of days >= 0")
    return days


def _model_version(value: str) -> int:
    """``--model``: a model version (1, 2, ...)."""
    try:
        version_ = int(value)
    except ValueError:
        version_ = 0
    if version_ < 1:
        raise argparse.ArgumentTypeError(f"{value!r} is not a model version (1, 2, ...)")
    return version_


def _version() -> str:
    try:
        return version("cscat")
    except PackageNotFoundError:
        return "unknown (not installed)"


def _parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="cscat", description="A living classification catalog of Chandra X-ray sources."
    )
    p.add_argument("--version", action="version", version=f"cscat {_version()}")
    p.add_argument("-v", "--verbose", action="store_true",
                   help="show tracebacks and debug logs when something fails")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND",
                           parser_class=_Parser)

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

    ex = sub.add_parser("export", help="the catalog as a VOTable, FITS, Parquet, CSV or ECSV file")
    ex.add_argument("--output", "-o", required=True, metavar="FILE")
    ex.add_argument("--format", choices=["votable", "fits", "parquet", "csv", "ecsv"],
                    help="default: from the output's suffix")
    ex.add_argument("--table", choices=["sources", "detections"], default="sources")
    ex.add_argument("--version", type=int, metavar="V", help="catalog version (default: current)")
    ex.add_argument("--family", metavar="F", help="classification family (default: the "
                    "catalog's one)")
    ex.set_defaults(func=commands.export)

    sub.add_parser("status", help="database location, schema revision, row counts").set_defaults(
        func=commands.status)

    sub.add_parser("check", help="recompute every published source result and compare"
                   ).set_defaults(func=commands.check)
    ing = sub.add_parser("ingest", help="load CSC detections or SIMBAD types").add_subparsers(
        dest="what", required=True, metavar="SOURCE")
    csc = ing.add_parser("csc", help="detections of CSC observations not ingested yet (TAP)")
    csc.add_argument("--until", metavar="DATE", type=_date,
                     help="only observations started by DATE (YYYY-MM-DD)")
    simbad = ing.add_parser("simbad", help="crossmatch sources with SIMBAD (CDS X-Match)")
    simbad.add_argument("--refresh-days", type=_days, default=None, metavar="N",
                        help="also re-crossmatch sources last matched more than N days ago")
    simbad.add_argument("--epoch", type=int, default=1, help=argparse.SUPPRESS)
    cp = ing.add_parser("counterparts",
                        help="Gaia DR3, 2MASS, AllWISE counterparts (CDS X-Match, NWAY)")
    cp.add_argument("--refresh-days", type=float, default=None, metavar="N",
                    help="also re-match sources matched more than N days ago "
                         "(default: counterpart_refresh_days)")
    for p_ in (csc, simbad, cp):
        p_.add_argument("--source", choices=["tap", "sample"], default="tap",
                        help="the live services (default) or the bundled sample")
    f = ing.add_parser("file", help="a VOTable, FITS, CSV or Parquet table with CSC columns")
    f.add_argument("path")
    sf = ing.add_parser("simbad-file", help="a crossmatch table (e.g. exported from TOPCAT)")
    sf.add_argument("path")
    lb = ing.add_parser("labels", help="a curated training set (CSC name, class) as a label set")
    lb.add_argument("path")
    lb.add_argument("--set", required=True, metavar="NAME", dest="label_set",
                    help="the label set's name, e.g. muwclass")
    ing_parser = sub.choices["ingest"]
    ing_parser.set_defaults(func=commands.ingest)

    up = sub.add_parser("update", help="ingest, crossmatch, refit or reapply, publish")
    up.add_argument("--until", metavar="DATE", type=_date)
    up.add_argument("--refit", choices=["auto", "always", "never"], default="auto",
                    help="auto: by the configured policy (default)")
    up.add_argument("--source", choices=["tap", "sample"], default="tap")
    up.add_argument("--refresh-days", type=_days, default=None, metavar="N")
    up.add_argument("--wait", action="store_true",
                    help="wait for a running update instead of exiting")
    up.set_defaults(func=commands.update)

    rf = sub.add_parser("refit", help="fit and validate a new model; promote it if it is good")
    rf.add_argument("--wait", action="store_true")
    rf.set_defaults(func=commands.refit)
    rc = sub.add_parser("reclassify",
                        help="apply the active model to detections without a result")
    rc.add_argument("--all", action="store_true", help="reclassify every detection")
    rc.add_argument("--model", type=_model_version, metavar="VERSION",
                    help="make this model version active and apply it")
    rc.set_defaults(func=commands.reclassify)
    sub.add_parser("master", help="rebuild master results of affected sources").set_defaults(
        func=commands.build_master)
    sub.add_parser("demo", help="the living catalog on the bundled sample, two epochs"
                   ).set_defaults(func=commands.demo)
    sub.add_parser("serve", help="serve the Prefect deployments (schedules, trigger)"
                   ).set_defaults(func=commands.serve)
    web = sub.add_parser("web", help="the read-only web explorer (search, sources, sky map)")
    web.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    web.add_argument("--port", type=int, default=8765, help="TCP port (8765)")
    web.set_defaults(func=commands.web)
    return p


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread as an interrupt (so a waiting query is cancelled
    and every ``finally`` runs, as for Ctrl-C)."""


def _on_sigterm(signum, frame) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # once: the cleanup must not be cut short
    raise Terminated()


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split()) or type(e).__name__
    return text if len(text) <= 400 else text[:400] + "…"


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script (``argv`` None: ``sys.argv``, and a pipeline command
    runs through the command server of ``cscat db start`` when one runs, see
    :mod:`cscat.cmdserver`, or else in this process, which then exits without tearing
    its modules down)."""
    if argv is not None:
        return run_in_process(argv)
    from cscat import cmdserver

    argv = sys.argv[1:]
    if not cmdserver.is_pipeline_command(argv):
        return run_in_process(argv)
    rc = cmdserver.run_remote(argv)
    if rc is not None:
        return rc
    rc = run_in_process(argv)
    finish()
    os._exit(rc)


def finish() -> None:
    """What the interpreter does at exit that matters, without its slow part: wait for
    non-daemon threads, run the ``atexit`` handlers (Prefect drains its log and event
    workers, the embedded server is released), flush stdout and stderr. Then ``os._exit``
    skips the seconds spent freeing every module of Prefect, pandas and scikit-learn."""
    for thread in threading.enumerate():
        if thread is not threading.current_thread() and not thread.daemon:
            thread.join()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass


def run_in_process(argv: Sequence[str]) -> int:
    """Parse ``argv`` and run the command in this process; its exit code."""
    args = _parser().parse_args(argv)
    func: Callable[[argparse.Namespace], int | None] = args.func
    previous = signal.getsignal(signal.SIGTERM)
    if previous is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        return _run(args, func)
    finally:
        if previous is signal.SIG_DFL:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _run(args: argparse.Namespace, func: Callable[[argparse.Namespace], int | None]) -> int:
    commands.VERBOSE = args.verbose
    for name in commands.PROGRESS_LOGGERS:  # progress of long steps (Prefect shows them)
        logging.getLogger(name).setLevel(logging.DEBUG if args.verbose else logging.INFO)
    try:
        commands.check_config()
        return func(args) or 0
    except Terminated:
        print(f"cscat: terminated: {commands.interrupted_note()}", file=sys.stderr)
        return 143
    except KeyboardInterrupt:
        print(f"cscat: interrupted: {commands.interrupted_note()}", file=sys.stderr)
        return 130
    except Exception as e:
        if args.verbose:
            traceback.print_exc()
        cause = commands.cause(e)
        if isinstance(cause, commands.UserError):
            print(f"cscat: error: {_one_line(cause)}", file=sys.stderr)
            return 2
        hint = "" if args.verbose else " (run with --verbose for the traceback)"
        print(f"cscat: error: {type(cause).__name__}: {_one_line(cause)}{hint}", file=sys.stderr)
        return 1

if __name__ == "__main__":
    sys.exit(main())
