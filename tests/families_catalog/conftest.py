"""A two-epoch catalog of the sample with every family fitted, promoted and reapplied."""

from __future__ import annotations

import pytest

from db.settings import Settings
from ingest.sample import generate_sample
from ingest.sample_source import SampleCsc, SampleSimbad
from pipeline import classify, families, ingest

SAMPLE = (600, 5)


def build_epoch1(engine, settings: Settings, sample) -> dict:
    """Ingest epoch 1, refit ctl and every source family, publish with them promoted."""
    ingest.ingest_csc(engine, SampleCsc(sample), until="2014-12-31")
    ingest.ingest_simbad(engine, SampleSimbad(sample, 1), refresh_days=None)
    fitted = classify.refit(engine, settings)
    fam = {f: families.refit_family(engine, settings, f)
           for f in families.source_families(settings)}
    release = classify.publish(engine, settings, promote=fitted.model_id,
                               promote_families={f: r.model_id for f, r in fam.items()
                                                 if r.promote})
    assert release is not None
    return {"ctl": fitted, "families": fam, "release": release}


def build_epoch2(engine, settings: Settings, sample):
    ingest.ingest_csc(engine, SampleCsc(sample))
    ingest.ingest_simbad(engine, SampleSimbad(sample, 2), refresh_days=0)
    return classify.publish(engine, settings)


@pytest.fixture(scope="module")
def sample():
    return generate_sample(*SAMPLE[:1], seed=SAMPLE[1])


@pytest.fixture(scope="module")
def settings():
    return Settings(n_components=6, random_state=42)


@pytest.fixture(scope="module")
def catalog(engine, settings, sample):
    """The two-epoch catalog with all families: (epoch 1 summary, epoch 2 release)."""
    first = build_epoch1(engine, settings, sample)
    second = build_epoch2(engine, settings, sample)
    assert second is not None
    return first, second
