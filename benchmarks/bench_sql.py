"""Latency of the README's example queries on a built catalog.

Runs on the catalog the end-to-end benchmark built (full build + incremental versions), after
``VACUUM ANALYZE`` (what autovacuum does after a bulk load; it makes index-only scans
possible). Each query: one warm-up, then ``repeat`` timed runs; a run is execute + fetch of
every row through psycopg, measured on the client. The plan (``EXPLAIN ANALYZE``) of one run
is kept in the JSON.
"""

from __future__ import annotations

import time

import psycopg

from benchmarks.common import row


def queries(name: str) -> dict[str, str]:
    """The README's example queries; ``name`` is the source used by the one-source ones."""
    lit = "'" + name.replace("'", "''") + "'"
    return {
        "sql_current_class_of_one_source": (
            "SELECT name, adopted_class, label_origin, master_class, ambiguous, n_detections "
            f"FROM catalog.source_class WHERE name = {lit}"),
        "sql_class_above_probability": (
            "SELECT name, ra, dec, mean_yso + mean_ttau + mean_orion_v AS p_young "
            "FROM catalog.source_class WHERE label_origin = 'model' "
            "AND agg_adopted_class = 'YSO' AND mean_yso + mean_ttau + mean_orion_v > 0.9 "
            "ORDER BY p_young DESC"),
        "sql_as_of_version_one_source": (
            "SELECT name, adopted_class, label_origin, valid_from, valid_to "
            f"FROM catalog.source_class_as_of(1) WHERE name = {lit}"),
        "sql_as_of_version_class_counts": (
            "SELECT agg_adopted_class, sum(n_sources) FROM catalog.class_counts_as_of(1) "
            "GROUP BY 1"),
        "sql_class_changes_between_versions": "SELECT * FROM catalog.class_changes(1, 2)",
        "sql_detection_probabilities_of_one_source": (
            "SELECT obsid, cluster, predicted_class, p_qso, p_agn, p_yso "
            f"FROM catalog.detection_class WHERE name = {lit} ORDER BY obsid"),
    }


def _url(engine) -> str:
    return engine.url.set(drivername="postgresql").render_as_string(hide_password=False)


def measure(engine, size: int, repeat: int = 7, log=print) -> list[dict]:
    """Time every example query on ``engine``'s catalog (``size``: its detections)."""
    url = _url(engine)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
        # A source seen in many observations (the one-source queries' worst case).
        name = conn.execute(
            "SELECT s.name FROM catalog.csc_source s JOIN catalog.csc_detection d "
            "USING (source_id) GROUP BY s.name ORDER BY count(*) DESC, s.name LIMIT 1"
        ).fetchone()[0]
        versions = conn.execute("SELECT max(release_id) FROM catalog.release").fetchone()[0]
        n_sources = conn.execute("SELECT count(*) FROM catalog.csc_source").fetchone()[0]
        rows = []
        for figure, sql in queries(name).items():
            conn.execute(sql).fetchall()  # warm-up
            secs, n_rows = [], 0
            for _ in range(repeat):
                t0 = time.perf_counter()
                n_rows = len(conn.execute(sql).fetchall())
                secs.append(time.perf_counter() - t0)
            plan = [r[0] for r in conn.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql)]
            ms = [s * 1000 for s in secs]
            log(f"{figure:<44} median {sorted(ms)[len(ms) // 2]:8.2f} ms  rows {n_rows}")
            rows.append(row(figure, "ms", size, ms, sql=sql, rows_returned=n_rows,
                            catalog_versions=versions, catalog_sources=n_sources, plan=plan))
    return rows
