"""primary_family other than ctl: catalog.source_class adopts that family's class for the
sources without a reference SIMBAD type, the oracle recomputes it the same way, switching
the setting rebuilds every source, a family that cannot be primary is refused, and until
the primary family has an active model ctl's vote is adopted (not no class at all)."""

from __future__ import annotations

import pandas as pd
import pytest
from sqlalchemy import create_engine, text

from db import oracle
from db.settings import ConfigError, Settings, get_settings
from ingest.sample import generate_sample
from ingest.sample_source import SampleCsc, SampleSimbad
from pipeline import classify, families, ingest
from pipeline.errors import PublishError
from tests.conftest import create_database

GBM = Settings(n_components=6, random_state=42, families=["ctl", "gbm"], primary_family="gbm")
CTL = Settings(n_components=6, random_state=42, families=["ctl", "gbm"], primary_family="ctl")


def q(engine, sql: str, **params) -> pd.DataFrame:
    with engine.connect() as conn:
        return pd.read_sql_query(text(sql), conn, params=params)


@pytest.fixture(scope="module")
def built(engine):
    sample = generate_sample(500, seed=9)
    ingest.ingest_csc(engine, SampleCsc(sample), until="2014-12-31")
    ingest.ingest_simbad(engine, SampleSimbad(sample, 1), refresh_days=None)
    fitted = classify.refit(engine, GBM)
    gbm = families.refit_family(engine, GBM, "gbm")
    first = classify.publish(engine, GBM, promote=fitted.model_id,
                             promote_families={"gbm": gbm.model_id})
    assert first is not None
    ingest.ingest_csc(engine, SampleCsc(sample))
    ingest.ingest_simbad(engine, SampleSimbad(sample, 2), refresh_days=0)
    second = classify.publish(engine, GBM)
    assert second is not None
    return first, second


def adopted(engine) -> pd.DataFrame:
    return q(engine, """
        SELECT c.name, c.adopted_class, c.label_origin, c.simbad_class, c.master_class,
               f.class AS gbm_class
        FROM catalog.source_class c
        LEFT JOIN catalog.source_class_by_family f ON f.name = c.name AND f.family = 'gbm'""")


def test_the_adopted_class_is_the_primary_familys(engine, built):
    a = adopted(engine)
    ref = a["simbad_class"].notna()
    assert (a.loc[ref, "adopted_class"] == a.loc[ref, "simbad_class"]).all()
    model = a[a["label_origin"] == "model"]
    assert len(model) > 50
    assert (model["adopted_class"] == model["gbm_class"]).all()
    # gbm is not ctl: the adopted class differs from ctl's vote for some sources
    assert (model["adopted_class"] != model["master_class"]).any()
    # where no SIMBAD label applies and gbm classifies, gbm's class is adopted
    free = a[~ref & a["gbm_class"].notna()]
    assert ((free["label_origin"] == "model") | (free["adopted_class"].isna())).all()


def test_the_oracle_holds_with_gbm_primary_and_sees_a_wrong_adopted_class(engine, built):
    result = oracle.check(engine, GBM)
    assert result.ok, oracle.format_differences(result)
    assert not oracle.check(engine, CTL).ok  # ctl's rule does not give these classes
    with engine.begin() as conn:
        conn.execute(text(
            "UPDATE catalog.source_result SET adopted_class = CASE WHEN adopted_class = 'QSO' "
            "THEN 'AGN' ELSE 'QSO' END WHERE valid_to IS NULL AND label_origin = 'model' AND "
            "source_id = (SELECT min(source_id) FROM catalog.source_result WHERE "
            "valid_to IS NULL AND label_origin = 'model')"))
    bad = oracle.check(engine, GBM)
    assert not bad.ok and set(bad.differences["column"]) == {"adopted_class"}


def test_switching_back_to_ctl_rebuilds_every_source(engine, built):
    with engine.begin() as conn:  # undo the tampering of the test above
        conn.execute(text(
            "UPDATE catalog.source_result r SET adopted_class = f.predicted_class "
            "FROM catalog.family_source_result f WHERE f.source_id = r.source_id AND "
            "f.family = 'gbm' AND f.valid_to IS NULL AND r.valid_to IS NULL "
            "AND r.label_origin = 'model'"))
    n_src = q(engine, "SELECT count(*) AS n FROM catalog.csc_source")["n"].item()
    release = classify.publish(engine, CTL)
    assert release is not None and release.sources_rebuilt == n_src
    a = adopted(engine)
    model = a[a["label_origin"] == "model"]
    assert (model["adopted_class"] == model["master_class"]).all()
    result = oracle.check(engine, CTL)
    assert result.ok, oracle.format_differences(result)
    assert classify.publish(engine, CTL) is None  # and then nothing more to do
    back = classify.publish(engine, GBM)  # and to gbm again
    assert back is not None and back.sources_rebuilt == n_src
    assert oracle.check(engine, GBM).ok


