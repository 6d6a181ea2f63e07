"""The command server ``cscat db start`` leaves running: pipeline commands start in a second.

A pipeline command (``update``, ``refit``, ``reclassify``, ``master``, ``ingest csc|simbad|
counterparts``, ``demo``) spends most of its time importing Prefect, pandas, scikit-learn and
cscat's own code. The command server imports them once and listens on a Unix socket in the
data directory (mode 0600, same user only). The ``cscat`` client sends its arguments, working
directory, umask and environment with its stdin/stdout/stderr (``SCM_RIGHTS``); the server
forks a child that takes them over, forgets the state computed at import (settings, engine)
and runs the very same CLI code, so the flows are ordinary Prefect flows recorded on the
persistent Prefect server, and messages and exit codes are those of an in-process run.

The client forwards Ctrl-C and SIGTERM to the child (and the child stops as on SIGTERM when
the client disappears); it returns the child's exit code. Anything unusual (no server, a stale
socket, another version of the code, another Prefect or data directory in the environment)
and the command runs in-process as before. The server is never threaded (it forks), never
runs a command itself, and exits when its socket is removed or the embedded PostgreSQL of its
data directory is no longer running.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import json
import os
import signal
import socket
import struct
import sys
import threading
import time
from pathlib import Path

#: In the data directory: the server's socket, its state (pid, version) and log.
SOCKET, STATE, LOG = "cmdserver.sock", "cmdserver.json", "cmdserver.log"
#: Packages whose source decides the version the client and the server must agree on.
PACKAGES = ("cscat", "db", "flows", "pipeline", "classifier", "ingest")
#: Unix socket paths longer than this cannot be bound (sun_path is 108 bytes on Linux).
MAX_SOCKET_PATH = 100
#: Seconds the client waits for the server's first reply (the child's pid, or "run it
#: yourself"); a child whose client gave up sees it gone and stops.
FIRST_REPLY_S = 60.0
#: Seconds between the server's checks that it is still wanted.
CHECK_EVERY_S = 1.0


#: What the server imports (what a pipeline command imports before and during its flow).
WARM = ("cscat.cli", "flows.catalog", "prefect.flow_engine", "prefect.task_engine",
        "pipeline.classify", "pipeline.ingest", "db.migrate", "db.reader", "db.column_docs",
        "alembic.command", "alembic.config", "alembic.script", "alembic.runtime.migration",
        "alembic.autogenerate", "mako.template", "fastapi.encoders", "graphviz",
        "pygments.formatters", "pyarrow.pandas_compat", "http.cookies", "pydantic.color",
        "opentelemetry.metrics", "opentelemetry._logs", "termios")


# -- what runs through the server ----------------------------------------------------------
def is_pipeline_command(argv: list[str]) -> bool:
    """Whether ``argv`` (without the program name) runs Prefect flows."""
    words = [a for a in argv if not a.startswith("-")]
    if not words:
        return False
    if words[0] == "ingest":
        return len(words) > 1 and words[1] in ("csc", "simbad", "counterparts")
    return words[0] in ("update", "refit", "reclassify", "master", "demo")


def data_dir() -> Path:
    """The data directory, found without building the settings (which import the
    classifier): ``CSCAT_DATA_DIR``, else ``data_dir`` of the config file, else the default.
    The server checks the child's real settings agree before it runs anything."""
    explicit = os.environ.get("CSCAT_DATA_DIR")
    if explicit:
        return Path(explicit).expanduser()
    from db.settings import config_path

    with contextlib.suppress(OSError, ValueError):
        import tomllib

        value = tomllib.loads(config_path().read_text()).get("data_dir")
        if isinstance(value, str):
            return Path(value).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir("cscat"))


