"""The web explorer's figures (issue 12), with targets:

* page response ≤ 200 ms at 1M detections for a source page and a 1′ cone search: a catalog
  of ``--detections`` built by the full pipeline (``bench_pipeline.build``), served by uvicorn
  on loopback as ``cscat web`` serves it (the read-only role, figures warmed), timed on the
  client (request to last byte, httpx, one warm-up then ``--repeat`` runs). The source pages
  are the source with the most detections (the worst case) and a median one; the cones are
  centred on sources spread over the catalog.
* the sky map draws 400,000 sources in ≤ 3 s: headless Chromium (Debian's ``chromium``),
  synthetic sources (rasterised by the server), from navigation start to the map drawn
  (``window.skymapReady``),
  ``--browser-runs`` page loads in one browser.

    python benchmarks/bench_web.py [--detections 1000000] [--repeat 20] [--browser-runs 3]
                                   [--out benchmarks/results/web.json] [--keep DIR]
                                   [--no-families] [--no-counterparts]

The catalog also gets the source families and counterparts (the source page shows them);
``--keep DIR`` keeps the built catalog and a later run resumes or reuses it. Each figure's
JSON keeps what the timed answer held (``work``) and, for the cone, whether its plan uses
the position index of migration 0010.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import browser  # noqa: E402
from benchmarks.common import (  # noqa: E402
    RESULTS,
    BenchServer,
    machine,
    markdown,
    row,
    table,
    with_target,
    write_json,
)

PAGE_TARGET_MS = 200.0
SKYMAP_TARGET_S = 3.0
SKY_POINTS = 400_000


def _client_ms(client, url: str, repeat: int) -> tuple[list[float], str]:
    """Milliseconds of ``repeat`` requests (after one warm-up) and the last answer's text."""
    r = client.get(url)  # warm-up
    r.raise_for_status()
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        r = client.get(url)
        _ = r.content
        out.append((time.perf_counter() - t0) * 1000)
        r.raise_for_status()
    return out, r.text


def _work(figure: str, body: str) -> dict:
    """What the answer held: a source page's family rows, counterpart rows and detection
    rows; a cone page's source rows; a CSV's data lines."""
    if figure.startswith("web_source_page"):
        return {"family_rows": body.count('<tr data-family="'),
                "counterpart_rows": body.count('<tr class="cp-row'),
                "family_charts_shown": len(re.findall(
                    r'class="family-chart" data-family="\w+" >', body))}
    if figure.endswith("_csv"):
        return {"rows": max(0, len(body.strip().splitlines()) - 1)}
    return {"rows": body.count('class="source-link"')}


def cone_plan(engine, ra: float, dec: float, radius_deg: float) -> dict:
    """Does PostgreSQL plan the explorer's and the cone search's 1' cone through the
    position index (migration 0010)? The plans' first lines are kept."""
    from sqlalchemy import text

    from db import vo
    from db import web_queries as q

    sql, params = q.search_sql(q.Search(ra=ra, dec=dec, radius_deg=radius_deg), limit=50)
    scs, _, _ = vo._cone_select(2, False)
    with engine.connect() as conn:
        web = [r[0] for r in conn.execute(text("EXPLAIN " + sql), params)]
        raw = conn.connection.driver_connection
        cur = raw.cursor()
        cur.execute("EXPLAIN " + scs, {"ra": ra, "dec": dec, "sr": radius_deg})
        vo_plan = [r[0] for r in cur.fetchall()]
        cur.close()
    return {"web_search_uses_index": any("ix_csc_source_dec_ra" in ln for ln in web),
            "scs_uses_index": any("ix_csc_source_dec_ra" in ln for ln in vo_plan),
            "web_search_plan": web[:12], "scs_plan": vo_plan[:12]}


