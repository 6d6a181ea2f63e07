"""Security: ``cscat sql`` (and any client of ``cscat_reader``) is read-only, and the embedded
server is private. Every attack is one recorded case; each must fail with a one-line error.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import psutil
import psycopg
import pytest

from cscat.cli import main
from db import engine as dbe
from db import migrate
from db.catalog_store import UPDATE_LOCK_KEY

SQL = "security: sql"
SERVER = "security: server"


@pytest.fixture(scope="module")
def admin_url(db_url: str) -> str:
    return db_url.replace("postgresql+psycopg", "postgresql")


def admin(url: str) -> psycopg.Connection:
    return psycopg.connect(url, autocommit=True)


def run_sql(capsys, query: str) -> tuple[int, str, str]:
    code = main(["sql", query, "--format", "csv"])
    out, err = capsys.readouterr()
    return code, out, err


def refused(capsys, query: str, expect: str = "refused: ") -> tuple[bool, str]:
    """Did ``cscat sql`` refuse ``query`` with one line starting ``cscat: error: <expect>``?"""
    code, out, err = run_sql(capsys, query)
    one_line = len(err.strip().splitlines()) == 1 and "Traceback" not in err
    held = code == 2 and one_line and err.startswith(f"cscat: error: {expect}")
    return held, (err.strip() or out.strip())[:160]


ATTACKS = {
    "two statements hidden behind E'\\''":
        "select E'\\''; commit; create table catalog.pwned(x int); --'",
    "pg_read_file('/etc/passwd')": "select pg_read_file('/etc/passwd')",
    "pg_read_binary_file": "select pg_read_binary_file('/etc/passwd')",
    "pg_ls_dir('/')": "select pg_ls_dir('/')",
    "pg_stat_file": "select pg_stat_file('/etc/passwd')",
    "COPY table TO a server file": "COPY catalog.csc_source TO '/tmp/cscat-pwned-copy'",
    "COPY (query) TO a server file": "COPY (select 1) TO '/tmp/cscat-pwned-copy'",
    "COPY TO PROGRAM": "COPY (select 1) TO PROGRAM 'id > /tmp/cscat-pwned-program'",
    "COPY FROM a server file": "COPY catalog.csc_source FROM '/etc/passwd'",
    "SET TRANSACTION READ WRITE": "SET TRANSACTION READ WRITE",
    "set_config(session_replication_role)":
        "select set_config('session_replication_role', 'replica', false)",
    "set_config(log_statement)": "select set_config('log_statement', 'none', false)",
    "SET ROLE to the superuser": "SET ROLE cscat",
    "SET SESSION AUTHORIZATION": "SET SESSION AUTHORIZATION cscat",
    "pg_reload_conf()": "select pg_reload_conf()",
    "pg_rotate_logfile()": "select pg_rotate_logfile()",
    "LOCK raw table ACCESS EXCLUSIVE":
        "LOCK TABLE catalog.csc_source IN ACCESS EXCLUSIVE MODE",
    "LOCK view ACCESS EXCLUSIVE": "LOCK TABLE catalog.source_class IN ACCESS EXCLUSIVE MODE",
    "pg_advisory_lock(update key)": f"select pg_advisory_lock({UPDATE_LOCK_KEY})",
    "pg_try_advisory_lock(update key)": f"select pg_try_advisory_lock({UPDATE_LOCK_KEY})",
    "pg_advisory_xact_lock(update key)": f"select pg_advisory_xact_lock({UPDATE_LOCK_KEY})",
    "pg_try_advisory_lock_shared(update key)":
        f"select pg_try_advisory_lock_shared({UPDATE_LOCK_KEY})",
    "pg_advisory_lock(int4, int4)":
        f"select pg_advisory_lock({UPDATE_LOCK_KEY >> 32}, {UPDATE_LOCK_KEY & 0x7FFFFFFF})",
    "lo_import('/etc/passwd')": "select lo_import('/etc/passwd')",
    "lo_export": "select lo_export(lo_from_bytea(0, 'x'), '/tmp/cscat-pwned-lo')",
    "lo_from_bytea": "select lo_from_bytea(0, 'x')",
    "lo_create": "select lo_create(0)",
    "read a raw table outside the API": "select model from catalog.fitted_model",
    "read the raw detection results": "select * from catalog.detection_result limit 1",
    "read password hashes": "select rolpassword from pg_authid",
    "read server settings (data_directory)": "select current_setting('data_directory')",
    "terminate another session": "select pg_terminate_backend(pid) from pg_stat_activity "
                                 "where usename = 'cscat'",
    "CREATE TEMP TABLE": "create temp table t(x int)",
    "CREATE in public": "create table public.pwned(x int)",
    "CREATE EXTENSION": "create extension dblink",
    "DO block": "DO $$ BEGIN CREATE TABLE catalog.pwned(x int); END $$",
    "CREATE FUNCTION": "create function catalog.pwned() returns int language sql as 'select 1'",
    "ALTER ROLE itself": "alter role cscat_reader superuser",
    "GRANT to itself": "grant cscat to cscat_reader",
}


@pytest.mark.parametrize("case", list(ATTACKS))
def test_attack_through_cscat_sql_is_refused(db_url, admin_url, capsys, record, case):
    held, detail = refused(capsys, ATTACKS[case])
    with admin(admin_url) as conn:
        pwned = conn.execute(
            "SELECT count(*) FROM pg_class WHERE relname = 'pwned'").fetchone()[0]
    files = [p for p in ("/tmp/cscat-pwned-copy", "/tmp/cscat-pwned-program",
                         "/tmp/cscat-pwned-lo") if os.path.exists(p)]
    held = held and pwned == 0 and not files
    assert record(SQL, case, held, detail + (f"; created {files}" if files else "")
                  + ("; table pwned exists" if pwned else "")), detail


def test_copy_to_stdout_and_sleeping_are_not_special(db_url, capsys, record):
    # COPY ... TO STDOUT is a query's rows by another protocol: one line, no traceback.
    code, _, err = run_sql(capsys, "COPY (select 1) TO STDOUT")
    assert record(SQL, "COPY TO STDOUT gives one line", code == 2 and
                  len(err.strip().splitlines()) == 1, err.strip())


def test_notify_is_never_delivered(db_url, admin_url, capsys, record):
    with admin(admin_url) as listener:
        listener.execute("LISTEN cscat_probe")
        code, _, err = run_sql(capsys, "NOTIFY cscat_probe, 'pwned'")
        code2, _, _ = run_sql(capsys, "select pg_notify('cscat_probe', 'pwned')")
        got = list(listener.notifies(timeout=1, stop_after=1))
    assert record(SQL, "NOTIFY from cscat sql is rolled back", code in (0, 2) and not got,
                  f"{got} {err.strip()}")


def test_direct_reader_connection_cannot_write(db_url, admin_url, record):
    """What the web application or psql with the reader's URL could try, several statements."""
    attempts = {
        "SET TRANSACTION READ WRITE then CREATE TABLE":
            ["SET TRANSACTION READ WRITE", "CREATE TABLE catalog.pwned(x int)"],
        "READ WRITE then INSERT": ["SET TRANSACTION READ WRITE",
                                   "INSERT INTO catalog.csc_source (name) VALUES ('x')"],
        "READ WRITE then DELETE": ["SET TRANSACTION READ WRITE",
                                   "DELETE FROM catalog.rejected_row"],
        "default_transaction_read_only off then TRUNCATE":
            ["SET default_transaction_read_only = off", "COMMIT", "TRUNCATE catalog.csc_source"],
        "READ WRITE then advisory lock": ["SET TRANSACTION READ WRITE",
                                          f"SELECT pg_advisory_lock({UPDATE_LOCK_KEY})"],
        "READ WRITE then temp table": ["SET TRANSACTION READ WRITE", "CREATE TEMP TABLE t(x int)"],
    }
    for case, statements in attempts.items():
        with dbe.reader_connection() as conn:
            try:
                for s in statements:
                    conn.execute(s)
                conn.commit()
                held, detail = False, "all statements ran"
            except psycopg.errors.InsufficientPrivilege as e:
                held, detail = True, str(e).splitlines()[0]
            except psycopg.Error as e:
                held, detail = False, f"{type(e).__name__}: {e}"
        with admin(admin_url) as a:
            held = held and a.execute(
                "SELECT count(*) FROM pg_class WHERE relname = 'pwned'").fetchone()[0] == 0
        assert record(SQL, f"direct connection: {case}", held, detail), detail


