"""Every column our ADQL names is a documented CSC 2.1 column (issue 9 §2).

Checked against ``../shared/data/csc21_columns.json`` (CXC's own CLI column lists, the paper's
ADQL, the CSC FAQ), which the project never copies; the fake TAP service refuses names outside
the project's own list (``db.csc_columns.DOCUMENTED_TAP_COLUMNS``), as the real one would.
"""

from __future__ import annotations

import json

import pytest

from db.csc_columns import DOCUMENTED_TAP_COLUMNS, NOT_FROM_TAP, TAP_ALIASES
from ingest import IngestError
from ingest.adql import (
    Cuts,
    detections_query,
    observations_query,
    passing_obsids_query,
    referenced_columns,
    selected_names,
)
from ingest.columns import STORED_NAMES
from ingest.csc_tap import CscTapClient

QUERIES = {
    "detections": detections_query([4884, 3, 1]),
    "detections, no cuts": detections_query([1], cuts=Cuts(None, False, False)),
    "observations": observations_query(until_mjd=58000.0, after_obsid=12),
    "probe": passing_obsids_query(3),
}


@pytest.fixture(scope="module")
def documented(shared_data) -> dict[str, set[str]]:
    doc = json.loads((shared_data / "csc21_columns.json").read_text())
    return {table: set(cols) for table, cols in doc.items() if not table.startswith("_")}


@pytest.mark.parametrize("which", QUERIES)
def test_every_adql_column_is_documented(documented, which):
    refs = referenced_columns(QUERIES[which])
    assert refs, "the query names no column?"
    unknown = sorted(f"{t}.{c}" for t, c in refs if c not in documented.get(t, set()))
    assert unknown == []


def test_the_projects_list_is_a_subset_of_the_documentation(documented):
    for table, cols in DOCUMENTED_TAP_COLUMNS.items():
        assert sorted(cols - documented[table]) == [], table


def test_the_real_votable_uses_the_documented_names(documented, shared_data):
    from astropy.io.votable import parse

    fields = [f.name for f in parse(str(shared_data / "csc21_tap_example.vot"))
              .get_first_table().fields]
    known = documented["master_source"] | documented["observation_source"]
    assert [f for f in fields if f not in known] == ["separation"]  # computed by the query


def test_the_known_wrong_names_are_gone():
    refs = referenced_columns(QUERIES["detections"])
    for wrong in ("flux_aper_b_lolim", "flux_aper_b_hilim", "likelihood", "ra", "dec"):
        assert ("observation_source", wrong) not in refs
    assert {("observation_source", "likelihood_b"), ("observation_source", "flux_aper_lolim_b"),
            ("master_stack_assoc", "match_type")} <= refs
    assert "GROUP BY" not in QUERIES["observations"] and "MIN(" not in QUERIES["observations"]


def test_every_stored_column_is_asked_for_or_known_absent():
    asked = set(selected_names())
    assert sorted(set(STORED_NAMES) - asked) == sorted(NOT_FROM_TAP)
    assert TAP_ALIASES == {"likelihood": "likelihood_b", "flux_aper_b_lolim": "flux_aper_lolim_b",
                           "flux_aper_b_hilim": "flux_aper_hilim_b"}


@pytest.mark.parametrize("column", ["o.flux_aper_b_lolim", "o.likelihood", "o.ra", "m.nonsense"])
def test_the_fake_refuses_an_undocumented_column(fake, column):
    client = CscTapClient(fake.tap_url, retries=2, backoff=0.001)
    query = QUERIES["detections"].replace("o.theta", column)
    with pytest.raises(IngestError, match=r"does not exist in table") as err:
        client._run(query, "a query with a wrong column")
    assert len(fake.requests("/tap/sync")) == 1  # a query error is not retried
    assert "\n" not in str(err.value)


def test_the_probe_finds_obsids_passing_the_cuts(fake, sample):
    client = CscTapClient(fake.tap_url, retries=0)
    obsids = client._run(passing_obsids_query(2), "probe")["obsid"].tolist()
    assert len(obsids) == 2
    got = client.fetch_detections(obsids[:1])
    assert len(got) > 0 and (got["flux_significance_b"] > 5).all()
