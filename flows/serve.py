"""``cscat serve``: the catalog's deployments on their schedules, and the ingest trigger."""

from __future__ import annotations

from prefect import serve
from prefect.events.schemas.deployment_triggers import DeploymentEventTrigger

from db.settings import get_settings
from flows.catalog import (
    CATALOG_RESOURCE,
    DETECTIONS_INGESTED,
    build_master_flow,
    ingest_csc_flow,
    ingest_simbad_flow,
    reclassify_flow,
    refit_flow,
    update_catalog_flow,
)


def deployments() -> list:
    """The deployments ``cscat serve`` runs: schedules from the settings, one trigger."""
    settings = get_settings()
    on_ingest = DeploymentEventTrigger(
        name="reclassify when detections are ingested",
        expect={DETECTIONS_INGESTED},
        match={"prefect.resource.id": CATALOG_RESOURCE["prefect.resource.id"]},
    )
    return [
        update_catalog_flow.to_deployment(name="scheduled", cron=settings.update_cron),
        refit_flow.to_deployment(name="scheduled", cron=settings.refit_cron,
                                 parameters={"wait": True}),
        reclassify_flow.to_deployment(name="on-new-detections", triggers=[on_ingest]),
        ingest_csc_flow.to_deployment(name="manual"),
        ingest_simbad_flow.to_deployment(name="manual"),
        build_master_flow.to_deployment(name="manual"),
    ]


def serve_deployments() -> None:
    """Serve the deployments until interrupted (needs a Prefect API: ``PREFECT_API_URL``)."""
    serve(*deployments())
