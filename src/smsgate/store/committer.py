"""Group commit: many callers' writes in one transaction, one fsync.

Callers ``await committer.write(kind, item)`` and get the handler's result once the transaction holding
their item has committed, so an API can answer 2xx only after the commit. Items that queue up while a
commit is running form the next batch; each kind's handler gets all its items of a batch at once, so it
can use one ``executemany`` per table instead of a round trip per message.

If a batch fails, its items are retried one by one so that one bad item cannot sink the others; an item
that fails on its own gets the error (``StoreUnavailable`` for a database that refuses writes).

On SQLite the whole batch runs in one dedicated writer thread on a plain ``sqlite3`` connection: through the
async driver every statement costs several thread hops (~300 µs), here a batch costs one. Handlers keep their
``async def`` form and are driven to completion in that thread over ``ImmediateConnection``, whose awaits
never suspend; so a handler may await only its connection. On PostgreSQL they run on asyncpg as written.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any

import sqlalchemy as sa
import sqlalchemy.exc
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from smsgate import errors

log = logging.getLogger(__name__)

Handler = Callable[[AsyncConnection, Sequence[Any]], Awaitable[Sequence[Any]]]
AfterCommit = Callable[[str, Sequence[Any], Sequence[Any]], None]


class ImmediateConnection:
    """The part of ``AsyncConnection`` write handlers use, over a sync connection: each await is immediate."""

    def __init__(self, conn: sa.Connection) -> None:
        self._conn = conn
        self.dialect = conn.dialect

    async def execute(self, statement: Any, parameters: Any = None) -> Any:
        return self._conn.execute(statement, parameters)

    async def scalar(self, statement: Any, parameters: Any = None) -> Any:
        return self._conn.scalar(statement, parameters)

    async def exec_driver_sql(self, statement: str, parameters: Any = None) -> Any:
        return self._conn.exec_driver_sql(statement, parameters)


def _drive(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run a coroutine that never suspends to its end, synchronously."""
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value
    coro.close()
    raise RuntimeError("a write handler awaited something other than its connection")


class GroupCommitter:
    def __init__(self, engine: AsyncEngine, *, sync_engine: sa.Engine | None = None, max_batch: int = 2000) -> None:
        self._engine = engine
        self._sync_engine = sync_engine
        self._writer = (
            concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="sqlite-writer") if sync_engine else None
        )
        self._max_batch = max_batch
        self._handlers: dict[str, Handler] = {}
        self._after: dict[str, list[AfterCommit]] = {}
        self._queue: asyncio.Queue[tuple[str, Any, asyncio.Future[Any]]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self.batches = 0
        self.items = 0

    def register(self, kind: str, handler: Handler) -> None:
        self._handlers[kind] = handler

    def after_commit(self, kind: str, callback: AfterCommit) -> None:
        """Call ``callback(kind, items, results)`` after each commit of ``kind`` (before callers resume)."""
        self._after.setdefault(kind, []).append(callback)

    async def write(self, kind: str, item: Any) -> Any:
        if kind not in self._handlers:
            raise KeyError(kind)
        if self._task is None or self._task.done():
            raise errors.StoreUnavailable("the store is not running")
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((kind, item, fut))
        return await fut

    async def write_many(self, kind: str, items: Sequence[Any]) -> list[Any]:
        return list(await asyncio.gather(*(self.write(kind, i) for i in items)))

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="group-committer")

    async def close(self) -> None:
        """Finish what is queued, then stop."""
        if self._task is None:
            return
        self._queue.put_nowait(("", None, asyncio.get_running_loop().create_future()))
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None
        if self._writer is not None:
            self._writer.shutdown(wait=True)

    async def _run(self) -> None:
        while True:
            first = await self._queue.get()
            batch = [first]
            while len(batch) < self._max_batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            stop = any(kind == "" for kind, _, _ in batch)
            batch = [b for b in batch if b[0] != ""]
            if batch:
                # shielded: a cancelled service still finishes the commit it started
                await asyncio.shield(self._commit(batch))
            if stop:
                return

    async def _commit(self, batch: list[tuple[str, Any, asyncio.Future[Any]]]) -> None:
        groups: dict[str, list[tuple[Any, asyncio.Future[Any]]]] = {}
        for kind, item, fut in batch:
            groups.setdefault(kind, []).append((item, fut))
        try:
            results = await self._transaction(groups)
        except Exception as exc:
            if len(batch) == 1:
                self._fail(batch[0][2], exc)
                return
            log.warning("batch of %d failed (%s); retrying items one by one", len(batch), exc)
            for kind, item, fut in batch:
                try:
                    res = await self._transaction({kind: [(item, fut)]})
                except Exception as one_exc:
                    self._fail(fut, one_exc)
                else:
                    self._done(res)
            return
        self._done(results)

    async def _transaction(
        self, groups: dict[str, list[tuple[Any, asyncio.Future[Any]]]]
    ) -> list[tuple[str, list[Any], Sequence[Any], list[asyncio.Future[Any]]]]:
        out = []
        if self._sync_engine is not None and self._writer is not None:
            sync_engine = self._sync_engine

            def run() -> None:
                with sync_engine.begin() as sync_conn:
                    conn = ImmediateConnection(sync_conn)
                    for kind, entries in groups.items():
                        items = [e[0] for e in entries]
                        res = _drive(self._handlers[kind](conn, items))  # type: ignore[arg-type]
                        out.append((kind, items, res, [e[1] for e in entries]))

            await asyncio.get_running_loop().run_in_executor(self._writer, run)
        else:
            async with self._engine.begin() as aconn:
                for kind, entries in groups.items():
                    items = [e[0] for e in entries]
                    res = await self._handlers[kind](aconn, items)
                    out.append((kind, items, res, [e[1] for e in entries]))
        self.batches += 1
        return out

    def _done(self, results: list[tuple[str, list[Any], Sequence[Any], list[asyncio.Future[Any]]]]) -> None:
        for kind, items, res, futs in results:
            self.items += len(items)
            for cb in self._after.get(kind, ()):
                try:
                    cb(kind, items, res)
                except Exception:  # an observer must never undo a commit
                    log.exception("after-commit callback for %s failed", kind)
            for fut, r in zip(futs, res, strict=True):
                if fut.done():
                    continue
                if isinstance(r, BaseException):  # a per-item refusal decided inside the transaction
                    fut.set_exception(r)
                else:
                    fut.set_result(r)

    @staticmethod
    def _fail(fut: asyncio.Future[Any], exc: Exception) -> None:
        if fut.done():
            return
        if isinstance(exc, errors.SmsgateError):
            fut.set_exception(exc)
        elif isinstance(exc, sqlalchemy.exc.OperationalError | sqlalchemy.exc.InterfaceError | OSError):
            log.error("store refused a write: %s", exc)
            err = errors.StoreUnavailable()
            err.__cause__ = exc
            fut.set_exception(err)
        else:
            log.error("write failed", exc_info=exc)
            err = errors.StoreUnavailable()
            err.__cause__ = exc
            fut.set_exception(err)
