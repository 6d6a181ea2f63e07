"""The source page's families, consensus and counterparts, and the search by family, checked
against SQL written here from the raw tables (the superuser's connection), not through the
views the app reads."""

from __future__ import annotations

import json
import re
from html import unescape
from urllib.parse import quote

import pytest
from sqlalchemy import text

from classifier import FAMILIES
from classifier.taxonomy import AGGREGATION, CLASSES
from db import engine as dbe


def rows(sql: str, **params):
    with dbe.get_engine().connect() as conn:
        return conn.execute(text(sql), params).mappings().all()


def _num(cell: str) -> float | None:
    cell = unescape(re.sub(r"<[^>]+>", "", cell)).strip()
    return None if cell in ("–", "") else float(cell)


def _close(shown: float | None, value: float | None) -> bool:
    """A number as the page prints it (3 decimals, or 3 significant digits when tiny)."""
    if value is None:
        return shown is None
    return shown is not None and abs(shown - value) <= max(6e-4, 6e-3 * abs(value))


@pytest.fixture(scope="module")
def rich_source(client) -> str:
    """A source with a result in every family, an interval (muwclass), an outlier measure
    (claxboi) and candidates in every counterpart catalogue, one of them chosen."""
    name = rows("""
        SELECT s.name FROM catalog.csc_source s
        WHERE (SELECT count(DISTINCT f.family) FROM catalog.family_source_result f
               WHERE f.source_id = s.source_id AND f.valid_to IS NULL
                 AND f.predicted_class IS NOT NULL) = 3
          AND EXISTS (SELECT 1 FROM catalog.source_result r WHERE r.source_id = s.source_id
                      AND r.valid_to IS NULL AND r.master_class IS NOT NULL)
          AND (SELECT count(DISTINCT c.catalogue) FROM catalog.counterpart_candidate c
               WHERE c.source_id = s.source_id AND c.chosen) = 3
          AND (SELECT count(*) FROM catalog.counterpart_candidate c
               WHERE c.source_id = s.source_id) > 3
        ORDER BY s.name LIMIT 1""")
    assert name, "the test catalog has no source with every family and counterpart"
    return name[0]["name"]


def _page(client, name: str) -> str:
    r = client.get("/source/" + quote(name, safe=""))
    assert r.status_code == 200, r.text[:300]
    return r.text


def _family_truth(name: str) -> dict[str, dict]:
    """Per family: class, probability of it, interval, outlier, model, and every class's
    probability in taxonomy order; from source_result / family_source_result and
    fitted_model."""
    out = {}
    for r in rows("""
            SELECT 'ctl' AS family, r.model_id, r.master_class AS class, r.prob_mean AS p,
                   NULL::float8[] AS lo, NULL::float8[] AS hi, NULL::float8 AS outlier,
                   m.taxonomy
            FROM catalog.source_result r JOIN catalog.csc_source s USING (source_id)
            JOIN catalog.fitted_model m USING (model_id)
            WHERE s.name = :n AND r.valid_to IS NULL
            UNION ALL
            SELECT f.family, f.model_id, f.predicted_class, f.probabilities, f.prob_lo,
                   f.prob_hi, f.outlier, m.taxonomy
            FROM catalog.family_source_result f JOIN catalog.csc_source s USING (source_id)
            JOIN catalog.fitted_model m USING (model_id)
            WHERE s.name = :n AND f.valid_to IS NULL""", n=name):
        tax = list(r["taxonomy"])
        k = tax.index(r["class"]) if r["class"] in tax else None
        out[r["family"]] = {
            **dict(r), "taxonomy": tax,
            "probability": r["p"][k] if k is not None else None,
            "lo_k": r["lo"][k] if r["lo"] is not None and k is not None else None,
            "hi_k": r["hi"][k] if r["hi"] is not None and k is not None else None}
    return out


