"""What the console and the account API read beyond single messages: the live list's cursor over ``events``,
traffic per minute, and the sandbox network's handsets (every number the sandbox connector sent to or took a
reply from).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from smsgate.core import message as core_message
from smsgate.store import rows, tables

LOOKBACK = 256  # event ids below the cursor looked at again: rows that committed out of id order (PG sequences)


class Live:
    """The live list: messages touched by events after a cursor (the ``events`` primary key)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def last_event_id(self) -> int:
        async with self._engine.connect() as conn:
            return int(await conn.scalar(sa.select(sa.func.max(tables.events.c.id))) or 0)

    async def seen_below(self, cursor: int) -> set[int]:
        """The event ids in the lookback below ``cursor``: the caller's list showed them already."""
        e = tables.events
        q = sa.select(e.c.id).where(e.c.id > max(0, cursor - LOOKBACK), e.c.id <= cursor)
        async with self._engine.connect() as conn:
            return {int(i) for i in (await conn.scalars(q)).all()}

    async def changes(
        self, account_id: str | None, cursor: int, seen: set[int]
    ) -> tuple[list[core_message.Message], int]:
        """Messages touched by events after ``cursor`` (plus unseen ones in the lookback), oldest first, and the
        new cursor; ``seen`` is updated (and trimmed to the lookback)."""
        e, m = tables.events, tables.messages
        q = sa.select(e.c.id, e.c.message_id).where(e.c.id > max(0, cursor - LOOKBACK))
        if account_id is not None:
            q = q.where(e.c.account_id == account_id)
        async with self._engine.connect() as conn:
            found = [r for r in (await conn.execute(q.order_by(e.c.id).limit(2000))).all() if r.id not in seen]
            if not found:
                return [], cursor
            ids = sorted({r.message_id for r in found})
            msgs = (await conn.execute(sa.select(m).where(m.c.id.in_(ids)))).all()
        seen.update(r.id for r in found)
        top = max(cursor, max(r.id for r in found))
        for old in [i for i in seen if i <= top - LOOKBACK]:
            seen.discard(old)
        return sorted((rows.message(r._mapping) for r in msgs), key=lambda x: (x.created_at, x.id)), top


async def per_minute(engine: AsyncEngine, account_id: str, start: float, end: float) -> list[tuple[int, str, int]]:
    """(minute since ``start``, direction, messages) for an account's messages created in [start, end)."""
    m = tables.messages
    offset = m.c.created_at - start
    # whole minutes since ``start``: CAST truncates on SQLite but rounds on PostgreSQL, hence floor() there
    bucket = (
        sa.func.floor(offset / 60) if engine.dialect.name == "postgresql" else sa.cast(offset / 60, sa.Integer)
    ).label("b")
    q = (
        sa.select(bucket, m.c.direction, sa.func.count().label("n"))
        .where(m.c.account_id == account_id, m.c.created_at >= start, m.c.created_at < end)
        .group_by(bucket, m.c.direction)
    )
    async with engine.connect() as conn:
        return [(int(b), str(d), int(n)) for b, d, n in (await conn.execute(q)).all()]


# -- the sandbox network's handsets -----------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True, slots=True)
class Handset:
    msisdn: str
    messages: int
    last_at: float


async def handsets(engine: AsyncEngine, connectors: Sequence[str], account_id: str | None, limit: int) -> list[Handset]:
    """Numbers with their last activity through ``connectors``, most recent first (an account's, or all)."""
    m = tables.messages
    mine: list[sa.ColumnElement[bool]] = [m.c.connector.in_(list(connectors))]
    if account_id is not None:
        mine.append(m.c.account_id == account_id)
    number = sa.case((m.c.direction == "outbound", m.c.recipient), else_=m.c.sender).label("number")
    q = (
        sa.select(number, sa.func.count().label("n"), sa.func.max(m.c.created_at).label("last_at"))
        .where(*mine)
        .group_by(number)
        .order_by(sa.desc("last_at"))
        .limit(limit)
    )
    async with engine.connect() as conn:
        return [Handset(r.number, int(r.n), float(r.last_at)) for r in (await conn.execute(q)).all()]


async def conversation(
    engine: AsyncEngine,
    connectors: Sequence[str],
    msisdn: str,
    account_id: str | None,
    *,
    delivered_only: bool = False,
    limit: int = 200,
) -> list[tuple[core_message.Message, list[core_message.Part]]]:
    """What the handset ``msisdn`` received through ``connectors`` and what it sent, newest first, with parts.
    ``delivered_only``: of what it was sent, only what reached it (submitted or delivered)."""
    m, p = tables.messages, tables.parts
    received = sa.and_(m.c.direction == "outbound", m.c.recipient == msisdn)
    if delivered_only:
        received = sa.and_(received, m.c.status.in_(["submitted", "delivered"]))
    sent = sa.and_(m.c.direction == "inbound", m.c.sender == msisdn)
    q = sa.select(m).where(m.c.connector.in_(list(connectors)), sa.or_(received, sent))
    if account_id is not None:
        q = q.where(m.c.account_id == account_id)
    async with engine.connect() as conn:
        found = (await conn.execute(q.order_by(m.c.created_at.desc(), m.c.id.desc()).limit(limit))).all()
        ids = [r.id for r in found]
        part_rows = (
            (await conn.execute(sa.select(p).where(p.c.message_id.in_(ids)).order_by(p.c.idx))).all() if ids else []
        )
    parts: dict[str, list[core_message.Part]] = {}
    for r in part_rows:
        parts.setdefault(r.message_id, []).append(rows.part(r._mapping))
    return [(rows.message(r._mapping), parts.get(r.id, [])) for r in found]
