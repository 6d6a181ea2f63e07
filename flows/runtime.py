"""Prefect settings cscat applies before Prefect is imported (unless the user set them)."""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import ctypes.util
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

from db.settings import get_settings


def configure_prefect() -> None:
    """Keep Prefect's state beside cscat's data, quiet and offline-friendly.

    With no ``PREFECT_API_URL``, cscat runs flows against a temporary local server
    (:func:`start_temporary_server`) whose database lives in ``<data_dir>/prefect``. Set
    ``PREFECT_API_URL`` to use a Prefect server (and workers) of your own.
    """
    home = get_settings().data_dir / "prefect"
    home.mkdir(parents=True, exist_ok=True)
    for key, value in prefect_defaults(home).items():
        os.environ.setdefault(key, value)


def prefect_defaults(home: Path) -> dict[str, str]:
    """The Prefect environment :func:`configure_prefect` sets where the user did not."""
    return {
        "PREFECT_HOME": str(home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
        "PREFECT_LOGGING_EXTRA_LOGGERS": "pipeline,ingest,db",
        "PREFECT_LOGGING_LEVEL": "INFO",
        "PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW": "ignore",
        "DO_NOT_TRACK": "1",
    }


#: Set by :func:`start_temporary_server`: the server process this process started.
_TEMP_SERVER: subprocess.Popen | None = None


#: prctl option: the signal a child gets when its parent dies (Linux).
PR_SET_PDEATHSIG = 1


def _die_with_parent(parent: int) -> Callable[[], None]:
    """A ``preexec_fn``: the child gets SIGTERM when its parent dies, even by SIGKILL."""
    libc = None
    if sys.platform.startswith("linux"):  # loaded here: the child must not search for it
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)

    def apply() -> None:
        if libc is not None:
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)
    return apply


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_temporary_server(timeout: float | None = None) -> str | None:
    """With no ``PREFECT_API_URL``, start a temporary Prefect server for this process.

    Unlike Prefect's own temporary server it runs in its own session (Ctrl-C on the terminal
    reaches cscat, which stops it cleanly, not the server under a running flow) and it dies
    with this process even when this process is killed. Returns the API URL it set, or None
    when the user's own Prefect API is used.
    """
    global _TEMP_SERVER
    if os.environ.get("PREFECT_API_URL") or _TEMP_SERVER is not None:
        return None
    timeout = timeout or float(os.environ["PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"])
    home = Path(os.environ["PREFECT_HOME"])
    port = _free_port()
    env = {**os.environ, "PREFECT_UI_ENABLED": "0", "PREFECT__SERVER_EPHEMERAL": "1",
           "PREFECT__SERVER_FINAL": "1"}
    log_path = home / "temporary-server.log"
    with open(log_path, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "--factory", "prefect.server.api.server:create_app",
             "--host", "127.0.0.1", "--port", str(port), "--log-level", "error",
             "--lifespan", "on"],
            env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True, preexec_fn=_die_with_parent(os.getpid()))
    _TEMP_SERVER = proc
    atexit.register(stop_temporary_server)
    url = f"http://127.0.0.1:{port}/api"
    deadline = time.monotonic() + timeout
    while not _healthy(url):
        if proc.poll() is not None or time.monotonic() > deadline:
            stop_temporary_server()
            tail = log_path.read_text(errors="replace").strip().splitlines()[-1:] or ["no output"]
            raise RuntimeError(f"the temporary Prefect server did not start in {timeout:.0f} s "
                               f"({tail[0]}; log: {log_path})")
        time.sleep(0.2)
    os.environ["PREFECT_API_URL"] = url
    return url


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


def stop_temporary_server() -> None:
    """Stop the temporary server this process started (SIGTERM, then SIGKILL after 3 s)."""
    global _TEMP_SERVER
    proc, _TEMP_SERVER = _TEMP_SERVER, None
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=3)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)
    if os.environ.get("PREFECT_API_URL", "").startswith("http://127.0.0.1:"):
        os.environ.pop("PREFECT_API_URL", None)


class _NoTraceback(logging.Filter):
    """On the terminal, Prefect's failed-run records keep their line, not the traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.exc_info, record.exc_text, record.stack_info = None, None, None
        return True


def quiet_tracebacks() -> None:
    """Keep tracebacks off the terminal (``cscat --verbose`` leaves them): the root
    logger's console handlers, where Prefect's run loggers propagate, drop them."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler) and not any(
                isinstance(f, _NoTraceback) for f in handler.filters):
            handler.addFilter(_NoTraceback())


# -- the persistent local Prefect server (``cscat db start`` / ``cscat db stop``) ----------
#: In ``PREFECT_HOME``: the persistent server's pid, port and API URL.
PERSISTENT_STATE = "persistent-server.json"


