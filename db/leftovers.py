"""Leftovers of crashed or killed cscat processes: ingest runs and classification runs
left ``running``, closed as soon as no other cscat writer is alive.

Every process that writes holds a *shared* session-level advisory lock (``writer``) for as
long as it writes. A process that gets the same lock *exclusively* knows that no other writer
is alive (PostgreSQL drops a session's locks when its client dies, even under SIGKILL), so
every ``running`` run left then belongs to a process that is gone: it marks them failed with
the reason, then holds the shared lock itself.

A fitted model left ``candidate`` (its process ended between the refit's commit and the
publish) is complete and is *not* closed here: the next refit on the same input reuses it
(``pipeline.classify``), and every publish rejects the candidates it does not promote
(``db.catalog_store.resolve_candidates``), so none stays candidate past the next publish.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, Engine, text

from db.models import SCHEMA

log = logging.getLogger(__name__)

#: Two-key advisory lock (class, object) held shared by every live cscat writer.
WRITER_LOCK = (0x63736361, 0x77726974)  # "csca", "writ"
ABANDONED = "abandoned: the cscat process that ran it ended before finishing it"


def close_abandoned(conn: Connection) -> dict[str, int]:
    """Mark leftover runs failed (caller holds ``WRITER_LOCK`` exclusively)."""
    runs = conn.execute(text(
        f"UPDATE {SCHEMA}.ingest_run SET status = 'failed', finished_at = now(), "
        "message = :m WHERE status = 'running'"), {"m": ABANDONED}).rowcount
    classification = conn.execute(text(
        f"UPDATE {SCHEMA}.classification_run SET status = 'failed', finished_at = now() "
        "WHERE status = 'running'")).rowcount
    return {"ingest_runs": runs, "classification_runs": classification}


def _try_exclusive(conn: Connection) -> bool:
    got = conn.execute(text("SELECT pg_try_advisory_lock(:a, :b)"),
                       {"a": WRITER_LOCK[0], "b": WRITER_LOCK[1]}).scalar_one()
    conn.commit()
    return bool(got)


def _cleanup_if_alone(conn: Connection) -> dict[str, int] | None:
    """Close leftovers if no other writer is alive; keeps holding the exclusive lock."""
    if not _try_exclusive(conn):
        return None
    closed = close_abandoned(conn)
    conn.commit()
    if any(closed.values()):
        log.warning("closed leftovers of a cscat process that did not finish: %s",
                    ", ".join(f"{n} {what.replace('_', ' ')}" for what, n in closed.items()
                              if n))
    return closed


@contextmanager
def writer(engine: Engine) -> Iterator[dict[str, int] | None]:
    """Hold the shared writer lock for the block; first close what dead writers left.

    Yields what was closed (None when another writer was alive, so nothing was checked).
    When the block is interrupted (Ctrl-C, SIGTERM, an error) the lock is released and, if
    this was the only writer, what it left half-open is closed at once.
    """
    a, b = WRITER_LOCK
    with engine.connect() as conn:
        closed = _cleanup_if_alone(conn)
        conn.execute(text("SELECT pg_advisory_lock_shared(:a, :b)"), {"a": a, "b": b})
        if closed is not None:
            conn.execute(text("SELECT pg_advisory_unlock(:a, :b)"), {"a": a, "b": b})
        conn.commit()
        try:
            yield closed
        except BaseException:
            _release_and_close(conn)
            raise
        conn.execute(text("SELECT pg_advisory_unlock_shared(:a, :b)"), {"a": a, "b": b})
        conn.commit()


def _release_and_close(conn: Connection) -> None:
    """After an interrupted block: drop the shared lock, close leftovers if alone."""
    a, b = WRITER_LOCK
    try:
        conn.rollback()
        conn.execute(text("SELECT pg_advisory_unlock_shared(:a, :b)"), {"a": a, "b": b})
        conn.commit()
        if _cleanup_if_alone(conn) is not None:
            conn.execute(text("SELECT pg_advisory_unlock(:a, :b)"), {"a": a, "b": b})
            conn.commit()
    except Exception as e:  # the connection may be what failed: the next run cleans up
        log.debug("could not close leftovers now (%s); the next run will", e)
