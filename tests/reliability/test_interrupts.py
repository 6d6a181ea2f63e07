"""Interrupts and leftovers (issue 13): Ctrl-C and SIGTERM stop a command promptly, leave
nothing half-done and say so in one line; what a killed process leaves (ingest runs
``running``, models ``candidate``, its temporary Prefect server) does not outlive it; a lost
database connection is reported as such, not as the advisory-unlock failure after it.

The CLI runs as a subprocess, as a user runs it. Most cases share the session's real
Prefect server (``prefect_api`` in conftest.py, ``PREFECT_API_URL``) so that a command
starts in seconds; one case runs without it, to see cscat's own temporary server die with a
killed command.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import psycopg
import pytest
from sqlalchemy import text

from db.catalog_store import UPDATE_LOCK_KEY, update_lock
from db.leftovers import ABANDONED, writer

pytestmark = pytest.mark.slow

CSCAT = str(Path(sys.executable).with_name("cscat"))
PREFECT = str(Path(sys.executable).with_name("prefect"))
#: Signal → message on the terminal must take at most this long; the process must be gone
#: (embedded server and temporary Prefect server stopped) within EXIT_S.
PROMPT_S, EXIT_S = 10.0, 30.0


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=20)


@pytest.fixture(scope="module")
def catalog(engine):
    """A first catalog version with an active model, built in-process (no Prefect)."""
    from db.settings import get_settings
    from pipeline import classify, ingest, sources

    settings = get_settings()
    ingest.ingest_csc(engine, sources.csc_source(settings, "sample"), until="2012-12-31")
    ingest.ingest_simbad(engine, sources.simbad_source(settings, "sample"), refresh_days=None)
    fitted = classify.refit(engine, settings)
    classify.publish(engine, settings, promote=fitted.model_id)
    return engine


def _env(db_url: str, tmp_path: Path, api: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(CSCAT_DATABASE_URL=db_url, CSCAT_DATA_DIR=str(tmp_path), COLUMNS="200")
    if api:
        env["PREFECT_API_URL"] = api
    return env


class Command:
    """A cscat command in its own process group (a terminal's Ctrl-C reaches the group)."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.proc = subprocess.Popen([CSCAT, *argv], env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True,
                                     start_new_session=True)
        self.lines: list[tuple[float, str]] = []
        self.t0 = time.monotonic()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append((time.monotonic(), line.rstrip("\n")))

    @property
    def output(self) -> str:
        return "\n".join(line for _, line in self.lines)

    def wait_for(self, marker: str, timeout: float = 240) -> None:
        deadline = time.monotonic() + timeout
        while not any(marker in line for _, line in self.lines):
            assert self.proc.poll() is None, f"ended before {marker!r}:\n{self.output}"
            assert time.monotonic() < deadline, f"no {marker!r} in {timeout} s:\n{self.output}"
            time.sleep(0.1)

    def signal(self, sig: int) -> float:
        os.killpg(self.proc.pid, sig)
        return time.monotonic()

    def finish(self, timeout: float = EXIT_S) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _stop(self.proc)
            return -999
        finally:
            self._reader.join(timeout=5)

    def when(self, prefix: str) -> float | None:
        return next((t for t, line in self.lines if line.startswith(prefix)), None)


def _state(engine) -> dict[str, int]:
    with engine.connect() as conn:
        return dict(conn.execute(text(
            "SELECT (SELECT count(*) FROM catalog.release) AS releases, "
            "(SELECT count(*) FROM catalog.ingest_run WHERE status = 'running') AS running, "
            "(SELECT count(*) FROM catalog.fitted_model WHERE status = 'candidate') "
            "AS candidates, "
            "(SELECT count(*) FROM catalog.fitted_model WHERE status = 'active') AS active"
        )).mappings().one())


def _check_stopped(record, area: str, case: str, cmd: Command, sent: float, code: int,
                   expected_code: int, word: str) -> bool:
    said = cmd.when(f"cscat: {word}:")
    last = cmd.output.strip().splitlines()[-1] if cmd.output.strip() else ""
    ok = [
        record(area, f"{case}: exit {expected_code}", code == expected_code, f"exit {code}"),
        record(area, f"{case}: one line saying so", last.startswith(f"cscat: {word}: ")
               and "half-written" in last, last[:120]),
        record(area, f"{case}: message within {PROMPT_S:.0f} s", said is not None
               and said - sent <= PROMPT_S, f"{(said or 0) - sent:.1f} s"),
        record(area, f"{case}: no traceback", "Traceback" not in cmd.output),
    ]
    return all(ok)