def pages(engine, n_detections: int, repeat: int, log=print) -> list[dict]:
    """Response times of source pages and 1′ cones on ``engine``'s catalog."""
    import httpx
    from sqlalchemy import text

    from db import engine as dbe
    from web.app import create_app, warm
    from web.render import source_url

    with engine.connect() as conn:
        worst = conn.execute(text(
            "SELECT name FROM catalog.source_class ORDER BY n_detections DESC, name LIMIT 1"
        )).scalar_one()
        median = conn.execute(text(
            "SELECT name FROM catalog.source_class ORDER BY n_detections, name "
            "OFFSET (SELECT count(*) / 2 FROM catalog.source_class) LIMIT 1")).scalar_one()
        centres = conn.execute(text(
            "SELECT ra, dec FROM catalog.source_class ORDER BY source_id "
            "OFFSET (SELECT count(*) / 3 FROM catalog.source_class) LIMIT 1")).all()
        n_sources = conn.execute(text("SELECT count(*) FROM catalog.source_class")).scalar()
        n_det_worst = conn.execute(text(
            "SELECT n_detections FROM catalog.source_class WHERE name = :n"), {"n": worst}
        ).scalar()
    url = engine.url.render_as_string(hide_password=False)
    os.environ["CSCAT_DATABASE_URL"] = url
    dbe.reset()
    app = create_app()
    warm(app)
    rows = []
    try:
        with browser.live_server(app) as base, httpx.Client(base_url=base, timeout=60) as c:
            cases = {
                "web_source_page_most_detections": (source_url(worst), {
                    "source": worst, "source_detections": n_det_worst}),
                "web_source_page_median_source": (source_url(median), {"source": median}),
            }
            for ra, dec in centres:
                cases["web_cone_1arcmin"] = (
                    f"/search?ra={ra:.6f}&dec={dec:.6f}&radius=1", {"ra": ra, "dec": dec})
                cases["web_cone_1arcmin_download_csv"] = (
                    f"/search/download?ra={ra:.6f}&dec={dec:.6f}&radius=1&format=csv", {})
            plan = cone_plan(engine, centres[0][0], centres[0][1], 1 / 60)
            log(f"1' cone planned through ix_csc_source_dec_ra: web search "
                f"{plan['web_search_uses_index']}, /scs {plan['scs_uses_index']}")
            for figure, (path, extra) in cases.items():
                ms, body = _client_ms(c, path, repeat)
                log(f"{figure:<40} median {statistics.median(ms):8.1f} ms  {path}")
                if figure == "web_cone_1arcmin":
                    extra = {**extra, "plan": plan}
                rows.append(with_target(row(figure, "ms", n_detections, ms, path=path,
                                            catalog_sources=n_sources,
                                            work=_work(figure, body), **extra),
                                        "<=", PAGE_TARGET_MS))
    finally:
        app.state.engine.dispose()
    return rows


def skymap(runs: int, log=print) -> list[dict]:
    """The sky map with 400,000 synthetic sources in headless Chromium (the app's
    ``sky_points`` hook; the page itself reads the configured catalog)."""
    reason = browser.missing()
    if reason:
        log(f"sky map: skipped ({reason})")
        return []
    from web.app import create_app, warm

    app = create_app()
    warm(app)
    app.state.sky_points = browser.synthetic_sky(SKY_POINTS)
    readies = []
    with browser.live_server(app) as base, browser.chromium() as driver:
        for _ in range(runs):
            readies.append(browser.skymap_render(driver, base, timeout=300))
        errors = browser.console_errors(driver)
    app.state.engine.dispose()
    secs = [r["total_ms"] / 1000 for r in readies]
    cpu = [r["browser_cpu_s"] for r in readies]
    log(f"sky map {SKY_POINTS:,} points: median {statistics.median(secs):.2f} s "
        f"({', '.join(f'{s:.2f}' for s in secs)}), browser CPU median "
        f"{statistics.median(cpu):.2f} s; load average {os.getloadavg()[0]:.1f}; "
        f"console errors: {len(errors)}")
    return [with_target(row("web_skymap_render", "s", SKY_POINTS, secs,
                            fetch_s=[r["fetch_ms"] / 1000 for r in readies],
                            draw_s=[r["draw_ms"] / 1000 for r in readies],
                            load_average=os.getloadavg(),
                            console_errors=errors), "<=", SKYMAP_TARGET_S),
            row("web_skymap_browser_cpu", "s", SKY_POINTS, cpu)]


