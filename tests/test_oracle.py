"""The oracle (db.oracle, ``cscat check``) on a catalog built the way a user builds it.

The oracle recomputes every current per-source result from the stored detections and the
current per-detection results and compares it with ``catalog.source_class``; these tests
show that it holds on a real build, that it catches wrong published values (the n² defect
of the first version), and what the CLI prints.
"""

from __future__ import annotations

import pytest
from sqlalchemy import text

from cscat.cli import main
from db import oracle
from db.settings import Settings
from ingest.sample import generate_sample
from ingest.sample_source import SampleCsc, SampleSimbad
from pipeline import classify, ingest
from tests.conftest import publish_first_version

EPOCH1 = "2014-12-31"


@pytest.fixture(scope="module")
def settings():
    return Settings(n_components=6, random_state=42)


@pytest.fixture(scope="module")
def built(engine, settings):
    """Epoch 1 (first version: ingest, SIMBAD, refit, publish), checked before epoch 2."""
    sample = generate_sample(700, seed=5)
    v1 = publish_first_version(engine, sample, settings, until=EPOCH1)
    first = oracle.check(engine, settings)
    ingest.ingest_csc(engine, SampleCsc(sample))
    ingest.ingest_simbad(engine, SampleSimbad(sample, 2), refresh_days=0)
    v2 = classify.publish(engine, settings)
    return {"sample": sample, "v1": v1, "v2": v2, "first": first}


def scalar(engine, sql, **params):
    with engine.connect() as conn:
        return conn.execute(text(sql), params).scalar()


def test_the_first_version_passes_the_oracle(built):
    first = built["first"]
    assert first.ok, first.verdict() + "\n" + oracle.format_differences(first)
    assert first.n_sources > 0 and first.n_detections > first.n_sources


def test_the_current_catalog_passes_the_oracle(built, engine, settings):
    result = oracle.check(engine, settings)
    assert result.ok, result.verdict() + "\n" + oracle.format_differences(result)
    assert result.n_pending_simbad == 0


def test_n_detections_counts_each_classified_detection_once(built, engine):
    """Plain SQL truth, apart from the oracle: n_detections = classified detections."""
    wrong = scalar(engine, """
        SELECT count(*) FROM catalog.source_class c
        JOIN (SELECT d.source_id, count(*) FILTER (WHERE r.probabilities IS NOT NULL) AS n
              FROM catalog.detection_result r JOIN catalog.csc_detection d USING (detection_id)
              WHERE r.valid_to IS NULL GROUP BY d.source_id) t USING (source_id)
        WHERE c.n_detections <> t.n""")
    assert wrong == 0
    assert scalar(engine, "SELECT max(n_detections) FROM catalog.source_class") > 2


TAMPER = [
    ("n_detections", "n_detections = n_detections * n_detections"),
    ("std_agn", "prob_std[2] = prob_std[2] + 0.01"),
    ("mean_yso", "prob_mean[8] = prob_mean[8] + 0.05"),
    ("hard_class", "hard_class = CASE WHEN hard_class = 'QSO' THEN 'XB' ELSE 'QSO' END"),
    ("ambiguous", "ambiguous = NOT ambiguous"),
    ("adopted_class", "adopted_class = 'Orion_V*'"),
]


@pytest.mark.parametrize(("column", "change"), TAMPER, ids=[c for c, _ in TAMPER])
def test_the_oracle_catches_a_wrong_published_value(built, engine, settings, column, change):
    sid, name = (engine.connect().execute(text(
        "SELECT source_id, name FROM catalog.source_class WHERE n_detections > 2 "
        "AND adopted_class IS DISTINCT FROM 'Orion_V*' ORDER BY name LIMIT 1")).one())
    with engine.begin() as conn:
        saved = conn.execute(text("SELECT * FROM catalog.source_result WHERE source_id = :s "
                                  "AND valid_to IS NULL"), {"s": sid}).mappings().one()
        conn.execute(text(f"UPDATE catalog.source_result SET {change} "
                          "WHERE source_id = :s AND valid_to IS NULL"), {"s": sid})
    try:
        result = oracle.check(engine, settings)
        assert not result.ok
        first = result.differences.iloc[0]
        assert (first["name"], first["column"]) == (name, column)
        assert set(result.differences["source_id"]) == {sid}
    finally:
        with engine.begin() as conn:
            sets = ", ".join(f"{c} = :{c}" for c in saved if c not in ("source_id", "valid_from"))
            conn.execute(text(f"UPDATE catalog.source_result SET {sets} WHERE source_id = "
                              ":source_id AND valid_from = :valid_from"), dict(saved))
    assert oracle.check(engine, settings).ok


