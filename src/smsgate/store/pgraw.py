"""PostgreSQL connections whose hot statements skip SQLAlchemy's greenlet bridge.

A ``PgConnection`` is a pooled SQLAlchemy connection put in autocommit mode, so SQLAlchemy never begins or ends a
transaction on it, and the asyncpg connection underneath (``pg``). Whoever holds it begins and commits on ``pg``
(the group committer, ``store.committer``) or runs single statements, each its own transaction (the dispatcher's
lease renewal, ``store.outbox``). ``fastsql`` sends its compiled-once statements straight to ``pg``; any other
Core statement goes through SQLAlchemy (``execute``, ``scalar``) on the same asyncpg connection, and so inside the
same transaction. Through SQLAlchemy every statement, BEGIN and COMMIT crossed the greenlet bridge and the
adapter's cursor: ``greenlet_spawn`` was 26 % of a node's GIL time under load (docs/performance.md).
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

import asyncpg
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

# what asyncpg raises when the connection is gone or the server refuses to go on (restart, pg_terminate_backend)
GONE: tuple[type[Exception], ...] = (
    asyncpg.InterfaceError,
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,
)


class Result:
    """What ``fastsql`` reads of a statement's outcome: its rows (tuples, by position) and ``rowcount``."""

    __slots__ = ("_rows", "rowcount")

    def __init__(self, rows: Sequence[Any], rowcount: int) -> None:
        self._rows = rows
        self.rowcount = rowcount

    def fetchall(self) -> Sequence[Any]:
        return self._rows


class PgConnection:
    """The part of ``AsyncConnection`` store functions use, plus the asyncpg connection ``fastsql`` runs on."""

    def __init__(self, conn: AsyncConnection, pg: Any) -> None:
        self._conn = conn
        self.pg: Any = pg  # asyncpg.Connection
        self.dialect = conn.dialect

    @classmethod
    async def open(cls, engine: AsyncEngine) -> PgConnection:
        conn = await engine.connect()
        try:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            raw = await conn.get_raw_connection()
        except BaseException:
            await conn.close()
            raise
        return cls(conn, raw.driver_connection)

    async def execute(self, statement: Any, parameters: Any = None) -> Any:
        return await self._conn.execute(statement, parameters)

    async def scalar(self, statement: Any, parameters: Any = None) -> Any:
        return await self._conn.scalar(statement, parameters)

    @property
    def broken(self) -> bool:
        """The server dropped the connection (or SQLAlchemy gave it up): replace it."""
        return bool(self.pg.is_closed() or self._conn.invalidated or self._conn.closed)

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self._conn.close()


async def run(pg: Any, sql: str, params: Any, *, returns_rows: bool) -> Result | None:
    """``sql`` on the asyncpg connection ``pg``: a list of tuples is one ``executemany`` (asyncpg pipelines it: one
    round trip), a tuple one execution. asyncpg keeps each statement prepared (its statement cache)."""
    if isinstance(params, list):
        await pg.executemany(sql, params)
        return None
    if returns_rows:
        rows = await pg.fetch(sql, *params)
        return Result(rows, len(rows))
    status: str = await pg.execute(sql, *params)  # "UPDATE 3", "DELETE 0", "INSERT 0 1"
    tail = status.rpartition(" ")[2]
    return Result((), int(tail) if tail.isdigit() else -1)
