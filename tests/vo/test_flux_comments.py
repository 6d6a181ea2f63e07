"""flux_aper_b is CSC's aperture-corrected *energy* flux (erg s^-1 cm^-2; the CSC column
pages: "flux_aper_b ... background-subtracted, aperture-corrected broad-band energy flux";
photflux_aper_b is the photon flux): every flux column's comment says so (migration 0011)."""

from __future__ import annotations

import subprocess

from sqlalchemy import create_engine, text

from db import column_docs as cd
from db import migrate
from db.embedded import _bin
from tests.conftest import create_database

COMMENTS = """
SELECT c.relname, c.relkind::text, a.attname, col_description(c.oid, a.attnum)
FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'catalog' AND c.relkind IN ('r', 'v', 'm') AND a.attnum > 0
  AND NOT a.attisdropped AND a.attname LIKE '%flux%'"""
NEW = "aperture-corrected net energy flux, broad band, erg s^-1 cm^-2"


def flux_comments(engine) -> dict[tuple[str, str], str | None]:
    with engine.connect() as conn:
        return {(r[0], r[2]): r[3] for r in conn.execute(text(COMMENTS))}


def test_every_flux_column_comment_says_energy_flux(engine):
    got = flux_comments(engine)
    assert ("csc_detection", "flux_aper_b") in got and ("detection", "flux_aper_b") in got
    assert got[("csc_detection", "flux_aper_b")] == NEW
    for (rel, col), comment in got.items():
        assert comment and "photon" not in comment, (rel, col, comment)
        if col == "flux_significance_b":
            assert "S/N" in comment
        else:  # flux_aper_b and its confidence limits
            assert col.startswith("flux_aper_b"), col
            assert "energy flux" in comment or "confidence limit of flux_aper_b" in comment
            if rel != "csc_detection" or col == "flux_aper_b":  # a limit names its column
                assert "erg" in comment, (rel, col, comment)
    for view, cols in cd.VIEWS.items():
        for col, d in cols.items():
            if col.startswith("flux_aper"):
                assert d.unit == cd.ENERGY_FLUX, (view, col)


def test_psql_describe_shows_the_energy_flux(db_url):
    out = subprocess.run(
        [_bin("psql"), "-X", "-d", db_url.replace("postgresql+psycopg", "postgresql"),
         "-c", r"\d+ catalog.csc_detection"],
        capture_output=True, text=True, timeout=60, check=True).stdout
    line = next(ln for ln in out.splitlines() if ln.strip().startswith("flux_aper_b "))
    assert line.rstrip().endswith(NEW), line


def test_downgrade_restores_the_old_text(pg_server):
    eng = create_engine(create_database(pg_server, "t_vo_flux_comment"))
    try:
        views = {k: v for k, v in flux_comments(eng).items() if k[0] != "csc_detection"}
        migrate.downgrade(eng, "0009")
        back = flux_comments(eng)
        assert back[("csc_detection", "flux_aper_b")] == "broad aperture photon flux"
        assert {k: v for k, v in back.items() if k[0] != "csc_detection"} == views
        migrate.upgrade(eng)
        assert flux_comments(eng)[("csc_detection", "flux_aper_b")] == NEW
    finally:
        eng.dispose()
