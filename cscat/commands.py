"""What each ``cscat`` subcommand does, given parsed arguments."""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from cscat.render import aligned_table, csv_table


class _Lazy:
    """A module imported when first used, so that ``cscat --version`` imports no database
    code and ``cscat sql`` no pandas, scikit-learn or Prefect."""

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attr: str):
        return getattr(importlib.import_module(self._name), attr)


dbe = _Lazy("db.engine")
migrate = _Lazy("db.migrate")
queries = _Lazy("db.queries")


def get_settings():
    """``db.settings.get_settings`` (imported on first use)."""
    from db.settings import get_settings as settings

    return settings()


class CliError(Exception):
    """A command cannot run as asked (e.g. no active model): one line for the user."""


def __getattr__(name: str):
    """``UserError``: the errors shown to the user as one line, without a traceback
    (built on first use: it names classes of the heavier modules)."""
    if name != "UserError":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from db.catalog_store import CatalogBusy, ModelRefused, UnknownFeature
    from db.embedded import EmbeddedServerError
    from db.settings import ConfigError
    from ingest.errors import IngestError
    from pipeline.errors import PublishError, RefitError

    return (dbe.DatabaseError, EmbeddedServerError, queries.QueryError, CatalogBusy,
            IngestError, ModelRefused, UnknownFeature, RefitError, ConfigError, CliError,
            PublishError)

#: Loggers whose INFO records are the progress of long steps (chunks, rows, fitting, …).
PROGRESS_LOGGERS = ("pipeline", "ingest", "db")
#: ``cscat --verbose``: tracebacks on the terminal (set by the CLI).
VERBOSE = False


def check_config() -> None:
    """Read the settings now (a bad config file is one error before anything starts) and
    warn about ``CSCAT_*`` variables that are no setting."""
    from db.settings import unknown_environment

    get_settings()
    for warning in unknown_environment():
        print(f"cscat: warning: {warning}", file=sys.stderr)


def cause(e: BaseException) -> BaseException:
    """What to show for ``e``: a database error as its server message, not SQLAlchemy's."""
    from sqlalchemy.exc import DBAPIError

    if isinstance(e, DBAPIError):
        orig = str(e.orig).strip().splitlines() if e.orig is not None else []
        reason = orig[0] if orig else str(e).splitlines()[0]
        lost = e.connection_invalidated or "closed the connection" in reason \
            or "terminating connection" in reason
        return dbe.DatabaseError(("the database connection was lost: " if lost
                                  else "database error: ") + reason)
    return e


def interrupted_note() -> str:
    """The one line after Ctrl-C / SIGTERM: what was kept."""
    return ("no catalog version was half-written (each is one transaction); ingest chunks "
            "already committed are kept and the next run resumes")


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
    if _start_prefect():
        _start_command_server()
    print("connect with: psql \"$(cscat db url)\"   stop with: cscat db stop")


def _start_prefect() -> bool:
    """``db start``: a persistent local Prefect server, so pipeline commands start quickly
    (not when ``PREFECT_API_URL`` names the user's own). True if it is cscat's own."""
    from flows.runtime import configure_prefect, start_persistent_server

    configure_prefect()
    if os.environ.get("PREFECT_API_URL"):
        print(f"Prefect: using PREFECT_API_URL={os.environ['PREFECT_API_URL']}")
        return False
    try:
        url, started = start_persistent_server()
    except RuntimeError as e:
        raise CliError(str(e)) from None
    print(f"Prefect server {'started' if started else 'running'} at {url}: pipeline commands "
          f"use it until `cscat db stop`")
    return True


def _start_command_server() -> None:
    """``db start``: the command server, which has Prefect, pandas and cscat imported and
    runs pipeline commands in a forked child (see :mod:`cscat.cmdserver`)."""
    from cscat import cmdserver

    pid, what = cmdserver.start(get_settings().data_dir)
    print(f"command server {what}" + (f" (pid {pid}): pipeline commands start without "
                                      "importing Prefect" if pid and what in ("started",
                                                                              "running") else ""))


def db_stop(args: argparse.Namespace) -> None:
    if get_settings().database_url:
        raise dbe.DatabaseError("CSCAT_DATABASE_URL is set: cscat does not manage that server")
    from cscat import cmdserver

    if cmdserver.stop(get_settings().data_dir):
        print("command server stopped")
    stopped = dbe.embedded_server().stop()
    print("embedded PostgreSQL stopped" if stopped else "embedded PostgreSQL was not running")
    from flows.runtime import configure_prefect, stop_persistent_server

    configure_prefect()
    if stop_persistent_server():
        print("Prefect server stopped")


