"""Shared fixtures: one embedded PostgreSQL per test session, a fresh database per module.

The session server lives in a temporary data directory, so tests never touch the user's
catalog. Each test module gets its own database cloned from a migrated template, and the
process environment points cscat at it (``CSCAT_DATABASE_URL``) while the module runs.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import Engine, create_engine

from db import engine as dbe
from db import migrate
from db.embedded import EmbeddedServer, ServerInfo

#: The suites were written for catalogs that adopt ctl's class; the default primary family
#: is classifier.DEFAULT_FAMILY (gbm). Pinned in the environment so child processes (the
#: previous releases' builds of tests/release_catalog.py, CLI runs) read it too; tests of the
#: default (``cscat demo`` in tests/test_flows.py, test_primary_family.py) remove it.
os.environ.setdefault("CSCAT_PRIMARY_FAMILY", "ctl")

PROJECT = Path(__file__).resolve().parents[1]
SHARED_DATA = PROJECT.parent / "shared" / "data"
TEMPLATE = "cscat_template"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--remote-data", action="store_true",
                     help="also run tests that talk to the live CSC and SIMBAD services")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--remote-data") or os.environ.get("CSCAT_REMOTE_DATA") == "1":
        return
    skip = pytest.mark.skip(reason="talks to live services; run with --remote-data")
    for item in items:
        if "remote_data" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` beside the project; tests using it skip when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not present")
    return SHARED_DATA


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerInfo]:
    """The session's embedded PostgreSQL server, with a migrated template database."""
    data_dir = tmp_path_factory.mktemp("pg")
    server = EmbeddedServer(data_dir)
    info = server.acquire(keep_running=True)
    try:
        with psycopg.connect(info.url(database="postgres"), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {TEMPLATE}")
        template = create_engine(info.url("postgresql+psycopg", TEMPLATE))
        migrate.upgrade(template)
        template.dispose()
        yield info
    finally:
        server.stop()


def create_database(info: ServerInfo, name: str, template: str | None = TEMPLATE) -> str:
    """Create database ``name`` (from the migrated template by default); its SQLAlchemy URL."""
    with psycopg.connect(info.url(database="postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
    return info.url("postgresql+psycopg", name)


@pytest.fixture(scope="module")
def db_url(pg_server: ServerInfo, request: pytest.FixtureRequest) -> Iterator[str]:
    """A migrated database of this module's own; cscat is configured to use it."""
    name = "t_" + re.sub(r"\W", "_", request.module.__name__.rsplit(".", 1)[-1])[:50]
    url = create_database(pg_server, name)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CSCAT_DATABASE_URL", url)
        dbe.reset()
        yield url
        dbe.reset()


@pytest.fixture(scope="module")
def engine(db_url: str) -> Engine:
    """The engine cscat itself uses for this module's database."""
    return dbe.get_engine()


@pytest.fixture(scope="module")
def prefect_server(tmp_path_factory: pytest.TempPathFactory, db_url: str) -> Iterator[Path]:
    """Prefect's test harness (a temporary API server) with cscat's Prefect settings, for
    this module's database; its ``PREFECT_HOME``."""
    home = tmp_path_factory.mktemp("prefect")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PREFECT_HOME", str(home))
        mp.setenv("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
        from flows.runtime import configure_prefect

        configure_prefect()
        from prefect.testing.utilities import prefect_test_harness

        with prefect_test_harness(server_startup_timeout=120):
            yield home


def publish_first_version(engine: Engine, sample, settings, until: str | None = None):
    """Epoch 1 of ``sample`` as ``cscat update`` builds it: ingest (observations up to
    ``until``), SIMBAD, refit, publish with the new model promoted; the release summary."""
    from ingest.sample_source import SampleCsc, SampleSimbad
    from pipeline import classify, ingest

    ingest.ingest_csc(engine, SampleCsc(sample), until=until)
    ingest.ingest_simbad(engine, SampleSimbad(sample, 1), refresh_days=None)
    fitted = classify.refit(engine, settings)
    release = classify.publish(engine, settings, promote=fitted.model_id)
    assert release is not None, "the first publish wrote no catalog version"
    return release