def test_the_oracle_catches_a_wrong_class_count(built, engine, settings):
    where = ("release_id = 1 AND label_origin = 'model' AND adopted_class = (SELECT "
             "min(adopted_class) FROM catalog.version_class_count WHERE release_id = 1 "
             "AND label_origin = 'model')")
    with engine.begin() as conn:
        assert conn.execute(text(f"UPDATE catalog.version_class_count SET n_sources = "
                                 f"n_sources + 1 WHERE {where}")).rowcount == 1
    try:
        result = oracle.check(engine, settings)
        assert not result.ok and result.differences.empty
        assert any("class counts of catalog version(s) 1 " in p for p in result.problems)
    finally:
        with engine.begin() as conn:
            conn.execute(text(f"UPDATE catalog.version_class_count SET n_sources = "
                              f"n_sources - 1 WHERE {where}"))
    assert oracle.check(engine, settings).ok


def test_the_oracle_catches_a_current_row_that_left_the_history(built, engine, settings):
    """source_class reads the current-state table: written past its triggers, it is wrong
    both against the recomputation and against the history's current rows."""
    sid, name, n = engine.connect().execute(text(
        "SELECT source_id, name, n_detections FROM catalog.source_class "
        "WHERE n_detections > 1 ORDER BY name LIMIT 1")).one()
    with engine.begin() as conn:
        conn.execute(text("UPDATE catalog.source_class_current SET n_detections = :n "
                          "WHERE source_id = :s"), {"n": n + 1, "s": sid})
    try:
        result = oracle.check(engine, settings)
        assert not result.ok
        assert set(result.differences["column"]) == {"n_detections"}
        assert set(result.differences["source_id"]) == {sid}
        assert any("differ in 2 rows" in p for p in result.problems)
    finally:
        with engine.begin() as conn:
            conn.execute(text("UPDATE catalog.source_class_current SET n_detections = :n "
                              "WHERE source_id = :s"), {"n": n, "s": sid})
    assert oracle.check(engine, settings).ok


def test_the_current_state_follows_every_write_of_the_history(built, engine, settings):
    """The triggers: a result row updated in place, closed, reopened, deleted; a source
    renamed: source_class is every time the history's current rows."""
    sid = engine.connect().execute(text(
        "SELECT min(source_id) FROM catalog.source_class WHERE n_detections > 1")).scalar_one()
    steps = [
        "UPDATE catalog.source_result SET master_class = 'XB' "
        "WHERE source_id = :s AND valid_to IS NULL",
        "UPDATE catalog.source_result SET valid_to = valid_from + 1000 "
        "WHERE source_id = :s AND valid_to IS NULL",
        "UPDATE catalog.source_result SET valid_to = NULL WHERE source_id = :s "
        "AND valid_to = valid_from + 1000",
        "UPDATE catalog.csc_source SET name = name || ' renamed' WHERE source_id = :s",
        "UPDATE catalog.csc_source SET name = replace(name, ' renamed', '') "
        "WHERE source_id = :s",
    ]
    with engine.connect() as conn:
        saved = conn.execute(text("SELECT * FROM catalog.source_result WHERE source_id = :s "
                                  "AND valid_to IS NULL"), {"s": sid}).mappings().one()
    try:
        for sql in steps:
            with engine.begin() as conn:
                conn.execute(text(sql), {"s": sid})
                n = conn.execute(text("SELECT count(*) FROM catalog.source_class "
                                      "WHERE source_id = :s"), {"s": sid}).scalar_one()
            assert oracle.stored_state_problems(engine) == [], sql
            assert n == (0 if "valid_from + 1000 WHERE" in sql else 1), sql
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM catalog.source_result WHERE source_id = :s "
                              "AND valid_to IS NULL"), {"s": sid})
        # (the class counts the publishes stored are now rightly off: history was deleted)
        assert [p for p in oracle.stored_state_problems(engine) if "class counts" not in p] \
            == []
        assert engine.connect().execute(text(
            "SELECT count(*) FROM catalog.source_class WHERE source_id = :s"),
            {"s": sid}).scalar_one() == 0
    finally:
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM catalog.source_result WHERE source_id = :s "
                              "AND valid_to IS NULL"), {"s": sid})
            cols = list(saved)
            conn.execute(text(f"INSERT INTO catalog.source_result ({', '.join(cols)}) "
                              f"VALUES ({', '.join(':' + c for c in cols)})"), dict(saved))
    assert oracle.check(engine, settings).ok