def sql(args: argparse.Namespace) -> int:
    """One statement as the read-only role; values as PostgreSQL writes them."""
    settings = get_settings()
    with dbe.reader_connection(context=queries.text_context()) as conn:
        result = queries.run_readonly(conn, args.query, timeout_s=settings.sql_timeout_s,
                                      max_rows=settings.sql_max_rows)
    if args.format == "csv":
        out = csv_table(result.columns, result.rows) if result.columns else ""
    elif not result.columns:
        out = "(done: the statement returns no rows)\n"
    else:
        out = aligned_table(result.columns, result.rows, result.numeric) + "\n"
    return write_stdout(out)


def export(args: argparse.Namespace) -> None:
    """An export through the read-only role: every column documented, provenance inside."""
    from db import export as ex
    from db import vo

    try:
        ex.format_of(args.output, args.format)  # before connecting
        with dbe.reader_connection() as conn:
            table, files = ex.export(conn, args.output, fmt=args.format, table=args.table,
                                     version=args.version, family=args.family)
    except vo.VoError as e:
        raise CliError(str(e)) from None
    m = table.meta
    print(f"exported {len(table):,} {args.table} ({len(table.colnames)} columns) of catalog "
          f"version {m['catalog_version']} (family {m['family']}, model version(s) "
          f"{m['model_versions'] or '-'}) to {', '.join(map(str, files))}")


def write_stdout(text: str) -> int:
    """Print ``text``; a reader that went away (``| head``) ends the command quietly."""
    import os
    import sys

    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError:
        # Python flushes stdout again at exit: point it at /dev/null so that is quiet too.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141  # 128 + SIGPIPE, what a C tool killed by the pipe would report
    return 0


def status(args: argparse.Namespace) -> None:
    settings = get_settings()
    engine = dbe.migrated_engine()
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
    print("\nper family (current per-source results):")
    print(aligned_table(["family", "active model", "sources", "classified"],
                        queries.family_counts(engine), numeric=[False, True, True, True]))
    print("\ncounterparts (catalog.counterpart_match):")
    print(aligned_table(["catalogue", "sources matched", "with a counterpart"],
                        queries.counterpart_counts(engine), numeric=[False, True, True]))


def check(args: argparse.Namespace) -> int:
    """The oracle: recompute every current source result; exit 1 with the first differences."""
    from db import oracle

    result = oracle.check(dbe.migrated_engine(), get_settings())
    print(result.verdict())
    if not result.ok:
        print(oracle.format_differences(result))
    return 0 if result.ok else 1


# -- pipeline commands ---------------------------------------------------------------------
def _flows():
    """Import the flows after Prefect's environment is set (Prefect reads it at import);
    with no ``PREFECT_API_URL``, start a temporary Prefect server that dies with cscat."""
    from flows.runtime import configure_prefect, start_temporary_server, use_persistent_server

    configure_prefect()
    use_persistent_server()  # the one `cscat db start` left running, if any
    if not os.environ.get("PREFECT_API_URL"):
        print("starting a temporary Prefect server (set PREFECT_API_URL to use your own)",
              file=sys.stderr, flush=True)
        try:
            start_temporary_server()
        except RuntimeError as e:
            raise CliError(str(e)) from None
    from flows import catalog
    from flows.runtime import quiet_tracebacks

    if not VERBOSE:
        quiet_tracebacks()
    return catalog


def _require_model(model: int | None) -> None:
    """Before Prefect starts: the model to apply exists (``--model``) or one is active."""
    from db import catalog_store as store

    with dbe.migrated_engine().connect() as conn:
        if model is None:
            if store.active_model(conn) is None:
                raise CliError("no active model: fit one first with `cscat refit` "
                               "(or `cscat update`)")
            return
        try:
            store.model_row(conn, model)
        except LookupError:
            raise CliError(f"--model {model}: no such model version; see "
                           "`cscat sql \"select model_id, status, created_at from "
                           "catalog.fitted_model\"`") from None


def _require_services(source: str, csc: bool = True, simbad: bool = True) -> None:
    """Before Prefect starts: the live services answer (``--source tap``)."""
    if source != "tap":
        return
    from pipeline import sources

    settings = get_settings()
    if csc:
        sources.check_reachable(sources.csc_url(settings), "the CSC TAP service",
                                "csc_tap_url")
    if simbad:
        sources.check_reachable(sources.xmatch_url(settings), "CDS X-Match", "xmatch_url")