def test_the_update_lock_stays_free(db_url, admin_url, record):
    with dbe.reader_connection() as conn:
        conn.autocommit = True
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT pg_try_advisory_lock(%s)", [UPDATE_LOCK_KEY])
        with admin(admin_url) as a:  # what an update does first
            got = a.execute("SELECT pg_try_advisory_lock(%s)", [UPDATE_LOCK_KEY]).fetchone()[0]
            a.execute("SELECT pg_advisory_unlock_all()")
    assert record(SQL, "an update can take its lock while a reader is connected", got)


def test_role_attributes(db_url, admin_url, record):
    with admin(admin_url) as conn:
        row = conn.execute("""
            SELECT r.rolsuper, r.rolcreatedb, r.rolcreaterole, r.rolreplication, r.rolbypassrls,
                   r.rolcanlogin,
                   (SELECT count(*) FROM pg_auth_members m WHERE m.member = r.oid),
                   (SELECT count(*) FROM pg_namespace n
                    WHERE has_schema_privilege(r.oid, n.oid, 'CREATE')),
                   has_database_privilege(r.oid, current_database(), 'CREATE'),
                   has_database_privilege(r.oid, current_database(), 'TEMP'),
                   has_schema_privilege(r.oid, 'public', 'USAGE'),
                   (SELECT count(*) FROM pg_proc p WHERE (p.proname ~ '^pg_(try_)?advisory_'
                        OR p.proname ~ '^lo_' OR p.proname IN ('loread', 'lowrite'))
                        AND has_function_privilege(r.oid, p.oid, 'EXECUTE'))
            FROM pg_roles r WHERE r.rolname = 'cscat_reader'""").fetchone()
    want = (False, False, False, False, False, True, 0, 0, False, False, False, 0)
    assert record(SQL, "role: no superuser/create/temp/membership/locks/lo", row == want,
                  f"got {row}"), row


