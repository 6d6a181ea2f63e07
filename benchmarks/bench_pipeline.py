"""End-to-end: a full catalog build, then incremental updates of ~1,000 new detections.

Runs the pipeline functions directly (no Prefect, so Prefect's start-up is excluded) on an
embedded PostgreSQL, on the sample generator's data:

* **full build**: ``ingest_csc`` of every ObsID up to a cut date (2,000 ObsIDs per chunk),
  ``ingest_simbad``, ``refit`` (validation fit + final fit), ``publish`` with the new model
  promoted (classify every detection, build every master result), then ``VACUUM ANALYZE``
  (what autovacuum does after a bulk load). Timed once per size.
* **incremental**: the ObsIDs after the cut arrive in ``repeat`` batches of about
  ``increment`` detections each; each batch is ``ingest_csc`` + ``ingest_simbad`` (new sources
  only) + ``publish`` (reapply the active model). The work counts of every batch are kept:
  detections ingested and classified, sources rebuilt and changed, and the rows the release
  wrote to ``detection_result`` and ``source_result``.
"""

from __future__ import annotations

import numpy as np
from sqlalchemy import text

from benchmarks.common import BenchServer, Stopwatch, row, rss_peak_increase

INCREMENT = 1_000
#: ObsIDs per chunk of the initial bulk load (the incremental updates use the default, 200).
BULK_CHUNK_OBSIDS = 2_000


def settings():
    from db.settings import Settings

    return Settings(database_url=None, n_components=6, random_state=42,
                    refit_labeled_change=0.10, refit_detection_growth=0.20,
                    promotion_tolerance=0.02, classify_other_types=False)


def cut_points(sample, increment: int, batches: int) -> list[float]:
    """MJD bounds ``[c0, c1, ..., c_batches]``: the base catalog is everything before c0,
    batch i the ObsIDs in [c_i, c_{i+1}) with about ``increment`` detections (whole ObsIDs)."""
    per_obs = sample.detections.groupby("obsid").size()
    obs = sample.observations.sort_values("gti_mjd_obs", ignore_index=True)
    n = obs["obsid"].map(per_obs).fillna(0).to_numpy()[::-1]  # newest first
    mjd = obs["gti_mjd_obs"].to_numpy()[::-1]
    cum = np.cumsum(n)
    cuts = [float(mjd[0]) + 1.0]  # after the last observation
    for b in range(1, batches + 1):
        i = int(np.searchsorted(cum, b * increment))  # first index reaching b*increment
        i = min(i, len(mjd) - 1)
        cuts.append(float(mjd[i]))  # ObsID i and newer are after this bound
    return cuts[::-1]


def _written(conn, release_id: int) -> dict:
    q = lambda sql: conn.execute(text(sql), {"r": release_id}).scalar_one()  # noqa: E731
    return {
        "detection_result_rows_written": q(
            "SELECT count(*) FROM catalog.detection_result WHERE valid_from = :r"),
        "detection_result_rows_closed": q(
            "SELECT count(*) FROM catalog.detection_result WHERE valid_to = :r"),
        "source_result_rows_written": q(
            "SELECT count(*) FROM catalog.source_result WHERE valid_from = :r"),
        "source_result_rows_closed": q(
            "SELECT count(*) FROM catalog.source_result WHERE valid_to = :r"),
    }


def vacuum_analyze(engine) -> None:
    """``VACUUM ANALYZE`` the catalog (statistics and visibility map after a bulk load)."""
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("VACUUM ANALYZE")


def build(engine, sample, until: float, cfg=None) -> dict:
    """Full build up to ``until`` (MJD); seconds per step and what it produced."""
    from ingest.sample_source import SampleCsc, SampleSimbad
    from pipeline.classify import publish, refit
    from pipeline.ingest import ingest_csc, ingest_simbad

    cfg = cfg or settings()
    sw = Stopwatch()
    # the stand-in for the CSC service is made before the clock starts: sorting the whole
    # in-memory sample by ObsID (0.3-0.8 s at 1M) is not the catalog's work, and a TAP
    # client has no such step
    service = SampleCsc(sample, chunk_size=BULK_CHUNK_OBSIDS)
    with rss_peak_increase() as mem:
        with sw.lap("ingest_csc"):  # an initial bulk load: 2,000 ObsIDs per chunk
            csc = ingest_csc(engine, service, until=until)
        with sw.lap("ingest_simbad"):
            ingest_simbad(engine, SampleSimbad(sample), refresh_days=None)
        with sw.lap("refit"):
            fit = refit(engine, cfg)
        with sw.lap("publish"):
            rel = publish(engine, cfg, promote=fit.model_id)
    with sw.lap("vacuum_analyze"):  # what autovacuum does after a bulk load, done at once
        vacuum_analyze(engine)
    return {"seconds": sw.total, "laps": sw.laps, "detections": csc.new_detections,
            "sources": csc.new_sources, "release": rel.as_dict(), "rss_mib": mem["mib"]}


