"""Incremental update with every family and the counterpart step, against the loopback fakes.

Runs on the catalog ``bench_pipeline.run_size`` built (ctl only) after its own incremental
updates: first :func:`prepare` makes it a catalog of every family (counterparts of every
source, from the sample directly; a refit of every enabled source family; one publish that
promotes them; ``VACUUM ANALYZE``), then each :func:`increment` is what ``cscat update``
does, step by step, with the services on loopback (``ingest.fake_services``):

* **ingest**: ``ingest_csc`` through the CSC TAP client (observation list, new ObsIDs);
* **simbad**: ``ingest_simbad`` through the X-Match client (``simbad_refresh_days``);
* **counterparts**: ``ingest_counterparts`` (Gaia DR3, 2MASS, AllWISE;
  ``counterpart_refresh_days``);
* **refit decision**: ``needs_refit`` and ``needs_family_refit`` (must say: no refit);
* **publish**: one catalog version, broken into its steps (``pipeline.timing``): ctl's new
  detections read, predicted and written, the affected sources, per family the choice of
  sources, reading its model and its classification (of which loading the model), ctl's
  master results, and the rest (commit).

The work counts of every batch are kept (what the smoke test checks): new detections and
sources, sources crossmatched with SIMBAD and with counterparts, and per family the sources
classified and results written.
"""

from __future__ import annotations

import time

from sqlalchemy import text

from benchmarks.common import Stopwatch, row

#: The order of the steps in the table (publish's inner steps follow as ``publish: ...``).
STEPS = ("ingest", "simbad", "counterparts", "refit_decision", "publish")
#: Inner steps timed inside another one (a family's model load is part of its
#: "classify and write").
NESTED = ": load model"


def prepare(engine, sample, cfg) -> dict:
    """Counterparts of every source, every enabled source family refitted and promoted."""
    from benchmarks.bench_pipeline import vacuum_analyze
    from ingest.sample_counterparts import SampleCounterparts
    from pipeline import families
    from pipeline.classify import publish
    from pipeline.counterparts import ingest_counterparts

    sw = Stopwatch()
    with sw.lap("counterparts"):
        cp = ingest_counterparts(
            engine, SampleCounterparts(sample, cfg.counterpart_density_radius_arcsec), cfg,
            refresh_days=None)
    promote = {}
    for fam in families.source_families(cfg):
        with sw.lap(f"refit {fam}"):
            fit = families.refit_family(engine, cfg, fam)
        if not fit.promote:
            raise RuntimeError(f"benchmark: the {fam} model was not promoted: {fit.reason}")
        promote[fam] = fit.model_id
    with sw.lap("publish"):
        rel = publish(engine, cfg, promote_families=promote)
    with sw.lap("vacuum_analyze"):
        vacuum_analyze(engine)
    return {"laps": sw.laps, "counterparts": cp.counterparts,
            "families": (rel.counts.get("families") if rel else {})}