def test_reads_the_api_and_only_it(db_url, admin_url, capsys, record):
    with admin(admin_url) as conn:
        granted = {r[0] for r in conn.execute("""
            SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = 'catalog' AND has_table_privilege('cscat_reader', c.oid, 'SELECT')
            """)}
        views = {r[0] for r in conn.execute(
            "SELECT viewname FROM pg_views WHERE schemaname = 'catalog'")}
        writable = conn.execute("""
            SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = 'catalog' AND (has_table_privilege('cscat_reader', c.oid,
                  'INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER'))""").fetchone()[0]
    expected = views | {"csc_source", "rejected_row", "ingest_run", "source_result"}
    assert record(SQL, "SELECT on the views and the README's tables only",
                  granted == expected and writable == 0,
                  f"extra {sorted(granted - expected)}, missing {sorted(expected - granted)}")
    for q in ("select count(*) from catalog.source_class",
              "select count(*) from catalog.source_class_as_of(1)",
              "select count(*) from catalog.class_changes(1, 2)",
              "select count(*) from catalog.csc_source"):
        code, _, err = run_sql(capsys, q)
        assert record(SQL, f"reader can run: {q}", code == 0, err.strip()), err


def test_grants_follow_new_views_and_survive_upgrade(db_url, admin_url, capsys, record):
    with admin(admin_url) as conn:  # as a later migration would
        conn.execute("CREATE VIEW catalog.t_later_view AS SELECT 1 AS one")
        conn.execute("CREATE TABLE catalog.t_later_table (x int)")
    try:
        before, _ = refused(capsys, "select * from catalog.t_later_view")
        assert main(["db", "upgrade"]) == 0
        capsys.readouterr()
        code, out, err = run_sql(capsys, "select * from catalog.t_later_view")
        table_refused, _ = refused(capsys, "select * from catalog.t_later_table")
        held = before and code == 0 and out == "one\n1\n" and table_refused
        assert record(SQL, "db upgrade grants new views, not new tables", held, err), err
        # Down to 0003 and back up: the reader still works and is still restricted.
        engine = dbe.get_engine()
        migrate.downgrade(engine, "0003")
        migrate.upgrade(engine)
        code, _, err = run_sql(capsys, "select count(*) from catalog.source_class")
        still, detail = refused(capsys, "select pg_read_file('/etc/passwd')")
        assert record(SQL, "downgrade to 0003 and upgrade keeps the reader", code == 0 and still,
                      err + detail), err + detail
    finally:
        with admin(admin_url) as conn:
            conn.execute("DROP VIEW IF EXISTS catalog.t_later_view")
            conn.execute("DROP TABLE IF EXISTS catalog.t_later_table")


def test_dblink_if_present(db_url, admin_url, capsys, record):
    with admin(admin_url) as conn:
        try:
            conn.execute("CREATE EXTENSION IF NOT EXISTS dblink")
        except psycopg.Error as e:
            pytest.skip(f"dblink is not available: {e}")
    try:
        for q in ("select public.dblink_connect('dbname=postgres')",
                  "select * from public.dblink('dbname=postgres host=127.0.0.1', "
                  "'create table pwned(x int)') as t(x text)"):
            held, detail = refused(capsys, q)
            assert record(SQL, f"dblink: {q[:40]}", held, detail), detail
        assert main(["db", "upgrade"]) == 0  # re-applied grants revoke dblink's functions too
        capsys.readouterr()
        with admin(admin_url) as conn:
            n = conn.execute("""
                SELECT count(*) FROM pg_proc p JOIN pg_depend d ON d.objid = p.oid
                JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'dblink'
                WHERE has_function_privilege('cscat_reader', p.oid, 'EXECUTE')""").fetchone()[0]
        assert record(SQL, "dblink: no function executable after db upgrade", n == 0, f"{n}")
    finally:
        with admin(admin_url) as conn:
            conn.execute("DROP EXTENSION IF EXISTS dblink")


