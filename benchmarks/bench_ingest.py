"""Ingest throughput: a local Parquet file of detections into an empty catalog, and a second
file (later ObsIDs, a fifth of the size, many of its sources already known) into the catalog
the first one built, rows/s.

The file is the sample generator's detections written with ``ingest.files.write_table``.
One run = ``read_table`` (Parquet -> stored columns) + ``ingest_frame`` (validate, derive
features, COPY into a staging table, set-based INSERT of sources and detections) in a fresh
database, in one transaction, as ``cscat ingest FILE`` does. Reported: end-to-end rows/s
(rows of the file / wall seconds), and the COPY-and-insert part alone (``load_detections``
on the already validated frame, timed separately in each run).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from benchmarks.common import BenchServer, row


def _one(server: BenchServer, path: Path, n_rows: int, i: int,
         more: Path | None = None) -> dict:
    from classifier import derive_features
    from db.load import load_detections
    from ingest.files import read_table
    from ingest.validate import validate_detections
    from pipeline.ingest import ingest_frame

    engine = server.database(f"bench_ingest_{i}")
    try:
        t0 = time.perf_counter()
        frame = read_table(path)
        t_read = time.perf_counter() - t0
        summary = ingest_frame(engine, frame, kind="file", origin=str(path))
        total = time.perf_counter() - t0
        extra = {}
        if more is not None:  # into the catalog that now holds the first file
            t2 = time.perf_counter()
            later = ingest_frame(engine, read_table(more), kind="file", origin=str(more))
            extra = {"more_s": time.perf_counter() - t2,
                     "more_new_detections": later.new_detections}
        # The database part alone: COPY + INSERT ... SELECT of an already validated frame.
        good = derive_features(validate_detections(frame).good)
        server.drop(engine)
        engine = server.database(f"bench_ingest_{i}")
        from db.ingest_store import start_run

        run_id = start_run(engine, "file", str(path))
        t1 = time.perf_counter()
        with engine.begin() as conn:
            counts = load_detections(conn, good, run_id)
        t_copy = time.perf_counter() - t1
    finally:
        server.drop(engine)
    assert summary.new_detections == counts.new_detections
    return {"seconds": total, "read_s": t_read, "copy_insert_s": t_copy,
            "new_detections": summary.new_detections, "rows": n_rows, **extra}


def run(sizes, repeat: int = 3, server: BenchServer | None = None, log=print) -> list[dict]:
    from ingest.files import write_table
    from ingest.sample import generate_sample

    own = server is None
    server = server or BenchServer()
    rows: list[dict] = []
    try:
        for n in sizes:
            det = generate_sample(n_detections=n + n // 5, seed=7).detections
            det = det.sort_values("obsid", kind="stable", ignore_index=True)
            first, later = det.iloc[:n], det.iloc[n:]
            later = later[~later["obsid"].isin(first["obsid"])]  # whole observations only
            with tempfile.TemporaryDirectory(prefix="cscat-bench-ingest-") as tmp:
                path = write_table(first.reset_index(drop=True), Path(tmp) / "detections.parquet")
                more = write_table(later.reset_index(drop=True), Path(tmp) / "more.parquet")
                n_rows, n_bytes = len(first), path.stat().st_size
                runs = [_one(server, path, n_rows, i, more) for i in range(repeat)]
            for r in runs:
                log(f"ingest parquet n={n_rows:,}: {r['seconds']:.2f} s "
                    f"({n_rows / r['seconds']:,.0f} rows/s), read {r['read_s']:.2f} s, "
                    f"COPY+insert {r['copy_insert_s']:.2f} s; then {len(later):,} rows into "
                    f"that catalog: {r['more_s']:.2f} s ({len(later) / r['more_s']:,.0f} rows/s)")
            extra = {"file_rows": n_rows, "new_detections": runs[0]["new_detections"],
                     "file_bytes": n_bytes}
            rows.append(row("ingest_parquet_throughput", "rows/s", n,
                            [n_rows / r["seconds"] for r in runs],
                            seconds=[r["seconds"] for r in runs],
                            read_s=[r["read_s"] for r in runs], **extra))
            n_more = len(later)
            rows.append(row("ingest_parquet_into_existing_throughput", "rows/s", n,
                            [n_more / r["more_s"] for r in runs],
                            seconds=[r["more_s"] for r in runs], file_rows=n_more,
                            catalog_detections=runs[0]["new_detections"],
                            new_detections=runs[0]["more_new_detections"]))
            rows.append(row("ingest_copy_insert_throughput", "rows/s", n,
                            [n_rows / r["copy_insert_s"] for r in runs],
                            seconds=[r["copy_insert_s"] for r in runs], **extra))
        return rows
    finally:
        if own:
            server.stop()