def _print_ingest(summary: dict) -> None:
    what = summary["kind"]
    print(f"ingest {what} from {summary['origin']}: {summary['status']} (run {summary['run_id']})")
    if what in ("csc", "file", "sample"):
        print(f"  new detections: {summary['new_detections']}   new sources: "
              f"{summary['new_sources']}   duplicates skipped: {summary['duplicates']}   "
              f"rejected: {summary['rejected']}" +
              (f"   ObsIDs: {summary['observations']}" if what == "csc" else ""))
    if summary.get("simbad"):
        s = summary["simbad"]
        print(f"  SIMBAD: {s.get('new', 0)} new, {s.get('changed', 0)} changed, "
              f"{s.get('unchanged', 0)} unchanged, {s.get('unknown_source', 0)} unknown "
              f"sources, rejected: {summary['rejected']}")
    if summary.get("counterparts"):
        c = summary["counterparts"]
        print(f"  counterparts: {c.get('sources', 0)} sources matched, "
              f"{c.get('candidates', 0)} candidates, {c.get('chosen', 0)} chosen; matches "
              f"{c.get('new', 0)} new, {c.get('changed', 0)} changed, "
              f"{c.get('unchanged', 0)} unchanged"
              + (f"; {c['queued']} sources queued for the families using counterparts"
                 if c.get("queued") else ""))
    if summary.get("labels"):
        lab = summary["labels"]
        classes = ", ".join(f"{k} {v}" for k, v in sorted(lab.get("classes", {}).items(),
                                                          key=lambda x: -x[1]))
        print(f"  label set {lab['set']!r}: {lab['n_labels']} labels ({lab['status']}); "
              f"{classes}")
    for reason, n in sorted(summary.get("rejected_reasons", {}).items(), key=lambda x: -x[1]):
        print(f"  rejected {n:>6} × {reason}")
    if summary.get("ignored_columns"):
        cols = summary["ignored_columns"]
        print(f"  ignored {len(cols)} column(s) cscat does not store: {', '.join(cols)}")
    if summary["rejected"]:
        print(f"  details: cscat sql \"select row_number, natural_key, reason from "
              f"catalog.rejected_row where ingest_run_id = {summary['run_id']}\"")


def _print_release(release: dict | None) -> None:
    if release is None:
        print("catalog unchanged: no new catalog version")
        return
    from db import report

    det = report.release_detections(dbe.get_engine(), release["catalog_version"])
    print(f"catalog version {release['catalog_version']} (model {release['model_id']}): "
          f"{det['classified']:,} detections classified, {det['unclassified']:,} "
          f"unclassified, {release['sources_rebuilt']:,} sources rebuilt, "
          f"{release['sources_changed']:,} master results written")
    for reason, n in sorted(det["reasons"].items(), key=lambda x: -x[1]):
        print(f"  unclassified {n:>6,} × {reason}")
    for family, f in (release.get("counts") or {}).get("families", {}).items():
        print(f"  {family} (model {f['model_id']}): {f['sources_classified']:,} sources "
              f"classified, {f['sources_changed']:,} results written")


def _print_family_refits(fitted: dict | None) -> None:
    """One line per source family's refit (parallel Prefect tasks)."""
    for family, r in (fitted or {}).items():
        if not r.get("new_model", True):
            print(f"refit {family}: {r['reason']}")
            continue
        acc = r["agg_accuracy"]
        print(f"{family} model {r['model_id']}: {r['n_sources']:,} sources, "
              f"{r['n_labeled']:,} labeled, {r['n_unclassifiable']:,} it cannot classify, "
              f"aggregated validation accuracy {'-' if acc is None else f'{acc:.3f}'}; "
              f"{'promoted' if r['promote'] else 'not promoted'} ({r['reason']}; "
              f"{r['seconds']:.1f} s)")


def _print_refit(fitted: dict | None) -> None:
    if fitted is None:
        return
    if not fitted.get("new_model", True):
        print(f"refit: {fitted['reason']}")
        return
    acc = fitted["agg_accuracy"]
    print(f"model {fitted['model_id']} (features {fitted.get('features') or '?'}): "
          f"{fitted['n_detections']:,} detections, {fitted['n_labeled']:,} labeled, "
          f"{fitted.get('n_unclassifiable', 0):,} it cannot classify, aggregated validation "
          f"accuracy {'-' if acc is None else f'{acc:.3f}'}; "
          f"{'promoted' if fitted['promote'] else 'not promoted'} ({fitted['reason']})")


