"""``cscat status`` counts the counterpart tables and every family's current results: the
numbers it prints equal those recomputed from the public views."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import text

from cscat import cli
from ingest.sample_counterparts import SampleCounterparts
from pipeline.counterparts import ingest_counterparts
from tests.families_catalog.conftest import build_epoch1


@pytest.fixture(scope="module")
def built(engine, settings, sample):
    first = build_epoch1(engine, settings, sample)
    ingest_counterparts(engine, SampleCounterparts(sample, 20.0), settings, refresh_days=None)
    return first


def one(engine, sql: str):
    with engine.connect() as conn:
        return conn.execute(text(sql)).all()


def section(out: str, title: str) -> list[list[str]]:
    """The rows of the table under ``title``: cells split at ``|``."""
    block = out.split(title, 1)[1].split("\n\n", 1)[0]
    lines = block.strip().splitlines()[2:-1]  # header, rule, rows..., "(N rows)"
    return [[c.strip() for c in ln.split("|")] for ln in lines]


def test_status_counts_counterparts_and_family_results(engine, built, capsys):
    assert cli.main(["status"]) == 0
    out = capsys.readouterr().out
    tables = dict(re.findall(r"^(catalog\.\w+)\s+\|\s+(\d+)$", out, re.M))
    for t in ("counterpart_candidate", "counterpart_match", "counterpart_match_history",
              "family_source_result"):
        (n,), = one(engine, f"SELECT count(*) FROM catalog.{t}")
        assert tables[f"catalog.{t}"] == str(n), t
    assert int(tables["catalog.counterpart_candidate"]) > 0

    want = one(engine, "SELECT family, count(*), count(class) FROM "
                       "catalog.source_class_by_family GROUP BY 1")
    active = dict(one(engine, "SELECT family, model_id FROM catalog.family_model "
                              "WHERE status = 'active'"))
    rows = section(out, "per family (current per-source results):")
    assert rows[0][0] == "ctl" and {r[0] for r in rows} == {f for f, _, _ in want}
    assert len(want) == 4, "ctl and the three source families all published"
    by = {r[0]: r[1:] for r in rows}
    for fam, n, n_class in want:
        assert by[fam] == [str(active[fam]), str(n), str(n_class)], fam
        assert n_class > 0

    (n_src,), = one(engine, "SELECT count(*) FROM catalog.csc_source")
    chosen = dict(one(engine, "SELECT catalogue, count(DISTINCT name) FROM catalog.counterpart "
                              "WHERE chosen GROUP BY 1"))
    rows = section(out, "counterparts (catalog.counterpart_match):")
    assert [r[0] for r in rows] == ["2mass", "allwise", "gaia"]
    for cat, matched, with_cp in rows:
        assert (int(matched), int(with_cp)) == (n_src, chosen[cat]), cat
        assert 0 < chosen[cat] < n_src
