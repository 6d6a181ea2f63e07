"""The explorer's pages on a real catalog built by the pipeline (FastAPI TestClient)."""

from __future__ import annotations

import io
from urllib.parse import quote

import numpy as np
import pytest
from sqlalchemy import text

from db import engine as dbe


def scalar(sql: str, **params):
    with dbe.get_engine().connect() as conn:
        return conn.execute(text(sql), params).scalar()


def rows(sql: str, **params):
    with dbe.get_engine().connect() as conn:
        return conn.execute(text(sql), params).mappings().all()


@pytest.fixture(scope="module")
def busy_source(client):
    """The source with the most classified detections and a changed class if any."""
    return rows("""SELECT name, ra, dec, adopted_class, n_detections FROM catalog.source_class
                   ORDER BY n_detections DESC, name LIMIT 1""")[0]


@pytest.mark.parametrize("path", ["/", "/search?cls=agg:AGN", "/skymap",
                                  "/skymap?projection=mollweide", "/models", "/models/1",
                                  "/versions", "/changes",
                                  "/features", "/features?x=hard_hs&y=powlaw_gamma"])
def test_every_page_answers(client, path):
    r = client.get(path)
    assert r.status_code == 200, r.text[:500]
    assert r.headers["content-type"].startswith("text/html")
    assert "/bokeh/static/js/bokeh.min.js" in r.text
    assert "cdn.bokeh.org" not in r.text and "https://" not in r.text.split("<body>")[0]


def test_bokehjs_is_served_locally(client):
    r = client.get("/bokeh/static/js/bokeh.min.js")
    import bokeh

    assert r.status_code == 200 and len(r.content) > 100_000
    assert bokeh.__version__ in r.text[:2000] or "Bokeh" in r.text[:5000]


