"""One engine and session factory for the configured database (embedded by default)."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache

import psycopg
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from db.embedded import EmbeddedServer
from db.settings import get_settings

DRIVER = "postgresql+psycopg"


class DatabaseError(RuntimeError):
    """A one-line, user-facing database problem (bad URL, unreachable server, ...)."""


def masked(url: str | URL) -> str:
    """The URL with its password hidden, for messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparseable URL>"


def sqlalchemy_url(url: str, setting: str = "CSCAT_DATABASE_URL") -> URL:
    """Parse a libpq or SQLAlchemy URL into a psycopg 3 SQLAlchemy URL."""
    try:
        parsed = make_url(url)
    except ArgumentError as e:
        raise DatabaseError(f"{setting} {masked(url)!r} is not a database URL") from e
    if parsed.get_backend_name() != "postgresql":
        raise DatabaseError(
            f"{setting} {masked(parsed)} is not PostgreSQL (cscat needs PostgreSQL ≥ 15)"
        )
    return parsed.set(drivername=DRIVER)


def embedded_server() -> EmbeddedServer:
    """The embedded server of the configured data directory."""
    return EmbeddedServer(get_settings().data_dir)


def resolve_url(*, keep_running: bool = False) -> URL:
    """The database URL: ``CSCAT_DATABASE_URL`` if set, else the embedded server (started)."""
    settings = get_settings()
    if settings.database_url:
        return sqlalchemy_url(settings.database_url)
    info = embedded_server().acquire(keep_running=keep_running, port=settings.embedded_port)
    return make_url(info.url(DRIVER))


@lru_cache(maxsize=1)
def get_engine() -> Engine:
    """The process-wide engine; checks the connection once so errors surface as one line."""
    url = resolve_url()
    engine = create_engine(url, pool_pre_ping=True)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except OperationalError as e:
        reason = str(e.orig).strip().splitlines()[0] if e.orig else str(e)
        raise DatabaseError(f"cannot connect to {masked(url)}: {reason}") from None
    return engine


def migrated_engine() -> Engine:
    """The engine, with the schema upgraded to the newest revision first if needed."""
    from db import migrate

    engine = get_engine()
    migrate.ensure_current(engine)
    return engine


@lru_cache(maxsize=1)
def session_factory() -> sessionmaker[Session]:
    """Sessions bound to :func:`get_engine`."""
    return sessionmaker(get_engine(), expire_on_commit=False)


@contextmanager
def session_scope() -> Iterator[Session]:
    """A session committed on success and rolled back on error."""
    with session_factory().begin() as session:
        yield session


# -- the read-only role ---------------------------------------------------------------------
def reader_password(admin: URL) -> str:
    """The password of ``cscat_reader``, set up by cscat itself.

    Embedded server: generated once, kept in ``server.json`` (mode 0600). A server of
    ``CSCAT_DATABASE_URL``: derived from its administrator's password (HMAC), so every cscat
    using that URL agrees on it and nothing needs storing; without one, CSCAT_READER_URL.
    """
    if not get_settings().database_url:
        return embedded_server().reader_password()
    if not admin.password:
        raise DatabaseError(
            f"cscat sql connects as the read-only role; {masked(admin)} has no password to "
            "derive its password from: create a login for it and set CSCAT_READER_URL")
    key = str(admin.password).encode()
    return hmac.new(key, b"cscat_reader login", hashlib.sha256).hexdigest()[:32]


def _libpq(url: URL) -> str:
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


def _connect(url: URL, kw: dict) -> psycopg.Connection:
    try:
        return psycopg.connect(_libpq(url), **kw)
    except psycopg.OperationalError as e:
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        where = masked(url.set(drivername="postgresql"))
        raise DatabaseError(f"cannot connect to {where}: {reason}") from None


def reader_connection(**kw) -> psycopg.Connection:
    """A psycopg connection as the read-only role (``cscat sql``, the web application).

    ``CSCAT_READER_URL`` if set (nothing else is touched). Otherwise the schema is migrated
    with the administrator's connection, and ``cscat_reader`` logs in with
    :func:`reader_password`, its login set up (again) when the password is refused.
    """
    from db import reader

    settings = get_settings()
    if settings.reader_url:
        return _connect(sqlalchemy_url(settings.reader_url, "CSCAT_READER_URL"), kw)
    admin = migrated_engine()
    try:
        with admin.begin() as conn:
            if not reader.database_acl_ok(conn):
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": reader.LOCK_KEY})
                reader.apply_grants(conn)
    except SQLAlchemyError as e:
        raise DatabaseError(f"cannot set the read-only role's privileges: {_reason(e)}") from None
    password = reader_password(admin.url)
    url = admin.url.set(username=reader.ROLE, password=password)
    try:
        return psycopg.connect(_libpq(url), **kw)
    except psycopg.OperationalError as e:
        if not any(m in str(e) for m in ("password authentication failed",
                                         "not permitted to log in")):
            return _connect(url, kw)  # the same failure, reported in one line
    for attempt in range(3):
        try:
            with admin.begin() as conn:
                reader.provision_login(conn, password)
            break
        except SQLAlchemyError as e:
            # Another cscat setting up the same (cluster-wide) role: it wins, we retry.
            if "concurrently" not in _reason(e) or attempt == 2:
                raise DatabaseError(
                    f"cannot set up the read-only login: {_reason(e)}") from None
    return _connect(url, kw)


def _reason(e: SQLAlchemyError) -> str:
    """The server's first line, never the statement (it might hold a secret)."""
    orig = getattr(e, "orig", None)
    lines = str(orig if orig is not None else type(e).__name__).strip().splitlines()
    return lines[0] if lines else type(e).__name__


def reset() -> None:
    """Forget the cached settings, engine and sessions (after the configuration changed)."""
    from db.settings import get_settings as settings_cache

    if get_engine.cache_info().currsize:
        get_engine().dispose()
    get_engine.cache_clear()
    session_factory.cache_clear()
    settings_cache.cache_clear()
