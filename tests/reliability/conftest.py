"""Reliability suite: faults, load, bad input and security. Prints its figures at the end.

Every test takes the ``record`` fixture and calls ``record(area, case, held, detail)`` once per
case it tries; the run ends with one table (tried / held / lost per area, then each lost
case), so it says what it tried and what held, not only pass/fail. A case that did not hold
must also fail its test: ``assert record(...)``. Recording is for the report, asserting for CI.

Soak mode (by hand): ``CSCAT_SOAK=N make test`` (or ``pytest tests/reliability``) tries N
times as many cases; the ``soak`` fixture gives N (1 in CI).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

#: How many times longer a soak run tries (1 in CI).
SOAK = max(1, int(os.environ.get("CSCAT_SOAK", "1") or 1))


@dataclass(frozen=True)
class Case:
    area: str
    case: str
    held: bool
    detail: str = ""


CASES: list[Case] = []


def _record(area: str, case: str, held: bool, detail: str = "") -> bool:
    CASES.append(Case(area, case, bool(held), detail))
    return bool(held)


@pytest.fixture(scope="session")
def record() -> Callable[..., bool]:
    """``record(area, case, held, detail="") -> held``: note one tried case."""
    return _record


@pytest.fixture(scope="session")
def soak() -> int:
    """How many times as many cases to try (``CSCAT_SOAK``; 1 in CI)."""
    return SOAK


def figures_table() -> list[str]:
    """The figures as text lines: per area tried/held/lost, then the lost cases."""
    if not CASES:
        return []
    by_area: dict[str, list[Case]] = defaultdict(list)
    for c in CASES:
        by_area[c.area].append(c)
    width = max(len(a) for a in [*by_area, "total"])
    lines = [f"{'area':<{width}}  tried  held  lost"]
    for area, cases in sorted(by_area.items()):
        held = sum(c.held for c in cases)
        lines.append(f"{area:<{width}}  {len(cases):5d}  {held:4d}  {len(cases) - held:4d}")
    held = sum(c.held for c in CASES)
    lines.append(f"{'total':<{width}}  {len(CASES):5d}  {held:4d}  {len(CASES) - held:4d}")
    lines += [f"LOST {c.area}: {c.case}" + (f" ({c.detail})" if c.detail else "")
              for c in CASES if not c.held]
    return lines


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    lines = figures_table()
    if lines:
        terminalreporter.section("reliability figures")
        for line in lines:
            terminalreporter.write_line(line)


# -- one real Prefect server for the session, started in the background -------------------
#: The server's process, home and API URL once started (by :func:`pytest_collection_finish`).
_PREFECT: dict = {}
PREFECT_START_S = 180.0


def _start_prefect() -> None:
    """Start ``prefect server start`` without waiting for it: it comes up (10-30 s of CPU
    on this machine) while the tests before the first that needs it run."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    home = tempfile.mkdtemp(prefix="cscat-rel-prefect-")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(PREFECT_HOME=home, PREFECT_SERVER_ANALYTICS_ENABLED="false",
               PREFECT_UI_ENABLED="false")
    prefect = str(Path(sys.executable).with_name("prefect"))
    proc = subprocess.Popen([prefect, "server", "start", "--host", "127.0.0.1", "--port",
                             str(port)], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    _PREFECT.update(proc=proc, home=home, url=f"http://127.0.0.1:{port}/api")


def pytest_collection_finish(session: pytest.Session) -> None:
    if any("prefect_api" in getattr(item, "fixturenames", ()) for item in session.items):
        _start_prefect()


def pytest_sessionfinish(session: pytest.Session) -> None:
    proc = _PREFECT.pop("proc", None)
    if proc is not None and proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=20)
    if "home" in _PREFECT:
        shutil.rmtree(_PREFECT.pop("home"), ignore_errors=True)


@pytest.fixture(scope="session")
def prefect_api() -> Iterator[str]:
    """The API URL of the session's real Prefect server (one for every command that runs
    flows under Prefect, instead of a temporary server per command or module)."""
    import httpx

    if "proc" not in _PREFECT:
        _start_prefect()
    proc, url = _PREFECT["proc"], _PREFECT["url"]
    deadline = time.monotonic() + PREFECT_START_S
    while True:
        assert proc.poll() is None, "the Prefect server ended at start"
        assert time.monotonic() < deadline, f"no Prefect server in {PREFECT_START_S:.0f} s"
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    yield url