def test_families_table_shows_every_family_as_stored(client, rich_source):
    page = _page(client, rich_source)
    truth = _family_truth(rich_source)
    assert set(truth) == set(FAMILIES)
    table = page[page.index('id="families"'):]
    table = table[:table.index("</table>")]
    shown = dict(re.findall(r'<tr data-family="([a-z]+)">(.*?)</tr>', table, re.S))
    assert set(shown) == set(truth)
    for fam, t in truth.items():
        row = shown[fam]

        def cell(cls: str, row=row) -> str:
            return re.search(rf'class="[^"]*{cls}[^"]*">(.*?)</td>', row, re.S).group(1)

        assert unescape(cell("f-class")) == t["class"]
        assert _close(_num(cell("f-prob")), t["probability"]), (fam, cell("f-prob"))
        interval = unescape(cell("f-interval"))
        if t["lo_k"] is None:
            assert interval == "–"
        else:
            lo, hi = (float(v) for v in interval.split("–"))
            assert _close(lo, t["lo_k"]) and _close(hi, t["hi_k"]), (fam, interval)
        assert _close(_num(cell("f-outlier")), t["outlier"]), (fam, cell("f-outlier"))
        assert f'href="/models/{t["model_id"]}"' in row
    assert any(t["lo_k"] is not None for t in truth.values())  # muwclass gives intervals
    assert truth["claxboi"]["outlier"] is not None


def test_a_chart_per_family_with_every_class_and_its_interval(client, rich_source):
    page = _page(client, rich_source)
    truth = _family_truth(rich_source)
    data = json.loads(page.split('id="plot-data">', 1)[1].split("</script>", 1)[0])
    items = json.loads(re.search(r"const render_items = (\[.*?\]);", page).group(1))
    targets = {div for item in items for div in item["roots"].values()}
    for fam, t in truth.items():
        bars = data["sources"][f"fam-{fam}-bars"]
        assert data["factors"][f"fam-{fam}-range"] == t["taxonomy"] == bars["cls"]
        assert bars["p"] == pytest.approx([float(v) for v in t["p"]], abs=1e-12)
        err = data["sources"][f"fam-{fam}-err"]
        if t["lo"] is None:
            assert err["cls"] == []
        else:
            assert err["cls"] == t["taxonomy"]
            assert err["lo"] == pytest.approx(list(t["lo"]), abs=1e-12)
            assert err["hi"] == pytest.approx(list(t["hi"]), abs=1e-12)
        # its div is shown, and the cached Bokeh script renders a figure into it
        div = re.search(rf'<div class="family-chart" data-family="{fam}"[^>]*>(.*?)</div>',
                        page, re.S)
        assert div and "hidden" not in div.group(0).split(">", 1)[0]
        inner = re.findall(r'<div id="([0-9a-f-]+)"', div.group(0))
        assert inner and set(inner) <= targets


def test_consensus_card_matches_the_consensus_view(client, rich_source):
    page = _page(client, rich_source)
    want = rows("SELECT * FROM catalog.source_consensus WHERE name = :n", n=rich_source)[0]
    card = page[page.index('id="consensus"'):]
    card = card[:card.index("</div>")]
    per = dict(re.findall(r'data-family="([a-z]+)">([^<]*)</td>', card))
    assert per == want["coarse_by_family"]
    majority = re.search(r'id="consensus-majority">([^<]*)<', card).group(1)
    assert majority == (want["majority_class"] or "none (tie)")
    assert f'id="consensus-agree">{want["n_agree"]} of {want["n_families"]}<' in card
    assert f'id="consensus-disagreement">{"yes" if want["disagreement"] else "no"}<' in card
    assert f'({want["adopted_coarse_class"]})' in \
        re.search(r'id="consensus-adopted">([^<]*)<', card).group(1)


def test_consensus_card_agrees_with_the_view_on_many_sources(client):
    """Disagreeing, agreeing and tied sources: the page's vote is the view's."""
    want = rows("""(SELECT * FROM catalog.source_consensus WHERE disagreement ORDER BY name
                    LIMIT 4) UNION ALL (SELECT * FROM catalog.source_consensus WHERE all_agree
                    ORDER BY name LIMIT 2) UNION ALL (SELECT * FROM catalog.source_consensus
                    WHERE majority_class IS NULL ORDER BY name LIMIT 2)""")
    assert any(w["disagreement"] for w in want) and any(w["all_agree"] for w in want)
    for w in want:
        card = _page(client, w["name"]).split('id="consensus"', 1)[1].split("</div>", 1)[0]
        assert f'id="consensus-majority">{w["majority_class"] or "none (tie)"}<' in card
        assert f'id="consensus-agree">{w["n_agree"]} of {w["n_families"]}<' in card


