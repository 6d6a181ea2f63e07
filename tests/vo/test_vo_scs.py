"""The Simple Cone Search endpoint as TOPCAT/pyvo users reach it: pyvo.dal.SCSService
against a real uvicorn server on loopback, on a published catalog.

Which sources a cone returns is checked against astropy's own angular distance
(SkyCoord.separation) over every source of the catalog, read as the database holds them.
"""

from __future__ import annotations

import io
import re
import socket
import threading
import time
import warnings

import httpx
import numpy as np
import pytest
import uvicorn
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.io.votable import parse
from fastapi import FastAPI
from pyvo.dal import DALQueryError, SCSQuery, SCSService
from sqlalchemy import text

from db import column_docs as cd
from web import scs


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(vo_env):
    app = scs.standalone_app()
    port = _free_port()
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not srv.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}/scs"
    srv.should_exit = True
    thread.join(10)


@pytest.fixture(scope="module")
def sources(vo_env):
    with vo_env["engine"].connect() as conn:
        rows = conn.execute(text("SELECT name, ra, dec FROM catalog.csc_source")).all()
    names = np.array([r[0] for r in rows])
    return names, SkyCoord([r[1] for r in rows] * u.deg, [r[2] for r in rows] * u.deg)


def expected(sources, ra, dec, radius_deg):
    names, coords = sources
    sep = coords.separation(SkyCoord(ra * u.deg, dec * u.deg)).deg
    inside = sep <= radius_deg
    return dict(zip(names[inside], sep[inside], strict=True))


def search(url, ra, dec, radius, verb=None):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # UCD1 words in a VOTable 1.4 file
        return SCSService(url).search(pos=(ra, dec), radius=radius, verbosity=verb)


def centres(sources):
    """Cones around the densest spot of the sample and around a lone source, radii that
    fall between two sources' distances, so a wrong distance shows as a wrong set."""
    names, coords = sources
    idx, d2d, _ = coords.match_to_catalog_sky(coords, nthneighbor=5)
    dense = int(np.argmin(d2d.deg))
    lone = int(np.argmax(d2d.deg))
    out = []
    for i in (dense, lone):
        c = coords[i]
        ra, dec = c.ra.deg + 0.01, c.dec.deg - 0.005
        sep = np.sort(coords.separation(SkyCoord(ra * u.deg, dec * u.deg)).deg)
        out.append((ra, dec, float((sep[3] + sep[4]) / 2)))  # 4 sources inside
        out.append((ra, dec, float((sep[0] + sep[1]) / 2)))  # 1 source inside
    return out


def test_cone_returns_exactly_the_sources_astropy_finds(server, sources):
    for ra, dec, r in centres(sources):
        want = expected(sources, ra, dec, r)
        res = search(server, ra, dec, r)
        table = res.to_table()
        got = dict(zip(table["name"], table["dist"], strict=True))
        assert set(got) == set(want), (ra, dec, r)
        for name, d in want.items():
            assert abs(got[name] - d) * 3600 < 1e-6  # micro-arcsecond agreement
        assert list(table["dist"]) == sorted(table["dist"])  # nearest first
    assert any(len(expected(sources, ra, dec, r)) >= 4 for ra, dec, r in centres(sources))


def test_pyvo_finds_the_main_columns_by_their_scs_ucds(server, sources):
    ra, dec, r = centres(sources)[0]
    res = search(server, ra, dec, r)
    rec = res[0]
    assert rec.id and rec.id.startswith("2CXO J")  # ID_MAIN
    assert rec.pos.separation(SkyCoord(ra * u.deg, dec * u.deg)).deg <= r  # POS_EQ_*_MAIN
    fields = {f.name: f for f in res.fielddescs}
    assert (fields["name"].ucd, fields["ra"].ucd, fields["dec"].ucd) == (
        "ID_MAIN", "POS_EQ_RA_MAIN", "POS_EQ_DEC_MAIN")
    assert fields["ra"].datatype == "double" and str(fields["ra"].unit) == "deg"


