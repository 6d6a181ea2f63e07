"""The benchmark code at tiny sizes: it keeps working, and an update costs what is new.

No timing assertions (the suite runs on any machine). The work counts do not depend on timing:
an incremental update into a small and into a larger catalog classifies exactly the new
detections, writes one ``detection_result`` row per new detection, and rebuilds and writes
master results only for the sources of the new detections, whatever the catalog size. With
every family and the counterpart step, only the new sources are crossmatched and every family
classifies exactly the sources of the new detections.
"""

from __future__ import annotations

import json
import statistics

import pytest

from benchmarks import bench_pipeline
from benchmarks.__main__ import main
from benchmarks.common import BenchServer

INCREMENT = 150


@pytest.fixture(scope="module")
def runs(pg_server) -> dict[int, list[dict]]:
    """The rows of catalogs of two sizes: 2 incremental updates of ~150 detections (ctl),
    then 2 with every family and the counterpart step (loopback fakes)."""
    server = BenchServer(info=pg_server)
    return {n: bench_pipeline.run_size(server, n, repeat=2, increment_size=INCREMENT,
                                       log=lambda _msg: None, family_repeat=2)
            for n in (1_500, 6_000)}


@pytest.fixture(scope="module")
def increments(runs) -> dict[int, list[dict]]:
    """Work counts of the 2 ctl incremental updates per size."""
    return {n: next(r for r in rows if r["figure"] == "incremental_update")["work"]
            for n, rows in runs.items()}


@pytest.fixture(scope="module")
def family_increments(runs) -> dict[int, list[dict]]:
    """Work counts of the 2 all-family incremental updates per size."""
    return {n: next(r for r in rows if r["figure"] == "incremental_all_families")["work"]
            for n, rows in runs.items()}


def test_catalogs_of_both_sizes_got_their_increments(increments):
    for n, work in increments.items():
        assert len(work) == 2
        for w in work:
            assert INCREMENT // 2 <= w["new_detections"] < 4 * INCREMENT
        assert work[-1]["catalog_detections"] > 0.8 * n


def test_incremental_update_classifies_and_writes_only_the_new_detections(increments):
    for work in increments.values():
        for w in work:
            assert w["detections_classified"] == w["new_detections"]
            assert w["detection_result_rows_written"] == w["new_detections"]
            assert w["detection_result_rows_closed"] == 0  # nothing old is reclassified


def test_incremental_update_rebuilds_only_the_sources_of_the_new_detections(increments):
    for work in increments.values():
        for w in work:
            assert w["sources_rebuilt"] == w["sources_of_new_detections"]
            assert w["source_result_rows_written"] == w["sources_changed"]
            assert w["source_result_rows_written"] <= w["sources_of_new_detections"]
            assert w["source_result_rows_closed"] <= w["source_result_rows_written"]
            assert w["sources_of_new_detections"] <= w["new_detections"]


def test_incremental_work_does_not_grow_with_the_catalog(increments):
    small, large = (increments[n] for n in sorted(increments))
    assert large[-1]["catalog_detections"] > 3 * small[-1]["catalog_detections"]
    for w_small, w_large in zip(small, large, strict=True):
        # Rows written per new detection are bounded by the same constant at both sizes.
        for w in (w_small, w_large):
            written = w["detection_result_rows_written"] + w["source_result_rows_written"]
            assert written <= 2 * w["new_detections"]


def test_all_family_update_crossmatches_only_the_new_sources(family_increments):
    for work in family_increments.values():
        assert len(work) == 2
        for w in work:
            assert INCREMENT // 2 <= w["new_detections"] < 4 * INCREMENT
            assert w["new_sources"] > 0
            assert w["simbad_sources"] == w["new_sources"]  # refresh: 90 days
            assert w["counterpart_sources"] == w["new_sources"]
            assert w["family_refits"] == []  # every family keeps its active model


def test_all_family_update_classifies_exactly_the_affected_sources_per_family(
        family_increments):
    for work in family_increments.values():
        for w in work:
            assert w["detections_classified"] == w["new_detections"]
            assert w["sources_rebuilt"] == w["sources_of_new_detections"]
            assert set(w["families"]) == {"muwclass", "claxboi", "gbm"}
            for fam, f in w["families"].items():
                assert f["sources_classified"] == w["sources_of_new_detections"], fam
                assert f["promoted_model"] is None
                written = w["family_rows_written"].get(fam, 0)
                assert written == f["sources_changed"] <= f["sources_classified"], fam


