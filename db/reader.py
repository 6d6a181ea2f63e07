"""The read-only role ``cscat_reader``: its privileges in one place.

``apply_grants`` is run at the end of every ``db upgrade`` (``db/migrations/env.py``) and by
migration 0006, so views added by later migrations are readable and nothing else is. The role:

- may read the views of schema ``catalog``, the raw tables the README and the CLI point users
  at (:data:`TABLES`), and call the catalog's own (non-trigger) functions; nothing else;
- may create nothing (no CREATE on any schema, no TEMP on the database, no USAGE on
  ``public``), is no superuser and holds no membership (``pg_read_server_files`` & co.);
- may not call the advisory lock functions (it could block every update), the large-object
  functions, nor dblink's; revoked from PUBLIC, so this holds for any other plain role too;
- gets defaults for every session: read-only transactions and a statement timeout.

Logging in is set up separately (:func:`provision_login`): the migration cannot know where
the password lives. Only fixed SQL text runs here; identifiers come from the server's own
catalogs through ``format('%I')``.
"""

from __future__ import annotations

from sqlalchemy import Connection, text

ROLE = "cscat_reader"
#: Raw tables users are pointed at (README examples, the ingest summary's hint), and
#: source_result, read by catalog.class_changes (SECURITY INVOKER, so the planner can inline
#: it); its rows are those catalog.source_class_history shows anyway.
TABLES = ("csc_source", "rejected_row", "ingest_run", "source_result")
#: Defaults of every reader session (clients may lower the timeout; cscat sql sets its own).
ROLE_DEFAULTS = {"default_transaction_read_only": "on", "statement_timeout": "300s",
                 "idle_in_transaction_session_timeout": "60s", "lock_timeout": "10s"}

#: pg_advisory_xact_lock key serialising set-ups of the role in one database ("rdr"); the
#: role is shared by the cluster's databases, so a collision there is retried instead.
LOCK_KEY = 0x726472

_STATEMENTS = [
    f"""
DO $$ BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{ROLE}') THEN
        CREATE ROLE {ROLE} NOLOGIN;
    END IF;
END $$""",
    # Role attributes and memberships: only a superuser may change some of them.
    f"""
DO $$
DECLARE m record;
BEGIN
    IF (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) AND EXISTS (
            SELECT 1 FROM pg_roles WHERE rolname = '{ROLE}' AND (rolsuper OR rolcreatedb
            OR rolcreaterole OR rolreplication OR rolbypassrls)) THEN
        ALTER ROLE {ROLE} NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS;
    END IF;
    IF (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
        FOR m IN SELECT g.rolname FROM pg_auth_members a
                 JOIN pg_roles g ON g.oid = a.roleid JOIN pg_roles r ON r.oid = a.member
                 WHERE r.rolname = '{ROLE}' LOOP
            EXECUTE format('REVOKE %I FROM {ROLE}', m.rolname);
        END LOOP;
    END IF;
END $$""",
    # Nothing in catalog but what is granted below; nothing created anywhere.
    f"REVOKE ALL ON ALL TABLES IN SCHEMA catalog FROM {ROLE}",
    f"REVOKE ALL ON ALL SEQUENCES IN SCHEMA catalog FROM {ROLE}",
    f"REVOKE ALL ON ALL FUNCTIONS IN SCHEMA catalog FROM PUBLIC, {ROLE}",
    f"ALTER DEFAULT PRIVILEGES IN SCHEMA catalog REVOKE ALL ON TABLES FROM {ROLE}",
    "ALTER DEFAULT PRIVILEGES IN SCHEMA catalog REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC",
    "REVOKE CREATE ON SCHEMA catalog FROM PUBLIC",
    f"REVOKE ALL ON SCHEMA catalog FROM {ROLE}",
    f"GRANT USAGE ON SCHEMA catalog TO {ROLE}",
    f"""
DO $$
DECLARE r record;
BEGIN
    IF EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = 'public') THEN
        REVOKE ALL ON SCHEMA public FROM PUBLIC;
        EXECUTE format('REVOKE ALL ON SCHEMA public FROM %I', '{ROLE}');
    END IF;
    EXECUTE format('REVOKE CREATE, TEMPORARY ON DATABASE %I FROM PUBLIC', current_database());
    EXECUTE format('REVOKE ALL ON DATABASE %I FROM {ROLE}', current_database());
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO {ROLE}', current_database());
    FOR r IN SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = 'catalog'
               AND (c.relkind IN ('v', 'm') OR (c.relkind IN ('r', 'p')
                    AND c.relname = ANY (:tables))) LOOP
        EXECUTE format('GRANT SELECT ON catalog.%I TO {ROLE}', r.relname);
    END LOOP;
    FOR r IN SELECT p.oid::regprocedure AS sig FROM pg_proc p
             JOIN pg_namespace n ON n.oid = p.pronamespace
             WHERE n.nspname = 'catalog' AND p.prokind IN ('f', 'a')
               AND p.prorettype <> 'trigger'::regtype AND NOT p.prosecdef LOOP
        EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO {ROLE}', r.sig);
    END LOOP;
    -- Server functions no reader needs: advisory locks (a reader holding the update lock
    -- would block every update), large objects, dblink. Superusers keep them.
    FOR r IN SELECT p.oid::regprocedure AS sig FROM pg_proc p
             JOIN pg_namespace n ON n.oid = p.pronamespace
             WHERE (n.nspname = 'pg_catalog'
                    AND (p.proname ~ '^pg_(try_)?advisory_' OR p.proname ~ '^lo_'
                         OR p.proname IN ('loread', 'lowrite')))
                OR p.oid IN (SELECT d.objid FROM pg_depend d JOIN pg_extension e
                             ON e.oid = d.refobjid WHERE e.extname = 'dblink'
                             AND d.classid = 'pg_proc'::regclass) LOOP
        EXECUTE format('REVOKE EXECUTE ON FUNCTION %s FROM PUBLIC', r.sig);
        EXECUTE format('REVOKE EXECUTE ON FUNCTION %s FROM {ROLE}', r.sig);
    END LOOP;
END $$""",
]


