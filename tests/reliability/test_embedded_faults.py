"""Embedded server faults: kills during initdb, damaged state files, stale pids, crashes.

Each case ends with the server usable again (a login and a query), recorded under
"embedded server". The server is driven in-process (``EmbeddedServer``) where a cscat
command would only add its start-up time; kills use a child process.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import psutil
import psycopg
import pytest

from db.embedded import EmbeddedServer

AREA = "embedded server"
PROJECT = Path(__file__).resolve().parents[2]
ACQUIRE = ("import sys; from db.embedded import EmbeddedServer; "
           "EmbeddedServer(sys.argv[1]).acquire(keep_running=True)")


def usable(server: EmbeddedServer) -> tuple[bool, str]:
    """Acquire the server, log in and query; release it again."""
    try:
        info = server.acquire()
        with psycopg.connect(info.url(database="postgres"), connect_timeout=10) as conn:
            ok = conn.execute("SELECT 1").fetchone() == (1,)
        return ok, f"port {info.port}"
    except Exception as e:  # the case records what went wrong instead of failing blind
        return False, f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
    finally:
        try:
            server.release()
        except Exception:
            pass


def kill_during_initdb(data_dir: Path, whole_group: bool) -> str:
    """Start a first acquire in a child; SIGKILL it (or its whole group) mid-initdb."""
    child = subprocess.Popen([sys.executable, "-c", ACQUIRE, str(data_dir)], cwd=PROJECT,
                             env={**os.environ, "PYTHONPATH": str(PROJECT)},
                             start_new_session=True, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    pgdata = data_dir / "pgdata"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (pgdata / "global").exists():
        if child.poll() is not None:
            return f"the child ended by itself (exit {child.returncode})"
        time.sleep(0.01)
    if whole_group:
        os.killpg(child.pid, signal.SIGKILL)
    else:
        child.kill()
    child.wait()
    complete = (pgdata / "base" / "5").is_dir()
    return "killed after initdb had finished" if complete else "killed mid-initdb"


@pytest.mark.parametrize("whole_group", [True, False], ids=["group", "cscat only"])
def test_sigkill_during_first_initdb(tmp_path, record, whole_group):
    data_dir = tmp_path / "data"
    when = kill_during_initdb(data_dir, whole_group)
    time.sleep(0.5)  # an orphaned initdb (it should have died with its parent) would go on
    initdb_left = [p.pid for p in psutil.process_iter(["name", "cmdline"])
                   if p.info["name"] == "initdb" and str(data_dir) in " ".join(
                       p.info["cmdline"] or [])]
    server = EmbeddedServer(data_dir)
    ok, detail = usable(server)
    server.stop()
    held = ok and not initdb_left and when == "killed mid-initdb"
    assert record(AREA, f"SIGKILL ({'group' if whole_group else 'cscat only'}) during the "
                        "first initdb: next command works", held,
                  f"{when}; {detail}; orphaned initdb {initdb_left}"), detail


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> EmbeddedServer:
    """One initialised cluster the following cases damage in turn."""
    server = EmbeddedServer(tmp_path_factory.mktemp("faults") / "data")
    ok, detail = usable(server)
    assert ok, detail
    yield server
    server.stop()


@pytest.mark.parametrize("name, content", [
    ("clients.json", '[{"pid": 12'),
    ("clients.json", "\x00\x00\x00"),
    ("clients.json", '{"not": "a list"}'),
    ("server.json", '{"user": "cscat", "passw'),
    ("server.json", ""),
    ("server.json", None),  # deleted: the cluster's password is lost
])
def test_damaged_state_file(cluster, record, name, content):
    path = cluster.data_dir / name
    if content is None:
        path.unlink(missing_ok=True)
    else:
        path.write_text(content)
    ok, detail = usable(cluster)
    state = json.loads(cluster.state_file.read_text())
    held = ok and bool(state.get("password")) and cluster.running_pid() is None
    what = "deleted" if content is None else f"{content[:12]!r}"
    assert record(AREA, f"{name} {what}: repaired, server usable", held, detail), detail


def test_a_live_unrelated_pid_does_not_keep_the_server_up(cluster, record):
    other = subprocess.Popen(["sleep", "60"])
    try:
        started = psutil.Process(other.pid).create_time()
        for entries in ([other.pid],  # the format of older cscat versions
                        [{"pid": other.pid, "started": started - 3600}]):  # pid reused
            cluster.clients_file.write_text(json.dumps(entries))
            ok, detail = usable(cluster)
            stopped = cluster.running_pid() is None
            assert record(AREA, f"unrelated live pid in clients.json ({json.dumps(entries)[:20]}"
                          "...): last client out stops the server", ok and stopped,
                          detail), detail
    finally:
        other.kill()
        other.wait()


def _postmaster_kill(server: EmbeddedServer, busy: bool) -> tuple[int, int]:
    """Start the server kept running, SIGKILL its postmaster (a backend busy or not)."""
    info = server.acquire(keep_running=True)
    conn = None
    if busy:  # an orphaned backend keeps the port and the shared memory a while
        conn = psycopg.connect(info.url(database="postgres"), autocommit=True)
        conn.pgconn.send_query(b"SELECT pg_sleep(30)")
        time.sleep(0.3)
    os.kill(info.pid, signal.SIGKILL)
    psutil.Process(info.pid).wait(10) if psutil.pid_exists(info.pid) else None
    if conn is not None:
        conn.pgconn.finish()
    return info.port, info.pid


@pytest.mark.parametrize("busy", [False, True], ids=["idle", "busy backend"])
def test_after_a_killed_server_the_port_is_kept_and_the_first_command_works(cluster, record,
                                                                           busy):
    port, _ = _postmaster_kill(cluster, busy)
    try:
        ok, detail = usable(cluster)
        info = cluster.info()
        same = info is not None and info.port == port
    finally:
        cluster.stop()
    assert record(AREA, f"postmaster SIGKILLed ({'busy' if busy else 'idle'}), db start: "
                        "first command works on the same port", ok and same,
                  f"{detail}, was {port}"), detail


def test_a_stale_pid_file_naming_a_live_process(cluster, record):
    cluster.stop()
    other = subprocess.Popen(["sleep", "60"])
    try:
        lines = [str(other.pid), str(cluster.pgdata), "1", "5432", "", "127.0.0.1",
                 "0 0", "ready   "]
        (cluster.pgdata / "postmaster.pid").write_text("\n".join(lines) + "\n")
        not_running = cluster.running_pid() is None
        ok, detail = usable(cluster)
    finally:
        other.kill()
        other.wait()
    assert record(AREA, "stale postmaster.pid with a live unrelated pid: ignored, restarted",
                  not_running and ok, detail), detail


def test_state_files_are_replaced_atomically(cluster, record):
    ok, _ = usable(cluster)
    leftovers = [p.name for p in cluster.data_dir.iterdir() if p.name.endswith(".tmp")]
    modes = {p.name: oct(stat.S_IMODE(p.stat().st_mode))
             for p in (cluster.state_file, cluster.clients_file)}
    held = ok and not leftovers and set(modes.values()) == {"0o600"}
    assert record(AREA, "state files: no temporary left, mode 0600", held,
                  f"{leftovers} {modes}"), modes


@pytest.mark.skipif(os.geteuid() != 0, reason="the server user only exists as root")
def test_as_root_no_parent_directory_is_opened(tmp_path, record):
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    inner = private / "inner"
    inner.mkdir(mode=0o700)
    before = {p: stat.S_IMODE(p.stat().st_mode) for p in (tmp_path, private, inner)}
    server = EmbeddedServer(inner / "data")
    try:
        ok, detail = usable(server)
    finally:
        server.stop()
    after = {p: stat.S_IMODE(p.stat().st_mode) for p in before}
    data_mode = stat.S_IMODE(server.data_dir.stat().st_mode)
    pgdata_owner = server.pgdata.owner()
    held = ok and after == before and data_mode == 0o700 and pgdata_owner == "cscat_pg"
    assert record(AREA, "as root: no parent directory widened, server runs as cscat_pg", held,
                  f"{detail}; modes {[oct(m) for m in after.values()]}, data {oct(data_mode)}, "
                  f"pgdata owner {pgdata_owner}"), detail