def test_all_family_update_reports_every_step(runs):
    for rows in runs.values():
        steps = {r["figure"].removeprefix("incremental_step ") for r in rows
                 if r.get("step_of") == "incremental_all_families"}
        assert {"ingest", "simbad", "counterparts", "refit_decision", "publish",
                "publish: classify ctl: predict", "publish: master results ctl"} <= steps
        for fam in ("muwclass", "claxboi", "gbm"):
            assert f"publish: classify {fam}: classify and write" in steps
        fig = next(r for r in rows if r["figure"] == "incremental_all_families")
        sums = [sum(laps[s] for s in ("ingest", "simbad", "counterparts", "refit_decision",
                                      "publish")) for laps in fig["breakdown_s"]]
        assert statistics.median(sums) == pytest.approx(fig["median"])  # the steps add up


def test_benchmark_command_writes_every_figure(tmp_path):
    out = tmp_path / "all.json"
    assert main(["--quick", "--sizes", "1500", "--repeat", "1", "--out", str(out)]) == 0
    payload = json.loads(out.read_text())
    figures = {r["figure"] for r in payload["rows"]}
    assert {"fit_time", "predict_proba_time", "reference_d2_time", "predict_proba_throughput",
            "ingest_parquet_throughput", "ingest_parquet_into_existing_throughput",
            "ingest_copy_insert_throughput", "full_build", "full_build_refit",
            "full_build_publish", "full_build_rss_peak_increase",
            "incremental_update", "incremental_all_families",
            "incremental_step counterparts", "sql_current_class_of_one_source",
            "sql_class_above_probability", "sql_as_of_version_class_counts",
            "sql_class_changes_between_versions"} <= figures
    for r in payload["rows"]:
        assert r["min"] <= r["median"] <= r["max"] and r["runs"] >= 1 and r["unit"]
    by = {r["figure"]: r for r in payload["rows"]}
    for step in ("refit", "publish"):  # the build's own steps, not another measurement
        assert by[f"full_build_{step}"]["median"] == by["full_build"]["breakdown_s"][step]
    m = payload["machine"]
    assert m["cpu_count"] and m["postgresql"] and m["numpy"]
    assert (tmp_path / "all.md").exists()


def test_web_benchmark_serves_what_the_catalog_holds(pg_server, monkeypatch):
    """bench_web at a small size: the catalog it builds has every family and counterparts,
    the timed source page shows them all, the timed 1' cone returns the sources SQL finds
    there (no timing asserted)."""
    from sqlalchemy import text

    from benchmarks import bench_web
    from db import engine as dbe

    monkeypatch.setenv("CSCAT_DATABASE_URL", "postgresql://unused/unused")  # restored after
    server = BenchServer(info=pg_server)
    engine, _, built = bench_web.build(server, 2_000, log=lambda _msg: None)
    try:
        assert all(f["promoted"] for k, f in built["families"].items() if k != "release")
        rows = {r["figure"]: r for r in bench_web.pages(engine, 2_000, repeat=1,
                                                        log=lambda _msg: None)}
        with engine.connect() as conn:
            for fig in ("web_source_page_most_detections", "web_source_page_median_source"):
                name = rows[fig]["source"]
                fams, cps = conn.execute(text(
                    "SELECT (SELECT count(*) FROM catalog.source_class_by_family "
                    "WHERE name = :n), (SELECT count(*) FROM catalog.counterpart "
                    "WHERE name = :n)"), {"n": name}).one()
                assert rows[fig]["work"]["family_rows"] == fams == 4
                assert rows[fig]["work"]["family_charts_shown"] == 4
                assert rows[fig]["work"]["counterpart_rows"] == cps
            cone = rows["web_cone_1arcmin"]
            n = conn.execute(text(
                "SELECT count(*) FROM catalog.source_class WHERE degrees(acos(least(1, "
                "sin(radians(dec)) * sin(radians(:d)) + cos(radians(dec)) * cos(radians(:d)) "
                "* cos(radians(ra - :r))))) <= 1 / 60.0"),
                {"r": cone["ra"], "d": cone["dec"]}).scalar_one()
        assert cone["work"]["rows"] == n >= 1
        assert rows["web_cone_1arcmin_download_csv"]["work"]["rows"] == n
        assert set(cone["plan"]) >= {"web_search_uses_index", "scs_uses_index"}
    finally:
        server.drop(engine)
        dbe.reset()
