"""Security of the web explorer: every value it shows is escaped, it refuses writes, and its
database role is the read-only one (issue 13's web bullet). On a real catalog built by the
pipeline, with hostile values stored in the database as an attacker with ingest access (or a
tampered service answer) could leave them."""

from __future__ import annotations

from urllib.parse import quote

import psycopg
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from tests.web.catalog import catalog_database

WEB = "security: web"
NAME = """2CXO <script>alert("name")</script>'"&x"""
MAIN_ID = """<img src=x onerror=alert('simbad')>"""
NOTE = """</td><script>alert("note")</script>"""
#: What must never appear raw in a page, and its escaped form that must.
RAW = ['<script>alert("name")', "<img src=x onerror", '<script>alert("note")']
ESCAPED_NAME = "&lt;script&gt;alert(&#34;name&#34;)&lt;/script&gt;&#39;&#34;&amp;x"
ESCAPED_MAIN_ID = "&lt;img src=x onerror=alert(&#39;simbad&#39;)&gt;"


@pytest.fixture(scope="module")
def hostile(pg_server):
    with catalog_database(pg_server, "t_web_security") as url:
        admin = url.replace("postgresql+psycopg", "postgresql")
        with psycopg.connect(admin, autocommit=True) as conn:
            sid = conn.execute("""SELECT s.source_id FROM catalog.csc_source s
                                  JOIN catalog.simbad_match m USING (source_id)
                                  WHERE m.main_id IS NOT NULL ORDER BY s.source_id
                                  LIMIT 1""").fetchone()[0]
            conn.execute("UPDATE catalog.csc_source SET name = %s WHERE source_id = %s",
                         [NAME, sid])
            conn.execute("UPDATE catalog.simbad_match SET main_id = %s WHERE source_id = %s",
                         [MAIN_ID, sid])
            conn.execute("UPDATE catalog.fitted_model SET note = %s", [NOTE])
            conn.execute("UPDATE catalog.release SET note = %s", [NOTE])
        from web.app import create_app

        app = create_app()
        with TestClient(app) as client:
            yield {"client": client, "app": app, "admin": admin, "source_id": sid}
        app.state.engine.dispose()


def _escaped(page: str) -> tuple[bool, str]:
    raw = [r for r in RAW if r in page]
    return not raw, f"raw in page: {raw}" if raw else ""


PAGES = {
    "search result": "/search?name=" + quote("<script>"),
    "source page": "/source/" + quote(NAME, safe=""),
    "unknown source echoed": "/source/" + quote('<script>alert("name")</script>', safe=""),
    "models list": "/models",
    "model page": "/models/1",
    "versions": "/versions",
    "bad class echoed": "/search?cls=" + quote('<script>alert("name")</script>'),
}


@pytest.mark.parametrize("case", list(PAGES))
def test_hostile_values_are_shown_escaped(hostile, record, case):
    r = hostile["client"].get(PAGES[case])
    held, detail = _escaped(r.text)
    if case in ("search result", "source page"):
        # The value is there, as text: escaped by the template, never dropped.
        held = held and ESCAPED_NAME in r.text
    if case == "source page":
        held = held and r.status_code == 200 and ESCAPED_MAIN_ID in r.text
    if case in ("models list", "model page", "versions"):
        held = held and "&lt;/td&gt;&lt;script&gt;" in r.text
    assert record(WEB, f"escaped: {case}", held, detail or f"HTTP {r.status_code}"), detail


def test_the_sky_map_click_reaches_the_hostile_source_escaped(hostile, record):
    c = hostile["client"]
    r = c.get(f"/go/source/{hostile['source_id']}")
    held, detail = _escaped(r.text)
    held = held and r.status_code == 200 and "&lt;script&gt;" in r.text
    assert record(WEB, "escaped: sky-map click-through", held, detail), detail


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
@pytest.mark.parametrize("path", ["/", "/search", "/source/x", "/skymap/data", "/nowhere",
                                  "/bokeh/static/js/bokeh.min.js"])
def test_writes_are_refused(hostile, record, method, path):
    r = hostile["client"].request(method, path, data={"name": "x"})
    held = r.status_code == 405 and r.headers.get("allow") == "GET, HEAD"
    assert record(WEB, f"{method} {path} refused", held, f"HTTP {r.status_code}")


def test_the_apps_role_is_the_reader_not_a_superuser(hostile, record):
    from db.web_queries import reader_identity

    with hostile["app"].state.engine.connect() as conn:
        who = reader_identity(conn)
    held = who == {"role": "cscat_reader", "superuser": False, "read_only": "on"}
    assert record(WEB, "app connects as cscat_reader, no superuser, read-only", held, f"{who}")
    tries = {
        "insert": "INSERT INTO catalog.csc_source (name, ra, dec) VALUES ('x', 0, 0)",
        "update": "UPDATE catalog.csc_source SET name = 'x'",
        "read-write then delete": "SET TRANSACTION READ WRITE; DELETE FROM catalog.rejected_row",
        "read a raw model": "SELECT model FROM catalog.fitted_model",
        "read a server file": "SELECT pg_read_file('/etc/passwd')",
    }
    for case, sql in tries.items():
        with hostile["app"].state.engine.connect() as conn:
            try:
                for stmt in sql.split("; "):
                    conn.execute(text(stmt))
                conn.commit()
                held, detail = False, "ran"
            except DBAPIError as e:
                held, detail = True, str(e.orig).splitlines()[0]
        assert record(WEB, f"app's connection refuses: {case}", held, detail), detail
    with psycopg.connect(hostile["admin"]) as conn:
        n = conn.execute("SELECT count(*) FROM catalog.csc_source WHERE name = 'x'").fetchone()
    assert n[0] == 0
