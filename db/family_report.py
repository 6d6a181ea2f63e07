"""Read-side summaries of the families (what ``cscat demo`` prints about them)."""

from __future__ import annotations

import numpy as np
from sqlalchemy import Engine, text

from db.models import SCHEMA
from db.queries import QueryResult


def _rows(engine: Engine, sql: str, **params) -> QueryResult:
    with engine.connect() as conn:
        result = conn.execute(text(sql), params)
        return QueryResult(list(result.keys()), [tuple(r) for r in result.fetchall()])


def coarse_accuracy(validation: dict) -> float | None:
    """Accuracy on the coarse taxonomy from a validation's fine confusion counts (the same
    rule for every family, ctl's per-detection validation included)."""
    from classifier.families.taxonomy import COARSE_OF

    fine = (validation or {}).get("fine") or {}
    labels, counts = fine.get("labels"), fine.get("counts")
    if not labels or counts is None:
        return None
    m = np.asarray(counts, dtype=float)
    co = np.array([COARSE_OF.get(c, "unknown") for c in labels], dtype=object)
    same = co[:, None] == co[None, :]
    return float((m * same).sum() / m.sum()) if m.sum() else None


def validation_side_by_side(engine: Engine) -> QueryResult:
    """One row per family's active model: unit, held-out count, accuracy (fine), balanced
    accuracy, aggregated and coarse accuracy, ECE."""
    with engine.connect() as conn:
        rows = conn.execute(text(
            f"SELECT f.family, f.model_id, f.unit, f.n_test, f.accuracy, f.balanced_accuracy, "
            f"f.agg_accuracy, f.ece, m.validation FROM {SCHEMA}.family_model f "
            f"JOIN {SCHEMA}.fitted_model m USING (model_id) WHERE f.status = 'active' "
            "ORDER BY f.family = 'ctl' DESC, f.family")).all()
    out = []
    for r in rows:
        unit = r.unit or "detection"
        out.append((r.family, r.model_id, unit, r.n_test, _f(r.accuracy),
                    _f(r.balanced_accuracy), _f(r.agg_accuracy),
                    _f(coarse_accuracy(r.validation)), _f(r.ece)))
    return QueryResult(["family", "model", "unit", "n_test", "accuracy", "balanced",
                        "aggregated", "coarse", "ece"], out)


def _f(v) -> str:
    return "-" if v is None else f"{v:.3f}"


def consensus_summary(engine: Engine) -> dict:
    """How many sources every family classified, how many they all agree on, how many
    disagree, how many have no majority."""
    with engine.connect() as conn:
        row = conn.execute(text(f"""
            SELECT count(*) AS sources,
                   count(*) FILTER (WHERE n_families = (SELECT count(DISTINCT family)
                                    FROM {SCHEMA}.source_class_by_family)) AS all_families,
                   count(*) FILTER (WHERE all_agree AND n_families = (SELECT count(DISTINCT
                                    family) FROM {SCHEMA}.source_class_by_family))
                       AS all_agree,
                   count(*) FILTER (WHERE disagreement) AS disagree,
                   count(*) FILTER (WHERE majority_class IS NULL) AS no_majority
            FROM {SCHEMA}.source_consensus""")).mappings().one()
    return dict(row)


def consensus_by_class(engine: Engine) -> QueryResult:
    return _rows(engine, f"""
        SELECT coalesce(majority_class, '(tie)') AS majority_class, count(*) AS sources,
               count(*) FILTER (WHERE all_agree) AS all_agree,
               count(*) FILTER (WHERE disagreement) AS disagree,
               count(*) FILTER (WHERE adopted_coarse_class = majority_class) AS adopted_same
        FROM {SCHEMA}.source_consensus GROUP BY 1 ORDER BY 2 DESC, 1""")


def disagreement_examples(engine: Engine, limit: int = 5) -> QueryResult:
    return _rows(engine, f"""
        SELECT name, ctl_class, muwclass_class, claxboi_class, gbm_class, majority_class,
               adopted_class
        FROM {SCHEMA}.source_consensus WHERE disagreement ORDER BY name LIMIT :n""", n=limit)


def changes_per_family(engine: Engine, a: int, b: int) -> QueryResult:
    """Per family between versions a and b: sources new in b, existing sources whose class
    changed, and those whose coarse class changed (newly classified: no class in a, new or not)."""
    return _rows(engine, f"""
        SELECT family,
               count(*) FILTER (WHERE from_class IS NULL) AS newly_classified,
               count(*) FILTER (WHERE from_class IS NOT NULL) AS class_changed,
               count(*) FILTER (WHERE from_class IS NOT NULL
                                AND from_coarse_class IS DISTINCT FROM to_coarse_class)
                   AS coarse_changed
        FROM {SCHEMA}.family_class_changes(:a, :b)
        GROUP BY family ORDER BY family = 'ctl' DESC, family""", a=a, b=b)