def increment(engine, sample, until: float | None, cfg=None) -> dict:
    """One incremental update (new ObsIDs up to ``until``); seconds and work counts."""
    from ingest.sample_source import SampleCsc, SampleSimbad
    from pipeline.classify import publish
    from pipeline.ingest import ingest_csc, ingest_simbad

    cfg = cfg or settings()
    sw = Stopwatch()
    service = SampleCsc(sample)  # outside the clock, as in build()
    with sw.lap("ingest_csc"):
        csc = ingest_csc(engine, service, until=until)
    with sw.lap("ingest_simbad"):
        sim = ingest_simbad(engine, SampleSimbad(sample), refresh_days=None)
    with sw.lap("publish"):
        rel = publish(engine, cfg)
    counts = {"new_detections": csc.new_detections, "new_sources": csc.new_sources,
              "simbad_new": sim.simbad.get("new", 0),
              "detections_classified": rel.detections_classified if rel else 0,
              "sources_rebuilt": rel.sources_rebuilt if rel else 0,
              "sources_changed": rel.sources_changed if rel else 0}
    if rel is not None:
        with engine.connect() as conn:
            counts.update(_written(conn, rel.catalog_version))
            counts["catalog_detections"] = conn.execute(
                text("SELECT count(*) FROM catalog.csc_detection")).scalar_one()
            counts["sources_of_new_detections"] = conn.execute(text(
                "SELECT count(DISTINCT source_id) FROM catalog.csc_detection "
                "WHERE ingest_run_id = :r"), {"r": csc.run_id}).scalar_one()
    return {"seconds": sw.total, "laps": sw.laps, "counts": counts}


def run_size(server: BenchServer, n_detections: int, repeat: int = 3,
             increment_size: int = INCREMENT, seed: int = 6, log=print,
             on_built=None, family_repeat: int = 0, keep: bool = False) -> list[dict]:
    """Full build at ``n_detections`` (once) and ``repeat`` incremental updates into it.

    ``on_built(engine)``: called on the finished catalog before it is dropped (the SQL
    benchmark runs there); the rows it returns are appended. ``family_repeat``: then as
    many updates with every family and the counterpart step (``bench_incremental``).
    ``keep`` (with ``family_repeat``): the catalog prepared for the family updates is kept
    as database ``bench_e2e_<n>_families`` (on a server whose data dir is kept), and a later
    run with a kept one skips the build, the ctl updates and the preparation: it runs the
    family updates on a fresh copy of it."""
    from ingest.sample import generate_sample

    sample = generate_sample(n_detections=n_detections, seed=seed)
    cuts = cut_points(sample, increment_size, repeat + family_repeat)
    name = f"bench_e2e_{n_detections}"
    kept = f"{name}_families"
    probe = server.existing(kept) if keep and family_repeat else None
    if probe is not None:
        from benchmarks import bench_incremental

        engine = server.copy(kept, name, engine=probe)
        try:
            log(f"n={n_detections:,}: family updates on a copy of the kept {kept}")
            return bench_incremental.run_on(engine, sample, cuts[repeat + 1:], settings(),
                                            n_detections, log=log, prepared=True)
        finally:
            server.drop(engine)

    def keep_prepared(engine):
        server.copy(name, kept, engine=engine).dispose()
        log(f"n={n_detections:,}: kept the prepared catalog as {kept}")
        return engine

    engine = server.database(name)
    try:
        b = build(engine, sample, until=cuts[0])
        log(f"full build n={n_detections:,}: {b['seconds']:.1f} s "
            + " ".join(f"{k}={v:.1f}" for k, v in b["laps"].items()))
        incs = [increment(engine, sample, until=c) for c in cuts[1:repeat + 1]]
        for i in incs:
            log(f"incremental into n={n_detections:,}: {i['seconds']:.2f} s "
                + " ".join(f"{k}={v:.2f}" for k, v in i["laps"].items()) + f" {i['counts']}")
        extra = on_built(engine) if on_built is not None else []
        if family_repeat:
            from benchmarks import bench_incremental

            extra = extra + bench_incremental.run_on(
                engine, sample, cuts[repeat + 1:], settings(), n_detections, log=log,
                on_prepared=keep_prepared if keep else None)
    finally:
        server.drop(engine)
    secs = [i["seconds"] for i in incs]
    return [
        row("full_build", "s", n_detections, [b["seconds"]], breakdown_s=b["laps"],
            catalog_detections=b["detections"], catalog_sources=b["sources"],
            release=b["release"], prefect="excluded"),
        # what the build's steps added to the resident memory of a process that already
        # held the generated sample (the pipeline's own memory; PostgreSQL's is the server's)
        *([row("full_build_rss_peak_increase", "MiB", n_detections, [b["rss_mib"]],
               note="the process's high-water mark above its RSS before the build")]
          if b["rss_mib"] is not None else []),
        # the refit and publish steps of that build, as figures of their own (issue 14)
        *(row(f"full_build_{step}", "s", n_detections, [b["laps"][step]], prefect="excluded")
          for step in ("refit", "publish")),
        row("incremental_update", "s", n_detections, secs,
            breakdown_s=[i["laps"] for i in incs], work=[i["counts"] for i in incs],
            increment_detections=increment_size, prefect="excluded"),
        *extra,
    ]


def run(sizes, repeat: int = 3, server: BenchServer | None = None, log=print,
        increment_size: int = INCREMENT) -> list[dict]:
    own = server is None
    server = server or BenchServer()
    try:
        rows: list[dict] = []
        for n in sizes:
            rows += run_size(server, n, repeat, increment_size=increment_size, log=log)
        return rows
    finally:
        if own:
            server.stop()


__all__ = ["build", "cut_points", "increment", "run", "run_size", "settings"]
