"""The sandbox network's per-account state: what a handset received (the newest message, a conversation to delete),
the handsets' scripts and the account's network behaviour.

A handset's inbox is the account's outbound messages the sandbox connector took (``submitted`` or ``delivered``,
as ``GET /sandbox/handsets/{msisdn}/messages`` shows it); its conversation adds the inbound messages it sent
through the sandbox. Deleting leaves alone what is still in flight (a message with a submit job in the outbox):
the dispatcher holds it and will record its outcome, so it arrives after the reset rather than vanishing half-way.

Every change to scripts or behaviour is announced to the other nodes in its transaction (``notify``), as owners and
credentials are.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from smsgate.store import notify, tables

ARRIVED = ("submitted", "delivered")  # a handset has a message once the network took it
DELETE_CHUNK = 500  # messages per transaction, so a big reset never holds SQLite's write lock for long


@dataclasses.dataclass(frozen=True, slots=True)
class HandsetPart:
    index: int
    total: int
    text: str | None
    udh: bytes
    network_id: str | None


@dataclasses.dataclass(frozen=True, slots=True)
class HandsetMessage:
    """A message a handset received: what its screen shows, and when it arrived (the network took every part)."""

    id: str
    sender: str
    recipient: str
    text: str | None
    encoding: str
    status: str
    created_at: float
    received_at: float | None
    parts: tuple[HandsetPart, ...]


@dataclasses.dataclass(frozen=True, slots=True)
class Cursor:
    """Strictly after this point in an inbox: after ``created_at``, or after that message when ``message_id`` is set."""

    created_at: float
    message_id: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class Arrived:
    """What a script needs of a message that reached a handset."""

    message_id: str
    account_id: str
    sender: str
    recipient: str
    text: str | None


@dataclasses.dataclass(frozen=True, slots=True)
class Script:
    account_id: str
    msisdn: str
    rules: list[dict[str, Any]]
    last_run: dict[str, Any] | None
    updated_at: float


@dataclasses.dataclass(frozen=True, slots=True)
class Reset:
    messages: int
    scripts: int
    behaviour: bool


class SandboxStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    # -- inboxes ----------------------------------------------------------------------------------------------
    async def latest(
        self, account_id: str, connectors: Sequence[str], msisdn: str, after: Cursor | None
    ) -> HandsetMessage | None:
        """The newest message ``msisdn`` received from the account (after ``after``), or None."""
        m, p = tables.messages, tables.parts
        q = sa.select(m.c.id, m.c.sender, m.c.recipient, m.c.text, m.c.encoding, m.c.status, m.c.created_at).where(
            m.c.account_id == account_id,
            m.c.recipient == msisdn,
            m.c.direction == "outbound",
            m.c.connector.in_(list(connectors)),
            m.c.status.in_(ARRIVED),
        )
        if after is not None:
            later = m.c.created_at > after.created_at
            if after.message_id is not None:
                later = sa.or_(later, sa.and_(m.c.created_at == after.created_at, m.c.id > after.message_id))
            q = q.where(later)
        async with self._engine.connect() as conn:
            row = (await conn.execute(q.order_by(m.c.created_at.desc(), m.c.id.desc()).limit(1))).first()
            if row is None:
                return None
            parts = (
                await conn.execute(
                    sa.select(p.c.idx, p.c.total, p.c.text, p.c.udh, p.c.network_id, p.c.submitted_at)
                    .where(p.c.message_id == row.id)
                    .order_by(p.c.idx)
                )
            ).all()
        stamps = [x.submitted_at for x in parts if x.submitted_at is not None]
        return HandsetMessage(
            id=row.id,
            sender=row.sender,
            recipient=row.recipient,
            text=row.text,
            encoding=row.encoding,
            status=row.status,
            created_at=row.created_at,
            received_at=max(stamps) if stamps else None,
            parts=tuple(HandsetPart(x.idx, x.total, x.text, bytes(x.udh), x.network_id) for x in parts),
        )

    async def cursor_of(self, account_id: str, message_id: str) -> Cursor | None:
        """Where one of the account's messages stands in its inboxes (None: no such message of the account)."""
        m = tables.messages
        async with self._engine.connect() as conn:
            created = await conn.scalar(
                sa.select(m.c.created_at).where(m.c.id == message_id, m.c.account_id == account_id)
            )
        return Cursor(float(created), message_id) if created is not None else None

    async def arrived(self, message_ids: Sequence[str]) -> list[Arrived]:
        m = tables.messages
        async with self._engine.connect() as conn:
            rows = (
                await conn.execute(
                    sa.select(m.c.id, m.c.account_id, m.c.sender, m.c.recipient, m.c.text).where(
                        m.c.id.in_(list(message_ids))
                    )
                )
            ).all()
        return [Arrived(r.id, r.account_id, r.sender, r.recipient, r.text) for r in rows]

    async def delete_messages(self, account_id: str, connectors: Sequence[str], msisdn: str | None = None) -> int:
        """Delete the account's sandbox conversations (with one handset, or with all), with their parts and events;
        messages still in flight stay. Returns how many messages went."""
        m, o = tables.messages, tables.outbox
        in_flight = sa.exists().where(o.c.kind == "submit", o.c.ref == m.c.id)
        received = sa.and_(m.c.direction == "outbound", ~in_flight)
        sent = m.c.direction == "inbound"
        if msisdn is not None:
            received = sa.and_(received, m.c.recipient == msisdn)
            sent = sa.and_(sent, m.c.sender == msisdn)
        q = (
            sa.select(m.c.id)
            .where(m.c.account_id == account_id, m.c.connector.in_(list(connectors)), sa.or_(received, sent))
            .limit(DELETE_CHUNK)
        )
        total = 0
        while True:
            async with self._engine.begin() as conn:
                ids = list((await conn.scalars(q)).all())
                if ids:
                    await conn.execute(tables.events.delete().where(tables.events.c.message_id.in_(ids)))
                    await conn.execute(tables.parts.delete().where(tables.parts.c.message_id.in_(ids)))
                    await conn.execute(m.delete().where(m.c.id.in_(ids)))
            total += len(ids)
            if len(ids) < DELETE_CHUNK:
                return total

    async def reset(self, account_id: str, connectors: Sequence[str]) -> Reset:
        """The account's sandbox as new: conversations, scripts and network behaviour gone."""
        messages = await self.delete_messages(account_id, connectors)
        s, b = tables.sandbox_scripts, tables.sandbox_behaviours
        async with self._engine.begin() as conn:
            scripts = (await conn.execute(s.delete().where(s.c.account_id == account_id))).rowcount
            behaviour = (await conn.execute(b.delete().where(b.c.account_id == account_id))).rowcount
            await notify.notify_change(conn, notify.SANDBOX, account_id)
        return Reset(messages, int(scripts or 0), bool(behaviour))

    # -- scripts ----------------------------------------------------------------------------------------------
    async def put_script(self, account_id: str, msisdn: str, rules: list[dict[str, Any]]) -> Script:
        s = tables.sandbox_scripts
        now = time.time()
        async with self._engine.begin() as conn:
            await conn.execute(s.delete().where(s.c.account_id == account_id, s.c.msisdn == msisdn))
            await conn.execute(s.insert().values(account_id=account_id, msisdn=msisdn, rules=rules, updated_at=now))
            await notify.notify_change(conn, notify.SANDBOX, account_id)
        return Script(account_id, msisdn, rules, None, now)

    async def scripts(self, account_id: str | None = None, msisdn: str | None = None) -> list[Script]:
        """Every script (``account_id`` None), an account's, or one handset's."""
        s = tables.sandbox_scripts
        q = sa.select(s)
        if account_id is not None:
            q = q.where(s.c.account_id == account_id)
        if msisdn is not None:
            q = q.where(s.c.msisdn == msisdn)
        async with self._engine.connect() as conn:
            rows = (await conn.execute(q.order_by(s.c.account_id, s.c.msisdn))).all()
        return [Script(r.account_id, r.msisdn, list(r.rules), r.last_run, r.updated_at) for r in rows]

    async def delete_script(self, account_id: str, msisdn: str) -> bool:
        s = tables.sandbox_scripts
        async with self._engine.begin() as conn:
            gone = (await conn.execute(s.delete().where(s.c.account_id == account_id, s.c.msisdn == msisdn))).rowcount
            await notify.notify_change(conn, notify.SANDBOX, account_id)
        return bool(gone)

    async def record_run(self, account_id: str, msisdn: str, run: Mapping[str, Any]) -> None:
        """What the script's last match led to (no announcement: only readers of the script look at it)."""
        s = tables.sandbox_scripts
        async with self._engine.begin() as conn:
            await conn.execute(
                s.update().where(s.c.account_id == account_id, s.c.msisdn == msisdn).values(last_run=dict(run))
            )

    # -- network behaviour ------------------------------------------------------------------------------------
    async def put_behaviour(self, account_id: str, behaviour: Mapping[str, Any] | None) -> None:
        """Set the account's switches (None: back to the normal network)."""
        b = tables.sandbox_behaviours
        async with self._engine.begin() as conn:
            await conn.execute(b.delete().where(b.c.account_id == account_id))
            if behaviour is not None:
                await conn.execute(
                    b.insert().values(account_id=account_id, behaviour=dict(behaviour), updated_at=time.time())
                )
            await notify.notify_change(conn, notify.SANDBOX, account_id)

    async def behaviours(self, account_id: str | None = None) -> dict[str, dict[str, Any]]:
        """Every account's switches (``account_id`` None) or one account's, by account id."""
        b = tables.sandbox_behaviours
        q = sa.select(b.c.account_id, b.c.behaviour)
        if account_id is not None:
            q = q.where(b.c.account_id == account_id)
        async with self._engine.connect() as conn:
            return {r.account_id: dict(r.behaviour) for r in (await conn.execute(q)).all()}
