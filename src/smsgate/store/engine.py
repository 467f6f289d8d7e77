"""The async engine, with the SQLite pragmas that make it durable and concurrent (WAL, busy timeout)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine


def create(url: str, *, sqlite_synchronous: str = "FULL", pool_size: int = 10) -> AsyncEngine:
    """An engine for ``url``; for SQLite every connection gets WAL, a busy timeout and ``synchronous``."""
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
    if url.startswith("postgresql://"):
        url = "postgresql+asyncpg://" + url.removeprefix("postgresql://")
    return create_async_engine(url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True)


def create_sync_writer(url: str, *, sqlite_synchronous: str = "FULL") -> sa.Engine | None:
    """For SQLite, the plain-sqlite3 engine the group committer's writer thread uses; None otherwise."""
    if not url.startswith("sqlite"):
        return None
    engine = sa.create_engine(
        sync_url(url), connect_args={"timeout": 5.0, "check_same_thread": False}, pool_size=1, max_overflow=0
    )

    @sa.event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA synchronous={sqlite_synchronous}")
        cur.execute("PRAGMA busy_timeout=5000")
        cur.close()

    return engine


def sync_url(url: str) -> str:
    """The URL Alembic's sync side would use, for messages and for the migrations test."""
    return url.replace("+aiosqlite", "").replace("+asyncpg", "")
