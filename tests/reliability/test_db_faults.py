"""Database faults: the PostgreSQL server killed mid-run, the pipeline's connection
terminated mid-run, the disk full. Each must give a clear one-line error naming the cause
(no traceback), commit nothing halfway, and the next run must recover and end equal
(digest of every view) to a run that met no fault.

A dedicated embedded server in a temporary directory (never the session's shared one)
holds the catalog in its ``cscat`` database, at epoch 1 of the sample. The faulted command
is ``cscat update --source sample --refit never`` (epoch 2: new detections, reapply,
publish), run through ``cscat.cli.main`` in a child of ``harness.ForkServer``; it pauses at
a point of the pipeline while the test breaks the database.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import harness
import psycopg
import pytest
from psycopg import sql
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from db import migrate
from db.embedded import DATABASE, ROOT_RUN_AS, EmbeddedServer

AREA = "database faults"
N_SOURCES = 400
SAMPLE_SEED = 11
COMMAND = ["update", "--source", "sample", "--refit", "never"]
#: Where the command pauses while the fault is made (mid-ingest, mid-publish).
POINTS = {"mid-ingest": "after:ingest.load_detections",
          "mid-publish": "after:publish.write_detection_results"}
PAUSE_S = 1.5


class Lab:
    def __init__(self, work: Path) -> None:
        self.work = work
        self.data_dir = work / "pgdata-faults"
        self.server = EmbeddedServer(self.data_dir)
        self.server.acquire(keep_running=True)
        migrate.upgrade(self.engine())
        self.fork = harness.shared_server(work, N_SOURCES, SAMPLE_SEED)
        first = self.cli(["update", "--source", "sample", "--until", harness.EPOCH1])
        assert first["exit_code"] == 0, first.get("err")
        self.admin("faults_epoch1", DATABASE)
        self.admin("faults_ref", "faults_epoch1")
        ref = self.fork.jobs([{"kind": "cli", "argv": COMMAND,
                               "db_url": self.url("faults_ref")}])[0]
        assert ref["exit_code"] == 0, ref.get("err")
        self.reference = harness.catalog_digest(self.engine("faults_ref"))
        self.baseline = harness.check_catalog(self.engine())

    def info(self):
        info = self.server.info()
        assert info is not None, "the dedicated server is not running"
        return info

    def url(self, db: str = DATABASE) -> str:
        return self.info().url("postgresql+psycopg", db)

    def engine(self, db: str = DATABASE):
        return create_engine(self.url(db), poolclass=NullPool)

    def admin(self, db: str, template: str, tablespace: str | None = None) -> None:
        with psycopg.connect(self.info().url(database="postgres"), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{db}" TEMPLATE "{template}"'
                         + (f' TABLESPACE "{tablespace}"' if tablespace else ""))

    def reset(self) -> None:
        """The catalog back at epoch 1.

        A cloned database's sequences are not crash-safe until their next WAL record: the
        copied page says values ahead are already logged (log_cnt), but that record was the
        template's, so after a server crash nextval would hand out the same ids again (seen
        as a UniqueViolation on ingest_run). ``setval`` logs each one (test set-up only).
        """
        self.admin(DATABASE, "faults_epoch1")
        with psycopg.connect(self.info().url(), autocommit=True) as conn:
            conn.execute("SELECT setval(format('%I.%I', schemaname, sequencename), last_value)"
                         " FROM pg_sequences WHERE last_value IS NOT NULL")

    def cli(self, argv: list[str], pause: dict | None = None) -> dict:
        return self.fork.jobs([self.job(argv, pause)])[0]

    def job(self, argv: list[str], pause: dict | None = None) -> dict:
        return {"kind": "cli", "argv": argv, "data_dir": str(self.data_dir), "pause": pause}

    def close(self) -> None:
        self.server.stop()


@pytest.fixture(scope="module")
def lab(tmp_path_factory) -> Iterator[Lab]:
    lab = Lab(tmp_path_factory.mktemp("faults"))
    try:
        yield lab
    finally:
        lab.close()


def one_line_error(job: dict, cause: str) -> tuple[bool, str]:
    """Non-zero exit, exactly one ``cscat: error: ...`` line on stderr, matching ``cause``,
    and no traceback (progress lines before it are not errors)."""
    err = job.get("err", "")
    one, seen = harness.one_error(err)
    errors = harness.error_lines(err)
    ok = job["exit_code"] not in (0, None) and one and re.search(cause, errors[0], re.I)
    return bool(ok), f"exit {job['exit_code']}; {seen}"


def counts(engine) -> tuple:
    with engine.connect() as conn:
        return tuple(conn.execute(text(
            "SELECT (SELECT count(*) FROM catalog.release), "
            "(SELECT count(*) FROM catalog.detection_result), "
            "(SELECT count(*) FROM catalog.source_result)")).one())


def run_with_fault(lab: Lab, point: str, fault) -> dict:
    """Start the command, wait for its pause at ``point``, call ``fault()``, wait for it."""
    marker = lab.work / f"pause-{time.monotonic_ns()}"
    lab.fork.start_jobs([lab.job(COMMAND, {"point": point, "n": 1, "marker": str(marker),
                                           "sleep_s": PAUSE_S})])
    deadline = time.monotonic() + 120
    while not marker.exists():
        assert time.monotonic() < deadline, "the command never reached its pause"
        time.sleep(0.02)
    fault()
    return lab.fork.finish_jobs()[0]


def after_fault(lab: Lab, case: str, before: tuple, record) -> list[bool]:
    """Nothing committed halfway, then the next run recovers and ends equal."""
    engine = lab.engine()
    problems = harness.new_problems(harness.check_catalog(engine), lab.baseline)
    now = counts(engine)
    if now != before:
        problems.append(f"versions/results went from {before} to {now}")
    held = [record(AREA, f"{case}: nothing committed halfway", not problems,
                   "; ".join(problems))]
    rerun = lab.cli(COMMAND)
    digest = harness.catalog_digest(lab.engine()) if rerun["exit_code"] == 0 else {}
    differ = sorted(v for v in lab.reference if digest.get(v) != lab.reference[v])
    if rerun["exit_code"]:
        detail = harness.error_line(rerun.get("err", ""))
    else:
        detail = harness.describe_difference(lab.engine(), lab.engine("faults_ref"), differ) \
            if differ else ""
    left = harness.leftovers(lab.engine()) if rerun["exit_code"] == 0 else []
    held.append(record(AREA, f"{case}: the next run recovers and ends equal to an unfaulted "
                       "run", rerun["exit_code"] == 0 and not differ, detail))
    held.append(record(AREA, f"{case}: nothing left behind after the next run", not left,
                       "; ".join(left)))
    return held


@pytest.mark.parametrize("where", sorted(POINTS))
def test_connection_terminated(lab, where, record):
    lab.reset()
    before = counts(lab.engine())

    def terminate():
        with psycopg.connect(lab.info().url(database="postgres"), autocommit=True) as conn:
            n = conn.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                             "WHERE datname = %s AND pid <> pg_backend_pid() AND "
                             "state = 'idle in transaction'", (DATABASE,)).fetchone()[0]
        assert n >= 1, "no backend of the command was in a transaction"

    job = run_with_fault(lab, POINTS[where], terminate)
    case = f"connection terminated {where}"
    ok, detail = one_line_error(job, r"connection|terminat|server")
    held = [record(AREA, f"{case}: one-line error naming the cause", ok, detail)]
    held += after_fault(lab, case, before, record)
    assert all(held)


def test_server_killed(lab, record):
    lab.reset()
    before = counts(lab.engine())
    pid = lab.info().pid
    job = run_with_fault(lab, POINTS["mid-publish"], lambda: os.kill(pid, signal.SIGKILL))
    case = "PostgreSQL server SIGKILLed mid-publish"
    ok, detail = one_line_error(job, r"connection|server|terminat")
    held = [record(AREA, f"{case}: one-line error naming the cause", ok, detail)]
    # The next command starts the server again (what a user's next command does).
    status = lab.cli(["status"])
    restarted = status["exit_code"] == 0
    held.append(record(AREA, f"{case}: the next command restarts the server at once",
                       restarted, "" if restarted else harness.error_line(status.get("err", ""))))
    if not restarted:  # say so, and let the rest of the case run on a started server
        lab.server.acquire(keep_running=True)
    held += after_fault(lab, case, before, record)
    assert all(held)


def _mount_tmpfs(size: str, owner: tuple[int, int]) -> tuple[Path | None, str | None]:
    """A size-limited tmpfs owned by ``owner`` (uid, gid), mounted on a new directory in
    /tmp: the server's user (``cscat_pg`` as root) must reach it, and the pytest directories
    above the data directory let no other user through. (mount point, None) or (None, why
    it could not be done)."""
    import tempfile

    if os.geteuid() != 0:
        return None, "mounting a small filesystem needs root"
    path = Path(tempfile.mkdtemp(prefix="cscat-tiny-", dir="/tmp"))
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700,"
                           f"uid={owner[0]},gid={owner[1]}", "tmpfs", str(path)],
                          capture_output=True, text=True)
    if done.returncode:
        path.rmdir()
        return None, f"mount -t tmpfs failed: {done.stderr.strip() or done.returncode}"
    return path, None


def _fill(path: Path) -> Path:
    """Fill the filesystem of ``path`` to the last byte; the filler file."""
    filler = path / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for size in (1 << 20, 1 << 16, 1 << 12, 1):
            try:
                while os.write(fd, b"\0" * size) == size:
                    pass
            except OSError:
                pass
    finally:
        os.close(fd)
    return filler


def test_disk_full(lab, record):
    """The catalog's tables on a tablespace on a tiny tmpfs, filled to the last byte."""
    import pwd

    run_as = pwd.getpwnam(ROOT_RUN_AS) if os.geteuid() == 0 else pwd.getpwuid(os.geteuid())
    mount, why = _mount_tmpfs("24m", (run_as.pw_uid, run_as.pw_gid))
    if why:
        pytest.skip(f"disk full not tried: {why}")
    try:
        space = mount / "ts"
        space.mkdir(mode=0o700)
        os.chown(space, run_as.pw_uid, run_as.pw_gid)
        with psycopg.connect(lab.info().url(database="postgres"), autocommit=True) as conn:
            conn.execute("DROP TABLESPACE IF EXISTS tiny")
            conn.execute(sql.SQL("CREATE TABLESPACE tiny LOCATION {}").format(
                sql.Literal(str(space))))
        lab.reset()
        with psycopg.connect(lab.info().url(), autocommit=True) as conn:
            conn.execute("ALTER TABLE ALL IN TABLESPACE pg_default SET TABLESPACE tiny")
            conn.execute("ALTER INDEX ALL IN TABLESPACE pg_default SET TABLESPACE tiny")
            conn.execute(f'ALTER DATABASE "{DATABASE}" SET temp_tablespaces = tiny')
        before = counts(lab.engine())
        filler = _fill(mount)
        job = lab.cli(COMMAND)
        case = "disk full (tablespace on a full filesystem)"
        ok, detail = one_line_error(job, r"space|disk|full")
        held = [record(AREA, f"{case}: one-line error naming the cause", ok, detail)]
        filler.unlink()
        held += after_fault(lab, case, before, record)
        assert all(held)
    finally:
        with psycopg.connect(lab.info().url(database="postgres"), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
            conn.execute("DROP TABLESPACE IF EXISTS tiny")
            conn.execute(f'CREATE DATABASE "{DATABASE}" TEMPLATE faults_epoch1')
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)
        mount.rmdir()