def code_version() -> str:
    """A digest of the installed code: every source file's path, size and mtime, and the
    interpreter (an upgraded install or an edited file is another version)."""
    root = Path(__file__).resolve().parents[1]
    h = hashlib.sha256(f"{os.path.realpath(sys.executable)}\0{sys.prefix}\0{sys.version}\0"
                       f"{root}".encode())
    for package in PACKAGES:
        for dirpath, dirnames, filenames in os.walk(root / package):
            dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
            for name in sorted(filenames):
                if name.endswith(".py"):
                    st = os.stat(os.path.join(dirpath, name))
                    h.update(f"{dirpath}/{name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


# -- the client ----------------------------------------------------------------------------
def _send(conn: socket.socket, message: dict, fds: list[int] | None = None) -> None:
    data = json.dumps(message).encode() + b"\n"
    if fds:
        socket.send_fds(conn, [data], fds)
    else:
        conn.sendall(data)


def _lines(conn: socket.socket):
    """The JSON messages on ``conn`` (one a line) until it is closed."""
    buf = b""
    while True:
        try:
            chunk = conn.recv(65536)
        except InterruptedError:
            continue
        if not chunk:
            return
        buf += chunk
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            yield json.loads(line)


def run_remote(argv: list[str]) -> int | None:
    """Run ``argv`` through the command server; its exit code, or None: run in-process."""
    if os.environ.get("CSCAT_COMMAND_SERVER", "1") == "0":
        return None
    try:
        path = data_dir() / SOCKET
    except Exception:  # noqa: BLE001 - a bad config: the in-process run says what is wrong
        return None
    if len(os.fsencode(path)) > MAX_SOCKET_PATH or not path.exists():
        return None
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    caught: list[int] = []

    def forward(signum, frame) -> None:
        caught.append(signum)
        with contextlib.suppress(OSError):
            conn.sendall(bytes([signum]))

    previous = {s: signal.signal(s, forward) for s in FORWARDED}
    try:
        try:
            conn.settimeout(FIRST_REPLY_S)  # a stuck server: in-process after this
            conn.connect(str(path))
            umask = os.umask(0o077)
            os.umask(umask)
            _send(conn, {"argv": argv, "cwd": os.getcwd(), "env": dict(os.environ),
                         "umask": umask, "version": code_version()}, [0, 1, 2])
            replies = _lines(conn)
            first = next(replies, None)
        except (OSError, ValueError):
            first = None  # no server, a stale socket, closed fds: in-process
        if first is not None and "pid" in first:
            conn.settimeout(None)
            return _wait(replies)
    finally:
        conn.close()
        for s, handler in previous.items():
            signal.signal(s, handler)
    for signum in caught[:1]:  # interrupted before anything ran: as if in-process
        os.kill(os.getpid(), signum)
    return None


#: The signals the client passes on to the command's process.
FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def _wait(replies) -> int:
    """Until the child reports its exit code (signals are forwarded meanwhile)."""
    try:
        for message in replies:
            if "rc" in message:
                return int(message["rc"])
    except (OSError, ValueError):
        pass
    print("cscat: error: the command server's process running this command ended without "
          "an exit code (killed?); the command may not have finished", file=sys.stderr)
    return 1


# -- the server ----------------------------------------------------------------------------
def _prefect_env(env: dict) -> dict:
    return {k: v for k, v in env.items() if k.startswith("PREFECT_") or k == "DO_NOT_TRACK"}


class Server:
    """The listening process (``python -m cscat.cmdserver``), started by ``cscat db start``."""

    def __init__(self, data: Path) -> None:
        self.data = data
        self.version = code_version()
        self.sock_path = data / SOCKET
        self.state_path = data / STATE

    def prepare(self) -> None:
        """Import what a pipeline command imports (after Prefect's environment is set)."""
        from cscat import commands
        from flows.runtime import configure_prefect, use_persistent_server

        configure_prefect()
        if not use_persistent_server():
            raise SystemExit("no persistent Prefect server runs (`cscat db start` starts one)")
        self.prefect_env = _prefect_env(os.environ)
        commands.get_settings()
        commands.UserError  # noqa: B018 - imports the error classes' modules
        for name in WARM:
            with contextlib.suppress(ImportError):
                importlib.import_module(name)
        from db import engine

        engine.reset()

    def listen(self) -> socket.socket:
        if len(os.fsencode(self.sock_path)) > MAX_SOCKET_PATH:
            raise SystemExit(f"the socket path {self.sock_path} is too long for a Unix socket")
        tmp = self.sock_path.with_name(f".{SOCKET}.{os.getpid()}")
        tmp.unlink(missing_ok=True)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)
        try:
            sock.bind(str(tmp))
        finally:
            os.umask(old)
        os.chmod(tmp, 0o600)
        sock.listen(16)
        os.replace(tmp, self.sock_path)  # a client sees no socket or a listening one
        self.inode = self.sock_path.stat().st_ino
        from db.embedded import _atomic_write

        _atomic_write(self.state_path, json.dumps(
            {"pid": os.getpid(), "version": self.version, "socket": str(self.sock_path)}))
        return sock

    def wanted(self) -> bool:
        """Still the socket in the data directory, and its embedded PostgreSQL runs."""
        from db.embedded import EmbeddedServer

        try:
            if self.sock_path.stat().st_ino != self.inode:
                return False
        except OSError:
            return False
        return EmbeddedServer(self.data).running_pid() is not None

    def serve(self) -> None:
        stop = []
        signal.signal(signal.SIGTERM, lambda s, f: stop.append(s))
        signal.signal(signal.SIGINT, lambda s, f: stop.append(s))
        sock = self.sock = self.listen()
        sock.settimeout(CHECK_EVERY_S)
        print(f"command server {os.getpid()} ready on {self.sock_path}", flush=True)
        last_check = time.monotonic()
        try:
            while not stop:
                _reap()
                if time.monotonic() - last_check > CHECK_EVERY_S:
                    last_check = time.monotonic()
                    if not self.wanted():
                        print("command server: no longer wanted, exiting", flush=True)
                        break
                try:
                    conn, _ = sock.accept()
                except (TimeoutError, InterruptedError):
                    continue
                try:
                    self._accept(conn)
                except Exception as e:  # noqa: BLE001 - one bad client must not stop the server
                    print(f"command server: request failed: {e!r}", flush=True)
                finally:
                    conn.close()
        finally:
            sock.close()
            with contextlib.suppress(OSError):
                if self.sock_path.stat().st_ino == self.inode:
                    self.sock_path.unlink()
                    self.state_path.unlink(missing_ok=True)

    def _accept(self, conn: socket.socket) -> None:
        conn.settimeout(10)
        creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        _, uid, _ = struct.unpack("3i", creds)
        if uid != os.getuid():
            return
        data, fds, _, _ = socket.recv_fds(conn, 1 << 20, 3)
        while b"\n" not in data:
            more = conn.recv(1 << 20)
            if not more:
                break
            data += more
        if len(fds) != 3:
            for fd in fds:
                os.close(fd)
            return
        try:
            line, _, pending = data.partition(b"\n")
            request = json.loads(line)
            reason = self._refusal(request)
            if reason:
                print(f"command server: runs in-process: {reason}", flush=True)
                _send(conn, {"fallback": reason})
                return
            pid = os.fork()
            if pid == 0:
                self.sock.close()
                _child(conn, request, fds, self.data, pending)  # never returns
            print(f"command server: `cscat {' '.join(request['argv'])[:200]}` in child {pid}",
                  flush=True)
        finally:
            for fd in fds:
                os.close(fd)

    def _refusal(self, request: dict) -> str | None:
        """Why the request must run in-process instead (None: it can run here)."""
        if threading.active_count() > 1:  # never fork a threaded process
            print(f"command server: threads {threading.enumerate()}", flush=True)
            return "the command server is not single-threaded"
        if request.get("version") != self.version:
            return "the installed code changed since the command server started"
        env = dict(request["env"])
        from flows.runtime import persistent_server_url, prefect_defaults

        for key, value in prefect_defaults(self.data / "prefect").items():
            env.setdefault(key, value)
        if "PREFECT_API_URL" not in env:
            url = persistent_server_url()
            if url is None:
                return "the persistent Prefect server is not running"
            env["PREFECT_API_URL"] = url
        if _prefect_env(env) != self.prefect_env:
            return "another Prefect configuration in the environment"
        return None


