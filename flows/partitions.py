"""Heavy per-partition work as Prefect tasks, run on the configured task runner
(``flows.runtime.task_runner``: threads in this process, or a Dask cluster).

``predict_partitions``: the active model's per-detection probabilities, partition by
partition (read-only: nothing is written). It is the pattern for the other partitioned steps:
read once, ``map_partitions`` a module-level task over plain-data partitions, concatenate.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from prefect import flow, task

from db import catalog_store as store
from db.engine import migrated_engine
from flows.runtime import task_runner


def map_partitions(fn, parts: Sequence, **kwargs) -> list:
    """Submit task ``fn`` once per partition (``fn(part, **kwargs)``) to the flow's task
    runner and return the results in partition order."""
    futures = [fn.submit(part, **kwargs) for part in parts]
    return [f.result() for f in futures]


def split(frame: pd.DataFrame, n: int) -> list[pd.DataFrame]:
    """``frame`` in ``n`` contiguous partitions of (nearly) equal size."""
    bounds = np.linspace(0, len(frame), max(1, n) + 1).astype(int)
    return [frame.iloc[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True) if b > a]


@task(name="predict a partition")
def predict_partition(features: pd.DataFrame, model: dict) -> pd.DataFrame:
    """Class probabilities of one partition (index: detection_id) under ``model``."""
    from classifier import ClusterThenLabel

    fitted = ClusterThenLabel.from_dict(model)
    proba = fitted.predict_proba(features[fitted.features_])
    return proba.set_axis(features.index, axis=0)


@flow(name="predict_partitions")
def predict_partitions_flow(n_partitions: int = 4) -> pd.DataFrame:
    """The active model's probabilities for every detection, computed in ``n_partitions``
    partitions on the flow's task runner (index: detection_id, one column per class)."""
    with migrated_engine().connect() as conn:
        active = store.active_model(conn)
        if active is None:
            raise LookupError("no active model")
        frame = store.detection_features(conn, list(active["model"]["params"]["features"]))
    frame = frame.set_index("detection_id").sort_index()
    parts = map_partitions(predict_partition, split(frame, n_partitions), model=active["model"])
    return pd.concat(parts) if parts else pd.DataFrame()


def run_partitioned(flow_fn, *args, settings=None, **kwargs):
    """Run ``flow_fn`` on the configured task runner (``task_runner``)."""
    return flow_fn.with_options(task_runner=task_runner(settings))(*args, **kwargs)
