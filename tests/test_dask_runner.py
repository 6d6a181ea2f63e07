"""Prefect's Dask integration: the partitioned flow on a 2-worker local Dask cluster gives
exactly what it gives in-process (Prefect's thread pool), and equals the model applied to all
detections at once."""

from __future__ import annotations

import pandas as pd
import pytest

from db.settings import Settings
from tests.conftest import publish_first_version


@pytest.fixture(scope="module")
def prefect_flows(prefect_server):
    """``flows.partitions``, run against the module's temporary Prefect server."""
    from flows import partitions

    return partitions


def test_dask_cluster_gives_the_in_process_results(prefect_flows, engine):
    from classifier import ClusterThenLabel
    from db import catalog_store as store
    from flows.runtime import task_runner
    from ingest.sample import generate_sample

    settings = Settings(max_unclassifiable_share=0.6)
    publish_first_version(engine, generate_sample(600, seed=3), settings)
    dask = Settings(task_runner="dask", dask_workers=2)
    runner = task_runner(dask)
    assert type(runner).__name__ == "DaskTaskRunner"
    assert runner.cluster_kwargs["n_workers"] == 2

    local = prefect_flows.run_partitioned(prefect_flows.predict_partitions_flow, 3,
                                          settings=Settings())
    on_dask = prefect_flows.run_partitioned(prefect_flows.predict_partitions_flow, 3,
                                            settings=dask)
    pd.testing.assert_frame_equal(on_dask, local, check_exact=True)

    with engine.connect() as conn:  # independent: the model on every detection at once
        active = store.active_model(conn)
        model = ClusterThenLabel.from_dict(active["model"])
        frame = store.detection_features(conn, model.features_)
    whole = model.predict_proba(frame.set_index("detection_id").sort_index()[model.features_])
    assert len(local) == len(frame) > 0
    pd.testing.assert_frame_equal(local, whole, check_exact=True)
