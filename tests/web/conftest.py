"""Fixtures of the web tests: one built catalog for the package, the app on it."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.web.catalog import catalog_database


@pytest.fixture(scope="package")
def web_db(pg_server) -> str:
    with catalog_database(pg_server, "t_web_catalog") as url:
        yield url


@pytest.fixture(scope="package")
def app(web_db):
    from web.app import create_app

    app = create_app()
    yield app
    app.state.engine.dispose()


@pytest.fixture(scope="package")
def client(app) -> TestClient:
    with TestClient(app) as c:
        yield c


@pytest.fixture(scope="package")
def admin_url(web_db) -> str:
    return web_db.replace("postgresql+psycopg", "postgresql")
