"""SIMBAD crossmatch through astroquery's XMatch against the fake X-Match endpoint."""

from __future__ import annotations

import pandas as pd
import pytest

from ingest import IngestError
from ingest.simbad import SimbadXMatch


def test_nearest_within_one_arcsec_and_unmatched_rows(fake, sample):
    xm = SimbadXMatch(fake.xmatch_url, batch_size=150, backoff=0.001)
    got = xm.crossmatch(sample.sources)
    assert list(got.columns) == ["name", "main_id", "otype", "separation_arcsec"]
    assert len(got) == len(sample.sources)
    pd.testing.assert_frame_equal(got.reset_index(drop=True),
                                  sample.simbad.reset_index(drop=True), atol=1e-5)
    matched = got["main_id"].notna()
    assert 0.35 < matched.mean() < 0.65
    assert (got.loc[matched, "separation_arcsec"] <= 1.0).all()
    assert got.loc[~matched, ["otype", "separation_arcsec"]].isna().all().all()
    posts = [p for path, p in fake.requests("/xmatch/api/v1/sync") if path.endswith("/sync")]
    assert len(posts) == 3 and posts[0]["cat2"] in ("simbad", "vizier:simbad")
    assert posts[0]["distMaxArcsec"] == "1.0" and posts[0]["cat1"] == "<150 rows>"


def test_nearest_is_kept_when_two_objects_are_within_radius(fake, sample):
    obj = sample.simbad_objects
    xm = SimbadXMatch(fake.xmatch_url)
    src = sample.sources
    raw = xm._query(src, "all")
    multi = raw["name"].duplicated(keep=False)
    assert multi.any(), "the sample puts a second object within 1 arcsec of some sources"
    got = xm.crossmatch(src).set_index("name")
    for name, grp in raw[multi].groupby("name"):
        assert got.loc[name, "main_id"] == grp.sort_values("separation_arcsec")["main_id"].iloc[0]
    assert len(obj) > got["main_id"].notna().sum()


def test_epoch2_changes_types(fake, sample):
    fake.set_simbad_epoch(2)
    got = SimbadXMatch(fake.xmatch_url).crossmatch(sample.sources)
    pd.testing.assert_frame_equal(got, sample.simbad_epoch2, atol=1e-5)
    changed = (sample.simbad["otype"] != got["otype"]).fillna(False)
    assert changed.any()


def test_persistent_failure_is_an_ingest_error(fake, sample):
    fake.fail(after=0, status=500, prefix="/xmatch/api/v1/sync")
    xm = SimbadXMatch(fake.xmatch_url, retries=1, backoff=0.001)
    with pytest.raises(IngestError, match="X-Match .*2 attempts"):
        xm.crossmatch(sample.sources.head(5))