def ingest(args: argparse.Namespace) -> None:
    from db.leftovers import writer
    from ingest import files
    from pipeline import ingest as steps

    if args.what == "csc":
        _require_services(args.source, simbad=False)
        summary = _flows().ingest_csc_flow(until=args.until, source=args.source)
    elif args.what == "simbad":
        _require_services(args.source, csc=False)
        summary = _flows().ingest_simbad_flow(refresh_days=args.refresh_days,
                                              source=args.source, epoch=args.epoch)
    elif args.what == "counterparts":
        _require_services(args.source, csc=False)
        summary = _flows().ingest_counterparts_flow(refresh_days=args.refresh_days,
                                                    source=args.source)
    elif args.what == "labels":
        from ingest.labels import read_labels
        from pipeline import counterparts

        labels = read_labels(args.path)
        with writer(dbe.migrated_engine()):
            summary = counterparts.ingest_labels(dbe.migrated_engine(), labels,
                                                 args.label_set, str(args.path)).as_dict()
    elif args.what == "file":
        frame = files.read_table(args.path)
        with writer(dbe.migrated_engine()):
            summary = steps.ingest_frame(dbe.migrated_engine(), frame, kind="file",
                                         origin=str(args.path)).as_dict()
    else:
        frame = files.read_simbad_table(args.path)
        with writer(dbe.migrated_engine()):
            summary = steps.ingest_simbad_frame(dbe.migrated_engine(), frame,
                                                str(args.path)).as_dict()
    _print_ingest(summary)


def refit(args: argparse.Namespace) -> None:
    out = _flows().refit_flow(wait=args.wait)
    _print_refit(out["refit"])
    _print_family_refits(out.get("families"))
    _print_release(out["release"])


def reclassify(args: argparse.Namespace) -> None:
    _require_model(args.model)
    _print_release(_flows().reclassify_flow(all_detections=args.all, model=args.model))


def build_master(args: argparse.Namespace) -> None:
    _require_model(None)
    _print_release(_flows().build_master_flow())


def update(args: argparse.Namespace) -> None:
    _require_services(args.source)
    out = _flows().update_catalog_flow(until=args.until, refit=args.refit, source=args.source,
                                       refresh_days=args.refresh_days, wait=args.wait)
    _print_ingest(out["csc"])
    _print_ingest(out["simbad"])
    _print_ingest(out["counterparts"])
    print(f"model: {'refit' if out['refit'] else 'reapplied'} ({out['refit_decision']})")
    _print_refit(out["refit"])
    _print_family_refits(out.get("families"))
    _print_release(out["release"])


def serve(args: argparse.Namespace) -> None:
    from flows.runtime import configure_prefect, use_persistent_server

    configure_prefect()
    use_persistent_server()
    from prefect.settings import get_current_settings

    if not get_current_settings().api.url:
        raise CliError("schedules need a persistent Prefect server: start one "
                       "(`cscat db start`, or `prefect server start` and set PREFECT_API_URL, "
                       "e.g. http://127.0.0.1:4200/api); see README, Scheduling")
    _flows()
    from flows.serve import serve_deployments

    serve_deployments()


