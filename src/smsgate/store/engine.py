"""The async engine, with the SQLite pragmas that make it durable and concurrent (WAL, busy timeout)."""

from __future__ import annotations

import os
import pathlib
import sqlite3
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from smsgate import errors

# what the rest of smsgate holds a database by (only ``store`` imports SQLAlchemy)
Engine = AsyncEngine

_ASYNC_DRIVERS = {"sqlite": "sqlite+aiosqlite", "postgresql": "postgresql+asyncpg"}
_BACKENDS = {"sqlite": "sqlite", "postgres": "postgresql", "postgresql": "postgresql"}


def normalise_url(url: str) -> str:
    """The URL as people write it (``sqlite:///rel``, ``sqlite:////abs``, ``postgres://``, ``postgresql://``,
    with or without a driver) in the async driver's form; ValueError for another database."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ValueError("not a database URL: use sqlite:///path/to/file.db or postgresql://user@host/db")
    backend = _BACKENDS.get(scheme.split("+", 1)[0].lower())
    if backend is None:
        raise ValueError(f"unsupported database {scheme!r}: use sqlite:///path/to/file.db or postgresql://user@host/db")
    return f"{_ASYNC_DRIVERS[backend]}://{rest}"


def masked_url(url: str) -> str:
    """``url`` with its password (if any) replaced by ``***``: what logs, banners and errors show."""
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return url.split("://", 1)[0] + "://***"


def sqlite_path(url: str) -> pathlib.Path | None:
    """The file of a SQLite URL (None for PostgreSQL or an in-memory database)."""
    parsed = sa.engine.make_url(url)
    if not parsed.drivername.startswith("sqlite") or parsed.database in (None, "", ":memory:"):
        return None
    return pathlib.Path(parsed.database)


def prepare_sqlite(url: str) -> None:
    """For a SQLite URL: create the database's directory (0700) and file (0600) if they do not exist yet, so the
    messages, hashed secrets and signature secrets are readable by this user only. SQLite gives its -wal and -shm
    files the database file's permissions."""
    if not url.startswith("sqlite"):
        return
    path = sync_url(url).removeprefix("sqlite:///")
    if not path or path == ":memory:":
        return
    db = pathlib.Path(path)
    if not db.parent.exists():
        db.parent.mkdir(mode=0o700, parents=True)
    if not db.exists():
        os.close(os.open(db, os.O_CREAT | os.O_WRONLY, 0o600))


def create(url: str, *, sqlite_synchronous: str = "FULL", pool_size: int = 10) -> AsyncEngine:
    """An engine for ``url``; for SQLite every connection gets WAL, a busy timeout and ``synchronous``."""
    return _create(normalise_url(url), sqlite_synchronous=sqlite_synchronous, pool_size=pool_size)


# what a database that cannot be reached raises (the HTTP edge handles these types as "try again later")
UNAVAILABLE: tuple[type[Exception], ...] = (sa.exc.OperationalError, sa.exc.InterfaceError, OSError, TimeoutError)


def unavailable(exc: BaseException) -> errors.StoreUnavailable | None:
    """``StoreUnavailable`` for an exception that means the database cannot be reached now (down, cut, locked past
    the timeout), else None: the error every dialect answers with its own "try again later" (KPN 503, Kaarai 5030,
    Vonage status 1...), never a 500. Reads happen on cache misses anywhere on a request's path (a token's account,
    a number's owner), so the HTTP edge asks this of whatever it did not expect. asyncpg's refused connections
    arrive as a bare ``OSError``, SQLAlchemy's as ``OperationalError``/``InterfaceError``."""
    if isinstance(exc, errors.StoreUnavailable):
        return exc
    if isinstance(exc, UNAVAILABLE) or (isinstance(exc, sa.exc.DBAPIError) and exc.connection_invalidated):
        err = errors.StoreUnavailable(f"the message store is unavailable: {type(exc).__name__}")
        err.__cause__ = exc
        return err
    return None


def _create(url: str, *, sqlite_synchronous: str, pool_size: int) -> AsyncEngine:
    if url.startswith("sqlite"):
        engine = create_async_engine(url, connect_args={"timeout": 5.0})

        @sa.event.listens_for(engine.sync_engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute(f"PRAGMA synchronous={sqlite_synchronous}")
            cur.execute("PRAGMA busy_timeout=5000")
            cur.execute("PRAGMA foreign_keys=OFF")
            cur.close()

        return engine
    # asyncpg's own cache of prepared statements serves the group commit's statements (``store.pgraw``): room for
    # all of them (fastsql's IN lists come in ten sizes), as its default of 100 could make them evict each other
    return create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        connect_args={"statement_cache_size": 512},
    )


def create_sync_writer(url: str, *, sqlite_synchronous: str = "FULL", autocheckpoint: int = 1000) -> sa.Engine | None:
    """For SQLite, the plain-sqlite3 engine the group committer's writer uses; None otherwise. ``autocheckpoint``:
    the WAL pages after which one of its commits checkpoints (a ``store.checkpoint.Checkpointer`` does the copying
    off the loop before that, and then this is only the bound on the WAL's size)."""
    url = normalise_url(url)
    if not url.startswith("sqlite"):
        return None
    engine = sa.create_engine(
        sync_url(url),
        # room for every statement of the hot path (fastsql's IN lists come in ten sizes) in sqlite3's cache of
        # prepared statements: its default of 128 could make them evict each other
        connect_args={"timeout": 5.0, "check_same_thread": False, "cached_statements": 512},
        pool_size=1,
        max_overflow=0,
    )

    @sa.event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # transactions are begun explicitly, below
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA synchronous={sqlite_synchronous}")
        cur.execute("PRAGMA busy_timeout=0")  # the committer waits for the lock itself, see committer._write_lock
        cur.execute(f"PRAGMA wal_autocheckpoint={int(autocheckpoint)}")
        cur.close()

    @sa.event.listens_for(engine, "begin")
    def _begin(conn: sa.Connection) -> None:
        raw: Any = conn.connection.driver_connection
        if not raw.in_transaction:  # the group committer takes the lock itself, without blocking its loop
            raw.execute("BEGIN IMMEDIATE")

    return engine


def is_busy(exc: sqlite3.OperationalError) -> bool:
    """Whether SQLite refused because another connection holds the lock (worth waiting for)."""
    text = str(exc)
    return "locked" in text or "busy" in text


def sync_url(url: str) -> str:
    """The URL Alembic's sync side would use, for messages and for the migrations test."""
    return url.replace("+aiosqlite", "").replace("+asyncpg", "")