def test_a_primary_family_whose_classes_are_not_the_catalogs_is_refused(engine, built):
    with engine.begin() as conn:
        conn.execute(text("UPDATE catalog.fitted_model SET taxonomy = taxonomy || "
                          "ARRAY['LM-STAR'] WHERE family = 'gbm' AND status = 'active'"))
    try:
        with pytest.raises(PublishError, match=r"primary_family = 'gbm'.*LM-STAR"):
            classify.publish(engine, GBM)
    finally:
        with engine.begin() as conn:
            conn.execute(text("UPDATE catalog.fitted_model SET taxonomy = "
                              "array_remove(taxonomy, 'LM-STAR') WHERE family = 'gbm' "
                              "AND status = 'active'"))


def test_a_disabled_primary_family_is_refused_in_one_line(monkeypatch, tmp_path):
    monkeypatch.setenv("CSCAT_CONFIG", str(tmp_path / "none.toml"))
    monkeypatch.setenv("CSCAT_FAMILIES", '["ctl", "gbm"]')
    monkeypatch.setenv("CSCAT_PRIMARY_FAMILY", "muwclass")
    get_settings.cache_clear()
    try:
        with pytest.raises(ConfigError) as err:
            get_settings()
    finally:
        get_settings.cache_clear()
    msg = str(err.value)
    assert "\n" not in msg
    assert msg == ("settings: primary_family 'muwclass' is not an enabled family; allowed: "
                   "ctl, gbm (families)")
    monkeypatch.delenv("CSCAT_PRIMARY_FAMILY")
    monkeypatch.delenv("CSCAT_FAMILIES")
    assert Settings(families=["ctl", "gbm"], primary_family="gbm").primary_family == "gbm"



def test_the_default_primary_family_is_the_calibrated_one_when_enabled(monkeypatch, tmp_path):
    from classifier import DEFAULT_FAMILY

    monkeypatch.setenv("CSCAT_CONFIG", str(tmp_path / "none.toml"))
    monkeypatch.delenv("CSCAT_PRIMARY_FAMILY", raising=False)  # tests/conftest.py pins ctl
    monkeypatch.delenv("CSCAT_FAMILIES", raising=False)
    assert DEFAULT_FAMILY == "gbm"
    assert Settings().primary_family == DEFAULT_FAMILY
    assert Settings(families=["ctl", "gbm"]).primary_family == DEFAULT_FAMILY
    # gbm not enabled: ctl, whatever else is
    assert Settings(families=["ctl"]).primary_family == "ctl"
    assert Settings(families=["ctl", "muwclass", "claxboi"]).primary_family == "ctl"
    monkeypatch.setenv("CSCAT_FAMILIES", '["ctl", "claxboi"]')
    assert Settings().primary_family == "ctl"
    (tmp_path / "cfg.toml").write_text('families = ["ctl", "muwclass"]\n')
    monkeypatch.delenv("CSCAT_FAMILIES")
    monkeypatch.setenv("CSCAT_CONFIG", str(tmp_path / "cfg.toml"))
    assert Settings().primary_family == "ctl"
    # an explicit choice wins
    monkeypatch.setenv("CSCAT_PRIMARY_FAMILY", "ctl")
    assert Settings(families=["ctl", "gbm"]).primary_family == "ctl"


def test_the_test_suites_pin_ctl_and_their_subprocesses_see_it():
    """tests/conftest.py pins CSCAT_PRIMARY_FAMILY=ctl for the suites written for ctl's
    adoption; a child process (the previous release's build in tests/release_catalog.py,
    which passes on os.environ) reads it too."""
    import os
    import subprocess
    import sys

    assert os.environ["CSCAT_PRIMARY_FAMILY"] == "ctl"
    assert Settings().primary_family == "ctl"
    out = subprocess.run([sys.executable, "-c", "from db.settings import Settings; "
                          "print(Settings().primary_family)"],
                         env={**os.environ}, capture_output=True, text=True, timeout=120,
                         check=True)
    assert out.stdout.strip() == "ctl"


def recorded_primary(engine, catalog_version: int) -> str:
    return q(engine, "SELECT counts->>'primary_family' AS p FROM catalog.release "
                     "WHERE release_id = :v", v=int(catalog_version))["p"].item()


def test_ctl_is_adopted_until_the_primary_family_has_a_model(pg_server, caplog):
    engine = create_engine(create_database(pg_server, "t_primary_family_fallback"))
    try:
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
    finally:
        engine.dispose()
