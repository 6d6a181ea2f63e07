"""The command server of ``cscat db start`` (issue 14): a pipeline command runs through it as
a real Prefect flow on the persistent server, with the output and exit code of an in-process
run; signals reach it; a dead or stale server means an in-process run."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import psycopg
import pytest

from cscat import cmdserver
from db.catalog_store import UPDATE_LOCK_KEY

pytestmark = pytest.mark.slow

PROJECT = Path(__file__).resolve().parents[1]


def _env(data: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PREFECT_", "CSCAT_"))}
    env.update(CSCAT_DATA_DIR=str(data), CSCAT_CONFIG=str(data.parent / "none.toml"),
               PYTHONPATH=str(PROJECT), OPENBLAS_NUM_THREADS="1", **extra)
    return env


def cscat(*args: str, data: Path, **extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cscat", *args], env=_env(data, **extra),
                          capture_output=True, text=True, timeout=600, cwd=PROJECT)


def _served(data: Path) -> list[str]:
    """The commands the server ran in a child, from its log."""
    log = (data / cmdserver.LOG).read_text()
    return re.findall(r"command server: `cscat (.*)` in child (\d+)", log)


def _server_pid(data: Path) -> int:
    return json.loads((data / cmdserver.STATE).read_text())["pid"]


@pytest.fixture(scope="module")
def data():
    root = Path(tempfile.mkdtemp(prefix="cs-"))  # a short path: the socket's is limited
    d = root / "d"
    started = cscat("db", "start", data=d)
    assert started.returncode == 0, started.stderr
    assert "command server started" in started.stdout, started.stdout
    demo = cscat("demo", data=d)
    assert demo.returncode == 0, demo.stderr[-3000:]
    yield d
    cscat("db", "stop", data=d)
    shutil.rmtree(root, ignore_errors=True)


def _latest_flow_run(data: Path) -> dict:
    url = json.loads((data / "prefect" / "persistent-server.json").read_text())["url"]
    req = urllib.request.Request(f"{url}/flow_runs/filter", method="POST",
                                 data=json.dumps({"limit": 1,
                                                  "sort": "EXPECTED_START_TIME_DESC"}).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())[0]


def test_a_pipeline_command_runs_through_the_server_as_a_prefect_flow(data):
    assert any(cmd == "demo" for cmd, _ in _served(data))  # the fixture's demo went through it
    n = len(_served(data))
    remote = cscat("reclassify", data=data)
    assert remote.returncode == 0, remote.stderr
    assert len(_served(data)) == n + 1 and _served(data)[-1][0] == "reclassify"
    name = re.search(r"Beginning flow run '([^']+)' for flow 'reclassify'", remote.stderr)
    assert name, remote.stderr
    run = _latest_flow_run(data)  # a real flow run, recorded on the persistent server
    assert run["name"] == name.group(1) and run["state_type"] == "COMPLETED"

    local = cscat("reclassify", data=data, CSCAT_COMMAND_SERVER="0")
    assert len(_served(data)) == n + 1
    assert (local.returncode, local.stdout) == (remote.returncode, remote.stdout)


def test_a_bad_input_is_the_same_one_line_and_exit_code(data):
    n = len(_served(data))
    for args in (["reclassify", "--model", "99"], ["reclassify", "--bogus"]):
        remote = cscat(*args, data=data)
        local = cscat(*args, data=data, CSCAT_COMMAND_SERVER="0")
        assert remote.returncode == local.returncode == 2
        assert remote.stderr == local.stderr and len(remote.stderr.splitlines()) == 1
        assert remote.stdout == local.stdout
    assert len(_served(data)) == n + 2


def test_a_request_of_another_code_version_runs_in_process(data):
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.connect(str(data / cmdserver.SOCKET))
        request = {"argv": ["reclassify"], "cwd": "/", "env": _env(data), "umask": 0o22,
                   "version": "another"}
        socket.send_fds(s, [json.dumps(request).encode() + b"\n"], [0, 1, 2])
        reply = json.loads(s.makefile().readline())
    assert "fallback" in reply and "code changed" in reply["fallback"]


class _Client:
    """A pipeline command waiting for the update lock, its stderr read as it comes."""

    def __init__(self, data: Path, args: list[str]) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "cscat", *args], env=_env(data),
                                     cwd=PROJECT, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        self.err: list[str] = []
        self.reader = threading.Thread(target=lambda: self.err.extend(self.proc.stderr),
                                       daemon=True)
        self.reader.start()

    def wait_for(self, text: str, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while not any(text in line for line in self.err):
            assert time.monotonic() < deadline and self.proc.poll() is None, self.err
            time.sleep(0.1)

    def finish(self, timeout: float = 60) -> int:
        code = self.proc.wait(timeout=timeout)
        self.reader.join(timeout=10)
        return code


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists() and "Z" not in \
        Path(f"/proc/{pid}/stat").read_text().split(")")[1].split()[0]


@pytest.fixture
def lock_held(data):
    url = cscat("db", "url", data=data).stdout.strip()
    with psycopg.connect(url, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (UPDATE_LOCK_KEY,))  # another update
        yield


@pytest.mark.parametrize(("sig", "code", "word"), [(signal.SIGTERM, 143, "terminated"),
                                                  (signal.SIGINT, 130, "interrupted")])
def test_a_signal_to_the_client_stops_the_command(data, lock_held, sig, code, word):
    client = _Client(data, ["reclassify"])
    client.wait_for("Beginning flow run")
    child = int(_served(data)[-1][1])
    time.sleep(1)
    assert client.proc.poll() is None  # waiting for the lock
    client.proc.send_signal(sig)
    assert client.finish() == code
    assert any(line.startswith(f"cscat: {word}: ") for line in client.err), client.err
    deadline = time.monotonic() + 30
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(child)


def test_a_killed_child_is_one_line_and_a_killed_client_stops_its_child(data, lock_held):
    client = _Client(data, ["reclassify"])
    client.wait_for("Beginning flow run")
    os.kill(int(_served(data)[-1][1]), signal.SIGKILL)
    assert client.finish() == 1
    assert "command server's process running this command ended" in client.err[-1]

    client = _Client(data, ["reclassify"])
    client.wait_for("Beginning flow run")
    child = int(_served(data)[-1][1])
    client.proc.kill()
    client.finish()
    deadline = time.monotonic() + 30
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(child)


def test_a_killed_server_means_in_process_and_db_start_starts_another(data):
    old = _server_pid(data)
    os.kill(old, signal.SIGKILL)
    n = len(_served(data))
    deadline = time.monotonic() + 10
    while _alive(old) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert (data / cmdserver.SOCKET).exists()  # stale: nobody listens on it
    local = cscat("reclassify", data=data)
    assert local.returncode == 0, local.stderr
    assert "catalog unchanged" in local.stdout and len(_served(data)) == n
    started = cscat("db", "start", data=data)
    assert started.returncode == 0 and "command server started" in started.stdout
    assert _server_pid(data) != old
    remote = cscat("reclassify", data=data)
    assert remote.returncode == 0 and remote.stdout == local.stdout
    assert len(_served(data)) == n + 1
