"""What each ``cscat`` subcommand does, given parsed arguments."""

from __future__ import annotations

import argparse

from cscat.render import aligned_table, csv_table
from db import engine as dbe
from db import migrate, queries
from db.catalog_store import CatalogBusy
from db.embedded import EmbeddedServerError
from db.settings import get_settings
from ingest.errors import IngestError

#: Errors shown to the user as one line, without a traceback.
UserError = (dbe.DatabaseError, EmbeddedServerError, queries.QueryError, CatalogBusy,
             IngestError)


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
    result = queries.run_readonly(dbe.migrated_engine(), args.query)
    render = csv_table if args.format == "csv" else aligned_table
    print(render(result.columns, result.rows), end="\n" if args.format == "table" else "")


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


# -- pipeline commands ---------------------------------------------------------------------
def _flows():
    """Import the flows after Prefect's environment is set (Prefect reads it at import)."""
    from flows.runtime import configure_prefect

    configure_prefect()
    from flows import catalog

    return catalog


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
    for reason, n in sorted(summary.get("rejected_reasons", {}).items(), key=lambda x: -x[1]):
        print(f"  rejected {n:>6} × {reason}")
    if summary["rejected"]:
        print(f"  details: cscat sql \"select row_number, natural_key, reason from "
              f"catalog.rejected_row where ingest_run_id = {summary['run_id']}\"")


def _print_release(release: dict | None) -> None:
    if release is None:
        print("catalog unchanged: no new catalog version")
        return
    print(f"catalog version {release['catalog_version']} (model {release['model_id']}): "
          f"{release['detections_classified']} detections classified, "
          f"{release['sources_rebuilt']} sources rebuilt, {release['sources_changed']} "
          "master results written")


def ingest(args: argparse.Namespace) -> None:
    from ingest import files
    from pipeline import ingest as steps

    if args.what == "csc":
        summary = _flows().ingest_csc_flow(until=args.until, source=args.source)
    elif args.what == "simbad":
        summary = _flows().ingest_simbad_flow(refresh_days=args.refresh_days,
                                              source=args.source, epoch=args.epoch)
    elif args.what == "file":
        frame = files.read_table(args.path)
        summary = steps.ingest_frame(dbe.migrated_engine(), frame, kind="file",
                                     origin=str(args.path)).as_dict()
    else:
        frame = files.read_simbad_table(args.path)
        summary = steps.ingest_simbad_frame(dbe.migrated_engine(), frame,
                                            str(args.path)).as_dict()
    _print_ingest(summary)


def refit(args: argparse.Namespace) -> None:
    out = _flows().refit_flow(wait=args.wait)
    fitted = out["refit"]
    print(f"model {fitted['model_id']}: {fitted['n_detections']} detections, "
          f"{fitted['n_labeled']} labeled, aggregated validation accuracy "
          f"{fitted['agg_accuracy']:.3f}; {'promoted' if fitted['promote'] else 'not promoted'}"
          f" ({fitted['reason']})")
    _print_release(out["release"])


def reclassify(args: argparse.Namespace) -> None:
    _print_release(_flows().reclassify_flow(all_detections=args.all, model=args.model))


def build_master(args: argparse.Namespace) -> None:
    _print_release(_flows().build_master_flow())


def update(args: argparse.Namespace) -> None:
    out = _flows().update_catalog_flow(until=args.until, refit=args.refit, source=args.source,
                                       refresh_days=args.refresh_days, wait=args.wait)
    _print_ingest(out["csc"])
    _print_ingest(out["simbad"])
    print(f"model: {'refit' if out['refit'] else 'reapplied'} ({out['refit_decision']})")
    _print_release(out["release"])


def serve(args: argparse.Namespace) -> None:
    _flows()
    from flows.serve import serve_deployments

    serve_deployments()


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
        print(f"model: {'refit' if run['refit'] else 'reapplied'} ({run['refit_decision']})")
        _print_release(run["release"])
    _print_summary(engine)


def _print_summary(engine) -> None:
    from db import report

    print("\n== catalog versions ==")
    print(aligned_table(*_cols_rows(report.versions(engine))))
    print("\n== contents ==")
    print(aligned_table(*_cols_rows(report.counts(engine))))
    print("\n== current classes (catalog.source_class, aggregated) ==")
    print(aligned_table(*_cols_rows(report.class_distribution(engine))))
    _print_changes(engine, 1, 2)
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
cscat db start && psql "$(cscat db url)"      # then \\dv catalog.*"""
