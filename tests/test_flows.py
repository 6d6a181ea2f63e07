"""The Prefect wiring: flows run under Prefect's test harness against the embedded database."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import text

PROJECT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def prefect(prefect_server):
    """``flows.catalog``, run against the module's temporary Prefect server."""
    from flows import catalog

    return catalog


def scalar(engine, sql: str):
    with engine.connect() as conn:
        return conn.execute(text(sql)).scalar()


def test_update_catalog_then_reclassify_and_events(prefect, engine, monkeypatch):
    from ingest.sample import generate_sample
    from pipeline import sources

    small = generate_sample(800, seed=5)
    monkeypatch.setattr(sources, "sample", lambda *a, **k: small)
    # so small a catalog leaves ~23% of its detections in clusters with too few labels for
    # any class, more than the default max_unclassifiable_share: allow it here
    monkeypatch.setenv("CSCAT_MAX_UNCLASSIFIABLE_SHARE", "0.5")
    from db.settings import get_settings

    get_settings.cache_clear()
    out = prefect.update_catalog_flow(until="2012-12-31", refit="auto", source="sample")
    assert out["refit_decision"] == "no active model"
    assert out["refit"]["promote"] is True
    assert out["release"]["catalog_version"] == 1
    n_det = scalar(engine, "SELECT count(*) FROM catalog.csc_detection")
    assert out["release"]["detections_classified"] == n_det > 0
    n_src = scalar(engine, "SELECT count(*) FROM catalog.csc_source")
    assert out["counterparts"]["counterparts"]["sources"] == n_src  # a step of update
    assert scalar(engine, "SELECT count(*) FROM catalog.counterpart_match") == 3 * n_src

    emitted = []
    monkeypatch.setattr(prefect, "emit_event", lambda **kw: emitted.append(kw))
    ingested = prefect.ingest_csc_flow(until="2016-12-31", source="sample")
    assert ingested["new_detections"] > 0
    assert [e["event"] for e in emitted] == [prefect.DETECTIONS_INGESTED]
    assert emitted[0]["payload"]["new_detections"] == ingested["new_detections"]

    release = prefect.reclassify_flow()  # what the deployment trigger runs
    assert release["catalog_version"] == 2
    assert release["detections_classified"] == ingested["new_detections"]
    assert prefect.reclassify_flow() is None  # nothing new: no version, no rows
    assert prefect.build_master_flow() is None

    again = prefect.ingest_csc_flow(until="2016-12-31", source="sample")
    assert again["new_detections"] == 0 and len(emitted) == 1  # no event without new data


def test_serve_deployments_have_the_configured_schedules_and_trigger(prefect, monkeypatch):
    monkeypatch.setenv("CSCAT_UPDATE_CRON", "15 2 * * *")
    from db.settings import get_settings

    get_settings.cache_clear()
    try:
        from flows.serve import deployments

        deps = {d.flow_name: d for d in deployments()}
    finally:
        get_settings.cache_clear()
    cron = {name: [s.schedule.cron for s in d.schedules] for name, d in deps.items()}
    assert cron["update_catalog"] == ["15 2 * * *"]
    assert cron["refit"] == ["0 4 * * 0"]
    (trigger,) = deps["reclassify"].triggers
    assert trigger.expect == {prefect.DETECTIONS_INGESTED}