def increment(engine, fake, cfg, until: float) -> dict:
    """One ``update`` of the ObsIDs before ``until`` (MJD): seconds per step, work counts."""
    from ingest.counterparts import CounterpartXMatch
    from ingest.csc_tap import CscTapClient
    from ingest.simbad import SimbadXMatch
    from pipeline import families
    from pipeline.classify import needs_refit, publish
    from pipeline.counterparts import ingest_counterparts
    from pipeline.ingest import ingest_csc, ingest_simbad
    from pipeline.timing import recording

    laps: dict[str, float] = {}

    def lap(name, fn):
        t0 = time.perf_counter()
        out = fn()
        laps[name] = time.perf_counter() - t0
        return out

    tap = CscTapClient(fake.tap_url, chunk_size=cfg.csc_chunk_obsids, backoff=0.001)
    csc = lap("ingest", lambda: ingest_csc(engine, tap, until=until))
    sim = lap("simbad", lambda: ingest_simbad(
        engine, SimbadXMatch(fake.xmatch_url, radius_arcsec=cfg.simbad_radius_arcsec,
                             backoff=0.001), refresh_days=cfg.simbad_refresh_days))
    cp = lap("counterparts", lambda: ingest_counterparts(
        engine, CounterpartXMatch(fake.xmatch_url,
                                  radius_arcsec=cfg.counterpart_density_radius_arcsec,
                                  backoff=0.001),
        cfg, refresh_days=cfg.counterpart_refresh_days))
    refit, why = lap("refit_decision", lambda: (
        needs_refit(engine, cfg), families.needs_family_refit(engine, cfg)))
    with recording() as inner:
        rel = lap("publish", lambda: publish(engine, cfg))
    inner["other (transaction, models, commit)"] = laps["publish"] - sum(
        v for k, v in inner.items() if not k.endswith(NESTED))
    counts = {"new_detections": csc.new_detections, "new_sources": csc.new_sources,
              "simbad_sources": sum(sim.simbad.get(k, 0) for k in ("new", "changed",
                                                                     "unchanged")),
              "counterpart_sources": cp.counterparts.get("sources", 0),
              "refit": bool(refit[0]), "refit_reason": refit[1], "family_refits": why,
              "detections_classified": rel.detections_classified if rel else 0,
              "sources_rebuilt": rel.sources_rebuilt if rel else 0,
              "families": (rel.counts.get("families") if rel else {})}
    with engine.connect() as conn:
        counts["catalog_detections"] = conn.execute(
            text("SELECT count(*) FROM catalog.csc_detection")).scalar_one()
        counts["sources_of_new_detections"] = conn.execute(text(
            "SELECT count(DISTINCT source_id) FROM catalog.csc_detection "
            "WHERE ingest_run_id = :r"), {"r": csc.run_id}).scalar_one()
        if rel is not None:
            counts["family_rows_written"] = dict(conn.execute(text(
                "SELECT family, count(*) FROM catalog.family_source_result "
                "WHERE valid_from = :r GROUP BY family"), {"r": rel.catalog_version}).all())
    laps.update({f"publish: {k}": v for k, v in inner.items()})
    return {"seconds": sum(laps[s] for s in STEPS), "laps": laps, "counts": counts}


def run_on(engine, sample, cuts: list[float], cfg, n_detections: int, log=print,
           prepared: bool = False, on_prepared=None) -> list[dict]:
    """:func:`prepare`, then one :func:`increment` per cut; the figure and one row per step.

    ``prepared``: the catalog is already prepared (a copy kept by an earlier run), so
    :func:`prepare` is skipped. ``on_prepared(engine)``: called after :func:`prepare`, before
    the increments; returns the engine to go on with (the benchmark's ``--keep`` copies the
    prepared catalog there)."""
    from ingest.fake_services import FakeServices

    if prepared:
        prep = {"laps": {}, "reused": True}
        log(f"all families n={n_detections:,}: reusing the kept prepared catalog")
    else:
        prep = prepare(engine, sample, cfg)
        log(f"all families n={n_detections:,}: " + " ".join(
            f"{k}={v:.1f}" for k, v in prep["laps"].items()))
        if on_prepared is not None:
            engine = on_prepared(engine)
    with FakeServices(sample) as fake:
        t0 = time.perf_counter()
        fake.index_catalogues()  # the services' own start-up, not the update's work
        prep["laps"]["fake services: index catalogues"] = time.perf_counter() - t0
        incs = [increment(engine, fake, cfg, c) for c in cuts]
    for i in incs:
        log(f"incremental all families into n={n_detections:,}: {i['seconds']:.2f} s "
            + " ".join(f"{k}={v:.3f}" for k, v in i["laps"].items()))
    rows = [row("incremental_all_families", "s", n_detections, [i["seconds"] for i in incs],
                breakdown_s=[i["laps"] for i in incs], work=[i["counts"] for i in incs],
                prepare_s=prep["laps"], prefect="excluded",
                note="ingest + simbad + counterparts + refit decision + publish, every "
                     "family, services on loopback (issue 11: <= 5 s at 1M; issue 14: <= 2 s)")]
    names = list(dict.fromkeys(k for i in incs for k in i["laps"]))
    for name in names:
        rows.append({**row(f"incremental_step {name}", "s", n_detections,
                           [i["laps"].get(name, 0.0) for i in incs]), "step_of":
                     "incremental_all_families"})
    return rows


__all__ = ["STEPS", "increment", "prepare", "run_on"]