def test_every_field_has_the_description_unit_and_ucd_of_the_database(server, sources,
                                                                        vo_env):
    ra, dec, r = centres(sources)[0]
    with vo_env["engine"].connect() as conn:
        comments = {(v, c): t for v, c, t in cd.view_columns(conn)}
    for verb, n_min in ((1, 5), (2, 15), (3, 40)):
        res = search(server, ra, dec, r, verb=verb)
        fields = res.fielddescs
        assert len(fields) >= n_min
        for f in fields:
            assert f.description, f.name
            if f.name == "dist":
                continue
            view = "source" if f.name in cd.VIEWS["source"] else "source_class"
            # = psql \d+ (astropy's writer wraps long DESCRIPTION text over lines)
            assert " ".join(f.description.split()) == comments[(view, f.name)], f.name
            d = cd.doc(view, f.name)
            if d.unit:
                assert str(f.unit) in (d.unit, str(u.Unit(d.unit))), f.name
            if f.name not in scs.SCS_UCD:
                assert f.ucd == d.ucd, f.name
    assert {f.name for f in search(server, ra, dec, r, verb=1).fielddescs} == {
        "name", "ra", "dec", "adopted_class", "dist"}


def test_classes_are_the_current_ones(server, sources, vo_env):
    ra, dec, r = centres(sources)[0]
    table = search(server, ra, dec, r).to_table()
    with vo_env["engine"].connect() as conn:
        current = dict(conn.execute(text(
            "SELECT name, adopted_class FROM catalog.source_class")).all())
    for name, cls in zip(table["name"], table["adopted_class"], strict=True):
        want = current.get(name)
        assert (None if np.ma.is_masked(cls) or cls == "" else cls) == want, name


@pytest.mark.parametrize(("query", "words"), [
    ({"RA": "10", "DEC": "20"}, "missing required parameter SR"),
    ({"RA": "abc", "DEC": "20", "SR": "0.1"}, "Error in input RA value"),
    ({"RA": "10", "DEC": "95", "SR": "0.1"}, "outside [-90, 90]"),
    ({"RA": "10", "DEC": "20", "SR": "-1"}, "negative"),
    ({"RA": "10", "DEC": "20", "SR": "45"}, "maximum of 10 degrees"),
    ({"RA": "10", "DEC": "20", "SR": "0.1", "VERB": "7"}, "VERB"),
    ({"RA": "nan", "DEC": "20", "SR": "0.1"}, "not finite"),
])
def test_errors_are_votables_with_an_error_info(server, query, words):
    resp = httpx.get(server, params=query, timeout=30)
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/xml")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        vot = parse(io.BytesIO(resp.content))
    errors = [i for i in vot.infos if i.name == "Error"]
    assert len(errors) == 1 and words in errors[0].value
    # and pyvo, as a user sees it (its query object sends the raw parameters)
    with pytest.raises(DALQueryError, match=re.escape(words)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            SCSQuery(server, **query).execute()


def test_parameter_names_ignore_case_and_an_empty_cone_is_a_valid_table(server):
    resp = httpx.get(server, params={"ra": "0.001", "dec": "-89.9", "sr": "0.01"}, timeout=30)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        vot = parse(io.BytesIO(resp.content))
    assert not [i for i in vot.infos if i.name == "Error"]
    table = vot.get_first_table()
    assert len(table.array) == 0 and [f.name for f in table.fields][:3] == ["name", "ra", "dec"]


def test_in_an_app_with_a_read_only_engine_it_uses_that_pool(vo_env, sources):
    """The explorer's app keeps a pool of read-only connections in app.state.engine."""
    from fastapi.testclient import TestClient
    from sqlalchemy import create_engine

    from db.engine import reader_connection

    app = FastAPI()
    app.state.engine = create_engine("postgresql+psycopg://", creator=reader_connection)
    app.include_router(scs.router)
    ra, dec, r = centres(sources)[0]
    try:
        resp = TestClient(app).get("/scs", params={"RA": ra, "DEC": dec, "SR": r})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            table = parse(io.BytesIO(resp.content)).get_first_table().to_table()
        assert set(table["name"]) == set(expected(sources, ra, dec, r))
        with app.state.engine.connect() as conn:
            assert conn.execute(text("SELECT current_user")).scalar_one() == "cscat_reader"
    finally:
        app.state.engine.dispose()
