"""Tiny queries against the live CSC 2.1 TAP and CDS X-Match (skipped unless --remote-data)."""

from __future__ import annotations

import pandas as pd
import pytest

from ingest.csc_tap import CscTapClient
from ingest.simbad import SimbadXMatch

pytestmark = pytest.mark.remote_data


def test_live_csc_detections_of_obsid_4884():
    client = CscTapClient(chunk_size=1, retries=1, backoff=5.0, timeout=120)
    df = client.fetch_detections([4884])
    assert len(df) > 0 and (df["obsid"] == 4884).all()
    assert df["name"].str.startswith("2CXO J").all()


def test_live_csc_observation_list_until_2000():
    obs = CscTapClient(retries=1, timeout=300).list_observations(until="2000-03-31")
    assert len(obs) > 0 and (obs["obs_date"] <= pd.Timestamp("2000-03-31")).all()


def test_live_simbad_xmatch():
    src = pd.DataFrame({"name": ["2CXO J053515.6-052309"], "ra": [83.81542], "dec": [-5.38603]})
    got = SimbadXMatch(radius_arcsec=1.0, retries=1).crossmatch(src)
    assert list(got.columns) == ["name", "main_id", "otype", "separation_arcsec"]
    assert len(got) == 1
