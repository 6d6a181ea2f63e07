"""A primary family without an active model: catalog.source_class adopts ctl's vote (not no
class at all), the release records ``ctl`` as its primary family, the oracle agrees, and the
first publish that promotes the primary family rebuilds every source with its classes."""

from __future__ import annotations

import pandas as pd
from sqlalchemy import text

from db import oracle
from db.settings import Settings
from ingest.sample import generate_sample
from ingest.sample_source import SampleCsc, SampleSimbad
from pipeline import classify, families, ingest

GBM = Settings(n_components=6, random_state=42, families=["ctl", "gbm"], primary_family="gbm")


def q(engine, sql: str) -> pd.DataFrame:
    with engine.connect() as conn:
        return pd.read_sql_query(text(sql), conn)


def adopted(engine) -> pd.DataFrame:
    return q(engine, """
        SELECT c.name, c.adopted_class, c.label_origin, c.simbad_class, c.master_class,
               f.class AS gbm_class
        FROM catalog.source_class c
        LEFT JOIN catalog.source_class_by_family f ON f.name = c.name AND f.family = 'gbm'""")


def recorded_primary(engine, release_id: int) -> str:
    return q(engine, f"SELECT counts->>'primary_family' AS p FROM catalog.release "
                     f"WHERE release_id = {int(release_id)}")["p"].item()


def test_ctl_is_adopted_until_the_primary_family_has_a_model(engine, caplog):
    sample = generate_sample(500, seed=9)
    ingest.ingest_csc(engine, SampleCsc(sample))
    ingest.ingest_simbad(engine, SampleSimbad(sample, 1), refresh_days=None)
    fitted = classify.refit(engine, GBM)  # ctl only: gbm is enabled but never fitted
    first = classify.publish(engine, GBM, promote=fitted.model_id)
    assert first is not None
    a = adopted(engine)
    model = a[a["label_origin"] == "model"]
    assert len(model) > 50  # not "every model-labelled source without a class"
    assert a["gbm_class"].isna().all()
    assert (model["adopted_class"] == model["master_class"]).all()
    assert recorded_primary(engine, first.catalog_version) == "ctl"
    assert "primary_family 'gbm' has no active model yet" in caplog.text
    result = oracle.check(engine, GBM)
    assert result.ok, oracle.format_differences(result)

    gbm = families.refit_family(engine, GBM, "gbm")
    second = classify.publish(engine, GBM, promote_families={"gbm": gbm.model_id})
    n_src = q(engine, "SELECT count(*) AS n FROM catalog.csc_source")["n"].item()
    assert second is not None and second.sources_rebuilt == n_src
    assert recorded_primary(engine, second.catalog_version) == "gbm"
    a = adopted(engine)
    model = a[a["label_origin"] == "model"]
    assert len(model) > 50 and (model["adopted_class"] == model["gbm_class"]).all()
    result = oracle.check(engine, GBM)
    assert result.ok, oracle.format_differences(result)