def _reap() -> None:
    """Collect the children that ended; log each one's exit status and CPU time."""
    with contextlib.suppress(ChildProcessError):
        while True:
            pid, status, usage = os.wait3(os.WNOHANG)
            if not pid:
                return
            print(f"command server: child {pid} ended ({_status(status)}), CPU "
                  f"{usage.ru_utime + usage.ru_stime:.2f} s", flush=True)


def _status(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"signal {os.WTERMSIG(status)}"
    return f"exit {os.waitstatus_to_exitcode(status)}"


def _child(conn: socket.socket, request: dict, fds: list[int], data: Path,
           pending: bytes) -> None:
    """In the forked child: become the client's command, run it, report its exit code."""
    rc, started = 1, False
    try:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        conn.settimeout(None)
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
        os.environ.clear()
        os.environ.update(request["env"])
        os.umask(int(request["umask"]))
        os.chdir(request["cwd"])
        sys.argv = ["cscat", *request["argv"]]
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(AttributeError, ValueError):
                stream.reconfigure(line_buffering=stream.isatty())
        from db import engine

        engine.reset()
        from cscat import commands
        from flows.runtime import configure_prefect, use_persistent_server

        try:
            same = commands.get_settings().data_dir.expanduser().resolve() == data.resolve()
        except Exception:  # noqa: BLE001 - a bad setting: the in-process run reports it
            same = False
        if not same:
            _send(conn, {"fallback": "another data directory or a bad configuration"})
            os._exit(0)
        configure_prefect()
        use_persistent_server()
        try:
            _send(conn, {"pid": os.getpid()})
        except OSError:  # the client gave up waiting and runs the command itself
            os._exit(1)
        started = True
        threading.Thread(target=_watch, args=(conn, pending), daemon=True,
                         name="cscat-client-watch").start()
        from cscat import cli

        try:
            rc = cli.run_in_process(request["argv"])
        except SystemExit as e:  # argparse: --help, usage errors
            rc = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
            if isinstance(e.code, str):
                print(e.code, file=sys.stderr)
        cli.finish()
    except BaseException as e:  # noqa: BLE001 - the child must never return to the server loop
        with contextlib.suppress(Exception):
            if not started:  # e.g. the client's working directory is gone: it runs itself
                _send(conn, {"fallback": f"{type(e).__name__}: {e}"})
                os._exit(0)
            print(f"cscat: error: command server: {type(e).__name__}: {e}", file=sys.stderr)
            sys.stderr.flush()
    finally:
        with contextlib.suppress(Exception):
            _send(conn, {"rc": rc})
        os._exit(rc if isinstance(rc, int) and 0 <= rc < 256 else 1)


def _watch(conn: socket.socket, pending: bytes) -> None:
    """In the child: a byte from the client is a signal to take; the client gone, SIGTERM."""
    data = pending
    while True:
        _take(data)
        try:
            data = conn.recv(16)
        except InterruptedError:
            continue
        except OSError:
            data = b""
        if not data:
            os.kill(os.getpid(), signal.SIGTERM)
            return


def _take(data: bytes) -> None:
    for signum in data:
        if signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            os.kill(os.getpid(), signal.SIGINT if signum == signal.SIGINT else signal.SIGTERM)


# -- start and stop (``cscat db start`` / ``cscat db stop``) -------------------------------
def _state(data: Path) -> dict | None:
    try:
        state = json.loads((data / STATE).read_text())
        return {"pid": int(state["pid"]), "version": str(state["version"])}
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _is_cmdserver(pid: int) -> bool:
    try:
        return b"cscat.cmdserver" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def running(data: Path) -> int | None:
    """The pid of the command server of ``data`` if it runs the installed code's version."""
    state = _state(data)
    if state is None or not _is_cmdserver(state["pid"]) or not (data / SOCKET).exists():
        return None
    return state["pid"] if state["version"] == code_version() else None


def start(data: Path, timeout: float = 120.0) -> tuple[int | None, str]:
    """Start the command server of ``data`` (or keep the running one); (pid, what happened)."""
    import subprocess

    pid = running(data)
    if pid:
        return pid, "running"
    stop(data)  # a stale or outdated one
    if len(os.fsencode(data / SOCKET)) > MAX_SOCKET_PATH:
        return None, "not started: the data directory's path is too long for a Unix socket"
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    with open(data / LOG, "ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "cscat.cmdserver", str(data)], env=env,
                                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True, cwd="/")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = _state(data)
        if state and state["pid"] == proc.pid and (data / SOCKET).exists():
            return proc.pid, "started"
        if proc.poll() is not None:
            tail = (data / LOG).read_text(errors="replace").strip().splitlines()[-1:]
            return None, f"failed to start ({(tail or ['no output'])[0]}; log: {data / LOG})"
        time.sleep(0.1)
    return proc.pid, "still starting (pipeline commands run in-process until it is ready)"


def stop(data: Path, timeout: float = 10.0) -> bool:
    """Stop the command server of ``data``; True if one was running. Commands it is running
    go on to their end (each is its own process)."""
    state = _state(data)
    (data / STATE).unlink(missing_ok=True)
    if state is None or not _is_cmdserver(state["pid"]):
        with contextlib.suppress(OSError):
            if not (data / SOCKET).is_socket() or not _answers(data / SOCKET):
                (data / SOCKET).unlink(missing_ok=True)
        return False
    pid = state["pid"]
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _is_cmdserver(pid):
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        time.sleep(0.05)
    if _is_cmdserver(pid):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    (data / SOCKET).unlink(missing_ok=True)
    return True


def _answers(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        try:
            s.connect(str(path))
        except OSError:
            return False
    return True


def main(argv: list[str]) -> None:
    data = Path(argv[0])
    os.environ["CSCAT_DATA_DIR"] = str(data)
    server = Server(data)
    server.prepare()
    server.serve()


if __name__ == "__main__":
    main(sys.argv[1:])

