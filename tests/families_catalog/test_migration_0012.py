"""Migration 0012 on a catalog with counterparts built by the previous release's own code:
nothing is lost, the new error columns are NULL until a refresh fills them (which queues the
sources for the families using counterparts), and a downgrade/upgrade round trip restores it."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from sqlalchemy import create_engine, text

from db import migrate
from db.settings import Settings
from ingest.sample import generate_sample
from ingest.sample_counterparts import SampleCounterparts
from pipeline.counterparts import ingest_counterparts
from tests.families_catalog.test_migration_0009 import columns, digest
from tests.release_catalog import build_release_catalog

MIGRATION = "db/migrations/versions/0012_counterpart_features.py"
ERRORS = ["e_g_mag", "e_bp_mag", "e_rp_mag", "e_j_mag", "e_h_mag", "e_k_mag", "e_w1_mag",
          "e_w2_mag", "e_w3_mag"]
COUNTERPARTS = """
from db.engine import get_engine
from db.settings import Settings
from ingest.sample import generate_sample
from ingest.sample_counterparts import SampleCounterparts
from pipeline.counterparts import ingest_counterparts

s = ingest_counterparts(get_engine(), SampleCounterparts(generate_sample(600, seed=5)),
                        Settings(), refresh_days=None)
assert s.counterparts["chosen"] > 0, s.counterparts
"""


@pytest.fixture(scope="module")
def old_catalog(pg_server, tmp_path_factory):
    tree = tmp_path_factory.mktemp("release")
    url, revision = build_release_catalog(pg_server, tree, MIGRATION, "t_migration_0012")
    env = {**os.environ, "CSCAT_DATABASE_URL": url, "PYTHONPATH": str(tree),
           "CSCAT_CONFIG": str(tree / "no-config.toml")}
    out = subprocess.run([sys.executable, "-c", COUNTERPARTS], cwd=tree, env=env,
                         capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    engine = create_engine(url)
    cols = columns(engine)
    yield engine, revision, cols, digest(engine, cols)
    engine.dispose()


def test_upgrade_keeps_everything_and_a_refresh_fills_the_errors(old_catalog):
    engine, old_head, before_cols, before = old_catalog
    assert old_head == "0009" and "e_g_mag" not in before_cols["counterpart_candidate"]
    migrate.upgrade(engine)
    after_cols = columns(engine)
    for name, cols in before_cols.items():  # old columns first, in their order
        assert after_cols[name][:len(cols)] == cols, name
    assert after_cols["counterpart"][len(before_cols["counterpart"]):] == ERRORS
    lost = sorted(k for k, v in digest(engine, before_cols).items() if before[k] != v)
    assert not lost, f"changed by the upgrade: {lost}"
    with engine.connect() as conn:
        n_err, n_queue = conn.execute(text(
            "SELECT (SELECT count(*) FROM catalog.counterpart WHERE e_g_mag IS NOT NULL "
            "OR e_j_mag IS NOT NULL OR e_w1_mag IS NOT NULL), "
            "(SELECT count(*) FROM catalog.counterpart_change)")).one()
    assert (n_err, n_queue) == (0, 0)
    # round trip: the downgrade restores the previous release's catalog exactly
    migrate.downgrade(engine, "0009")
    assert columns(engine) == before_cols and digest(engine, before_cols) == before
    migrate.upgrade(engine)
    # a refresh by today's code stores the errors: the chosen values changed, so their
    # sources are queued for the families using counterparts
    summary = ingest_counterparts(engine, SampleCounterparts(generate_sample(600, seed=5)),
                                  Settings(), refresh_days=0)
    with engine.connect() as conn:
        with_err, queued = conn.execute(text(
            "SELECT (SELECT count(DISTINCT name) FROM catalog.counterpart WHERE chosen AND "
            "(e_g_mag IS NOT NULL OR e_j_mag IS NOT NULL OR e_w1_mag IS NOT NULL)), "
            "(SELECT count(DISTINCT source_id) FROM catalog.counterpart_change)")).one()
    assert with_err > 0 and queued >= with_err
    assert summary.counterparts["queued"] == queued
