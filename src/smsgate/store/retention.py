"""Deleting and blanking old messages, a small batch per transaction (``services.retention`` runs the batches
through the group committer, so sends keep committing in between; ``smsgate purge`` runs them directly).

A message goes with everything that hangs off it: parts, events, webhook deliveries with their attempts, and any
outbox job left. Blanking keeps the rows and drops what was said: the message's and its parts' text, binary
payloads (a binary inbound message's hex ``data``) and the webhook bodies that carried them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from smsgate.core import retention
from smsgate.store import fastsql, tables

LOCK_KEY = 0x736D_7372  # "smsr": the PostgreSQL advisory lock one sweeping node holds per batch

_M, _P, _E = tables.messages, tables.parts, tables.events
_W, _A, _O = tables.webhook_deliveries, tables.webhook_attempts, tables.outbox
_R = tables.retention_marks


async def overrides(conn: AsyncConnection) -> dict[str, tuple[int | None, int | None]]:
    """Accounts with their own limits: account -> (retention_days, content_retention_days)."""
    a = tables.accounts.c
    rows = await conn.execute(
        sa.select(a.id, a.retention_days, a.content_retention_days).where(
            sa.or_(a.retention_days.is_not(None), a.content_retention_days.is_not(None))
        )
    )
    return {r.id: (r.retention_days, r.content_retention_days) for r in rows}


class Limits:
    """What the sweep reads before each pass: the accounts with their own limits."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def own(self) -> dict[str, tuple[int | None, int | None]]:
        async with self._engine.connect() as conn:
            return await overrides(conn)


async def take_turn(conn: AsyncConnection) -> bool:
    """On PostgreSQL: whether this transaction may sweep (no other node's batch holds the lock); SQLite: yes."""
    if conn.dialect.name != "postgresql":
        return True
    return bool(await conn.scalar(sa.select(sa.func.pg_try_advisory_xact_lock(LOCK_KEY))))


def _in_scope(scope: retention.Scope) -> tuple[str, list[Any], dict[str, Any]]:
    """The scope as a cache key, its conditions over bind parameters, and their values: one compiled statement per
    shape of scope (an account, or the default scope with N accounts excluded)."""
    if scope.account is not None:
        return "acc", [_M.c.account_id == sa.bindparam("scope_account")], {"scope_account": scope.account}
    names = [f"ex_{i}" for i in range(len(scope.exclude))]
    where = [_M.c.account_id.not_in([sa.bindparam(n) for n in names])] if names else []
    return f"ex{len(names)}", where, dict(zip(names, scope.exclude, strict=True))


async def delete_older(conn: AsyncConnection, scope: retention.Scope, before: float, limit: int) -> int:
    """Delete up to ``limit`` messages created before ``before`` with all that hangs off them; how many."""
    shape, where, params = _in_scope(scope)

    def build() -> Any:
        cut = _M.c.created_at < sa.bindparam("before")
        return sa.select(_M.c.id).where(cut, *where).order_by(_M.c.created_at).limit(sa.bindparam("lim"))

    rows = await fastsql.fetch(conn, f"retention:older:{shape}", build, {**params, "before": before, "lim": limit})
    ids = [r["id"] for r in rows]
    if ids:
        await delete_messages(conn, ids)
    return len(ids)


def _by(table: sa.Table, column: str, **also: str) -> Callable[[], Any]:
    """``DELETE FROM table WHERE column = :k [AND col = 'literal' ...]``, for an executemany over keys."""
    return lambda: table.delete().where(
        table.c[column] == sa.bindparam("k"), *(table.c[c] == v for c, v in also.items())
    )


async def delete_messages(conn: AsyncConnection, ids: Sequence[str]) -> None:
    """Statements compiled once and run as executemany over the ids: through SQLAlchemy each of these eight
    statements cost ~0.15 ms to build and bind, which made deleting one message take 1.3 ms of the write lock."""
    found = await fastsql.fetch_in(
        conn, "retention:deliveries", lambda binds: sa.select(_W.c.id).where(_W.c.message_id.in_(binds)), ids
    )
    deliveries = [{"k": r["id"]} for r in found]
    keys = [{"k": i} for i in ids]
    if deliveries:
        await fastsql.executemany(conn, "retention:del:attempts", _by(_A, "delivery_id"), deliveries)
        await fastsql.executemany(conn, "retention:del:outbox-webhook", _by(_O, "ref", kind="webhook"), deliveries)
        await fastsql.executemany(conn, "retention:del:deliveries", _by(_W, "id"), deliveries)
    await fastsql.executemany(conn, "retention:del:outbox-submit", _by(_O, "ref", kind="submit"), keys)
    await fastsql.executemany(conn, "retention:del:events", _by(_E, "message_id"), keys)
    await fastsql.executemany(conn, "retention:del:parts", _by(_P, "message_id"), keys)
    await fastsql.executemany(conn, "retention:del:messages", _by(_M, "id"), keys)


