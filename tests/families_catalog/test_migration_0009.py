"""Migration 0009 on a catalog built by the previous release: nothing is lost.

The previous release's code (the commit before 0009 was added, taken with ``git archive``)
builds a two-epoch catalog on a fresh database in a subprocess; this cscat then upgrades it.
Every table and view that existed before keeps every row of its old columns (md5 of the rows
in a total order), as do every as-of version and change list; ctl models get their family,
taxonomy and label set; the new views answer; and a downgrade/upgrade round trip with
another family's results keeps them.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from db import migrate
from tests.conftest import create_database
from tests.release_catalog import build_release_catalog

PROJECT = Path(__file__).resolve().parents[2]
MIGRATION = "db/migrations/versions/0009_family_results.py"




def columns(engine) -> dict[str, list[str]]:
    with engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT table_name, column_name FROM information_schema.columns "
            "WHERE table_schema = 'catalog' AND table_name <> 'alembic_version' "
            "ORDER BY table_name, ordinal_position")).all()
    out: dict[str, list[str]] = {}
    for t, c in rows:
        out.setdefault(t, []).append(c)
    return out


def digest(engine, cols: dict[str, list[str]]) -> dict[str, str]:
    """md5 of the rows (the given columns) of each object, every as-of version and change
    list."""
    with engine.connect() as conn:
        versions = conn.execute(text("SELECT release_id FROM catalog.release ORDER BY 1")
                                ).scalars().all()
        objects = {n: (f'catalog."{n}"', c) for n, c in cols.items()}
        hist = cols["source_class_history"]
        objects |= {f"as_of({v})": (f"catalog.source_class_as_of({int(v)})", hist)
                    for v in versions}
        objects |= {f"changes({a},{b})": (f"catalog.class_changes({int(a)}, {int(b)})",
                                          ["source_id", "name", "from_class", "to_class",
                                           "from_origin", "to_origin"])
                    for a, b in zip(versions, versions[1:], strict=False)}
        out = {}
        for name, (sql, cs) in objects.items():
            row = "ROW(" + ", ".join(f't."{c}"' for c in cs) + ")::text"
            out[name] = conn.execute(text(
                f"SELECT count(*) || ':' || coalesce(md5(string_agg({row}, E'\\n' "
                f"ORDER BY {row})), '') FROM {sql} t")).scalar_one()
        return out


@pytest.fixture(scope="module")
def old_catalog(pg_server, tmp_path_factory):
    """A database built by the previous release, its columns and digest."""
    url, revision = build_release_catalog(pg_server, tmp_path_factory.mktemp("release"),
                                          MIGRATION, "t_families_migration_0009")
    engine = create_engine(url)
    before_cols = columns(engine)
    yield engine, revision, before_cols, digest(engine, before_cols)
    engine.dispose()


def test_upgrade_from_the_previous_release_loses_nothing(old_catalog):
    engine, old_head, before_cols, before = old_catalog
    assert old_head != "0009" and "fitted_model" in before_cols
    migrate.upgrade(engine)
    assert migrate.current_revision(engine) == migrate.head_revision()
    after_cols = columns(engine)
    for name, cols in before_cols.items():
        assert after_cols[name][:len(cols)] == cols or set(cols) <= set(after_cols[name]), name
    after = digest(engine, before_cols)
    lost = sorted(k for k in before if before[k] != after.get(k))
    assert not lost, f"changed by the upgrade: {lost}"
    assert "source_consensus" in after_cols and "source_class_by_family" in after_cols
    with engine.connect() as conn:
        models = conn.execute(text(
            "SELECT family, label_set, taxonomy = ARRAY(SELECT jsonb_array_elements_text("
            "model->'classes')) AS same FROM catalog.fitted_model")).all()
        assert models and all(m == ("ctl", "simbad", True) for m in models)
        # the per-family view shows ctl's current results, one per source result
        n_ctl, n_src = conn.execute(text(
            "SELECT (SELECT count(*) FROM catalog.source_class_by_family WHERE family = 'ctl'),"
            " (SELECT count(*) FROM catalog.source_class)")).one()
        assert n_ctl == n_src > 0
        wrong = conn.execute(text(
            "SELECT count(*) FROM catalog.source_class_by_family f "
            "JOIN catalog.source_class s USING (source_id) "
            "WHERE f.class IS DISTINCT FROM s.master_class")).scalar_one()
        assert wrong == 0


def test_round_trip_keeps_another_familys_models_and_results(old_catalog):
    engine, _, before_cols, before = old_catalog
    migrate.upgrade(engine)
    with engine.begin() as conn:
        mid = conn.execute(text(
            "INSERT INTO catalog.fitted_model (params, model, n_detections, n_labeled, family, "
            "taxonomy, status, model_bytes) VALUES ('{}', '{}', 1, 1, 'gbm', ARRAY['A','B'], "
            "'active', '\\x00'::bytea) RETURNING model_id")).scalar_one()
        conn.execute(text(
            "INSERT INTO catalog.family_source_result (source_id, model_id, valid_from, family, "
            "predicted_class, probabilities, n_detections) SELECT source_id, :m, 1, 'gbm', 'A',"
            " ARRAY[0.75, 0.25], 1 FROM catalog.csc_source"), {"m": mid})
    new_cols = columns(engine)
    full = digest(engine, new_cols)
    migrate.downgrade(engine, "0006_reader_role")
    assert digest(engine, before_cols) == before
    migrate.upgrade(engine)
    assert digest(engine, new_cols) == full


def test_ctl_results_are_those_of_the_previous_release(old_catalog, pg_server):
    """The same input with every family enabled: ctl's per-detection and per-source results,
    their history, as-of versions and change lists equal the previous release's."""
    from db.settings import Settings
    from ingest.sample import generate_sample
    from tests.families_catalog.conftest import build_epoch1, build_epoch2

    _, _, before_cols, before = old_catalog
    engine = create_engine(create_database(pg_server, "t_families_ctl_same"))
    settings = Settings(n_components=6, random_state=42)
    sample = generate_sample(600, seed=5)
    first = build_epoch1(engine, settings, sample)
    assert len(first["families"]) == 3 and all(r.promote for r in first["families"].values())
    assert build_epoch2(engine, settings, sample) is not None
    names = ["detection_class", "source_class", "source_class_history", "class_change",
             "detection", "source"]
    cols = {n: [c for c in before_cols[n] if c not in ("ingested_at", "simbad_fetched_at")]
            for n in names}
    now = digest(engine, cols)
    engine.dispose()
    then = {k: v for k, v in before.items() if k in names or k.startswith(("as_of", "changes"))}
    old_engine = old_catalog[0]
    then |= {n: digest(old_engine, cols)[n] for n in names}
    differ = sorted(k for k in then if then[k] != now.get(k))
    assert not differ, f"ctl results differ from the previous release's: {differ}"
