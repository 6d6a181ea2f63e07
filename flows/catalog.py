"""Prefect flows of the living catalog. Thin: each task calls one ``pipeline`` step.

Flows: ``ingest_csc``, ``ingest_simbad``, ``refit``, ``reclassify``, ``build_master`` and
``update_catalog`` (ingest → SIMBAD → counterparts → refit or reapply by policy → classify →
master).
Everything that writes a catalog version holds the catalog's advisory lock.
"""

from __future__ import annotations

from prefect import flow, task
from prefect.events import emit_event
from prefect.runtime import flow_run

from db.catalog_store import update_lock
from db.engine import migrated_engine
from db.leftovers import writer
from db.settings import get_settings
from pipeline import classify, families, ingest, sources

#: Emitted when an ingest added detections; a deployment trigger reclassifies on it.
DETECTIONS_INGESTED = "cscat.detections.ingested"
CATALOG_RESOURCE = {"prefect.resource.id": "cscat.catalog", "prefect.resource.name": "cscat"}


def _run_id() -> str | None:
    return str(flow_run.id) if flow_run.id else None


@task(name="ingest CSC detections")
def ingest_csc_task(until: str | None, source: str) -> dict:
    settings = get_settings()
    return ingest.ingest_csc(migrated_engine(), sources.csc_source(settings, source),
                             until=until).as_dict()


@task(name="crossmatch with SIMBAD")
def ingest_simbad_task(refresh_days: float | None, source: str, epoch: int) -> dict:
    settings = get_settings()
    return ingest.ingest_simbad(migrated_engine(), sources.simbad_source(settings, source, epoch),
                                refresh_days=refresh_days).as_dict()


@task(name="match counterparts (Gaia DR3, 2MASS, AllWISE)")
def ingest_counterparts_task(refresh_days: float | None, source: str) -> dict:
    from pipeline import counterparts

    settings = get_settings()
    return counterparts.ingest_counterparts(
        migrated_engine(), sources.counterpart_source(settings, source), settings,
        refresh_days=refresh_days).as_dict()


@task(name="decide refit or reapply")
def needs_refit_task() -> tuple[bool, str]:
    return classify.needs_refit(migrated_engine(), get_settings())


@task(name="fit and validate a model")
def refit_task() -> dict:
    return vars(classify.refit(migrated_engine(), get_settings()))


@task(name="fit and validate a family's model", task_run_name="refit {family}")
def refit_family_task(family: str) -> dict:
    return families.refit_family(migrated_engine(), get_settings(), family).as_dict()


def refit_families(names: list[str]) -> tuple[dict, dict[str, int]]:
    """Refit ``names``, one Prefect task each: their results, and the models to promote.

    The tasks run one after another in the flow's own thread: in worker threads a Ctrl-C
    waited for every running fit to end (the thread pool joins them) before cscat stopped.
    """
    fitted = {f: refit_family_task(f) for f in names}
    return fitted, {f: r["model_id"] for f, r in fitted.items() if r["promote"]}


@task(name="publish a catalog version")
def publish_task(promote: int | None = None, classify_new: bool = True,
                 reclassify_all: bool = False,
                 promote_families: dict[str, int] | None = None) -> dict | None:
    summary = classify.publish(migrated_engine(), get_settings(), promote=promote,
                               classify=classify_new, reclassify_all=reclassify_all,
                               flow_run_id=_run_id(), promote_families=promote_families)
    return summary.as_dict() if summary else None


def _emit_if_new(summary: dict) -> None:
    if summary["new_detections"]:
        emit_event(event=DETECTIONS_INGESTED, resource=CATALOG_RESOURCE,
                   payload={"new_detections": summary["new_detections"],
                            "ingest_run_id": summary["run_id"]})


@flow(name="ingest_csc")
def ingest_csc_flow(until: str | None = None, source: str = "tap") -> dict:
    """Fetch the detections of new CSC observations; emits an event if any were added."""
    with writer(migrated_engine()):
        summary = ingest_csc_task(until, source)
    _emit_if_new(summary)
    return summary


@flow(name="ingest_simbad")
def ingest_simbad_flow(refresh_days: float | None = None, source: str = "tap",
                       epoch: int = 1) -> dict:
    """Crossmatch new sources (and those older than ``refresh_days``) with SIMBAD."""
    days = get_settings().simbad_refresh_days if refresh_days is None else refresh_days
    with writer(migrated_engine()):
        return ingest_simbad_task(days, source, epoch)


@flow(name="ingest_counterparts")
def ingest_counterparts_flow(refresh_days: float | None = None, source: str = "tap") -> dict:
    """Match sources without a fresh match with Gaia DR3, 2MASS and AllWISE (NWAY)."""
    days = get_settings().counterpart_refresh_days if refresh_days is None else refresh_days
    with writer(migrated_engine()):
        return ingest_counterparts_task(days, source)


@flow(name="refit")
def refit_flow(wait: bool = False) -> dict:
    """Fit a model on all current detections and labels; promote it if it validates."""
    with writer(migrated_engine()), update_lock(migrated_engine(), wait):
        fitted = refit_task()
        fam, promote_fam = refit_families(families.source_families(get_settings()))
        promote = fitted["model_id"] if fitted["promote"] else None
        release = publish_task(promote=promote, promote_families=promote_fam) \
            if promote is not None or promote_fam else None
    return {"refit": fitted, "families": fam, "release": release}


@flow(name="reclassify")
def reclassify_flow(all_detections: bool = False, model: int | None = None,
                    wait: bool = True) -> dict | None:
    """Apply the active model (or make ``model`` active) to detections without a result,
    then rebuild the master results of the affected sources, as one catalog version."""
    with writer(migrated_engine()), update_lock(migrated_engine(), wait):
        return publish_task(promote=model, reclassify_all=all_detections)


@flow(name="build_master")
def build_master_flow(wait: bool = True) -> dict | None:
    """Rebuild master results of sources that gained results or SIMBAD changes."""
    with writer(migrated_engine()), update_lock(migrated_engine(), wait):
        return publish_task(classify_new=False)


@flow(name="update_catalog")
def update_catalog_flow(until: str | None = None, refit: str = "auto", source: str = "tap",
                        simbad_epoch: int = 1, refresh_days: float | None = None,
                        wait: bool = False) -> dict:
    """Ingest → SIMBAD → refit or reapply (``refit``: auto, always, never) → publish."""
    if refit not in ("auto", "always", "never"):
        raise ValueError(f"refit must be auto, always or never, not {refit!r}")
    days = get_settings().simbad_refresh_days if refresh_days is None else refresh_days
    with writer(migrated_engine()), update_lock(migrated_engine(), wait):
        csc = ingest_csc_task(until, source)
        simbad = ingest_simbad_task(days, source, simbad_epoch)
        counterparts = ingest_counterparts_task(get_settings().counterpart_refresh_days,
                                                source)
        do_refit, why = (refit == "always", "asked for") if refit != "auto" \
            else needs_refit_task()
        fitted = refit_task() if do_refit else None
        names = families.source_families(get_settings()) if do_refit \
            else families.needs_family_refit(migrated_engine(), get_settings())
        fam, promote_fam = refit_families(names)
        promote = fitted["model_id"] if fitted and fitted["promote"] else None
        release = publish_task(promote=promote, promote_families=promote_fam)
    return {"csc": csc, "simbad": simbad, "counterparts": counterparts, "refit_decision": why,
            "refit": fitted, "families": fam, "release": release}