def test_cscat_check_prints_the_verdict_and_exits_zero(built, capsys):
    assert main(["check"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("check passed: all ") and "current source results" in out


def test_cscat_check_exits_non_zero_with_the_first_differences(built, engine, capsys):
    with engine.begin() as conn:
        sid, name, n = conn.execute(text(
            "SELECT source_id, name, n_detections FROM catalog.source_class "
            "WHERE n_detections > 1 ORDER BY name LIMIT 1")).one()
        conn.execute(text("UPDATE catalog.source_result SET n_detections = :n "
                          "WHERE source_id = :s AND valid_to IS NULL"), {"n": n * n, "s": sid})
    try:
        assert main(["check"]) == 1
        out = capsys.readouterr().out
        assert out.startswith("check FAILED: 1 of ")
        assert f"{name}  n_detections: stored {n * n}, expected {n}" in out
    finally:
        with engine.begin() as conn:
            conn.execute(text("UPDATE catalog.source_result SET n_detections = :n "
                              "WHERE source_id = :s AND valid_to IS NULL"), {"n": n, "s": sid})


def test_reclassify_all_with_the_same_model_changes_nothing(built, engine, settings):
    before = scalar(engine, "SELECT (SELECT count(*) FROM catalog.release) * 1000000 "
                            "+ (SELECT count(*) FROM catalog.detection_result)")
    assert classify.publish(engine, settings, reclassify_all=True) is None
    active = scalar(engine, "SELECT model_id FROM catalog.fitted_model WHERE status = 'active'")
    assert classify.publish(engine, settings, promote=active, reclassify_all=True) is None
    assert scalar(engine, "SELECT (SELECT count(*) FROM catalog.release) * 1000000 "
                          "+ (SELECT count(*) FROM catalog.detection_result)") == before


def test_a_refit_on_the_same_input_and_parameters_writes_no_new_model(built, engine, settings):
    fitted = classify.refit(engine, settings)  # the catalog grew since the active model's fit
    assert fitted.new_model
    assert classify.publish(engine, settings, promote=fitted.model_id) is not None
    n_models = scalar(engine, "SELECT count(*) FROM catalog.fitted_model")
    active = scalar(engine, "SELECT model_id FROM catalog.fitted_model WHERE status = 'active'")
    again = classify.refit(engine, settings)
    assert scalar(engine, "SELECT count(*) FROM catalog.fitted_model") == n_models
    assert (again.model_id, again.new_model, again.promote) == (active, False, False)
    assert again.reason == f"no new model: the input and parameters equal those of the " \
                           f"active model {active}"
    assert classify.publish(engine, settings) is None
    assert oracle.check(engine, settings).ok
    other = classify.refit(engine, Settings(n_components=6, random_state=7))
    assert other.new_model and other.model_id != active
    assert scalar(engine, "SELECT count(*) FROM catalog.fitted_model") == n_models + 1
