"""Schedules fire on a real Prefect server (issue 9 §3).

A real ``prefect server start`` on loopback (its own PREFECT_HOME), one of our flows served
the way ``cscat serve`` serves them (``prefect.serve`` of ``flow.to_deployment``) with a
schedule a few seconds apart: the server's scheduler must create runs and the runner must
complete one. Then Prefect's own CLI must list deployments, flows and automations (with
fastapi >= 0.151 they answered 422). Every wait is bounded.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.slow

PROJECT = Path(__file__).resolve().parents[1]
PREFECT = str(Path(sys.executable).with_name("prefect"))
SERVER_START_TIMEOUT = 180
RUN_COMPLETED_TIMEOUT = 300

SERVE = """
from datetime import timedelta
from flows.runtime import configure_prefect
configure_prefect()
from prefect import serve
from flows.catalog import build_master_flow
serve(build_master_flow.to_deployment(name="every-few-seconds",
                                      interval=timedelta(seconds=8)), limit=1)
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(proc: subprocess.Popen) -> None:
    """Stop a process group we started: SIGTERM, then SIGKILL after 20 s."""
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=20)


@pytest.fixture(scope="module")
def prefect_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    home = tmp_path_factory.mktemp("prefect_server")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(PREFECT_HOME=str(home), PREFECT_SERVER_ANALYTICS_ENABLED="false",
               PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS="2",
               PREFECT_RUNNER_POLL_FREQUENCY="2", PREFECT_UI_ENABLED="false",
               COLUMNS="200")
    return env


@pytest.fixture(scope="module")
def prefect_api(prefect_env: dict[str, str], tmp_path_factory) -> Iterator[str]:
    """A real Prefect server on a free loopback port; its API URL."""
    port = _free_port()
    log = tmp_path_factory.mktemp("prefect_log") / "server.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(port)],
            env=prefect_env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}/api"
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        while True:
            assert proc.poll() is None, f"prefect server exited: {log.read_text()[-2000:]}"
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "prefect server did not start in time"
            time.sleep(1)
        yield url
    finally:
        _stop(proc)
    text = log.read_text(errors="replace")
    assert "Can't evaluate bulk DML" not in text, "the scheduler failed (SQLAlchemy 2.1?)"


def _runs(url: str) -> list[dict]:
    r = httpx.post(f"{url}/flow_runs/filter", json={"limit": 200}, timeout=10)
    r.raise_for_status()
    return r.json()


def test_a_served_schedule_creates_and_completes_runs(prefect_api, prefect_env, db_url,
                                                      tmp_path):
    env = dict(prefect_env, PREFECT_API_URL=prefect_api, CSCAT_DATABASE_URL=db_url,
               CSCAT_DATA_DIR=str(tmp_path))
    log = tmp_path / "serve.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-c", SERVE], env=env, cwd=PROJECT,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + RUN_COMPLETED_TIMEOUT
        completed: list[dict] = []
        while not completed:
            assert proc.poll() is None, f"serve exited: {log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, (
                f"no scheduled run completed in {RUN_COMPLETED_TIMEOUT} s; runs: "
                f"{[(r['name'], r['state_type']) for r in _runs(prefect_api)]}")
            time.sleep(2)
            runs = _runs(prefect_api)
            completed = [r for r in runs if r["auto_scheduled"] and r["deployment_id"]
                         and r["state_type"] == "COMPLETED"]
        scheduled = [r for r in runs if r["auto_scheduled"]]
        assert len(scheduled) >= 2  # the scheduler keeps creating runs ahead
        assert not [r for r in runs if r["state_type"] in ("FAILED", "CRASHED")]
    finally:
        _stop(proc)


@pytest.mark.parametrize("what", ["deployment", "flow", "automation", "flow-run"])
def test_prefect_cli_lists_against_the_server(prefect_api, prefect_env, what):
    env = dict(prefect_env, PREFECT_API_URL=prefect_api)
    out = subprocess.run([PREFECT, what, "ls"], env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "422" not in out.stdout + out.stderr
    if what == "deployment":
        assert "every-few-seconds" in out.stdout