def web(args: argparse.Namespace) -> None:
    """The web explorer on ``--host:--port`` (uvicorn), as the read-only role."""
    import uvicorn

    from web.app import create_app, warm

    if not 0 < args.port < 65536:
        raise CliError(f"--port {args.port} is not a TCP port (1-65535)")
    app = create_app(get_settings())
    with app.state.engine.connect() as conn:  # a database problem is one line, now
        from db.web_queries import reader_identity

        who = reader_identity(conn)
    warm(app)
    print(f"cscat explorer on http://{args.host}:{args.port}/ (database role {who['role']}, "
          "read-only); Ctrl-C stops it", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")


def demo(args: argparse.Namespace) -> None:
    from db import report

    engine = dbe.migrated_engine()
    origins = report.ingest_origins(engine)
    if any(not o.startswith("sample") for o in origins):
        raise dbe.DatabaseError(
            "this catalog holds real data; the demo needs an empty one "
            "(use another CSCAT_DATA_DIR or CSCAT_DATABASE_URL)")
    if origins:
        print("resetting the previous demo catalog")
        migrate.reset(engine)
    _flows()  # Prefect's environment first
    from flows.demo import EPOCH1_UNTIL, demo_flow

    print(f"epoch 1: the sample catalog as published until {EPOCH1_UNTIL}")
    out = demo_flow()
    for epoch in ("epoch1", "epoch2"):
        run = out[epoch]
        print(f"\n== {epoch}: update_catalog ==")
        _print_ingest(run["csc"])
        _print_ingest(run["simbad"])
        if run.get("counterparts"):
            _print_ingest(run["counterparts"])
        print(f"model: {'refit' if run['refit'] else 'reapplied'} ({run['refit_decision']})")
        _print_refit(run["refit"])
        _print_family_refits(run.get("families"))
        _print_release(run["release"])
    _print_summary(engine)
    from db import oracle

    result = oracle.check(engine, get_settings())
    print(f"\n== check (every published source result recomputed) ==\n{result.verdict()}")
    if not result.ok:
        print(oracle.format_differences(result))


def _print_summary(engine) -> None:
    from db import report

    print("\n== catalog versions ==")
    print(aligned_table(*_cols_rows(report.versions(engine))))
    print("\n== contents ==")
    print(aligned_table(*_cols_rows(report.counts(engine))))
    print("\n== current classes (catalog.source_class, aggregated) ==")
    print(aligned_table(*_cols_rows(report.class_distribution(engine))))
    _print_changes(engine, 1, 2)
    _print_families(engine, 1, 2)
    model = report.active_model_validation(engine)
    if model and model["validation"]:
        v = model["validation"]
        print(f"\n== model {model['model_id']}: validation (stratified 70/30 of "
              f"{v['n_labeled']} labeled detections) ==")
        print(f"accuracy: fine classes {v['fine']['accuracy']:.3f}, aggregated "
              f"{v['aggregated']['accuracy']:.3f}")
        rows = [(c, p["description"], p["recall"], p["paper_recall"])
                for c, p in v["paper_comparison"].items()]
        print(aligned_table(["class", "paper's name", "recall", "paper (CSC 2.0)"], rows))
    print(EXPLORE)


def _print_changes(engine, a: int, b: int) -> None:
    """New sources apart from existing sources whose class changed, every aggregated class."""
    from classifier.taxonomy import AGG_CLASSES
    from db import change_report

    summary = change_report.change_summary(engine, a, b, AGG_CLASSES)
    new = sum(r[1] for r in summary.rows)
    changed = sum(r[2] for r in summary.rows)
    print(f"\n== changes between catalog versions {a} and {b} (generated sample) ==")
    print("The demo catalog is a generated sample (synthetic sources drawn from statistics of "
          "real CSC 2.1 data),\nnot real CSC data: its classes say nothing about real sources.")
    print(f"new sources (first published in version {b}): {new}")
    print(f"existing sources whose class changed: {changed}")
    print(aligned_table(["agg_class", "new sources", "changed from", "changed to",
                         f"total in version {b}"], summary.rows))
    print(f"\n== existing sources whose class changed between versions {a} and {b}: {changed} "
          "(first 10) ==")
    print(aligned_table(*_cols_rows(change_report.changed_examples(engine, a, b))))


def _print_families(engine, a: int, b: int) -> None:
    """Every family's validation side by side, the consensus, the changes per family."""
    from db import family_report as fr

    print("\n== every family's validation (held-out 30 % of the labeled rows; ctl per "
          "detection, the others per source) ==")
    print(aligned_table(*_cols_rows(fr.validation_side_by_side(engine))))
    c = fr.consensus_summary(engine)
    print(f"\n== consensus (catalog.source_consensus, coarse classes) ==\n"
          f"sources classified by every family: {c['all_families']:,} of {c['sources']:,}; "
          f"all families agree on {c['all_agree']:,}; disagreements: {c['disagree']:,} "
          f"({c['no_majority']:,} without a majority)")
    print(aligned_table(*_cols_rows(fr.consensus_by_class(engine))))
    print("first disagreements:")
    print(aligned_table(*_cols_rows(fr.disagreement_examples(engine))))
    print(f"\n== class changes per family between catalog versions {a} and {b} "
          f"(catalog.family_class_changes({a}, {b})) ==")
    print(aligned_table(*_cols_rows(fr.changes_per_family(engine, a, b))))


def _cols_rows(result) -> tuple[list[str], list[tuple]]:
    return result.columns, result.rows


EXPLORE = """
== explore ==
cscat sql "select agg_master_class, count(*) from catalog.source_class group by 1"
cscat sql "select name, adopted_class, ambiguous, mean_yso from catalog.source_class
           where agg_adopted_class = 'YSO' and label_origin = 'model'
           order by mean_yso desc limit 10"
cscat sql "select * from catalog.class_changes(1, 2) limit 10"
cscat sql "select count(*) from catalog.source_class_as_of(1)"
cscat sql "select family, class, probability, model_id from catalog.source_class_by_family
           where name = (select min(name) from catalog.source) order by family"
cscat sql "select majority_class, count(*) from catalog.source_consensus
           where disagreement group by 1"
cscat db start && psql "$(cscat db url)"      # then \\dv catalog.*"""