def test_limits(db_url, capsys, monkeypatch, record):
    monkeypatch.setenv("CSCAT_SQL_TIMEOUT_S", "1")
    monkeypatch.setenv("CSCAT_SQL_MAX_ROWS", "1000")
    dbe.reset()
    try:
        cases = {
            "a query longer than the timeout": ("select pg_sleep(30)", "the query was cancelled"),
            "set_config cannot lift the timeout":
                ("select set_config('statement_timeout', '0', false), pg_sleep(30)",
                 "the query was cancelled"),
            "a cartesian explosion": ("select count(*) from generate_series(1, 100000) a, "
                                      "generate_series(1, 100000) b", "the query was cancelled"),
            "a result over the row limit":
                ("select generate_series(1, 100000000)", "refused: the result has more than 1,000"),
        }
        for case, (q, expect) in cases.items():
            import time
            t0 = time.monotonic()
            held, detail = refused(capsys, q, expect)
            took = time.monotonic() - t0
            held = held and took < 15
            assert record(SQL, case, held, f"{detail} ({took:.1f} s)"), detail
    finally:
        monkeypatch.delenv("CSCAT_SQL_TIMEOUT_S")
        monkeypatch.delenv("CSCAT_SQL_MAX_ROWS")
        dbe.reset()


@pytest.mark.parametrize("query, expected", [
    ("select '%s' AS v", "v\n%s\n"),
    ("select 100 % 7 AS v", "v\n2\n"),
    ("select '%(name)s %%' AS v", "v\n%(name)s %%\n"),
])
def test_percent(db_url, capsys, record, query, expected):
    code, out, err = run_sql(capsys, query)
    assert record(SQL, f"% in a query: {query}", code == 0 and out == expected, out + err)


# -- the embedded server -------------------------------------------------------------------
def _each_server_process(postmaster: psutil.Process, read) -> list:
    """``read(p)`` for the postmaster and each of its children still alive (backends come and
    go between listing and reading; the postmaster itself must answer)."""
    out = [read(postmaster)]
    for child in postmaster.children():
        try:
            out.append(read(child))
        except psutil.NoSuchProcess:
            continue
    return out


def test_embedded_server_is_private(pg_server, record):
    info = pg_server
    proc = psutil.Process(info.pid)
    sockets = _each_server_process(proc, lambda p: p.net_connections("inet"))
    listening = [c.laddr for conns in sockets for c in conns if c.status == psutil.CONN_LISTEN]
    assert record(SERVER, "listens on 127.0.0.1 only",
                  bool(listening) and all(a.ip == "127.0.0.1" for a in listening), f"{listening}")
    with psycopg.connect(info.url(database="postgres"), autocommit=True) as conn:
        rules = conn.execute("SELECT type, auth_method FROM pg_hba_file_rules").fetchall()
        listen = conn.execute("SHOW listen_addresses").fetchone()[0]
        pw_enc = conn.execute("SHOW password_encryption").fetchone()[0]
    assert record(SERVER, "password (scram-sha-256) for every pg_hba rule",
                  rules and all(m == "scram-sha-256" for _, m in rules) and listen == "127.0.0.1"
                  and pw_enc == "scram-sha-256", f"{rules} {listen}")
    for user, password in (("cscat", "wrong"), ("cscat", ""), ("cscat_reader", "wrong")):
        try:
            psycopg.connect(host="127.0.0.1", port=info.port, user=user, password=password,
                            dbname="postgres", connect_timeout=5).close()
            held = False
        except psycopg.OperationalError as e:
            held = "password" in str(e)
        assert record(SERVER, f"wrong password refused for {user!r}", held)
    cmdlines = " ".join(" ".join(c) for c in _each_server_process(proc, lambda p: p.cmdline()))
    assert record(SERVER, "no password on a command line", info.password not in cmdlines)

    data = Path(info.data_dir)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode)
             for p in (data, data / "pgdata", data / "server.json", data / "clients.json")}
    held = (modes[data.name] & 0o077 == 0 and modes["pgdata"] & 0o077 == 0
            and modes["server.json"] == 0o600 and modes["clients.json"] & 0o077 == 0)
    assert record(SERVER, "data directory, cluster and password file private to the user",
                  held, f"{ {k: oct(v) for k, v in modes.items()} }")
    leftovers = [p.name for p in data.iterdir() if p.name.startswith(".initdb-pw")]
    assert record(SERVER, "no initdb password file left behind", not leftovers, f"{leftovers}")
