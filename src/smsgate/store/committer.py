"""Group commit: many callers' writes in one transaction, one fsync.

Callers ``await committer.write(kind, item)`` and get the handler's result once the transaction holding
their item has committed, so an API can answer 2xx only after the commit. Items that queue up while a
commit is running form the next batch; each kind's handler gets all its items of a batch at once, so it
can use one ``executemany`` per table instead of a round trip per message.

If a batch fails, its items are retried one by one so that one bad item cannot sink the others; an item
that fails on its own gets the error (``StoreUnavailable`` for a database that refuses writes).

On SQLite the batch runs on the event loop's own thread over a plain ``sqlite3`` connection: through the
async driver every statement costs several thread hops (~300 µs), and in a writer thread every statement
waits for the GIL behind the event loop. Only taking the write lock (``BEGIN IMMEDIATE``) can wait, and it
waits on the loop; once held, nothing in the transaction blocks on another connection. Handlers keep their
``async def`` form and are driven to completion over ``ImmediateConnection``, whose awaits never suspend; so
a handler may await only its connection.

On PostgreSQL the batch runs over ``PgConnection``: the transaction is begun and committed on the asyncpg
connection itself, and ``fastsql``'s compiled-once statements go straight to it. Through SQLAlchemy each of those
round trips also crossed its greenlet bridge (``greenlet_spawn`` was 26 % of a node's GIL time); other Core
statements still run through SQLAlchemy, inside the same transaction (``store.pgraw``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any

import sqlalchemy as sa
import sqlalchemy.exc
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from smsgate import errors
from smsgate.core import backoff
from smsgate.store import engine as store_engine
from smsgate.store import pgraw

log = logging.getLogger(__name__)

# what a database that refuses writes (down, cut, restarting) raises, through SQLAlchemy or from asyncpg directly
_REFUSED = (sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError, OSError, *pgraw.GONE)

Handler = Callable[[AsyncConnection, Sequence[Any]], Awaitable[Sequence[Any]]]
AfterCommit = Callable[[str, Sequence[Any], Sequence[Any]], None]


class ImmediateConnection:
    """The part of ``AsyncConnection`` write handlers use, over a sync connection: each await is immediate."""

    def __init__(self, conn: sa.Connection) -> None:
        self._conn = conn
        self.dialect = conn.dialect
        self.raw: Any = conn.connection.driver_connection  # the sqlite3 connection, inside the same transaction

    async def execute(self, statement: Any, parameters: Any = None) -> Any:
        return self._conn.execute(statement, parameters)

    async def scalar(self, statement: Any, parameters: Any = None) -> Any:
        return self._conn.scalar(statement, parameters)

    async def exec_driver_sql(self, statement: str, parameters: Any = None) -> Any:
        """Straight to the sqlite3 cursor: a list of tuples is an executemany, a tuple one execution."""
        cur = self.raw.cursor()
        if isinstance(parameters, list):
            cur.executemany(statement, parameters)
        else:
            cur.execute(statement, parameters or ())
        return cur


async def _write_lock(raw: Any, patience: float = 5.0) -> None:
    """``BEGIN IMMEDIATE`` on the writer's sqlite3 connection, waiting on the event loop (not in SQLite's
    busy handler, which would block the loop) while a background connection holds the write lock."""
    deadline = time.monotonic() + patience
    while True:
        try:
            raw.execute("BEGIN IMMEDIATE")
            return
        except sqlite3.OperationalError as exc:
            if not store_engine.is_busy(exc) or time.monotonic() > deadline:
                raise
        await asyncio.sleep(0.0005)


def _drive(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run a coroutine that never suspends to its end, synchronously."""
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value
    coro.close()
    raise RuntimeError("a write handler awaited something other than its connection")