def _state_path() -> Path:
    return Path(os.environ.get("PREFECT_HOME") or get_settings().data_dir / "prefect") \
        / PERSISTENT_STATE


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _is_prefect(pid: int) -> bool:
    """Whether ``pid`` still runs a Prefect server (not a process that reused the pid)."""
    try:
        return b"prefect" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return not Path("/proc/self").exists()  # no /proc: trust the pid


def persistent_server_url() -> str | None:
    """The API URL of the persistent server ``cscat db start`` left running, if it answers."""
    import json

    try:
        state = json.loads(_state_path().read_text())
        pid, url = int(state["pid"]), str(state["url"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return url if _alive(pid) and _healthy(url) else None


def use_persistent_server() -> str | None:
    """With no ``PREFECT_API_URL``, point Prefect at the persistent server if one runs.

    Call after :func:`configure_prefect` and before Prefect is imported. Returns its URL.
    """
    if os.environ.get("PREFECT_API_URL"):
        return None
    url = persistent_server_url()
    if url:
        os.environ["PREFECT_API_URL"] = url
    return url


def start_persistent_server(timeout: float | None = None) -> tuple[str, bool]:
    """Start a local Prefect server that outlives this process (its own session, state in
    ``PREFECT_HOME``), or reuse the one running. Returns (API URL, started now).

    Later cscat commands find it (:func:`use_persistent_server`) and skip the temporary
    server's start-up; it serves schedules too (``cscat serve``). Stopped by
    :func:`stop_persistent_server` (``cscat db stop``).
    """
    import json

    url = persistent_server_url()
    if url:
        return url, False
    timeout = timeout or float(os.environ["PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"])
    path = _state_path()
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env.update(PREFECT_UI_ENABLED=os.environ.get("PREFECT_UI_ENABLED", "0"),
               PREFECT_SERVER_API_HOST="127.0.0.1", PREFECT_SERVER_API_PORT=str(port))
    log_path = path.with_name("persistent-server.log")
    prefect = Path(sys.executable).with_name("prefect")
    cmd = [str(prefect)] if prefect.exists() else [sys.executable, "-m", "prefect"]
    with open(log_path, "ab") as out:
        proc = subprocess.Popen(
            [*cmd, "server", "start", "--host", "127.0.0.1", "--port", str(port)],
            env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True)
    url = f"http://127.0.0.1:{port}/api"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"pid": proc.pid, "port": port, "url": url}))
    os.replace(tmp, path)
    deadline = time.monotonic() + timeout
    while not _healthy(url):
        if proc.poll() is not None or time.monotonic() > deadline:
            stop_persistent_server()
            tail = log_path.read_text(errors="replace").strip().splitlines()[-1:] or ["no output"]
            raise RuntimeError(f"the Prefect server did not start in {timeout:.0f} s "
                               f"({tail[0]}; log: {log_path})")
        time.sleep(0.2)
    return url, True


def stop_persistent_server(timeout: float = 10.0) -> bool:
    """Stop the persistent server (its whole process group); True if one was running."""
    import json

    path = _state_path()
    try:
        pid = int(json.loads(path.read_text())["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return False
    path.unlink(missing_ok=True)
    if not _alive(pid) or not _is_prefect(pid):
        return False
    try:
        os.killpg(pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        return False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                break
        except ChildProcessError:  # not our child: poll the pid
            if not _alive(pid):
                break
        time.sleep(0.1)
    else:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
    return True


# -- the task runner of the heavy per-partition tasks --------------------------------------
def task_runner(settings=None):
    """The Prefect task runner the settings ask for: Prefect's thread pool
    (``task_runner = "thread"``, the default) or ``prefect-dask``'s runner
    (``task_runner = "dask"``) on the scheduler at ``dask_address``, or, unset, on a local
    cluster of ``dask_workers`` single-threaded worker processes started for the flow run.

    Use it as ``some_flow.with_options(task_runner=task_runner())(...)``; tasks then
    ``.submit()``/``.map()`` their partitions to it. Task arguments and results travel to
    the workers, so keep them plain data (frames, arrays, JSON-like dicts).
    """
    settings = settings or get_settings()
    if settings.task_runner == "thread":
        from prefect.task_runners import ThreadPoolTaskRunner

        return ThreadPoolTaskRunner()
    from prefect_dask import DaskTaskRunner

    if settings.dask_address:
        return DaskTaskRunner(address=settings.dask_address)
    return DaskTaskRunner(cluster_kwargs={"n_workers": settings.dask_workers,
                                          "threads_per_worker": 1, "processes": True,
                                          "dashboard_address": None})
