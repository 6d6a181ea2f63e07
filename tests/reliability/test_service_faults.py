"""Service faults during ``ingest csc`` (issue 13): the loopback fake TAP answering 5xx,
hanging, truncating, malforming or schema-drifting its VOTables, OVERFLOW, a dropped
connection, a query error. Retries are bounded, the error is one clear line, and no chunk is
ever stored partially: what is stored is exactly the complete chunks before the fault.
"""

from __future__ import annotations

import logging

import pandas as pd
import pytest
from sqlalchemy import Engine, text

from db.csc_columns import NOT_FROM_TAP
from db.settings import Settings
from ingest import IngestError
from ingest.columns import conform
from ingest.csc_tap import CscTapClient
from ingest.fake_services import FakeServices
from ingest.sample import Sample, generate_sample
from pipeline.ingest import ingest_csc

TABLES = ("ingest_run", "observation", "rejected_row", "csc_source", "csc_detection")
KEY = ["name", "obsid", "obi", "region_id"]
CHUNK = 6
#: mode, injected how often (None: every request from the 3rd on), retried?
FAULTS = {
    "HTTP 503": ("status", 503, None, True),
    "HTTP 500 once": ("status", 500, 1, True),
    "HTTP 429 twice": ("status", 429, 2, True),
    "hang past the timeout": ("status", 200, None, True),  # hang=, see below
    "slow answers within the timeout": ("slow", 200, None, True),
    "truncated VOTable": ("truncate", 200, None, True),
    "truncated VOTable once": ("truncate", 200, 1, True),
    "malformed VOTable": ("malformed", 200, None, True),
    "schema drift": ("drift", 200, None, False),
    "OVERFLOW on every answer": ("overflow", 200, None, False),
    "QUERY_STATUS ERROR": ("error", 200, None, False),
    "connection dropped": ("close", 200, None, True),
}


@pytest.fixture(scope="module")
def sample() -> Sample:
    return generate_sample(80, seed=3)


@pytest.fixture
def fake(sample):
    """The fake publishing only the first ~15 observed ObsIDs (three chunks), to stay quick."""
    first = sample.detections.groupby("obsid")["gti_mjd_obs"].min().sort_values()
    obs = sample.observations.set_index("obsid")
    with FakeServices(sample, now=obs.loc[first.index[14], "obs_date"]) as fs:
        yield fs


def _clean(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.exec_driver_sql("TRUNCATE " + ", ".join(f"catalog.{t}" for t in TABLES)
                             + " RESTART IDENTITY CASCADE")


def _expected(sample: Sample, obsids: set[int]) -> pd.DataFrame:
    det = sample.detections
    det = det[(det["flux_significance_b"] > 5) & det["powlaw_gamma"].notna()
              & det["bb_kt"].notna() & det["obsid"].isin(obsids)]
    return conform(det.drop(columns=list(NOT_FROM_TAP))).sort_values(KEY, ignore_index=True)


def _stored(engine: Engine) -> tuple[pd.DataFrame, set[int], list]:
    cols = ", ".join(["s.name", "s.ra", "s.dec", "s.err_ellipse_r0", "s.significance",
                      "s.likelihood_class", "d.*"])
    with engine.connect() as conn:
        det = pd.read_sql_query(text(f"SELECT {cols} FROM catalog.csc_detection d JOIN "
                                     "catalog.csc_source s USING (source_id)"), conn)
        covered = set(conn.execute(text("SELECT obsid FROM catalog.observation")).scalars())
        runs = conn.execute(text("SELECT status, message FROM catalog.ingest_run")).all()
    return conform(det).sort_values(KEY, ignore_index=True), covered, runs


def _client(fake, settings: Settings, **kw) -> CscTapClient:
    return CscTapClient.from_settings(settings.model_copy(update={"csc_tap_url": fake.tap_url}),
                                      backoff=0.001, sleep=lambda s: None, **kw)


@pytest.mark.parametrize("fault", FAULTS)
def test_service_fault(engine, sample, fake, fault, record, caplog):
    mode, status, times, retried = FAULTS[fault]
    _clean(engine)
    attempts = 3
    settings = Settings(csc_tap_timeout_s=0.5, csc_tap_attempts=attempts,
                        csc_chunk_obsids=CHUNK)
    slow = fault == "slow answers within the timeout"
    hang = 1.2 if fault == "hang past the timeout" else 0.3 if slow else 0.0
    published = set(CscTapClient(fake.tap_url).list_observations()["obsid"])
    want_all = _expected(sample, published)
    assert len(published) > 2 * CHUNK
    fake.log.clear()
    fake.fail(after=2, status=status, times=times, hang=hang, prefix="/tap/sync", mode=mode)
    client = _client(fake, settings, heartbeat=0.2)
    caplog.set_level(logging.INFO)
    error = None
    try:
        summary = ingest_csc(engine, client)
    except IngestError as exc:
        error = str(exc)
    except Exception as exc:  # noqa: BLE001 - anything else is the defect we look for
        assert record("service faults", fault, False, f"{type(exc).__name__}: {exc}"), exc
    stored, covered, runs = _stored(engine)
    # never a partial chunk: what is stored is exactly the detections of the covered ObsIDs
    exact = stored.equals(_expected(sample, covered))
    queries = len(fake.requests("/tap/sync"))
    transient = (times is not None and times < attempts) or slow
    if transient:
        held = error is None and exact and stored.equals(want_all) \
            and summary.status == "completed"
        detail = f"error={error}" if error else ""
    else:
        one_line = error is not None and "\n" not in error and fake.tap_url in error
        if mode == "overflow":  # split in halves down to one ObsID, then a clear error
            bounded = "overflows the row limit on its own" in error and queries <= 2 + CHUNK
        else:  # the list, one good chunk, then the failing one: once, or every attempt
            bounded = queries == 2 + (attempts if retried else 1)
        held = (one_line and bounded and exact and len(covered) == CHUNK
                and runs[0][0] == "failed")
        detail = f"error={error!r} queries={queries} covered={len(covered)}"
    if hang:  # the wait is said, with what is awaited
        held = held and any("still waiting for detections" in r.getMessage()
                            for r in caplog.records)
    assert record("service faults", fault, held, detail), detail


def test_settings_reach_the_client():
    c = CscTapClient.from_settings(Settings(csc_tap_timeout_s=7.5, csc_tap_attempts=2,
                                            csc_chunk_obsids=9))
    assert (c.timeout, c.retries, c.chunk_size, c._session.timeout) == (7.5, 1, 9, 7.5)
    with pytest.raises(ValueError):
        Settings(csc_tap_attempts=0)
