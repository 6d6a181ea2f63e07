"""The embedded server: started on demand, reused by a second process, stopped on request."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from db.embedded import EmbeddedServer

PROJECT = Path(__file__).resolve().parents[1]


def _open_prefixes(path: Path) -> None:
    """Test harness only: let another user traverse the directories above ``path``."""
    for parent in path.resolve().parents:
        mode = parent.stat().st_mode
        if mode & 0o001 == 0:
            parent.chmod(mode | 0o001)


def cscat(*args: str, data_dir: Path, extra_env: dict | None = None, user: str | None = None):
    env = {k: v for k, v in os.environ.items() if k != "CSCAT_DATABASE_URL"}
    env.update(CSCAT_DATA_DIR=str(data_dir), CSCAT_CONFIG=str(data_dir / "none.toml"),
               PYTHONPATH=str(PROJECT))
    env.update(extra_env or {})
    cmd = [sys.executable, "-m", "cscat", *args]
    if user:
        cmd = ["runuser", "-u", user, "--", *cmd]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180, cwd=PROJECT)


@pytest.fixture
def data_dir(tmp_path: Path):
    d = tmp_path / "cscat-data"
    yield d
    EmbeddedServer(d).stop()


def test_start_reuse_and_stop(data_dir):
    started = cscat("db", "start", data_dir=data_dir)
    assert started.returncode == 0, started.stderr
    server = EmbeddedServer(data_dir)
    pid = server.running_pid()
    assert pid is not None

    url = cscat("db", "url", data_dir=data_dir)
    assert url.returncode == 0 and url.stdout.startswith("postgresql://")
    with psycopg.connect(url.stdout.strip()) as conn:  # what psql and TOPCAT would do
        assert conn.execute("SELECT 1").fetchone() == (1,)

    status = cscat("status", data_dir=data_dir)  # a second process reuses the server
    assert status.returncode == 0, status.stderr
    assert f"pid {pid}" in status.stdout and "schema:" in status.stdout
    assert server.running_pid() == pid

    stopped = cscat("db", "stop", data_dir=data_dir)
    assert stopped.returncode == 0 and "stopped" in stopped.stdout
    assert server.running_pid() is None
    assert cscat("db", "url", data_dir=data_dir).returncode == 2


def test_a_command_starts_the_server_for_itself_and_stops_it_when_done(data_dir):
    first = cscat("status", data_dir=data_dir)
    assert first.returncode == 0, first.stderr
    assert "catalog.csc_detection" in first.stdout
    assert EmbeddedServer(data_dir).running_pid() is None
    again = cscat("sql", "SELECT count(*) AS n FROM catalog.csc_source", data_dir=data_dir)
    assert again.returncode == 0 and "(1 row)" in again.stdout  # data dir survives


def test_concurrent_processes_share_one_server(data_dir):
    env = {k: v for k, v in os.environ.items() if k != "CSCAT_DATABASE_URL"}
    env.update(CSCAT_DATA_DIR=str(data_dir), PYTHONPATH=str(PROJECT))
    procs = [subprocess.Popen([sys.executable, "-m", "cscat", "sql", "SELECT pg_sleep(2)"],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(3)]
    outs = [p.communicate(timeout=180) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], [o[1] for o in outs]
    assert EmbeddedServer(data_dir).running_pid() is None


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("runuser") is None,
                    reason="needs root to try an unprivileged user too")
def test_works_for_a_normal_user(tmp_path):
    user = "cscat_test_user"
    if subprocess.run(["id", user], capture_output=True).returncode != 0:
        subprocess.run(["useradd", "--system", "--no-create-home", user], check=True)
    home = tmp_path / "home"
    home.mkdir()
    shutil.chown(home, user)
    tmp_path.chmod(0o755)
    data_dir = home / "data"
    # Let the user reach this interpreter and project (search bits only, as the server does).
    for path in (Path(os.path.realpath(sys.executable)), Path(sys.prefix) / "x", PROJECT / "x",
                 home):
        _open_prefixes(path)
    probe = subprocess.run(["runuser", "-u", user, "--", sys.executable, "-c", "import cscat"],
                           capture_output=True, text=True, cwd=PROJECT,
                           env={**os.environ, "PYTHONPATH": str(PROJECT)})
    if probe.returncode != 0:
        pytest.skip(f"{user} cannot run this interpreter: {probe.stderr.strip()[:200]}")
    try:
        res = cscat("status", data_dir=data_dir, user=user, extra_env={"HOME": str(home)})
        assert res.returncode == 0, res.stderr
        assert "schema:" in res.stdout
        owner = (data_dir / "pgdata").owner()
        assert owner == user
    finally:
        cscat("db", "stop", data_dir=data_dir, user=user, extra_env={"HOME": str(home)})


def test_bad_database_url_gives_one_line_naming_it_with_password_masked(tmp_path):
    res = cscat("status", data_dir=tmp_path,
                extra_env={"CSCAT_DATABASE_URL": "postgresql://alice:s3cret@127.0.0.1:1/cat"})
    assert res.returncode == 2
    err = res.stderr.strip()
    assert len(err.splitlines()) == 1, err
    assert "alice:***@127.0.0.1:1/cat" in err and "s3cret" not in err
    assert "Traceback" not in err


@pytest.mark.parametrize("url", ["not a url", "mysql://u:pw@localhost/db"])
def test_unusable_database_url(tmp_path, url):
    res = cscat("status", data_dir=tmp_path, extra_env={"CSCAT_DATABASE_URL": url})
    assert res.returncode == 2
    assert res.stderr.startswith("cscat: error: CSCAT_DATABASE_URL")
    assert "pw@" not in res.stderr and len(res.stderr.strip().splitlines()) == 1


def test_config_file_sets_the_database_url(tmp_path):
    cfg = tmp_path / "config.toml"
    cfg.write_text('database_url = "postgresql://cfg:pw@127.0.0.1:1/fromfile"\n')
    res = cscat("status", data_dir=tmp_path, extra_env={"CSCAT_CONFIG": str(cfg)})
    assert res.returncode == 2 and "cfg:***@127.0.0.1:1/fromfile" in res.stderr