class GroupCommitter:
    def __init__(
        self,
        engine: AsyncEngine,
        *,
        sync_engine: sa.Engine | None = None,
        max_batch: int = 2000,
        lazy_delay: float = 0.005,
        two_lanes: bool = False,
    ) -> None:
        self._engine = engine
        self._sync_engine = sync_engine
        self._max_batch = max_batch
        self._handlers: dict[str, Handler] = {}
        self._after: dict[str, list[AfterCommit]] = {}
        self._queue: asyncio.Queue[tuple[str, Any, asyncio.Future[Any]]] = asyncio.Queue()
        self._lazy: set[str] = set()
        self._last: set[str] = set()
        self._urgent = asyncio.Event()  # set when a write someone waits on is queued
        self.lazy_delay = lazy_delay
        self._two_lanes = two_lanes
        self._task: asyncio.Task[None] | None = None
        # PostgreSQL: the lanes keep their connections between batches (one per lane): a pool checkout with its
        # liveness ping and reset cost three round trips per batch; a connection the server dropped fails its
        # batch, whose items are then retried one by one on a new one
        self._held: list[pgraw.PgConnection] = []
        # SQLite: the writer's connection is likewise kept between batches; a pool checkout and check-in (with
        # its reset rollback) cost ~4 % of the gateway's CPU under load, once per batch
        self._sync: tuple[sa.Connection, ImmediateConnection] | None = None
        self.batches = 0
        self.items = 0
        # SQLite: how long the last transaction's COMMIT took (its pages into the WAL and the fsync), which a
        # writer that dirties many pages (the retention sweep) reads in its after-commit callback to size itself
        self.commit_seconds = 0.0

    def register(self, kind: str, handler: Handler, *, lazy: bool = False, last: bool = False) -> None:
        """``lazy``: nobody waits on this kind's latency (submit results, receipts), so a batch holding only
        lazy writes waits up to ``lazy_delay`` for a caller who does (a send) and commits with it: under load
        a message's accept, submit result and receipt then share commits instead of paying three each.

        With ``two_lanes`` (PostgreSQL, where writers do not queue behind one file lock) a batch's urgent and
        lazy writes commit in two transactions side by side: every statement is a network round trip there, and
        a send then waits for its own statements only. The order within each lane is kept (a submit result is
        written before a later receipt of the same part), and an accept always commits before its message is
        dispatched, so nothing of one message is in both lanes of a batch.

        ``last``: in a transaction this kind's items are written after every other kind's, whatever the order
        they were queued in (receipts after the submit results they may name: a receipt read off the socket
        together with its ``submit_sm_resp`` is often queued first, and would otherwise be held and applied
        again by the submit result's handler)."""
        self._handlers[kind] = handler
        if lazy:
            self._lazy.add(kind)
        if last:
            self._last.add(kind)

    def after_commit(self, kind: str, callback: AfterCommit) -> None:
        """Call ``callback(kind, items, results)`` after each commit of ``kind`` (before callers resume)."""
        self._after.setdefault(kind, []).append(callback)

    async def write(self, kind: str, item: Any) -> Any:
        return await self._enqueue(kind, item)

    def _enqueue(self, kind: str, item: Any) -> asyncio.Future[Any]:
        """Queue ``item`` for the next batch; its future resolves once that batch has committed. A future, not a
        coroutine: ``write_many`` awaits many of them without a task each (a task per receipt cost ~5 µs)."""
        if kind not in self._handlers:
            raise KeyError(kind)
        if self._task is None or self._task.done():
            raise errors.StoreUnavailable("the store is not running")
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((kind, item, fut))
        if kind not in self._lazy:
            self._urgent.set()
        return fut

    async def write_many(self, kind: str, items: Sequence[Any]) -> list[Any]:
        return list(await asyncio.gather(*[self._enqueue(kind, i) for i in items]))

    async def write_each(self, kind: str, items: Sequence[Any]) -> list[Any]:
        """``write_many`` that answers each item's outcome, its result or the error it got, instead of the first
        error: items queued together, so they commit in one transaction when they fit in one batch."""
        return list(await asyncio.gather(*[self._enqueue(kind, i) for i in items], return_exceptions=True))

    async def write_until_stored(self, kind: str, items: Sequence[Any], *, patience: float = 600.0) -> bool:
        """Write ``items``, retrying those the store refused (backing off to 5 s) until it takes them or
        ``patience`` runs out (False). For outcomes of work already done outside (a submit, a webhook call):
        dropping them would leave the job claimed until its lease ran out and then do the work again."""
        pending, attempt = list(items), 0
        give_up = time.monotonic() + patience
        while True:
            outs: list[Any]
            try:
                futs = [self._enqueue(kind, i) for i in pending]
            except errors.StoreUnavailable as exc:  # the committer is not running (yet, or any more)
                outs = [exc] * len(pending)
            else:
                outs = await asyncio.gather(*futs, return_exceptions=True)
            failed = [i for i, o in zip(pending, outs, strict=True) if isinstance(o, BaseException)]
            if not failed:
                return True
            errs = ", ".join(sorted({type(o).__name__ for o in outs if isinstance(o, BaseException)}))
            if time.monotonic() > give_up:
                log.error("gave up writing %d %s (%s)", len(failed), kind, errs)
                return False
            delay = backoff.delay(attempt, base=0.2, cap=5.0, jitter=backoff.NONE)
            log.warning("could not write %d %s (%s); retrying in %.1f s", len(failed), kind, errs, delay)
            pending = failed
            await asyncio.sleep(delay)
            attempt += 1

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
        while self._held:
            await self._held.pop().close()
        if self._sync is not None:
            with contextlib.suppress(Exception):
                self._sync[0].close()
            self._sync = None

    async def _run(self) -> None:
        while True:
            first = await self._queue.get()
            batch = [first]
            while len(batch) < self._max_batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            if self.lazy_delay > 0 and len(batch) < self._max_batch and all(b[0] in self._lazy for b in batch):
                self._urgent.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.lazy_delay):
                        await self._urgent.wait()
                while len(batch) < self._max_batch and not self._queue.empty():
                    batch.append(self._queue.get_nowait())
            stop = any(kind == "" for kind, _, _ in batch)
            batch = [b for b in batch if b[0] != ""]
            if batch and self._two_lanes:
                lanes = [[b for b in batch if b[0] not in self._lazy], [b for b in batch if b[0] in self._lazy]]
                await asyncio.shield(asyncio.gather(*(self._commit(lane) for lane in lanes if lane)))
            elif batch:
                # shielded: a cancelled service still finishes the commit it started
                await asyncio.shield(self._commit(batch))
            if stop:
                return

    async def _commit(self, batch: list[tuple[str, Any, asyncio.Future[Any]]]) -> None:
        groups: dict[str, list[tuple[Any, asyncio.Future[Any]]]] = {}
        for kind, item, fut in batch:
            groups.setdefault(kind, []).append((item, fut))
        if len(groups) > 1 and not self._last.isdisjoint(groups):
            groups = {k: v for k, v in groups.items() if k not in self._last} | {
                k: v for k, v in groups.items() if k in self._last
            }
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
        if self._sync_engine is not None:
            if self._sync is None:
                sync_conn = self._sync_engine.connect()
                self._sync = (sync_conn, ImmediateConnection(sync_conn))
            sync_conn, conn = self._sync
            raw: Any = conn.raw
            try:
                await _write_lock(raw)
                for kind, entries in groups.items():
                    items = [e[0] for e in entries]
                    res = _drive(self._handlers[kind](conn, items))  # type: ignore[arg-type]
                    out.append((kind, items, res, [e[1] for e in entries]))
                # The fsync (~0.3 ms here) blocks the loop. Handing it to a thread was measured slower: every
                # GIL hand-over back and forth stalled the loop's socket writes far longer than the fsync.
                committing = time.perf_counter()
                raw.commit()
                self.commit_seconds = time.perf_counter() - committing
            except BaseException:
                # a failed batch gives its connection up: the next one starts on a fresh one, as before
                self._sync = None
                with contextlib.suppress(Exception):
                    raw.rollback()
                with contextlib.suppress(Exception):
                    sync_conn.close()
                raise
            sync_conn.rollback()  # SQLAlchemy's own bookkeeping; the sqlite3 transaction is over
        elif self._engine.dialect.name == "postgresql":
            pconn = self._held.pop() if self._held else await pgraw.PgConnection.open(self._engine)
            try:
                async with pconn.pg.transaction():
                    for kind, entries in groups.items():
                        items = [e[0] for e in entries]
                        res = await self._handlers[kind](pconn, items)  # type: ignore[arg-type]
                        out.append((kind, items, res, [e[1] for e in entries]))
            finally:
                if pconn.broken:  # the server went away: the next batch connects afresh
                    await pconn.close()
                else:
                    self._held.append(pconn)
        else:  # SQLite through its async driver: a committer built without the sync writer (tests do)
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
        elif isinstance(exc, _REFUSED):
            log.error("store refused a write: %s", exc)
            err = errors.StoreUnavailable()
            err.__cause__ = exc
            fut.set_exception(err)
        else:
            log.error("write failed", exc_info=exc)
            err = errors.StoreUnavailable()
            err.__cause__ = exc
            fut.set_exception(err)