def test_counterpart_card_lists_every_candidate_and_marks_the_chosen(client, rich_source):
    page = _page(client, rich_source)
    truth = rows("""SELECT c.catalogue, c.cp_id, c.separation_arcsec, c.p_any, c.p_i, c.chosen
                    FROM catalog.counterpart_candidate c JOIN catalog.csc_source s
                    USING (source_id) WHERE s.name = :n""", n=rich_source)
    section = page[page.index('id="counterparts"'):]
    for cat in ("gaia", "2mass", "allwise"):
        card = section.split(f'data-catalogue="{cat}"', 1)[1].split("</table>", 1)[0]
        shown = {}
        for cls, cp_id, body in re.findall(
                r'<tr class="cp-row( chosen)?" data-id="([^"]*)">(.*?)</tr>', card, re.S):
            shown[unescape(cp_id)] = (bool(cls), body)
        want = {t["cp_id"]: t for t in truth if t["catalogue"] == cat}
        assert set(shown) == set(want) and want
        for cp_id, (chosen, body) in shown.items():
            t = want[cp_id]
            assert chosen == t["chosen"] and ("✓ chosen" in body) == t["chosen"]
            for cls, key in (("cp-sep", "separation_arcsec"), ("cp-pany", "p_any"),
                             ("cp-pi", "p_i")):
                v = re.search(rf'class="num {cls}">([^<]*)<', body).group(1)
                assert _close(_num(v), t[key]), (cat, cp_id, key, v, t[key])
        assert sum(t["chosen"] for t in want.values()) == 1
        # the chosen one is listed first
        assert next(iter(shown.values()))[0]


def _family_truth_names(family: str, classes: list[str] | None, pmin: float | None) -> set:
    """Sources whose current ``family`` result has one of ``classes`` (None: any) with at
    least ``pmin`` probability of it; from the raw result tables."""
    if family == "ctl":
        sql = """SELECT s.name, r.master_class AS cls,
                        r.prob_mean[array_position(m.taxonomy, r.master_class)] AS p
                 FROM catalog.source_result r JOIN catalog.csc_source s USING (source_id)
                 JOIN catalog.fitted_model m USING (model_id) WHERE r.valid_to IS NULL"""
    else:
        sql = """SELECT s.name, f.predicted_class AS cls,
                        f.probabilities[array_position(m.taxonomy, f.predicted_class)] AS p
                 FROM catalog.family_source_result f JOIN catalog.csc_source s
                 USING (source_id) JOIN catalog.fitted_model m USING (model_id)
                 WHERE f.valid_to IS NULL AND f.family = :f"""
    return {r["name"] for r in rows(sql, f=family)
            if (classes is None or r["cls"] in classes)
            and (pmin is None or (r["p"] is not None and r["p"] >= pmin))}


@pytest.mark.parametrize("family", FAMILIES)
def test_search_by_family_returns_exactly_the_sql_result(client, family):
    from astropy.table import Table

    cases = [("agg:YSO", None), ("QSO", None), ("agg:AGN", "0.5"), ("", "0.6")]
    checked = 0
    for cls, pmin in cases:
        params = {"family": family, "cls": cls, "min_prob": pmin or ""}
        fine = None if not cls else (
            [c for c in CLASSES if AGGREGATION[c] == cls[4:]] if cls.startswith("agg:")
            else [cls])
        want = _family_truth_names(family, fine, float(pmin) if pmin else None)
        r = client.get("/search/download", params={**params, "format": "csv"})
        assert r.status_code == 200, r.text[:300]
        got = Table.read(r.text, format="ascii.csv") if want else None
        assert (set(got["name"]) if want else set()) == want, params
        if want:
            assert set(got["family_class"]) <= set(fine or CLASSES)
        page = client.get("/search", params=params).text
        assert f'{len(want):,} source' in page, params
        checked += len(want)
    assert checked > 0


def test_search_by_family_pages_through_every_match(client):
    want = sorted(_family_truth_names("gbm", None, 0.0))
    assert len(want) > 50
    seen = []
    for page_no in (1, 2):
        page = client.get("/search", params={"family": "gbm", "min_prob": "0",
                                             "page_no": page_no}).text
        seen += [unescape(n) for n in re.findall(r'class="source-link" href="[^"]*">([^<]*)<',
                                                 page)]
    assert seen == want[:len(seen)] and len(seen) == min(100, len(want))


def test_unknown_family_is_a_400(client):
    r = client.get("/search", params={"family": "astrology"})
    assert r.status_code == 400 and "family &#39;astrology&#39; is not one of" in r.text