def test_ctrl_c_during_update_stops_promptly(record, catalog, db_url, prefect_api, tmp_path):
    before = _state(catalog)
    cmd = Command(["update", "--source", "sample", "--refit", "always"],
                  _env(db_url, tmp_path, prefect_api))
    cmd.wait_for("fitting on")  # a long step, and its progress is on the terminal
    assert record("interrupts", "update: progress of ingest and fitting on the terminal",
                  "ObsIDs published" in cmd.output and "new detections" in cmd.output)
    sent = cmd.signal(signal.SIGINT)
    code = cmd.finish()
    held = _check_stopped(record, "interrupts", "Ctrl-C during update", cmd, sent, code, 130,
                          "interrupted")
    after = _state(catalog)
    assert record("interrupts", "Ctrl-C during update: no new catalog version",
                  after["releases"] == before["releases"], str(after))
    assert record("interrupts", "Ctrl-C during update: no run left running",
                  after["running"] == 0, str(after))
    # models fitted before the interrupt (the families fit beside ctl) are complete
    # candidates, kept for a refit on the same input to reuse (db/leftovers.py); the next
    # publish resolves every one of them, so none stays candidate
    from db.settings import get_settings
    from pipeline import classify

    classify.publish(catalog, get_settings())
    resolved = _state(catalog)
    assert record("interrupts", "Ctrl-C during update: its candidates resolved by the next "
                  "publish", resolved["candidates"] == 0, str({"after": after,
                                                               "published": resolved}))
    assert held, cmd.output[-3000:]


def test_sigterm_on_a_waiting_reclassify_stops_promptly(record, catalog, db_url, pg_server,
                                                        prefect_api, tmp_path):
    before = _state(catalog)
    with psycopg.connect(db_url.replace("postgresql+psycopg", "postgresql"),
                         autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (UPDATE_LOCK_KEY,))  # another update
        cmd = Command(["reclassify"], _env(db_url, tmp_path, prefect_api))
        cmd.wait_for("Beginning flow run")
        time.sleep(3)
        waiting = cmd.proc.poll() is None
        sent = cmd.signal(signal.SIGTERM)
        code = cmd.finish()
    assert record("interrupts", "reclassify waits while another update holds the lock",
                  waiting)
    held = _check_stopped(record, "interrupts", "SIGTERM on a waiting reclassify", cmd, sent,
                          code, 143, "terminated")
    assert record("interrupts", "SIGTERM on a waiting reclassify: no new catalog version",
                  _state(catalog)["releases"] == before["releases"])
    assert held, cmd.output[-3000:]


CRASH = """
import os, signal, sys
from sqlalchemy import create_engine, text
from db.leftovers import writer
engine = create_engine(sys.argv[1])
with writer(engine):
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO catalog.ingest_run (kind, origin) "
                          "VALUES ('csc', 'crash-test')"))
        conn.execute(text("INSERT INTO catalog.fitted_model (params, model, n_detections, "
                          "n_labeled) VALUES ('{}', '{}', 0, 0)"))
    if sys.argv[2] == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    print("alive", flush=True)
    sys.stdin.read()  # a live writer until the test closes stdin
"""


def _leftovers(engine) -> tuple[int, int]:
    with engine.connect() as conn:
        runs = conn.execute(text("SELECT count(*) FROM catalog.ingest_run "
                                 "WHERE origin = 'crash-test' AND status = 'running'"))
        n_runs = runs.scalar_one()
        n_models = conn.execute(text("SELECT count(*) FROM catalog.fitted_model "
                                     "WHERE status = 'candidate'")).scalar_one()
    return n_runs, n_models


