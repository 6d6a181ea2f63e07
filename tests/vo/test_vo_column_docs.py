"""Every view column is documented once (db.column_docs), and PostgreSQL shows that text.

Checked against the database's own columns (pg_attribute), not against the docs list, so a
view column added by a migration without a description fails here; ``psql \\d+`` (the real
client of the embedded wheel) shows the same text; UCDs are checked against the IVOA UCD1+
vocabulary (astropy's copy) and units against VOUnit.
"""

from __future__ import annotations

import subprocess
import warnings

import pytest
from astropy import units as u
from astropy.io.votable.ucd import check_ucd
from sqlalchemy import create_engine, text

from db import column_docs as cd
from db import migrate
from db.embedded import _bin
from tests.conftest import create_database


def real_columns(engine) -> list[tuple[str, str, str | None]]:
    with engine.connect() as conn:
        return cd.view_columns(conn)


def test_every_view_column_has_a_description_and_the_database_shows_it(engine):
    cols = real_columns(engine)
    views = {v for v, _, _ in cols}
    assert {"detection", "source", "detection_class", "source_class", "source_class_history",
            "class_change", "model_version", "catalog_version"} <= views
    missing = [f"{v}.{c}" for v, c, _ in cols if c not in cd.VIEWS.get(v, {})]
    assert not missing, f"view columns without a description in db/column_docs: {missing}"
    wrong = [(f"{v}.{c}", got) for v, c, got in cols if got != cd.comment(cd.doc(v, c))]
    assert not wrong, f"column comments differing from db/column_docs: {wrong[:5]}"
    assert all(cd.doc(v, c).description.strip() for v, c, _ in cols)
    assert len(cols) > 200


def test_no_description_names_a_column_that_does_not_exist(engine):
    real = {(v, c) for v, c, _ in real_columns(engine)}
    stale = [f"{v}.{c}" for v, cols in cd.VIEWS.items() for c in cols if (v, c) not in real]
    assert not stale


def test_ucds_are_ucd1plus_words_and_units_are_vounits():
    for view, cols in cd.VIEWS.items():
        for col, d in cols.items():
            assert d.ucd and check_ucd(d.ucd, check_controlled_vocabulary=True), \
                f"{view}.{col}: {d.ucd!r} is not a valid UCD1+"
            if d.unit:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", u.UnitsWarning)  # erg: deprecated, valid
                    u.Unit(d.unit, format="vounit")
    assert cd.doc("source", "ra").ucd == "pos.eq.ra;meta.main"
    assert cd.doc("source_class", "ra").unit == "deg"


def test_psql_describe_shows_the_descriptions(pg_server, db_url):
    out = subprocess.run(
        [_bin("psql"), "-X", "-d", db_url.replace("postgresql+psycopg", "postgresql"),
         "-c", r"\d+ catalog.source_class"],
        capture_output=True, text=True, timeout=60, check=True).stdout
    for col in ("ra", "mean_yso", "adopted_class", "valid_to"):
        line = next(ln for ln in out.splitlines() if ln.strip().startswith(col + " "))
        assert line.rstrip().endswith(cd.comment(cd.doc("source_class", col))), line
    assert "[deg]" in out


def test_downgrade_removes_them_and_a_recreated_view_gets_them_back(pg_server):
    url = create_database(pg_server, "t_vo_comments_migrate")
    eng = create_engine(url)
    try:
        migrate.downgrade(eng, "0006_reader_role")
        assert all(c is None for _, _, c in real_columns(eng))
        migrate.upgrade(eng)
        assert all(c is not None for _, _, c in real_columns(eng))
        # A later migration that drops and recreates a view: the next upgrade re-applies.
        with eng.begin() as conn:
            body = conn.execute(text("SELECT pg_get_viewdef('catalog.class_change'::regclass)")
                                ).scalar_one()
            conn.execute(text("DROP VIEW catalog.class_change"))
            conn.execute(text(f"CREATE VIEW catalog.class_change AS {body}"))
        assert any(c is None for v, _, c in real_columns(eng) if v == "class_change")
        migrate.upgrade(eng)
        got = {c: t for v, c, t in real_columns(eng) if v == "class_change"}
        assert got["previous_class"] == cd.comment(cd.doc("class_change", "previous_class"))
    finally:
        eng.dispose()


@pytest.mark.parametrize(("view", "col", "char"), [("source", "err_ellipse_r0", "%"),
                                                  ("detection", "source_id", "'")])
def test_comments_hold_text_that_needs_quoting(engine, view, col, char):
    """The 95 % and the apostrophes reach PostgreSQL intact (quoted by the server)."""
    with engine.connect() as conn:
        got = {c: t for v, c, t in cd.view_columns(conn) if v == view}
    assert char in got[col] and got[col] == cd.comment(cd.doc(view, col))
