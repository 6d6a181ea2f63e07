"""Migrations lose nothing: a populated catalog survives downgrade/upgrade and repeated upgrades.

The catalog is the one the previous release builds (``tests.release_catalog``: its own code
runs the pipeline on a generated sample in two epochs: ingest, SIMBAD, refit, publish; new
observations and a SIMBAD snapshot with changed types; publish), upgraded to head.
Its digest is one md5 per table and view of schema ``catalog`` (every row, as text, in a
total order) plus every as-of version (classes and class counts) and ``class_changes``
between consecutive versions.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import create_engine, text

from db import migrate
from db.settings import Settings
from pipeline import classify
from tests.release_catalog import build_release_catalog

AREA = "migrations"
PROJECT = Path(__file__).resolve().parents[2]
#: the newest migration: the catalog is built by the release before it
MIGRATION = "db/migrations/versions/0014_current_state.py"


def digest(engine) -> dict[str, str]:
    """md5 of every row of every catalog table, view, as-of version and change list."""
    with engine.connect() as conn:
        names = conn.execute(text(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'catalog' "
            "AND table_name <> 'alembic_version' ORDER BY 1")).scalars().all()
        versions = conn.execute(text(
            "SELECT release_id FROM catalog.release ORDER BY 1")).scalars().all()
        objects = {n: f'catalog."{n}"' for n in names}
        objects |= {f"source_class_as_of({v})": f"catalog.source_class_as_of({int(v)})"
                    for v in versions}
        objects |= {f"class_changes({a}, {b})": f"catalog.class_changes({int(a)}, {int(b)})"
                    for a, b in zip(versions, versions[1:], strict=False)}
        if "class_count_by_version" in names:  # revision 0014 on
            objects |= {f"class_counts_as_of({v})": f"catalog.class_counts_as_of({int(v)})"
                        for v in versions}
        return {name: conn.execute(text(
            f"SELECT count(*) || ':' || coalesce(md5(string_agg(t::text, E'\\n' "
            f"ORDER BY t::text)), '') FROM {sql} t")).scalar_one()
            for name, sql in objects.items()}


def differing(a: dict[str, str], b: dict[str, str]) -> list[str]:
    return sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))


@pytest.fixture(scope="module")
def populated(pg_server, tmp_path_factory):
    """The previous release's two-epoch catalog upgraded to head: (settings it was built
    with, digest, engine, URL)."""
    url, _ = build_release_catalog(pg_server, tmp_path_factory.mktemp("release"), MIGRATION,
                                   "t_reliability_migrations_data")
    engine = create_engine(url)
    migrate.upgrade(engine)
    settings = Settings(n_components=6, random_state=42)  # as tests.release_catalog builds
    before = digest(engine)
    with engine.connect() as conn:
        n_adopted = conn.execute(text(
            "SELECT count(adopted_class) FROM catalog.source_class")).scalar_one()
    assert n_adopted > 0 and len([k for k in before if k.startswith("source_class_as_of")]) == 2
    yield settings, before, engine, url
    engine.dispose()


def test_upgrade_fills_current_state_and_class_counts_from_the_history(populated, record):
    """0014 on the previous release's catalog: the current-state table is the history's
    current rows, and every version's class counts are those of its as-of classes."""
    from db import oracle

    _, _, engine, _ = populated
    problems = oracle.stored_state_problems(engine)
    with engine.connect() as conn:
        versions = conn.execute(text("SELECT release_id FROM catalog.release ORDER BY 1")
                                ).scalars().all()
        recount, stored = ({v: sorted((tuple(r) for r in conn.execute(text(sql), {"v": v})),
                                      key=repr) for v in versions} for sql in (
            "SELECT adopted_class, agg_adopted_class, label_origin, count(*) "
            "FROM catalog.source_class_as_of(:v) GROUP BY 1, 2, 3",
            "SELECT adopted_class, agg_adopted_class, label_origin, n_sources "
            "FROM catalog.class_counts_as_of(:v)"))
    held = not problems and recount == stored and all(recount.values())
    assert record(AREA, "0014 fills source_class_current and the class counts of every "
                        "version from the history", held, "; ".join(problems)), \
        (problems, recount, stored)


def test_downgrade_to_0001_and_upgrade_loses_nothing(populated, record):
    settings, before, engine, _ = populated
    migrate.downgrade(engine, "0001")
    assert migrate.current_revision(engine) == "0001"
    migrate.upgrade(engine)
    after = digest(engine)
    lost = differing(before, after)
    assert record(AREA, "downgrade to 0001, upgrade head: every table and view equal", not lost,
                  ", ".join(lost)), lost
    # and the pipeline sees a current catalog: nothing to rebuild, nothing to reclassify
    held = classify.publish(engine, settings) is None and digest(engine) == before
    assert record(AREA, "after the round trip, master finds the catalog current", held)


def test_db_upgrade_twice_loses_nothing(populated, record, tmp_path):
    """`cscat db upgrade` twice, each through ``cscat.cli.main`` in a process of its own
    (forked by the suite's fork server: the pipeline is imported once per session)."""
    import harness  # the suite's fork server (tests/reliability on sys.path); lazy, since
    # other suites import this module's digest helpers

    _, before, engine, db_url = populated
    server = harness.shared_server(tmp_path)
    outs = [server.jobs([{"kind": "cli", "argv": ["db", "upgrade"], "db_url": db_url}])[0]
            for _ in range(2)]
    ok = all(o["exit_code"] == 0 and o.get("out", "").startswith("schema at ") for o in outs)
    lost = differing(before, digest(engine))
    assert record(AREA, "cscat db upgrade twice: every table and view equal",
                  ok and not lost, ", ".join(lost) or outs[-1].get("err", "")[-200:]), \
        (lost, outs)


def test_upgrade_without_a_stash_rebuilds_current_results(populated, record):
    """A catalog whose 0002 columns were lost (the stash gone, as in a database migrated
    down by an older cscat) gets them rebuilt from its data: the current per-source catalog
    comes back equal."""
    _, before, engine, _ = populated
    migrate.downgrade(engine, "0001")
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE catalog._migration_0002_source_result"))
        conn.execute(text("DROP TABLE catalog._migration_0002_simbad_type"))
    migrate.upgrade(engine)
    after = digest(engine)
    held = after["source_class"] == before["source_class"] and after["source"] == before["source"]
    assert record(AREA, "upgrade without the downgrade's stash rebuilds the current catalog",
                  held, ", ".join(differing(before, after))), differing(before, after)


def test_fresh_taxonomy_table_matches_the_classifier(engine, pg_server, record):
    """The frozen taxonomy a fresh schema starts with is the classifier's."""
    from sqlalchemy import create_engine

    from tests.conftest import create_database

    fresh = create_engine(create_database(pg_server, "t_fresh_taxonomy", template=None))
    migrate.upgrade(fresh)
    with fresh.connect() as conn:
        got = pd.read_sql_query(text("SELECT otype, class, agg_class, kind "
                                     "FROM catalog.simbad_type"), conn)
    fresh.dispose()
    want = classify.taxonomy_table()[["otype", "class", "agg_class", "kind"]]

    def norm(f: pd.DataFrame) -> pd.DataFrame:
        f = f.astype(object)
        return f.where(f.notna(), None).sort_values("otype").reset_index(drop=True)

    held = norm(got).equals(norm(want))
    assert record(AREA, "a fresh schema's simbad_type equals classifier.taxonomy", held)