Mark = tuple[float, str]  # (created_at, id) of the last message a blanking pass reached


def _scope_id(scope: retention.Scope) -> str:
    return hashlib.sha256(scope.key.encode()).hexdigest()


async def mark(conn: AsyncConnection, scope: retention.Scope) -> Mark | None:
    """Where the blanking pass of ``scope`` got to (None: nowhere yet)."""
    rows = await fastsql.fetch(
        conn,
        "retention:mark",
        lambda: sa.select(_R.c.created_at, _R.c.message_id).where(_R.c.scope == sa.bindparam("scope")),
        {"scope": _scope_id(scope)},
    )
    return (rows[0]["created_at"], rows[0]["message_id"]) if rows else None


async def _set_mark(
    conn: AsyncConnection, scope: retention.Scope, at: Mark, planned: Sequence[retention.Scope]
) -> None:
    """Only one transaction sweeps at a time (SQLite's write lock; PostgreSQL's advisory lock, ``take_turn``),
    so an update, then an insert when there was no row, cannot race another node's.

    A scope's first mark means the plan changed (the default scope's key names the accounts with limits of their
    own), so the marks of scopes no longer ``planned`` go then: they would otherwise stay, one row per change. A
    node planning from a staler set of accounts costs at worst one pass walking from the start again."""
    params = {"scope": _scope_id(scope), "at": at[0], "mid": at[1]}
    res = await fastsql.execute(
        conn,
        "retention:mark:update",
        lambda: (
            _R.update()
            .where(_R.c.scope == sa.bindparam("scope"))
            .values(created_at=sa.bindparam("at"), message_id=sa.bindparam("mid"))
        ),
        params,
    )
    if res.rowcount:
        return
    await fastsql.execute(
        conn,
        "retention:mark:insert",
        lambda: _R.insert().values(
            scope=sa.bindparam("scope"), created_at=sa.bindparam("at"), message_id=sa.bindparam("mid")
        ),
        params,
    )
    keep = sorted({_scope_id(s) for s in planned} | {_scope_id(scope)})
    await conn.execute(_R.delete().where(_R.c.scope.not_in(keep)))


async def blank_older(
    conn: AsyncConnection,
    scope: retention.Scope,
    before: float,
    limit: int,
    planned: Sequence[retention.Scope] = (),
) -> int:
    """Blank up to ``limit`` messages created before ``before``, in age order from where the scope's pass got to
    (``retention_marks``, moved on in the same transaction, so no pass walks the same rows twice, even across a
    restart or another node's turn); how many. ``planned``: every scope the sweep blanks now (see ``_set_mark``)."""
    after = await mark(conn, scope)
    shape, where, params = _in_scope(scope)
    params.update(before=before, lim=limit)
    if after is not None:
        params.update(after_at=after[0], after_id=after[1])

    def build() -> Any:
        q = sa.select(_M.c.id, _M.c.created_at, _M.c.encoding, _M.c.meta).where(
            _M.c.created_at < sa.bindparam("before"),
            *where,
            sa.or_(_M.c.text.is_not(None), _M.c.encoding == "binary"),
        )
        if after is not None:
            at: sa.BindParameter[float] = sa.bindparam("after_at")
            q = q.where(
                sa.or_(_M.c.created_at > at, sa.and_(_M.c.created_at == at, _M.c.id > sa.bindparam("after_id")))
            )
        return q.order_by(_M.c.created_at, _M.c.id).limit(sa.bindparam("lim"))

    key = f"retention:blankable:{shape}:{'after' if after is not None else 'first'}"
    rows = await fastsql.fetch(conn, key, build, params)
    if not rows:
        return 0
    keys = [{"k": r["id"]} for r in rows]
    await fastsql.update_many(conn, "retention:blank:messages", _M, lambda: {"text": sa.null()}, keys)
    binary = [  # a binary inbound message's payload, in hex, is in its meta's "data"; the JSON serialised here
        {"k": r["id"], "kept": orjson.dumps({k: v for k, v in r["meta"].items() if k != "data"}).decode()}
        for r in rows
        if isinstance(r["meta"], dict) and "data" in r["meta"]
    ]
    await fastsql.update_many(conn, "retention:blank:meta", _M, lambda: {"meta": "kept"}, binary)
    await fastsql.update_many(
        conn,
        "retention:blank:parts",
        _P,
        lambda: {"text": sa.null(), "payload": sa.literal(b"", sa.LargeBinary)},
        keys,
        key="message_id",
    )
    await fastsql.update_many(
        conn, "retention:blank:webhooks", _W, lambda: {"body": sa.literal("", sa.Text)}, keys, key="message_id"
    )
    await _set_mark(conn, scope, (rows[-1]["created_at"], rows[-1]["id"]), planned)
    return len(rows)
