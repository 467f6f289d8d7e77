"""Deleting and blanking old messages, a small batch per transaction (``services.retention`` runs the batches
through the group committer, so sends keep committing in between; ``smsgate purge`` runs them directly).

A message goes with everything that hangs off it: parts, events, webhook deliveries with their attempts, and any
outbox job left. Blanking keeps the rows and drops what was said: the message's and its parts' text, binary
payloads (a binary inbound message's hex ``data``) and the webhook bodies that carried them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from smsgate.core import retention
from smsgate.store import tables

LOCK_KEY = 0x736D_7372  # "smsr": the PostgreSQL advisory lock one sweeping node holds per batch

_M, _P, _E = tables.messages, tables.parts, tables.events
_W, _A, _O = tables.webhook_deliveries, tables.webhook_attempts, tables.outbox


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


def _in_scope(scope: retention.Scope) -> list[Any]:
    if scope.account is not None:
        return [_M.c.account_id == scope.account]
    return [_M.c.account_id.not_in(scope.exclude)] if scope.exclude else []


async def delete_older(conn: AsyncConnection, scope: retention.Scope, before: float, limit: int) -> int:
    """Delete up to ``limit`` messages created before ``before`` with all that hangs off them; how many."""
    q = sa.select(_M.c.id).where(_M.c.created_at < before, *_in_scope(scope)).order_by(_M.c.created_at).limit(limit)
    ids = list((await conn.execute(q)).scalars())
    if ids:
        await delete_messages(conn, ids)
    return len(ids)


async def delete_messages(conn: AsyncConnection, ids: Sequence[str]) -> None:
    deliveries = list((await conn.execute(sa.select(_W.c.id).where(_W.c.message_id.in_(ids)))).scalars())
    if deliveries:
        await conn.execute(_A.delete().where(_A.c.delivery_id.in_(deliveries)))
        await conn.execute(_O.delete().where(_O.c.kind == "webhook", _O.c.ref.in_(deliveries)))
        await conn.execute(_W.delete().where(_W.c.id.in_(deliveries)))
    await conn.execute(_O.delete().where(_O.c.kind == "submit", _O.c.ref.in_(ids)))
    await conn.execute(_E.delete().where(_E.c.message_id.in_(ids)))
    await conn.execute(_P.delete().where(_P.c.message_id.in_(ids)))
    await conn.execute(_M.delete().where(_M.c.id.in_(ids)))


Mark = tuple[float, str]  # (created_at, id) of the last message a blanking pass reached


async def blank_older(
    conn: AsyncConnection, scope: retention.Scope, before: float, after: Mark | None, limit: int
) -> tuple[int, Mark | None]:
    """Blank up to ``limit`` messages created before ``before`` (after ``after``, in age order, so a pass never
    walks the same rows twice); how many, and where the pass got to."""
    q = sa.select(_M.c.id, _M.c.created_at, _M.c.encoding, _M.c.meta).where(
        _M.c.created_at < before,
        *_in_scope(scope),
        sa.or_(_M.c.text.is_not(None), _M.c.encoding == "binary"),
    )
    if after is not None:
        q = q.where(sa.or_(_M.c.created_at > after[0], sa.and_(_M.c.created_at == after[0], _M.c.id > after[1])))
    rows = (await conn.execute(q.order_by(_M.c.created_at, _M.c.id).limit(limit))).all()
    if not rows:
        return 0, after
    ids = [r.id for r in rows]
    await conn.execute(_M.update().where(_M.c.id.in_(ids)).values(text=None))
    for r in rows:
        meta = orjson.loads(r.meta) if isinstance(r.meta, str | bytes) else r.meta
        if isinstance(meta, dict) and "data" in meta:  # a binary inbound message's payload, in hex
            await conn.execute(
                _M.update().where(_M.c.id == r.id).values(meta={k: v for k, v in meta.items() if k != "data"})
            )
    await conn.execute(_P.update().where(_P.c.message_id.in_(ids)).values(text=None, payload=b""))
    await conn.execute(_W.update().where(_W.c.message_id.in_(ids)).values(body=""))
    return len(ids), (rows[-1].created_at, rows[-1].id)
