"""A published two-version catalog shared by the VO tests (built once per session).

Built the way ``cscat update`` builds it (tests/conftest.publish_first_version), on the
generated sample: epoch 1 (observations up to 2014), then the rest of the observations and
a SIMBAD snapshot with changed types (catalog version 2). Tests read it, never change it:
the round trip ingests into databases of its own.
"""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine

from db import engine as dbe
from db.settings import Settings
from ingest.sample import generate_sample
from ingest.sample_source import SampleCsc, SampleSimbad
from pipeline import classify, ingest
from tests.conftest import create_database, publish_first_version

EPOCH1 = "2014-12-31"


@pytest.fixture(scope="session")
def vo_catalog(pg_server):
    """{"url", "engine", "v1", "v2", "sample"} of the shared catalog."""
    url = create_database(pg_server, "t_vo_catalog")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CSCAT_DATABASE_URL", url)
        dbe.reset()
        engine = create_engine(url)
        settings = Settings(n_components=6, random_state=42)
        sample = generate_sample(500, seed=5)
        v1 = publish_first_version(engine, sample, settings, until=EPOCH1)
        ingest.ingest_csc(engine, SampleCsc(sample))
        ingest.ingest_simbad(engine, SampleSimbad(sample, 2), refresh_days=0)
        v2 = classify.publish(engine, settings)
        assert v2 is not None, "epoch 2 published nothing"
        dbe.reset()
    yield {"url": url, "engine": engine, "v1": v1, "v2": v2, "sample": sample}
    engine.dispose()


@pytest.fixture(scope="module")
def vo_env(vo_catalog):
    """cscat configured to use the shared catalog while the module runs."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CSCAT_DATABASE_URL", vo_catalog["url"])
        dbe.reset()
        yield vo_catalog
        dbe.reset()
