"""A catalog built by a previous release's code: the migration tests' independent truth.

``git archive`` of the commit before a migration was added gives that release's tree; its
own code builds a two-epoch catalog on a fresh database in a subprocess, so the test's
upgrade starts from what that release really wrote, not from today's code on an old schema.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import psycopg
import pytest

from tests.conftest import create_database

PROJECT = Path(__file__).resolve().parents[1]

BUILD = """
from db import migrate
from db.engine import get_engine
from db.settings import Settings
from ingest.sample import generate_sample
from ingest.sample_source import SampleCsc, SampleSimbad
from pipeline import classify, ingest

engine = get_engine()
migrate.upgrade(engine)
sample = generate_sample(600, seed=5)
settings = Settings(n_components=6, random_state=42)
ingest.ingest_csc(engine, SampleCsc(sample), until="2014-12-31")
ingest.ingest_simbad(engine, SampleSimbad(sample, 1), refresh_days=None)
fitted = classify.refit(engine, settings)
assert classify.publish(engine, settings, promote=fitted.model_id) is not None
ingest.ingest_csc(engine, SampleCsc(sample))
ingest.ingest_simbad(engine, SampleSimbad(sample, 2), refresh_days=0)
assert classify.publish(engine, settings) is not None
print(migrate.current_revision(engine))
"""


def previous_release(migration: str) -> str:
    """The commit before the one that added ``migration`` (HEAD while it is uncommitted)."""
    out = subprocess.run(["git", "log", "-1", "--format=%H", "--diff-filter=A", "--",
                          migration], cwd=PROJECT, capture_output=True, text=True)
    if out.returncode != 0:
        pytest.skip("not a git checkout")
    return f"{out.stdout.strip()}^" if out.stdout.strip() else "HEAD"


#: (server port, release commit) -> (database the release built, its revision): a session
#: builds each release's catalog once; every caller gets a copy of it (CREATE DATABASE ...
#: TEMPLATE), since the migration tests change theirs.
_BUILT: dict[tuple[int, str], tuple[str, str]] = {}


def _wait_unused(pg_server, database: str, timeout_s: float = 30.0) -> None:
    with psycopg.connect(pg_server.url(database="postgres"), autocommit=True) as conn:
        deadline = time.monotonic() + timeout_s
        while conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s",
                           (database,)).fetchone()[0] and time.monotonic() < deadline:
            time.sleep(0.1)


def build_release_catalog(pg_server, tree: Path, migration: str, database: str
                          ) -> tuple[str, str]:
    """(database URL, alembic revision) of a catalog the release before ``migration`` built
    on a fresh database, copied to ``database``; ``tree`` receives that release's files
    (on the first call for that release in this session)."""
    release = previous_release(migration)
    commit = subprocess.run(["git", "rev-parse", release], cwd=PROJECT, capture_output=True,
                            text=True, check=True).stdout.strip()
    key = (pg_server.port, commit)
    if key not in _BUILT:
        archive = subprocess.run(["git", "archive", "--format=tar", commit], cwd=PROJECT,
                                 capture_output=True, check=True).stdout
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(tree, filter="data")
        assert not (tree / migration).exists()
        built = f"t_release_{commit[:12]}"
        url = create_database(pg_server, built, template=None)
        env = {**os.environ, "CSCAT_DATABASE_URL": url, "PYTHONPATH": str(tree),
               "CSCAT_CONFIG": str(tree / "no-config.toml")}
        out = subprocess.run([sys.executable, "-c", BUILD], cwd=tree, env=env,
                             capture_output=True, text=True, timeout=900)
        assert out.returncode == 0, out.stderr[-3000:]
        _wait_unused(pg_server, built)  # a template must have no sessions left
        _BUILT[key] = (built, out.stdout.strip().splitlines()[-1])
    built, revision = _BUILT[key]
    return create_database(pg_server, database, template=built), revision