def apply_grants(conn: Connection) -> None:
    """Give ``cscat_reader`` exactly its privileges in the connected database (idempotent)."""
    conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": LOCK_KEY})
    for stmt in _STATEMENTS:
        if ":tables" in stmt:
            # A DO body cannot take parameters: the fixed table list is spelled as literals.
            tables = ", ".join(f"'{t}'" for t in TABLES if t.isidentifier())
            stmt = stmt.replace(":tables", f"ARRAY[{tables}]::name[]")
        conn.execute(text(stmt))
    _set_role_defaults(conn)


#: The migration that introduced these grants; below it the database keeps 0002's.
REVISION = "0006_reader_role"


def apply_grants_if_current(conn: Connection, migration_context, script) -> None:
    """:func:`apply_grants` if the database is at or above :data:`REVISION` (end of a run)."""
    for head in migration_context.get_current_heads():
        if any(rev.revision == REVISION for rev in script.iterate_revisions(head, "base")):
            apply_grants(conn)
            return


def _set_role_defaults(conn: Connection) -> None:
    have = set(conn.execute(text(
        "SELECT unnest(s.setconfig) FROM pg_db_role_setting s JOIN pg_roles r "
        "ON r.oid = s.setrole WHERE r.rolname = :r AND s.setdatabase = 0"), {"r": ROLE}).scalars())
    for name, value in ROLE_DEFAULTS.items():
        if f"{name}={value}" in have:
            continue  # unchanged: no catalog update to collide with another cscat
        # ALTER ROLE ... SET takes no parameters; names and values are the fixed ones above.
        conn.execute(text(f"ALTER ROLE {ROLE} SET {name} = '{value}'"))


def database_acl_ok(conn: Connection) -> bool:
    """Database-level privileges are not copied by ``CREATE DATABASE ... TEMPLATE`` (nor by a
    restore without ``--create``): is TEMP/CREATE still closed to the reader here?"""
    return not conn.execute(text(
        "SELECT has_database_privilege(:r, current_database(), 'CREATE, TEMPORARY')"),
        {"r": ROLE}).scalar_one()


def provision_login(conn: Connection, password: str) -> None:
    """Let ``cscat_reader`` log in with ``password`` (run as the database's administrator).

    Only a SCRAM verifier computed here reaches the server, so the password is never in a
    statement (nor in the server's log, should the statement fail).
    """
    pgconn = conn.connection.driver_connection.pgconn
    verifier = pgconn.encrypt_password(password.encode(), ROLE.encode(), b"scram-sha-256")
    literal = conn.execute(text("SELECT quote_literal(:v)"), {"v": verifier.decode()}).scalar_one()
    conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": LOCK_KEY})
    escaped = literal.replace(":", "\\:")  # a verifier holds colons: not bind parameters
    conn.execute(text(f"ALTER ROLE {ROLE} WITH LOGIN PASSWORD {escaped}"))