@pytest.mark.slow
def test_demo_on_a_fresh_data_directory(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CSCAT_", "PREFECT_"))}
    env.update(CSCAT_DATA_DIR=str(tmp_path / "data"), CSCAT_CONFIG=str(tmp_path / "none.toml"),
               PYTHONPATH=str(PROJECT))
    run = subprocess.run([sys.executable, "-m", "cscat", "demo"], env=env, capture_output=True,
                         text=True, timeout=900, cwd=PROJECT)
    assert run.returncode == 0, run.stderr[-3000:]
    out = run.stdout
    for heading in ("== catalog versions ==", "== current classes", "class changed between",
                    "validation", "== explore =="):
        assert heading in out
    # epoch 2 reapplies epoch 1's model (the families fit in parallel, so its number varies)
    models = re.findall(r"^catalog version (\d+) \(model (\d+)\)", out, re.M)
    assert [v for v, _ in models] == ["1", "2"] and models[0][1] == models[1][1], models
    # the demo ends with the oracle's verdict on every published source result
    assert "== check (every published source result recomputed) ==" in out
    assert re.search(r"check passed: all \d+ current source results", out), out[-2000:]
    sql = subprocess.run(
        [sys.executable, "-m", "cscat", "sql",
         "select agg_master_class, count(*) from catalog.source_class group by 1"],
        env=env, capture_output=True, text=True, timeout=300, cwd=PROJECT)
    assert sql.returncode == 0, sql.stderr
    assert "AGN" in sql.stdout and "YSO" in sql.stdout
    # a new user's catalog adopts the default family's class (classifier.DEFAULT_FAMILY,
    # gbm: calibrated), not ctl's vote, for the sources without a reference SIMBAD type
    from classifier import DEFAULT_FAMILY

    assert DEFAULT_FAMILY == "gbm"
    (row,) = _sql_csv(env, """
        SELECT count(*), count(*) FILTER (WHERE c.adopted_class IS DISTINCT FROM f.class),
               count(*) FILTER (WHERE c.adopted_class IS DISTINCT FROM c.master_class)
        FROM catalog.source_class c
        LEFT JOIN catalog.source_class_by_family f
          ON f.name = c.name AND f.family = 'gbm'
        WHERE c.label_origin = 'model'""")
    n_model, not_default, not_ctl = map(int, row)
    assert n_model > 50 and not_default == 0 and not_ctl > 0, row
    _check_demo_change_summary(out, env)


def _sql_csv(env, query: str) -> list[list[str]]:
    run = subprocess.run([sys.executable, "-m", "cscat", "sql", query, "--format", "csv"],
                         env=env, capture_output=True, text=True, timeout=300, cwd=PROJECT)
    assert run.returncode == 0, run.stderr
    return [line.split(",") for line in run.stdout.strip().splitlines()[1:]]


def _check_demo_change_summary(out: str, env) -> None:
    """New sources apart from changed ones, every aggregated class, the sample said generated;
    the figures recomputed from the stored history with plain SQL and from the ingest."""
    import re

    from classifier.taxonomy import AGG_CLASSES

    section = out[out.index("== changes between catalog versions 1 and 2"):]
    assert "generated sample" in section and "not real CSC data" in section
    # epoch 2's ingest reports the sources it added: exactly the new sources of version 2
    epoch2 = out[out.index("== epoch2"):out.index("== catalog versions ==")]
    ingested_new = int(re.search(r"new sources: (\d+)", epoch2).group(1))
    new = int(re.search(r"new sources \(first published in version 2\): (\d+)", section)[1])
    changed = int(re.search(r"existing sources whose class changed: (\d+)", section)[1])
    assert new == ingested_new > 0
    table = section[section.index("agg_class | new sources"):]
    table = table[:table.index(" rows)")].splitlines()[2:-1]
    rows = {r.split("|")[0].strip(): [int(v) for v in r.split("|")[1:]] for r in table}
    assert list(rows) == [*AGG_CLASSES, "(none)"]  # every class, zero counts included
    assert sum(r[0] for r in rows.values()) == new
    assert sum(r[1] for r in rows.values()) == sum(r[2] for r in rows.values()) == changed
    # the same figures from the SQL API, independently of the demo's report
    join = ("from catalog.source_class_as_of(2) b left join catalog.source_class_as_of(1) a "
            "using (source_id)")
    [[sql_new, sql_changed]] = _sql_csv(env, (
        "select count(*) filter (where a.source_id is null), count(*) filter (where "
        f"a.source_id is not null and a.adopted_class is distinct from b.adopted_class) {join}"))
    assert (int(sql_new), int(sql_changed)) == (new, changed)
    per_class = dict(_sql_csv(env, (
        "select coalesce(b.agg_adopted_class, '(none)'), count(*) " + join
        + " where a.source_id is null group by 1")))
    assert {c: r[0] for c, r in rows.items()} == {
        c: int(per_class.get(c, 0)) for c in rows}
    assert re.search(r"existing sources whose class changed between versions 1 and 2: "
                     rf"{changed} ", section)
