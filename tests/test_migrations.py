"""The schema comes from Alembic migrations that round-trip and match the models."""

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from db import migrate
from db.models import SCHEMA, Base
from tests.conftest import create_database


def _tables(engine) -> set[str]:
    return set(inspect(engine).get_table_names(schema=SCHEMA)) - {"alembic_version"}


def test_upgrade_downgrade_upgrade_on_empty_database(pg_server):
    engine = create_engine(create_database(pg_server, "t_roundtrip", template=None))
    assert migrate.current_revision(engine) is None

    migrate.upgrade(engine)
    assert migrate.current_revision(engine) == migrate.head_revision()
    created = _tables(engine)
    assert {"csc_source", "csc_detection", "simbad_match", "ingest_run", "fitted_model",
            "release", "detection_result", "source_result"} <= created

    migrate.downgrade(engine, "base")
    assert migrate.current_revision(engine) is None
    assert _tables(engine) == set()

    migrate.upgrade(engine)
    assert _tables(engine) == created
    engine.dispose()


def test_models_match_the_migrated_schema(engine):
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={
            "include_schemas": True,
            "include_name": lambda name, type_, parents: type_ != "schema" or name == SCHEMA,
            "version_table_schema": SCHEMA,
        })
        diff = compare_metadata(ctx, Base.metadata)
    assert diff == [], f"models and migrations differ: {diff}"


def test_ensure_current_is_a_no_op_at_head(engine):
    assert migrate.ensure_current(engine) is False


def test_ambiguous_detection_may_belong_to_two_sources_but_loads_once_per_source(engine):
    from sqlalchemy import text
    from sqlalchemy.exc import IntegrityError

    with engine.begin() as conn:
        run = conn.execute(text("INSERT INTO catalog.ingest_run (kind, origin) "
                                "VALUES ('file', 'test') RETURNING run_id")).scalar_one()
        ids = conn.execute(text(
            "INSERT INTO catalog.csc_source (name, ra, dec, ingest_run_id) VALUES "
            "('2CXO J000000.0+000000', 0, 0, :r), ('2CXO J000000.1+000000', 0.0004, 0, :r) "
            "RETURNING source_id"), {"r": run}).scalars().all()
        for sid in ids:  # the same observation detection under both master sources
            conn.execute(text(
                "INSERT INTO catalog.csc_detection (source_id, obsid, obi, region_id, "
                "match_type, ingest_run_id) VALUES (:s, 4884, 0, 7, 'a', :r)"),
                {"s": sid, "r": run})
    try:
        with engine.begin() as conn:
            conn.execute(text(
                "INSERT INTO catalog.csc_detection (source_id, obsid, obi, region_id, "
                "ingest_run_id) VALUES (:s, 4884, NULL, NULL, :r), (:s, 4884, NULL, NULL, :r)"),
                {"s": ids[0], "r": run})
        raise AssertionError("a duplicate natural key (with NULL parts) was accepted")
    except IntegrityError as e:
        assert "uq_csc_detection_source_id_obsid_obi_region_id" in str(e)