def test_search_by_name_goes_to_the_source_page(client, busy_source):
    name = busy_source["name"]
    r = client.get("/search", params={"name": name}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/source/" + quote(name, safe="")
    page = client.get(r.headers["location"]).text
    assert name in page
    n_det = scalar("SELECT count(*) FROM catalog.detection_class WHERE name = :n", n=name)
    assert page.count("<tr><td>", page.index('id="detections"')) >= n_det


def test_search_by_part_of_a_name_lists_matches(client):
    prefix = scalar("SELECT left(min(name), 12) FROM catalog.source_class")
    expected = scalar("SELECT count(*) FROM catalog.source_class WHERE name LIKE :p",
                      p=prefix + "%")
    r = client.get("/search", params={"name": prefix})
    assert r.status_code == 200
    assert f'{expected:,} source' in r.text


def test_cone_search_in_degrees_and_sexagesimal_agree_with_sql(client, busy_source):
    ra, dec = busy_source["ra"], busy_source["dec"]
    # Truth from plain SQL: sources within 5 arcmin (the spherical law of cosines, not the
    # app's haversine).
    truth = {r["name"] for r in rows("""
        SELECT name FROM catalog.source_class
        WHERE degrees(acos(least(1, sin(radians(dec)) * sin(radians(:d)) + cos(radians(dec))
              * cos(radians(:d)) * cos(radians(ra - :r))))) <= 5 / 60.0""", r=ra, d=dec)}
    from astropy.coordinates import Angle

    ra_s = Angle(ra, "deg").to_string(unit="hourangle", sep=":", precision=3)
    dec_s = Angle(dec, "deg").to_string(unit="deg", sep=":", precision=2, alwayssign=True)
    for params in ({"ra": f"{ra}", "dec": f"{dec}", "radius": "5"},
                   {"ra": ra_s, "dec": dec_s, "radius": "5'"},
                   {"ra": ra_s, "dec": dec_s, "radius": "300\""}):
        r = client.get("/search/download", params={**params, "format": "csv"})
        assert r.status_code == 200, r.text
        from astropy.table import Table

        t = Table.read(r.text, format="ascii.csv")
        assert set(t["name"]) == truth, params
        assert np.all(np.diff(t["sep_arcsec"]) >= 0)


def test_class_and_probability_filters_match_sql(client):
    n = scalar("SELECT count(*) FROM catalog.source_class WHERE agg_adopted_class = 'YSO'")
    assert f"{n:,} source" in client.get("/search", params={"cls": "agg:YSO"}).text
    n = scalar("SELECT count(*) FROM catalog.source_class WHERE adopted_class = 'QSO' "
               "AND label_origin = 'model'")
    assert f"{n:,} source" in client.get("/search", params={"cls": "QSO", "origin": "model"}).text
    n = scalar("SELECT count(*) FROM catalog.source_class "
               "WHERE mean_yso + mean_ttau + mean_orion_v >= 0.6")
    r = client.get("/search", params={"cls": "agg:YSO", "min_prob": "0.6"})
    assert f"{n:,} source" in r.text
    n = scalar("SELECT count(*) FROM catalog.source_class WHERE mean_yso >= 0.6")
    r = client.get("/search", params={"cls": "YSO", "min_prob": "0.6"})
    assert f"{n:,} source" in r.text


def test_paging(client):
    total = scalar("SELECT count(*) FROM catalog.source_class")
    assert total > 50
    first = client.get("/search", params={"name": "2CXO"}).text
    second = client.get("/search", params={"name": "2CXO", "page_no": 2}).text
    names = [r["name"] for r in rows("SELECT name FROM catalog.source_class ORDER BY name "
                                     "LIMIT 2 OFFSET 50")]
    assert names[0] in second and names[0] not in first
    assert "page 2 of" in second


def test_votable_download(client):
    from astropy.io.votable import parse_single_table

    r = client.get("/search/download", params={"cls": "agg:AGN", "format": "votable"})
    assert r.status_code == 200 and "attachment" in r.headers["content-disposition"]
    t = parse_single_table(io.BytesIO(r.content)).to_table()
    n = scalar("SELECT count(*) FROM catalog.source_class WHERE agg_adopted_class = 'AGN'")
    assert len(t) == n and set(t["agg_adopted_class"]) == {"AGN"}
    assert str(t["ra"].unit) == "deg"


@pytest.mark.parametrize("params, words", [
    ({"ra": "abc", "dec": "1"}, "RA &#39;abc&#39; is not an angle"),
    ({"ra": "10", "dec": "95"}, "outside [-90, 90]"),
    ({"ra": "10", "dec": "5", "radius": "lots"}, "radius &#39;lots&#39; is not an angle"),
    ({"cls": "Dragon"}, "class &#39;Dragon&#39; is not one of"),
    ({"min_prob": "0.5"}, "a minimum probability needs a class"),
    ({"cls": "AGN", "min_prob": "2"}, "outside [0, 1]"),
])
def test_bad_input_is_a_400_page_naming_it(client, params, words):
    r = client.get("/search", params=params)
    assert r.status_code == 400 and words in r.text, r.text[:300]


def test_source_page_shows_detections_history_and_simbad(client):
    # A source whose class changed between the versions, with a SIMBAD match if possible.
    changed = rows("SELECT name FROM catalog.class_changes(1, 2) WHERE from_class IS NOT NULL "
                   "AND to_class IS NOT NULL ORDER BY name LIMIT 1")
    name = changed[0]["name"] if changed else scalar(
        "SELECT name FROM catalog.source WHERE simbad_main_id IS NOT NULL ORDER BY name LIMIT 1")
    page = client.get("/source/" + quote(name, safe="")).text
    hist = rows("SELECT valid_from, adopted_class FROM catalog.source_class_history "
                "WHERE name = :n ORDER BY valid_from", n=name)
    section = page[page.index('id="history"'):]
    assert section.count("<tr><td>") == len(hist)
    for h in hist:
        assert f"<td>{h['valid_from']}–" in section
    src = rows("SELECT * FROM catalog.source WHERE name = :n", n=name)[0]
    if src["simbad_main_id"]:
        assert src["simbad_main_id"] in page
    assert f"{src['ra']:.6f}" in page


def test_unknown_source_is_404(client):
    r = client.get("/source/2CXO J999999.9+999999")
    assert r.status_code == 404 and "no source named" in r.text


def test_changes_feed_matches_sql(client):
    n = scalar("SELECT count(*) FROM catalog.class_changes(1, 2)")
    r = client.get("/changes", params={"from": 1, "to": 2})
    assert r.status_code == 200 and f"{n:,} source" in r.text
    assert client.get("/changes", params={"from": 1, "to": 99}).status_code == 400


def _sky_truth():
    from web import projection

    truth = rows("SELECT source_id, ra, dec, coalesce(agg_adopted_class, '') AS cls "
                 "FROM catalog.source_class ORDER BY source_id")
    ra = np.array([r["ra"] for r in truth])
    dec = np.array([r["dec"] for r in truth])
    x, y = projection.project(*projection.galactic(ra, dec), "aitoff")
    return truth, x, y


def test_skymap_image_counts_every_source(client):
    import json
    import struct

    r = client.get("/skymap/data", params={"w": 400, "h": 200})
    assert r.headers["content-type"] == "application/octet-stream"
    blob = r.content
    (hlen,) = struct.unpack_from("<I", blob)
    header = json.loads(blob[4:4 + hlen])
    n = header["n"]
    assert n == scalar("SELECT count(*) FROM catalog.source_class") > 0
    assert header["n_view"] == n  # the whole sky is in the default window
    assert len(blob) == 4 + hlen + 400 * 200 * 4
    img = np.frombuffer(blob, np.uint8, offset=4 + hlen).reshape(200, 400, 4)
    # Every source's pixel (recomputed here from SQL's ra/dec) is painted, and in its class's
    # colour when it is alone in its 3x3 neighbourhood; empty sky stays transparent.
    truth, x, y = _sky_truth()
    px = np.floor((x - header["x0"]) / (header["x1"] - header["x0"]) * 400).astype(int)
    py = np.floor((y - header["y0"]) / (header["y1"] - header["y0"]) * 200).astype(int)
    assert (img[py, px, 3] > 0).all()
    occupied = np.zeros((200, 400), bool)
    occupied[py, px] = True
    pad = np.pad(occupied, 1)
    near = np.zeros_like(occupied)
    for dy in (0, 1, 2):
        for dx in (0, 1, 2):
            near |= pad[dy:dy + 200, dx:dx + 400]
    assert img[..., 3][~near].max(initial=0) == 0  # (each source is drawn 3x3 when few)
    from web.plots import AGG_COLORS
    for i, r_ in enumerate(truth):
        alone = ((np.abs(px - px[i]) <= 2) & (np.abs(py - py[i]) <= 2)).sum() == 1
        if alone:
            want = [int(AGG_COLORS[r_["cls"]][k:k + 2], 16) for k in (1, 3, 5)]
            assert img[py[i], px[i], :3].tolist() == want
    assert img[0, 0, 3] == 0  # a corner outside the ellipse
    counts = {c["name"]: c["n"] for c in header["classes"]}
    assert sum(counts.values()) == n
    assert counts["AGN"] == scalar(
        "SELECT count(*) FROM catalog.source_class WHERE agg_adopted_class = 'AGN'")
    # Hiding every class leaves an empty image; bad windows and classes are a 400.
    hide = ",".join(c["name"] or "none" for c in header["classes"])
    r = client.get("/skymap/data", params={"w": 40, "h": 20, "hide": hide})
    assert np.frombuffer(r.content, np.uint8, offset=4 + hlen)[3::4].max() == 0
    assert client.get("/skymap/data", params={"x0": 1, "x1": 0}).status_code == 400
    assert client.get("/skymap/data", params={"w": 100000}).status_code == 400
    assert client.get("/skymap/data", params={"hide": "Quasar"}).status_code == 400


def test_skymap_near_is_the_nearest_source(client):
    truth, x, y = _sky_truth()
    rng = np.random.default_rng(1)
    for k in rng.choice(len(truth), size=min(20, len(truth)), replace=False):
        qx, qy = x[k] + 0.003, y[k] - 0.002
        d = np.hypot(x - qx, y - qy)
        got = client.get("/skymap/near", params={"x": qx, "y": qy, "r": 0.5}).json()
        assert d[[i for i, t in enumerate(truth) if t["source_id"] == got["id"]][0]] == \
            pytest.approx(d.min(), abs=1e-6)
        row = [t for t in truth if t["source_id"] == got["id"]][0]
        assert got["ra"] == pytest.approx(row["ra"]) and got["dec"] == pytest.approx(row["dec"])
    # Nothing within r is {}; a hidden class is never returned.
    assert client.get("/skymap/near", params={"x": 3.2, "y": 1.6, "r": 0.01}).json() == {}
    k = 0
    cls = truth[k]["cls"] or "none"
    got = client.get("/skymap/near", params={"x": x[k], "y": y[k], "r": 1.0, "hide": cls})
    assert got.json().get("cls", "") != (truth[k]["cls"] or "no class")
    assert client.get("/skymap/near", params={"x": 0, "y": 0, "r": 5}).status_code == 400
    # A click goes to the source page of that id.
    sid = truth[0]["source_id"]
    go = client.get(f"/go/source/{sid}", follow_redirects=False)
    name = scalar("SELECT name FROM catalog.csc_source WHERE source_id = :s", s=sid)
    assert go.status_code == 303 and go.headers["location"] == "/source/" + quote(name, safe="")


def test_model_page_shows_the_validation(client):
    m = rows("SELECT model_id, validation FROM catalog.model_version "
             "WHERE status = 'active'")[0]
    page = client.get(f"/models/{m['model_id']}").text
    v = m["validation"]
    for c in v["aggregated"]["labels"]:
        assert f"<td>{c}</td>" in page
    assert "This model stored no BIC curve" in page  # the pipeline stores none (yet)
    assert client.get("/models/9999").status_code == 404


def test_source_pages_hold_every_div_their_plots_render_into(client):
    """The cached Bokeh script renders into fixed div ids: every source page, with or
    without classified detections or a master result, must have them all."""
    import json
    import re

    names = [r["name"] for r in rows("""
        (SELECT name FROM catalog.source s WHERE NOT EXISTS (SELECT 1 FROM
            catalog.source_class c WHERE c.source_id = s.source_id) ORDER BY name LIMIT 3)
        UNION ALL (SELECT name FROM catalog.source_class ORDER BY n_detections, name LIMIT 3)
        UNION ALL (SELECT name FROM catalog.source_class ORDER BY n_detections DESC LIMIT 2)""")]
    assert len(names) >= 5
    for name in names:
        page = client.get("/source/" + quote(name, safe="")).text
        items = json.loads(re.search(r"const render_items = (\[.*?\]);", page).group(1))
        targets = {div for item in items for div in item["roots"].values()}
        ids = set(re.findall(r'<div id="([0-9a-f-]+)"', page))
        assert targets and targets <= ids, (name, targets - ids)
        data = json.loads(page.split('id="plot-data">', 1)[1].split("</script>", 1)[0])
        n_det = scalar("SELECT count(*) FROM catalog.detection_class WHERE name = :n "
                       "AND p_qso IS NOT NULL", n=name)
        assert len(data["sources"]["det-bars"]["top"]) == 10 * n_det
        assert len(data["factors"]["det-range"]) == n_det


def test_the_explorer_serves_the_cone_search(client, busy_source):
    """``/scs`` is part of the explorer's app: the busy source is found at its own position
    in a VOTable, and the SCS router answers only GET like every other route."""
    import io

    from astropy.io.votable import parse_single_table

    r = client.get("/scs", params={"RA": busy_source["ra"], "DEC": busy_source["dec"],
                                   "SR": 0.001})
    assert r.status_code == 200 and "xml" in r.headers["content-type"]
    names = [str(n) for n in parse_single_table(io.BytesIO(r.content)).to_table()["name"]]
    assert busy_source["name"] in names
    assert client.post("/scs", data={"RA": 1, "DEC": 1, "SR": 1}).status_code == 405
