"""The demo: the living catalog on the bundled sample, in two epochs, with no network."""

from __future__ import annotations

from prefect import flow

from flows.catalog import update_catalog_flow

#: The sample's catalog as published at epoch 1; everything after it arrives at epoch 2.
EPOCH1_UNTIL = "2016-12-31"


@flow(name="demo")
def demo_flow() -> dict:
    """Epoch 1: ingest, SIMBAD, fit, classify, master. Then new observations and a SIMBAD
    snapshot with changed types arrive; epoch 2 reapplies the model to the new detections
    and rebuilds the master results of the affected sources only."""
    first = update_catalog_flow(until=EPOCH1_UNTIL, refit="always", source="sample",
                                simbad_epoch=1)
    second = update_catalog_flow(until=None, refit="never", source="sample", simbad_epoch=2,
                                 refresh_days=0)
    return {"epoch1": first, "epoch2": second}
