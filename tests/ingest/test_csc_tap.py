"""CscTapClient against the loopback fake TAP service."""

from __future__ import annotations

import re

import pandas as pd
import pytest

from db.csc_columns import NOT_FROM_TAP
from ingest import IngestError
from ingest.adql import Cuts, detections_query
from ingest.columns import STORED_NAMES, conform
from ingest.csc_tap import CscTapClient

KEY = ["name", "obsid", "obi", "region_id"]


def client(fake, **kw) -> CscTapClient:
    opts = {"chunk_size": 10, "maxrec": 5000, "retries": 2, "backoff": 0.001, "timeout": 5.0}
    return CscTapClient(fake.tap_url, **{**opts, **kw})


def passing(det: pd.DataFrame) -> pd.DataFrame:
    """The detections the paper's cuts keep, as the service delivers them (no det_ra/dec)."""
    ok = (det["flux_significance_b"] > 5) & det["powlaw_gamma"].notna() & det["bb_kt"].notna()
    return det[ok].drop(columns=list(NOT_FROM_TAP))


def sync_queries(fake) -> list[str]:
    return [p["QUERY"] for path, p in fake.requests("/tap/sync")]


def obsids_of(query: str) -> list[int]:
    return [int(x) for x in re.search(r"o\.obsid IN \(([\d, ]+)\)", query).group(1).split(",")]


def test_list_observations(fake, sample):
    obs = client(fake).list_observations()
    assert obs["obsid"].tolist() == sorted(sample.detections["obsid"].unique())
    assert list(obs.columns) == ["obsid", "gti_mjd_obs", "obs_date"]
    expected = sample.observations.set_index("obsid")["gti_mjd_obs"]
    assert obs.set_index("obsid")["gti_mjd_obs"].equals(expected.loc[obs["obsid"]])


def test_list_observations_until_a_date(fake, sample):
    obs = client(fake).list_observations(until="2010-06-30")
    assert len(obs) > 0
    assert (obs["obs_date"] <= pd.Timestamp("2010-06-30")).all()
    det = sample.detections_until("2010-06-30")
    assert obs["obsid"].tolist() == sorted(det["obsid"].unique())


def test_list_observations_pages_past_the_row_limit(fake, sample):
    fake.row_limit = 7
    obs = client(fake).list_observations()
    assert obs["obsid"].tolist() == sorted(sample.detections["obsid"].unique())
    assert len(sync_queries(fake)) > 5


