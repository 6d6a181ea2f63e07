"""Concurrent ingest writers (issue 13, "lock every writer").

Two ``ingest csc`` at once used to end in a raw UniqueViolation (both fetched the same new
ObsIDs and both recorded them). Every ingest writer now holds the ingest advisory lock: the
second waits, says so, and then finds nothing left to fetch; with ``wait=False`` it is refused
with one line. The catalog update flow holds the update lock (another key) while it runs the
ingest steps, so ingest inside an update does not deadlock.
"""

from __future__ import annotations

import logging
import threading

import pytest
from sqlalchemy import Engine, text

from db.catalog_store import update_lock
from db.ingest_store import ingest_lock
from ingest import IngestError
from ingest.csc_tap import CscTapClient
from ingest.fake_services import FakeServices
from ingest.files import write_table
from ingest.sample import generate_sample
from pipeline.ingest import ingest_csc, ingest_frame

TABLES = ("ingest_run", "observation", "rejected_row", "csc_source", "csc_detection")


@pytest.fixture(scope="module")
def sample():
    return generate_sample(40, seed=9)


def _clean(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.exec_driver_sql("TRUNCATE " + ", ".join(f"catalog.{t}" for t in TABLES)
                             + " RESTART IDENTITY CASCADE")


def _counts(engine: Engine) -> dict:
    with engine.connect() as conn:
        return dict(conn.execute(text(
            "SELECT (SELECT count(*) FROM catalog.csc_detection) AS det, "
            "(SELECT count(DISTINCT (source_id, obsid, obi, region_id)) "
            " FROM catalog.csc_detection) AS keys, "
            "(SELECT count(*) FROM catalog.observation) AS obs, "
            "(SELECT count(*) FROM catalog.ingest_run WHERE status = 'completed') AS ok"
        )).mappings().one())


def test_concurrent_ingest_csc_are_serialised(engine, sample, record, caplog):
    _clean(engine)
    caplog.set_level(logging.WARNING)
    with FakeServices(sample) as fs:
        fs.fail(after=0, times=None, hang=0.05, prefix="/tap/sync", mode="slow")
        n_obs = len(CscTapClient(fs.tap_url).list_observations())
        errors: list[BaseException] = []
        summaries = []

        def run() -> None:
            try:
                client = CscTapClient(fs.tap_url, chunk_size=8, retries=0)
                summaries.append(ingest_csc(engine, client))
            except BaseException as exc:  # noqa: BLE001 - what we look for
                errors.append(exc)

        threads = [threading.Thread(target=run) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
    c = _counts(engine)
    new = sorted(s.new_detections for s in summaries)
    waited = any("another ingest is running" in r.getMessage() for r in caplog.records)
    held = (not errors and len(summaries) == 4 and c["det"] == c["keys"] and c["obs"] == n_obs
            and c["ok"] == 4 and new[:3] == [0, 0, 0] and new[3] == c["det"] and waited)
    assert record("concurrency", "4 ingest csc at once", held,
                  f"errors={errors!r} counts={c} new={new} waited={waited}"), (errors, c)


def test_a_refused_ingest_says_why(engine, sample, tmp_path, record):
    _clean(engine)
    path = write_table(sample.detections.head(5), tmp_path / "d.csv")
    from ingest.files import read_table

    with ingest_lock(engine, "a test holding the lock"):
        with pytest.raises(IngestError) as err:
            ingest_frame(engine, read_table(path), kind="file", origin=str(path), wait=False)
    msg = str(err.value)
    held = msg.startswith("another ingest is running (server pid ") and "\n" not in msg \
        and _counts(engine)["det"] == 0
    assert record("concurrency", "ingest refused while another runs (no --wait)", held, msg)


def test_ingest_inside_an_update_does_not_deadlock(engine, sample, tmp_path, record):
    _clean(engine)
    path = write_table(sample.detections.head(5), tmp_path / "d.parquet")
    from ingest.files import read_table

    done = threading.Event()

    def run() -> None:
        with update_lock(engine):  # as flows/catalog.py does around the ingest steps
            ingest_frame(engine, read_table(path), kind="file", origin=str(path))
        done.set()

    t = threading.Thread(target=run, daemon=True)
    t.start()
    held = done.wait(60)
    assert record("concurrency", "ingest while holding the update lock", held), "deadlock"
