"""``update``'s refit decision counts in the database: its counts equal those recomputed from
every detection row (the way the refit itself counts), and its decision follows them."""

from __future__ import annotations

import pytest

from db import catalog_store as store
from db.settings import Settings
from ingest.sample import generate_sample
from ingest.sample_source import SampleCsc, SampleSimbad
from pipeline import classify, ingest


@pytest.fixture(scope="module")
def sample():
    return generate_sample(600, seed=11)


def _recounted(engine) -> tuple[int, int]:
    """(detections, labeled detections) from every detection row."""
    with engine.connect() as conn:
        frame = store.detection_features(conn, [])
    return len(frame), int(classify.training_labels(frame["simbad_otype"]).notna().sum())


def test_counts_and_decision(engine, sample):
    settings = Settings(max_unclassifiable_share=0.6)
    ingest.ingest_csc(engine, SampleCsc(sample), until="2010-12-31")
    ingest.ingest_simbad(engine, SampleSimbad(sample, 1), refresh_days=None)
    with engine.connect() as conn:
        n, per_otype = store.detections_per_otype(conn)
    n_det, n_lab = _recounted(engine)
    labeled = classify.training_labels(per_otype.index.to_series()).notna().to_numpy()
    assert n == n_det > 0 and int(per_otype[labeled].sum()) == n_lab > 0
    assert classify.needs_refit(engine, settings) == (True, "no active model")

    fitted = classify.refit(engine, settings)
    assert (fitted.n_detections, fitted.n_labeled) == (n_det, n_lab)
    classify.publish(engine, settings, promote=fitted.model_id)
    assert classify.needs_refit(engine, settings)[0] is False  # nothing new

    ingest.ingest_csc(engine, SampleCsc(sample))  # every later observation
    ingest.ingest_simbad(engine, SampleSimbad(sample, 1), refresh_days=None)
    n_det2, n_lab2 = _recounted(engine)
    growth = (n_det2 - n_det) / n_det
    lab_change = abs(n_lab2 - n_lab) / n_lab
    decision, why = classify.needs_refit(engine, settings)
    assert decision is (lab_change >= settings.refit_labeled_change
                        or growth >= settings.refit_detection_growth)
    assert f"{growth:.1%}" in why or f"{lab_change:.1%}" in why
