"""A real catalog for the web tests: the sample generator's data through the pipeline, two
epochs (so there are two catalog versions, class changes and history)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from db import engine as dbe
from db.settings import Settings
from tests.conftest import create_database, publish_first_version

EPOCH1 = "2014-12-31"


def build(engine, n_sources: int = 400, seed: int = 5) -> dict:
    """Epoch 1 (ingest, SIMBAD, refit, publish), then epoch 2's observations and SIMBAD,
    the source families fitted and published with them, and counterparts (Gaia, 2MASS,
    AllWISE from the sample's generated catalogues)."""
    from ingest.sample import generate_sample
    from ingest.sample_counterparts import SampleCounterparts
    from ingest.sample_source import SampleCsc, SampleSimbad
    from pipeline import classify, families, ingest
    from pipeline.counterparts import ingest_counterparts

    settings = Settings(n_components=6, random_state=42)
    sample = generate_sample(n_sources, seed=seed)
    v1 = publish_first_version(engine, sample, settings, until=EPOCH1)
    ingest.ingest_csc(engine, SampleCsc(sample))
    ingest.ingest_simbad(engine, SampleSimbad(sample, 2), refresh_days=0)
    fitted = {f: families.refit_family(engine, settings, f)
              for f in families.source_families(settings)}
    v2 = classify.publish(engine, settings, promote_families={
        f: r.model_id for f, r in fitted.items() if r.promote})
    ingest_counterparts(engine, SampleCounterparts(sample), settings, refresh_days=None)
    return {"sample": sample, "v1": v1, "v2": v2, "settings": settings}


@contextmanager
def catalog_database(pg_server, name: str) -> Iterator[str]:
    """Database ``name`` (from the migrated template), cscat pointed at it, built once."""
    url = create_database(pg_server, name)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CSCAT_DATABASE_URL", url)
        dbe.reset()
        try:
            build(dbe.get_engine())
            yield url
        finally:
            dbe.reset()
