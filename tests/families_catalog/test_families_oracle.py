"""The oracle covers every family and the consensus: a tampered value is reported."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from db import oracle


def run(engine, settings):
    return oracle.check(engine, settings)


def test_the_oracle_passes_on_an_untouched_catalog(engine, catalog, settings):
    result = run(engine, settings)
    assert result.ok, oracle.format_differences(result)
    assert set(result.n_family_results) == {"muwclass", "claxboi", "gbm"}
    assert all(n > 0 for n in result.n_family_results.values()) and result.n_consensus > 0
    assert "consensus of" in result.verdict() and result.verdict().startswith("check passed")


TAMPER = [
    ("gbm", "probabilities = array_replace(probabilities, probabilities[1], "
            "probabilities[1] + 1e-6)", "gbm.probabilities"),
    ("muwclass", "predicted_class = CASE WHEN predicted_class = 'AGN' THEN 'QSO' "
                 "ELSE 'AGN' END", "muwclass.predicted_class"),
    ("claxboi", "outlier = outlier + 0.5", "claxboi.outlier"),
    ("claxboi", "marginals = jsonb_set(marginals, '{hardness,alt}', '\"XB\"')",
     "claxboi.marginals.hardness.alt"),
    ("muwclass", "prob_hi = NULL", "muwclass.prob_hi"),
    ("gbm", "n_detections = n_detections + 1", "gbm.n_detections"),
    ("muwclass", "features[1] = features[1] + 1e-6", "muwclass.features"),
]


@pytest.mark.parametrize("family, change, column", TAMPER, ids=[t[2] for t in TAMPER])
def test_a_tampered_family_value_is_reported(engine, catalog, settings, family, change,
                                             column):
    with engine.connect() as conn:
        sid = conn.execute(text(
            "SELECT min(source_id) FROM catalog.family_source_result WHERE family = :f "
            "AND valid_to IS NULL AND predicted_class IS NOT NULL AND (marginals ? 'hardness' "
            "OR :f <> 'claxboi')"), {"f": family}).scalar_one()
    key = {"f": family, "s": sid}
    where = "WHERE family = :f AND source_id = :s AND valid_to IS NULL"
    with engine.begin() as conn:  # committed: the oracle reads in its own transaction
        conn.execute(text(f"CREATE TABLE tamper_keep AS SELECT * FROM "
                          f"catalog.family_source_result {where}"), key)
        conn.execute(text(f"UPDATE catalog.family_source_result SET {change} {where}"), key)
    try:
        result = run(engine, settings)
    finally:
        with engine.begin() as conn:
            conn.execute(text(f"DELETE FROM catalog.family_source_result {where}"), key)
            conn.execute(text("INSERT INTO catalog.family_source_result "
                              "SELECT * FROM tamper_keep"))
            conn.execute(text("DROP TABLE tamper_keep"))
    assert run(engine, settings).ok
    assert not result.ok
    assert "stored" in oracle.format_differences(result)
    hit = result.differences[result.differences.column == column]
    assert list(hit.source_id) == [sid], oracle.format_differences(result)
    assert result.verdict().startswith("check FAILED")


def test_a_deleted_family_result_and_a_wrong_consensus_are_reported(engine, catalog, settings):
    with engine.connect() as conn:
        sid = conn.execute(text("SELECT min(source_id) FROM catalog.family_source_result "
                                "WHERE family = 'gbm' AND valid_to IS NULL")).scalar_one()
    where = "WHERE family = 'gbm' AND source_id = :s AND valid_to IS NULL"
    with engine.begin() as conn:
        conn.execute(text(f"CREATE TABLE tamper_keep AS SELECT * FROM "
                          f"catalog.family_source_result {where}"), {"s": sid})
        conn.execute(text(f"DELETE FROM catalog.family_source_result {where}"), {"s": sid})
        conn.execute(text("UPDATE catalog.coarse_class SET coarse_class = 'STAR' "
                          "WHERE class = 'AGN'"))
    try:
        result = run(engine, settings)
    finally:
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO catalog.family_source_result "
                              "SELECT * FROM tamper_keep"))
            conn.execute(text("DROP TABLE tamper_keep"))
            conn.execute(text("UPDATE catalog.coarse_class SET coarse_class = 'AGN' "
                              "WHERE class = 'AGN'"))
    assert run(engine, settings).ok
    cols = set(result.differences.column)
    assert "gbm.(row)" in cols and "consensus.gbm_class" in cols, cols
