"""The shared X-Match client: both crossmatches take their settings through it."""

from __future__ import annotations

from db.settings import Settings
from ingest.counterparts import CATALOGUES, CounterpartXMatch
from ingest.simbad import SimbadXMatch
from ingest.xmatch import XMATCH_URL


def test_settings_reach_both_clients():
    s = Settings(xmatch_url="http://127.0.0.1:9/x", xmatch_timeout_s=7.5, xmatch_attempts=2,
                 simbad_radius_arcsec=1.5, counterpart_density_radius_arcsec=15.0)
    simbad, cp = SimbadXMatch.from_settings(s), CounterpartXMatch.from_settings(s)
    assert (simbad.url, simbad.radius, simbad.retries) == ("http://127.0.0.1:9/x", 1.5, 1)
    assert (cp.url, cp.radius, cp.retries) == ("http://127.0.0.1:9/x", 15.0, 1)
    assert simbad._xm.URL == cp._xm.URL == "http://127.0.0.1:9/x"
    assert simbad._xm.TIMEOUT == cp._xm.TIMEOUT == 7.5
    assert (simbad.batch_size, cp.batch_size) == (10_000, 5_000)
    # unset URL: the public endpoint; the counterpart tables need no table-list round trip
    assert SimbadXMatch.from_settings(Settings()).url == XMATCH_URL
    assert all(cp._xm.is_table_available(c.table) for c in CATALOGUES.values())
