"""Migration 0008 on a catalog built by the previous release (its own code, schema 0006):
nothing lost on upgrade, the counterpart step runs on the upgraded catalog, and a downgrade
restores it."""

from __future__ import annotations

from sqlalchemy import create_engine, inspect

from db import migrate
from db.settings import Settings
from ingest.fake_services import FakeServices
from ingest.sample import generate_sample
from pipeline.counterparts import ingest_counterparts
from tests.release_catalog import build_release_catalog
from tests.reliability.test_migrations_data import differing, digest

PREVIOUS = "0006_reader_role"
MIGRATION = "db/migrations/versions/0008_counterparts.py"
NEW_TABLES = {"counterpart_candidate", "counterpart_match", "counterpart_match_history",
              "label_set", "label"}


def test_a_release_catalog_upgrades_with_nothing_lost(pg_server, tmp_path):
    url, revision = build_release_catalog(pg_server, tmp_path / "release", MIGRATION,
                                          "t_cp_upgrade")
    assert revision == PREVIOUS
    engine = create_engine(url)
    sample = generate_sample(600, seed=5)  # the sample the release built its catalog from
    before = digest(engine)
    assert set(inspect(engine).get_table_names(schema="catalog")).isdisjoint(NEW_TABLES)

    migrate.upgrade(engine, "0008")
    assert migrate.current_revision(engine) == "0008"
    after = digest(engine)
    lost = differing(before, {k: v for k, v in after.items() if k in before})
    assert not lost, f"changed by the upgrade: {lost}"
    assert NEW_TABLES <= set(after) and {"counterpart", "training_label"} <= set(after)
    assert all(after[t].startswith("0:") for t in NEW_TABLES)

    migrate.upgrade(engine)  # today's counterpart step runs on the head schema
    with FakeServices(sample) as fs:  # the new step works on the upgraded catalog
        from ingest.counterparts import CounterpartXMatch

        summary = ingest_counterparts(engine, CounterpartXMatch(fs.xmatch_url), Settings(),
                                      refresh_days=None)
    assert summary.counterparts["sources"] == len(sample.sources)
    migrate.downgrade(engine, PREVIOUS)
    assert differing(before, digest(engine)) == []
    engine.dispose()