def build(server, n_detections: int, log=print, reuse: bool = False,
          families: bool = True, counterparts: bool = True):
    """The catalog of ``n_detections`` (the sample generator's, seed 6) as the pipeline
    benchmark builds it (``bench_pipeline.build``: ingest, SIMBAD, refit, publish), then the
    source families fitted and published (unless not ``families``), then counterparts
    (Gaia/2MASS/AllWISE from the sample's catalogues), so the source pages show families and
    counterparts (unless not ``counterparts``). ``reuse``: a database of that size left by an
    earlier run (``--keep``) is kept, and only the steps it lacks are run. Returns (engine,
    seconds, what was done)."""
    from sqlalchemy import text

    from benchmarks import bench_pipeline
    from ingest.sample import generate_sample
    from ingest.sample_counterparts import SampleCounterparts
    from pipeline.counterparts import ingest_counterparts

    name = f"bench_web_{n_detections}"
    cfg = bench_pipeline.settings()
    engine = server.existing(name) if reuse else None
    have = {"release": False, "families": False, "counterparts": False}
    if engine is not None:
        with engine.connect() as conn:
            have = dict(conn.execute(text(
                "SELECT EXISTS (SELECT 1 FROM catalog.release) AS release, "
                "EXISTS (SELECT 1 FROM catalog.fitted_model WHERE family <> 'ctl' "
                "AND status = 'active') AS families, "
                "EXISTS (SELECT 1 FROM catalog.ingest_run WHERE kind = 'counterparts' "
                "AND status = 'completed') AS counterparts")).mappings().one())
        if have["release"]:
            log(f"reusing the catalog of {n_detections:,} detections in {name}: {have}")
    sample = generate_sample(n_detections=n_detections, seed=6)
    done: dict = {"reused": dict(have)}
    t0 = time.perf_counter()
    if not have["release"]:
        if engine is not None:
            engine.dispose()
        engine = server.database(name)
        b = bench_pipeline.build(engine, sample,
                                 until=float(sample.detections["gti_mjd_obs"].max()) + 1)
        done["laps"] = b["laps"]
        log(f"pipeline build of {n_detections:,} detections: {b['seconds']:.0f} s "
            + " ".join(f"{k}={v:.0f}" for k, v in b["laps"].items()))
    if families and not have["families"]:
        tf = time.perf_counter()
        done["families"] = refit_families(engine, cfg, log)
        done["families_s"] = time.perf_counter() - tf
    if counterparts and not have["counterparts"]:
        tc = time.perf_counter()
        done["counterparts"] = ingest_counterparts(engine, SampleCounterparts(sample), cfg,
                                                   refresh_days=None).counterparts
        bench_pipeline.vacuum_analyze(engine)
        done["counterparts_s"] = time.perf_counter() - tc
        log(f"counterparts: {done['counterparts_s']:.0f} s {done['counterparts']}")
    secs = time.perf_counter() - t0
    log(f"catalog of {n_detections:,} detections ready ({secs:.0f} s this run)")
    return engine, secs, done


def refit_families(engine, settings, log=print) -> dict:
    """Fit every source family (muwclass, claxboi, gbm) and publish them as the next
    catalog version, as ``cscat update`` does after its first refit."""
    from pipeline import families
    from pipeline.classify import publish

    fitted = {}
    for f in families.source_families(settings):
        t0 = time.perf_counter()
        fitted[f] = families.refit_family(engine, settings, f)
        log(f"  refit {f}: {time.perf_counter() - t0:.0f} s, promote={fitted[f].promote}")
    rel = publish(engine, settings, promote_families={
        f: r.model_id for f, r in fitted.items() if r.promote})
    return {f: {"model_id": r.model_id, "promoted": r.promote, "reason": r.reason}
            for f, r in fitted.items()} | {"release": rel.catalog_version if rel else None}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--detections", type=int, default=1_000_000)
    p.add_argument("--repeat", type=int, default=20)
    p.add_argument("--browser-runs", type=int, default=3)
    p.add_argument("--out", type=Path, default=RESULTS / "web.json")
    p.add_argument("--only", choices=["pages", "skymap"], default=None,
                   help="run one part (the sky map still needs a catalog: use a small one)")
    p.add_argument("--keep", type=Path, default=None, metavar="DIR",
                   help="keep the embedded server's data in DIR and reuse a catalog of the "
                        "same size built there by an earlier run (the 1M build is long)")
    p.add_argument("--no-families", action="store_true",
                   help="do not fit the source families (their refit at 1M takes long)")
    p.add_argument("--no-counterparts", action="store_true",
                   help="do not match counterparts (the sample's catalogues at 1M are large)")
    args = p.parse_args(argv)

    rows: list[dict] = []
    with BenchServer(keep=args.keep) as server:
        engine, secs, built = build(server, args.detections, reuse=args.keep is not None,
                                    families=not args.no_families,
                                    counterparts=not args.no_counterparts)
        if args.only != "skymap":
            rows += pages(engine, args.detections, args.repeat)
            if rows:
                rows[0]["catalog_build"] = {"seconds": secs, **built}
        else:
            from db import engine as dbe

            os.environ["CSCAT_DATABASE_URL"] = engine.url.render_as_string(hide_password=False)
            dbe.reset()
        if args.only != "pages":
            rows += skymap(args.browser_runs)
    print(table(rows))
    write_json(args.out, {"machine": machine(), "load_average": os.getloadavg(),
                          "figures": rows})
    args.out.with_suffix(".md").write_text(markdown(rows) + "\n")
    print(f"written {args.out}")
    return 0 if all(r.get("target", {}).get("hit", True) for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