def test_fetch_all_detections_with_the_cuts(fake, sample):
    ids = sample.observations["obsid"].tolist()
    seen: list[tuple[int, int]] = []
    got = client(fake).fetch_detections(ids, on_progress=lambda d, t: seen.append((d, t)))
    want = conform(passing(sample.detections))
    assert list(got.columns) == STORED_NAMES
    pd.testing.assert_frame_equal(got.sort_values(KEY, ignore_index=True),
                                  want.sort_values(KEY, ignore_index=True))
    assert len(got) < len(sample.detections)  # the cuts did something
    assert seen[-1] == (len(ids), len(ids)) and len(seen) == -(-len(ids) // 10)
    assert (got["match_type"] == "a").any()


def test_cuts_are_configurable(fake, sample):
    ids = sample.observations["obsid"].tolist()[:30]
    got = client(fake, cuts=Cuts(None, False, False)).fetch_detections(ids)
    assert len(got) == sample.detections["obsid"].isin(ids).sum()


def test_overflowing_chunk_is_split_in_halves(fake, sample):
    ids = sample.observations["obsid"].tolist()
    limit = int(passing(sample.detections)["obsid"].value_counts().max())
    fake.row_limit = limit
    chunks = list(client(fake, chunk_size=16).iter_chunks(ids))
    got = pd.concat([df for _, df in chunks], ignore_index=True)
    assert len(got) == len(passing(sample.detections))
    assert [i for part, _ in chunks for i in part] == sorted(ids)
    sizes = [len(obsids_of(q)) for q in sync_queries(fake)]
    assert 16 in sizes and 8 in sizes  # first chunk overflowed, then its halves were asked
    q = sync_queries(fake)
    first_split = sizes.index(8)
    assert obsids_of(q[first_split]) + obsids_of(q[first_split + 1]) == obsids_of(
        q[first_split - 1])
    assert all(len(df) <= limit for _, df in chunks)


def test_overflow_detected_from_maxrec_too(fake, sample):
    ids = sample.observations["obsid"].tolist()
    limit = int(passing(sample.detections)["obsid"].value_counts().max())
    chunks = list(client(fake, chunk_size=16, maxrec=limit + 1).iter_chunks(ids))
    assert sum(len(df) for _, df in chunks) == len(passing(sample.detections))


def test_single_obsid_overflow_is_an_error(fake, sample):
    counts = passing(sample.detections)["obsid"].value_counts()
    big = int(counts.index[0])
    fake.row_limit = int(counts.iloc[0]) - 1
    with pytest.raises(IngestError, match=rf"ObsID {big} overflows the row limit on its own"):
        list(client(fake).iter_chunks([big]))


def test_5xx_is_retried_then_succeeds(fake, sample):
    ids = sample.observations["obsid"].tolist()[:25]
    fake.fail(after=1, status=503, times=2, prefix="/tap/sync")
    sleeps: list[float] = []
    got = client(fake, retries=3, backoff=0.01, sleep=sleeps.append).fetch_detections(ids)
    assert len(got) == len(passing(sample.detections[sample.detections["obsid"].isin(ids)]))
    assert sleeps == [0.01, 0.02]  # exponential backoff
    assert len(sync_queries(fake)) == 3 + 2


def test_persistent_failure_raises_after_yielded_chunks(fake, sample):
    ids = sample.observations["obsid"].tolist()[:40]
    fake.fail(after=2, status=502, prefix="/tap/sync")
    it = client(fake, retries=2).iter_chunks(ids)
    first = [next(it), next(it)]
    assert [len(p) for p, _ in first] == [10, 10]
    with pytest.raises(IngestError) as err:
        next(it)
    msg = str(err.value)
    assert fake.tap_url in msg and "3 attempts" in msg and f"{ids[20]}..{ids[29]}" in msg
    assert "502" in msg


def test_timeout_is_retried(fake, sample):
    ids = sample.observations["obsid"].tolist()[:5]
    fake.fail(after=0, times=1, hang=1.0, prefix="/tap/sync")
    got = client(fake, timeout=0.3, chunk_size=5).fetch_detections(ids)
    assert len(got) == len(passing(sample.detections[sample.detections["obsid"].isin(ids)]))
    assert len(sync_queries(fake)) == 2


def test_bad_query_is_not_retried(fake):
    c = client(fake)
    with pytest.raises(IngestError, match="unsupported"):
        c._run("SELECT * FROM nothing", "bad query")
    assert len(sync_queries(fake)) == 1


def test_new_obsids_only_are_requested(fake, sample):
    fake.set_now("2012-12-31")
    c = client(fake)
    before = c.list_observations()
    assert (before["obs_date"] <= pd.Timestamp("2012-12-31")).all()
    old = c.fetch_detections(before["obsid"])
    fake.set_now(None)
    after = c.list_observations()
    new_ids = sorted(set(after["obsid"]) - set(before["obsid"]))
    assert new_ids and min(after.set_index("obsid").loc[new_ids, "obs_date"]) > pd.Timestamp(
        "2012-12-31")
    fake.log.clear()
    new = c.fetch_detections(new_ids)
    asked = sorted(i for q in sync_queries(fake) for i in obsids_of(q))
    assert asked == new_ids
    assert len(old) + len(new) == len(passing(sample.detections))


def test_adql_shape():
    q = detections_query([3, 1, 2])
    assert "o.obsid IN (1, 2, 3)" in q
    assert "o.flux_aper_lolim_b AS flux_aper_b_lolim" in q and "o.likelihood_b AS likelihood" in q
    assert "a.match_type" in q and "m.name" in q and "o.ra" not in q and "o.dec" not in q
    assert "(o.flux_significance_b > 5.0)" in q and "o.bb_kt IS NOT NULL" in q
    assert "FROM csc21.master_source m, csc21.master_stack_assoc a" in q
