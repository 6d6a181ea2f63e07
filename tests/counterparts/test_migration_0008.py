"""Migration 0008 on a catalog built by the current release (schema 0006): nothing lost on
upgrade, the counterpart step runs on the upgraded catalog, and a downgrade restores it."""

from __future__ import annotations

from sqlalchemy import create_engine, inspect

from db import migrate
from db.settings import Settings
from ingest.fake_services import FakeServices
from ingest.sample import generate_sample
from ingest.sample_source import SampleCsc, SampleSimbad
from pipeline import classify, ingest
from pipeline.counterparts import ingest_counterparts
from tests.conftest import create_database, publish_first_version
from tests.reliability.test_migrations_data import differing, digest

PREVIOUS = "0006_reader_role"
NEW_TABLES = {"counterpart_candidate", "counterpart_match", "counterpart_match_history",
              "label_set", "label"}


def test_a_release_catalog_upgrades_with_nothing_lost(pg_server):
    engine = create_engine(create_database(pg_server, "t_cp_upgrade", template=None))
    migrate.upgrade(engine, PREVIOUS)
    sample = generate_sample(300, seed=31)
    settings = Settings(n_components=6, random_state=42)
    publish_first_version(engine, sample, settings, until="2014-12-31")
    ingest.ingest_csc(engine, SampleCsc(sample))
    ingest.ingest_simbad(engine, SampleSimbad(sample, 2), refresh_days=0)
    assert classify.publish(engine, settings) is not None
    before = digest(engine)
    assert set(inspect(engine).get_table_names(schema="catalog")).isdisjoint(NEW_TABLES)

    migrate.upgrade(engine)
    assert migrate.current_revision(engine) == migrate.head_revision()
    after = digest(engine)
    lost = differing(before, {k: v for k, v in after.items() if k in before})
    assert not lost, f"changed by the upgrade: {lost}"
    assert NEW_TABLES <= set(after) and {"counterpart", "training_label"} <= set(after)
    assert all(after[t].startswith("0:") for t in NEW_TABLES)

    with FakeServices(sample) as fs:  # the new step works on the upgraded catalog
        from ingest.counterparts import CounterpartXMatch

        summary = ingest_counterparts(engine, CounterpartXMatch(fs.xmatch_url), Settings(),
                                      refresh_days=None)
    assert summary.counterparts["sources"] == len(sample.sources)
    migrate.downgrade(engine, PREVIOUS)
    assert differing(before, digest(engine)) == []
    engine.dispose()