def test_leftovers_of_a_killed_writer_are_closed_by_the_next(record, catalog, db_url):
    from db.settings import get_settings
    from pipeline import classify

    killed = subprocess.run([sys.executable, "-c", CRASH, db_url, "kill"], timeout=120)
    assert killed.returncode == -signal.SIGKILL
    assert _leftovers(catalog) == (1, 1)  # what a crash leaves, before this fix forever
    live = subprocess.Popen([sys.executable, "-c", CRASH, db_url, "live"], text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert live.stdout.readline().strip() == "alive"
        # the live writer found no other writer alive: it closed the killed one's run (its
        # candidate model is kept: a refit on the same input reuses it)
        by_live = _leftovers(catalog)
        with writer(catalog) as closed:  # another writer is alive: its rows are not touched
            untouched = closed is None and _leftovers(catalog) == (1, 2)
    finally:
        live.stdin.close()
        live.wait(timeout=60)
    assert record("leftovers", "the next writer closes what a SIGKILLed one left",
                  by_live == (1, 2), str(by_live))
    assert record("leftovers", "a live writer's running ingest run and candidate are kept",
                  untouched)
    with writer(catalog) as closed:
        pass
    with catalog.connect() as conn:
        runs = conn.execute(text("SELECT status, message FROM catalog.ingest_run "
                                 "WHERE origin = 'crash-test'")).all()
    assert record("leftovers", "ingest runs of dead writers marked failed with the reason",
                  runs and all(r == ("failed", ABANDONED) for r in runs), str(runs))
    assert record("leftovers", "candidate models of dead writers kept until a publish",
                  _leftovers(catalog) == (0, 2) and closed is not None
                  and closed["ingest_runs"] == 1, str(closed))
    classify.publish(catalog, get_settings())  # changes nothing, but resolves candidates
    with catalog.connect() as conn:
        notes = conn.execute(text("SELECT note FROM catalog.fitted_model WHERE params = '{}' "
                                  "AND status = 'rejected'")).scalars().all()
    assert record("leftovers", "candidate models of dead writers rejected by the next publish",
                  _leftovers(catalog) == (0, 0) and len(notes) == 2
                  and all("not promoted" in (n or "") for n in notes), str(notes))


def test_temporary_prefect_server_dies_with_a_killed_command(record, catalog, db_url,
                                                             tmp_path):
    holder = psycopg.connect(db_url.replace("postgresql+psycopg", "postgresql"),
                             autocommit=True)
    holder.execute("SELECT pg_advisory_lock(%s)", (UPDATE_LOCK_KEY,))  # master will wait
    cmd = Command(["master"], _env(db_url, tmp_path, api=None))  # cscat's own temp server
    try:
        cmd.wait_for("Beginning flow run")
        children = psutil.Process(cmd.proc.pid).children(recursive=True)
        servers = [p for p in children if "prefect.server.api.server:create_app"
                   in " ".join(p.cmdline())]
        os.kill(cmd.proc.pid, signal.SIGKILL)  # only cscat itself, as the OOM killer would
        cmd.finish()
        gone, alive = psutil.wait_procs(servers, timeout=15)
    finally:
        holder.close()
        for p in psutil.Process().children(recursive=True):
            if p.pid != os.getpid() and "create_app" in " ".join(p.cmdline()):
                p.kill()
    assert record("leftovers", "cscat starts its temporary Prefect server as a child",
                  len(servers) == 1, str([p.pid for p in servers]))
    assert record("leftovers", "temporary Prefect server gone within 15 s of a SIGKILLed "
                  "command", not alive, str([p.pid for p in alive]))


def test_a_lost_connection_is_shown_not_the_unlock_failure(record, catalog, db_url):
    from cscat.commands import cause

    admin = psycopg.connect(db_url.replace("postgresql+psycopg", "postgresql"),
                            autocommit=True)
    shown = None
    try:
        with update_lock(catalog), catalog.connect() as conn:
            conn.execute(text("SELECT 1"))
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                          "WHERE datname = current_database() AND pid <> pg_backend_pid()")
            conn.execute(text("SELECT 1"))  # the server is gone for this session
    except Exception as e:
        shown = str(cause(e))
    finally:
        admin.close()
        catalog.dispose()
    assert record("leftovers", "a lost connection is reported as lost, not as the unlock",
                  shown is not None and "connection was lost" in shown
                  and "advisory_unlock" not in shown, str(shown))


def test_a_failing_service_is_one_line_without_traceback(record, catalog, db_url,
                                                         prefect_api, tmp_path):
    from ingest.fake_services import FakeServices
    from ingest.sample import generate_sample

    with FakeServices(generate_sample(200, seed=3)) as fake:
        fake.fail(status=503, times=None, prefix="/tap")
        env = _env(db_url, tmp_path, prefect_api)
        env["CSCAT_CSC_TAP_URL"] = fake.tap_url
        # two attempts (one backoff of 2 s) instead of five (2+4+8+16 s of sleeping): the
        # retries are bounded either way, and what is checked is what the user is told
        env["CSCAT_CSC_TAP_ATTEMPTS"] = "2"
        cmd = Command(["ingest", "csc"], env)
        code = cmd.finish(timeout=300)
    last = cmd.output.strip().splitlines()[-1]
    assert record("messages", "a failing TAP service: exit 2 and one line naming it",
                  code == 2 and last.startswith("cscat: error: CSC TAP ")
                  and "503" in last, f"exit {code}: {last[:160]}")
    assert record("messages", "a failing TAP service: no traceback without --verbose",
                  "Traceback" not in cmd.output, cmd.output[-2000:])
