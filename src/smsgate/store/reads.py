"""The read side: messages with their parts and events, as ``/v1``, the console and the dispatcher read them.

One account sees its own messages and its sub-accounts' (``account_id`` None = the operator).
"""

from __future__ import annotations

import builtins
import dataclasses
from collections.abc import Mapping

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from smsgate.core import events as core_events
from smsgate.core import message as core_message
from smsgate.store import rows, tables


@dataclasses.dataclass(frozen=True, slots=True)
class Detail:
    """One message with its parts (in order) and its history (oldest first)."""

    message: core_message.Message
    parts: list[core_message.Part]
    events: list[core_events.Event]


def visible_to(column: sa.ColumnElement[str], account_id: str) -> sa.ColumnElement[bool]:
    """Rows of ``account_id`` or of one of its sub-accounts (a parent sees what it pays for)."""
    a = tables.accounts.c
    return sa.or_(column == account_id, column.in_(sa.select(a.id).where(a.parent_id == account_id)))


class MessageReads:
    """The read side: one account sees only its own messages (``account_id`` None = operator)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def get(self, account_id: str | None, message_id: str) -> Detail | None:
        m, p, e = tables.messages, tables.parts, tables.events
        q = sa.select(m).where(m.c.id == message_id)
        if account_id is not None:
            q = q.where(visible_to(m.c.account_id, account_id))
        async with self._engine.connect() as conn:
            row = (await conn.execute(q)).first()
            if row is None:
                return None
            part_rows = (await conn.execute(sa.select(p).where(p.c.message_id == message_id).order_by(p.c.idx))).all()
            event_rows = (
                await conn.execute(
                    sa.select(e.c.message_id, e.c.part_id, e.c.account_id, e.c.type, e.c.at, e.c.data)
                    .where(e.c.message_id == message_id)
                    .order_by(e.c.id)
                )
            ).all()
        return Detail(
            rows.message(row._mapping),
            [rows.part(r._mapping) for r in part_rows],
            [rows.event(r._mapping) for r in event_rows],
        )

    async def list(
        self,
        account_id: str | None,
        *,
        direction: str | None = None,
        status: str | None = None,
        number: str | None = None,
        sender: str | None = None,
        dialect: str | None = None,
        since: float | None = None,
        until: float | None = None,
        text: str | None = None,
        before: tuple[float, str] | None = None,
        limit: int = 50,
    ) -> builtins.list[core_message.Message]:
        m = tables.messages
        q = sa.select(m)
        if account_id is not None:
            q = q.where(visible_to(m.c.account_id, account_id))
        if direction:
            q = q.where(m.c.direction == direction)
        if status:
            q = q.where(m.c.status == status)
        if number:
            q = q.where(sa.or_(m.c.recipient == number, m.c.sender == number))
        if sender:
            q = q.where(m.c.sender == sender)
        if dialect:
            q = q.where(m.c.dialect == dialect)
        if since is not None:
            q = q.where(m.c.created_at >= since)
        if until is not None:
            q = q.where(m.c.created_at < until)
        if text:
            q = q.where(m.c.text.contains(text, autoescape=True))
        if before is not None:
            t, mid = before
            q = q.where(sa.or_(m.c.created_at < t, sa.and_(m.c.created_at == t, m.c.id < mid)))
        q = q.order_by(m.c.created_at.desc(), m.c.id.desc()).limit(limit)
        async with self._engine.connect() as conn:
            found = (await conn.execute(q)).all()
        return [rows.message(r._mapping) for r in found]

    async def count_since(self, account_id: str, since: float) -> int:
        """Parts the account sent since ``since``: what quotas count (a long message costs what it is billed; a
        canceled one costs nothing, as its quota was given back)."""
        m = tables.messages
        async with self._engine.connect() as conn:
            n = await conn.scalar(
                sa.select(sa.func.coalesce(sa.func.sum(m.c.parts_count), 0)).where(
                    m.c.account_id == account_id,
                    m.c.direction == "outbound",
                    m.c.created_at >= since,
                    m.c.status != core_message.Status.CANCELED.value,
                )
            )
        return int(n or 0)

    async def jobs(
        self, refs: Mapping[str, int]
    ) -> builtins.list[tuple[core_message.Message, builtins.list[core_message.Part]]]:
        """Messages with their parts in order, for the dispatcher (submit jobs it claimed from the outbox)."""
        m, p = tables.messages, tables.parts
        async with self._engine.connect() as conn:
            mrows = (await conn.execute(sa.select(m).where(m.c.id.in_(list(refs))))).all()
            prows = (await conn.execute(sa.select(p).where(p.c.message_id.in_(list(refs))).order_by(p.c.idx))).all()
        by_msg: dict[str, builtins.list[core_message.Part]] = {}
        for r in prows:
            by_msg.setdefault(r.message_id, []).append(rows.part(r._mapping))
        return [(rows.message(r._mapping), by_msg.get(r.id, [])) for r in mrows]

    async def awaiting_receipts(self, connector: str) -> builtins.list[tuple[str, str]]:
        """(network id, recipient) of every part ``connector`` took and has not reported on yet."""
        p, m = tables.parts, tables.messages
        async with self._engine.connect() as conn:
            found = (
                await conn.execute(
                    sa.select(p.c.network_id, m.c.recipient)
                    .join(m, m.c.id == p.c.message_id)
                    .where(p.c.connector == connector, p.c.status == "submitted", p.c.network_id.is_not(None))
                )
            ).all()
        return [(r[0], r[1]) for r in found]
