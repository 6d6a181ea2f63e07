"""The Python client (``from cscat import Catalog``) on a published two-version catalog."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from astropy import units as u
from astropy.coordinates import SkyCoord
from sqlalchemy import text
from sqlalchemy.engine import make_url

from cscat import Catalog
from db import column_docs as cd
from db import engine as dbe
from db.vo import VoError


def rows(engine, sql, **params):
    with engine.connect() as conn:
        return conn.execute(text(sql), params).all()


@pytest.fixture(scope="module")
def changed(vo_env):
    """A source whose adopted class differs between versions 1 and 2."""
    got = rows(vo_env["engine"], "SELECT name, from_class, to_class FROM "
               "catalog.class_changes(1, 2) WHERE from_class IS NOT NULL "
               "AND to_class IS NOT NULL ORDER BY name LIMIT 1")
    assert got, "the sample has no class change between versions 1 and 2"
    return got[0]


def test_source_now_and_as_of_a_version(vo_env, changed):
    name, before, after = changed
    with Catalog() as cat:
        now = cat.source(name)
        assert len(now) == 1 and now["adopted_class"][0] == after
        assert now["ra"].unit == u.deg
        assert now["mean_yso"].description == cd.comment(cd.doc("source_class", "mean_yso"))
        assert cat.version() == 2
    with Catalog(as_of=1) as old:
        assert old.source(name)["adopted_class"][0] == before
        assert old.source(name, as_pandas=True)["adopted_class"].iloc[0] == before
        assert old.version() == 1


def test_unknown_source_and_version(vo_env):
    with Catalog() as cat, pytest.raises(LookupError, match="no classified source named"):
        cat.source("2CXO J000000.0+000000")
    with pytest.raises(VoError, match="catalog version 7 does not exist"):
        Catalog(as_of=7)


def test_cone_with_a_quantity_or_degrees_matches_astropy(vo_env):
    ra, dec = rows(vo_env["engine"], "SELECT ra, dec FROM catalog.csc_source "
                   "ORDER BY name LIMIT 1 OFFSET 7")[0]
    every = rows(vo_env["engine"], "SELECT name, ra, dec FROM catalog.csc_source")
    coords = SkyCoord([r[1] for r in every] * u.deg, [r[2] for r in every] * u.deg)
    sep = coords.separation(SkyCoord(ra * u.deg, dec * u.deg))
    radius = np.sort(sep.arcmin)[3] * 1.01 * u.arcmin  # at least four sources
    want = {r[0] for r, s in zip(every, sep, strict=True) if s <= radius}
    with Catalog() as cat:
        a = cat.cone(ra * u.deg, dec * u.deg, radius)
        b = cat.cone(ra, dec, radius.to_value(u.deg))
        assert set(a["name"]) == set(b["name"]) == want and len(want) >= 4
        assert "mean_yso" in a.colnames and a["dist"].unit == u.deg
        assert isinstance(cat.cone(ra, dec, radius, as_pandas=True), pd.DataFrame)
    with Catalog(as_of=1) as old:
        cls = dict(rows(vo_env["engine"], "SELECT name, adopted_class FROM "
                        "catalog.source_class_as_of(1)"))
        t = old.cone(ra, dec, radius)
        assert {n: (None if m else c) for n, c, m in
                zip(t["name"], t["adopted_class"], t["adopted_class"].mask, strict=True)} \
            == {n: cls.get(n) for n in want}


def test_query_tables_carry_units_and_runs_as_the_read_only_role(vo_env):
    with Catalog() as cat:
        t = cat.query("SELECT name, ra, dec, agg_adopted_class FROM catalog.source_class "
                      "WHERE ra > 0 ORDER BY name LIMIT 5")
        assert len(t) == 5 and t["ra"].unit == u.deg and t["name"].meta["ucd"]
        assert cat.query("SELECT current_user AS u")["u"][0] == "cscat_reader"
        assert cat.query("SELECT 100 % 7 AS r")["r"][0] == 2  # a literal %, not a parameter
        frame = cat.query("SELECT count(*) AS n FROM catalog.source_class", as_pandas=True)
        assert int(frame["n"].iloc[0]) == len(rows(vo_env["engine"],
                                                   "SELECT 1 FROM catalog.source_class"))
        with pytest.raises(VoError, match="read-only|permission denied"):
            cat.query("DELETE FROM catalog.csc_source RETURNING name")
        with pytest.raises(VoError, match="does not exist"):
            cat.query("SELECT * FROM catalog.nothing_here")
        assert len(cat.query("SELECT 1 AS one")) == 1  # usable after an error


def test_a_url_of_a_read_only_login(vo_env):
    with Catalog() as cat:  # sets up the reader login
        cat.query("SELECT 1 AS one")
    admin = make_url(vo_env["url"])
    url = admin.set(drivername="postgresql", username="cscat_reader",
                    password=dbe.reader_password(admin)).render_as_string(hide_password=False)
    with Catalog(url=url) as cat:
        assert cat.query("SELECT current_user AS u")["u"][0] == "cscat_reader"
        assert len(cat.source(cat.query("SELECT name FROM catalog.source_class LIMIT 1")
                              ["name"][0])) == 1


def test_import_stays_light():
    code = ("import sys, cscat; heavy = [m for m in ('astropy', 'pandas', 'db.vo', 'psycopg') "
            "if m in sys.modules]; print(heavy); from cscat import Catalog; "
            "print(Catalog.__module__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.splitlines()
    assert out == ["[]", "cscat.client"]
