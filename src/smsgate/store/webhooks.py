"""Webhook deliveries in the store: what the planner reads, the deliveries it decided (each with its ``webhook``
outbox job), the sender's attempts, and the delivery log ``/v1/webhooks`` and the console show.
"""

from __future__ import annotations

import builtins
import dataclasses
import time
from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from smsgate.core import accounts as core_accounts
from smsgate.core import deliveries
from smsgate.core import message as core_message
from smsgate.store import accounts as store_accounts
from smsgate.store import fastsql, ownership, rows, tables
from smsgate.store import outbox as store_outbox

# -- planning (inside the transaction that records the events) -----------------------------------------------------


async def subjects(
    conn: AsyncConnection, message_ids: Sequence[str]
) -> tuple[dict[str, core_message.Message], dict[str, core_accounts.Account]]:
    """The messages (as this transaction sees them) that can cause a webhook, and their owners' accounts: an
    inbound message with an owner, an outbound one with a target (its callback, else its account's receipt URL,
    as ``deliveries.target`` decides). Only those (and their accounts) become values: on the receipt path most messages have no target,
    and a typed message costs microseconds."""
    m, a = tables.messages, tables.accounts
    # first only what decides (a message's direction, owner and callback, its owner's receipt URL), as a join:
    # under load this runs for every submit result and receipt, and most messages need no webhook
    heads = await fastsql.fetch_in(
        conn,
        "planner:heads",
        lambda b: (
            sa.select(m.c.id, m.c.direction, m.c.callback_url, a.c.id.label("owner"), a.c.receipt_url)
            .select_from(m.outerjoin(a, a.c.id == m.c.account_id))
            .where(m.c.id.in_(b))
        ),
        message_ids,
    )

    def wanted(r: Mapping[str, Any]) -> bool:
        if r["direction"] == "inbound":
            return r["owner"] is not None
        return deliveries.target(r["callback_url"], r["receipt_url"] if r["owner"] is not None else None) is not None

    ids = [r["id"] for r in heads if wanted(r)]
    if not ids:
        return {}, {}
    found = await fastsql.fetch_in(conn, "planner:messages", lambda b: sa.select(m).where(m.c.id.in_(b)), ids)
    msgs = {r["id"]: rows.message(r) for r in found}
    owners = sorted({msg.account_id for msg in msgs.values()})
    acc_rows = await fastsql.fetch_in(conn, "planner:accounts", lambda b: sa.select(a).where(a.c.id.in_(b)), owners)
    return msgs, {r["id"]: store_accounts.from_row(r) for r in acc_rows}


async def context(
    conn: AsyncConnection, needs: deliveries.Needs, msgs: Mapping[str, core_message.Message]
) -> deliveries.Context:
    """What ``planner.plan`` reads besides messages and accounts."""
    p, w = tables.parts, tables.webhook_deliveries
    parts: dict[str, list[core_message.Part]] = {}
    if needs.parts_of:
        q = sa.select(p).where(p.c.message_id.in_(sorted(needs.parts_of))).order_by(p.c.message_id, p.c.idx)
        for r in (await conn.execute(q)).all():
            parts.setdefault(r.message_id, []).append(rows.part(r._mapping))
    sent: frozenset[tuple[str, str]] = frozenset()
    if needs.sent:
        ids, events = sorted({mid for mid, _ in needs.sent}), sorted({ev for _, ev in needs.sent})
        q2 = sa.select(w.c.message_id, w.c.event).where(w.c.message_id.in_(ids), w.c.event.in_(events))
        sent = frozenset((r.message_id, r.event) for r in (await conn.execute(q2)).all()) & needs.sent
    routes = {mid: await inbound_route(conn, msgs[mid]) for mid in needs.inbound}
    return deliveries.Context(parts, sent, routes)


async def inbound_route(conn: AsyncConnection, msg: core_message.Message) -> deliveries.InboundRoute:
    """The owner's URL for the number written to, what the owner last sent the handset from it (newest first),
    and the owner's /register callback of the handset."""
    cb, m = tables.callbacks, tables.messages
    found = await ownership.owner(conn, msg.recipient)
    number_url = found.url if found is not None and found.account_id == msg.account_id else None
    from_digits = msg.sender.lstrip("+")
    to_digits = msg.recipient.lstrip("+")
    recent = (
        await conn.execute(
            sa.select(m.c.dialect, m.c.meta)
            .where(
                m.c.account_id == msg.account_id,
                m.c.direction == "outbound",
                m.c.recipient == "+" + from_digits,
                m.c.sender.in_([msg.recipient, to_digits, "+" + to_digits]),
            )
            .order_by(m.c.created_at.desc())
            .limit(20)
        )
    ).all()
    callback = await conn.scalar(
        sa.select(cb.c.callback_url).where(cb.c.msisdn == from_digits, cb.c.account_id == msg.account_id).limit(1)
    )
    conversation = tuple((r.dialect, (r.meta or {}).get("inbound") is True) for r in recent)
    return deliveries.InboundRoute(number_url or None, conversation, str(callback) if callback else None)


async def insert(conn: AsyncConnection, planned: Sequence[deliveries.Delivery], now: float) -> None:
    """Each delivery with its ``webhook`` outbox job (claimed round-robin by account, ``Outbox.claim_fair``)."""
    fresh = {"status": "pending", "attempts": 0, "created_at": now, "updated_at": now}
    await conn.execute(tables.webhook_deliveries.insert(), [{**dataclasses.asdict(d), **fresh} for d in planned])
    await store_outbox.add(conn, "webhook", [(d.id, d.account_id, None, None) for d in planned], now)


# -- the sender ----------------------------------------------------------------------------------------------------
async def record(conn: AsyncConnection, outcomes: Sequence[deliveries.Outcome]) -> list[None]:
    """Group-commit handler: attempts, delivery state and the outbox job, in one transaction."""
    tried = [o for o in outcomes if o.tried]
    if tried:
        await conn.execute(
            tables.webhook_attempts.insert(),
            [
                {
                    "delivery_id": o.delivery_id,
                    "at": o.at,
                    "status_code": o.status_code,
                    "latency_ms": o.latency_ms,
                    "error": (o.error or "")[:500] or None,
                }
                for o in tried
            ],
        )
        w = tables.webhook_deliveries
        await conn.execute(
            w.update()
            .where(w.c.id == sa.bindparam("did"))
            .values(
                status=sa.bindparam("st"),
                attempts=w.c.attempts + 1,
                last_status_code=sa.bindparam("code"),
                last_error=sa.bindparam("err"),
                updated_at=sa.bindparam("b_at"),
            ),
            [
                {"did": o.delivery_id, "st": o.status, "code": o.status_code, "err": o.error, "b_at": o.at}
                for o in tried
            ],
        )
    o_ = tables.outbox
    finished = [o.delivery_id for o in outcomes if o.retry_at is None]
    if finished:
        await conn.execute(o_.delete().where(o_.c.kind == "webhook", o_.c.ref.in_(finished)))
    later = [o for o in outcomes if o.retry_at is not None]
    if later:
        await conn.execute(
            o_.update()
            .where(o_.c.kind == "webhook", o_.c.ref == sa.bindparam("b_ref"))
            .values(
                run_at=sa.bindparam("b_run_at"),
                claimed_by=None,
                claimed_until=None,
                attempts=o_.c.attempts + sa.bindparam("b_inc"),
            ),
            [{"b_ref": o.delivery_id, "b_run_at": o.retry_at, "b_inc": 1 if o.tried else 0} for o in later],
        )
    return [None] * len(outcomes)


class Deliveries:
    """Deliveries outside a write transaction: what the sender loads, and the log accounts read."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def load(self, refs: list[str]) -> dict[str, dict[str, Any]]:
        """Claimed deliveries with the time their job was queued and the account's signature secret."""
        w, o, a = tables.webhook_deliveries, tables.outbox, tables.accounts
        q = (
            sa.select(w, o.c.created_at.label("queued_at"), a.c.signature_secret)
            .join(o, sa.and_(o.c.kind == "webhook", o.c.ref == w.c.id))
            .outerjoin(a, a.c.id == w.c.account_id)
            .where(w.c.id.in_(refs))
        )
        async with self._engine.connect() as conn:
            return {r.id: dict(r._mapping) for r in (await conn.execute(q)).all()}

    async def list(
        self,
        account_id: str,
        *,
        status: str | None = None,
        target: str | None = None,
        message: str | None = None,
        event: str | None = None,
        delivery_id: str | None = None,
        before: tuple[float, str] | None = None,
        limit: int = 50,
    ) -> builtins.list[dict[str, Any]]:
        """An account's deliveries, newest first, each with ``run_at`` (its job's, if queued) and its attempts."""
        w, o = tables.webhook_deliveries, tables.outbox
        where: builtins.list[Any] = [w.c.account_id == account_id]
        if status:
            where.append(w.c.status == status)
        if target:
            where.append(w.c.url.contains(target, autoescape=True))
        if message:
            where.append(w.c.message_id == message)
        if event:
            where.append(w.c.event == event)
        if delivery_id:
            where.append(w.c.id == delivery_id)
        if before is not None:
            t, did = before
            where.append(sa.or_(w.c.created_at < t, sa.and_(w.c.created_at == t, w.c.id < did)))
        q = (
            sa.select(w, o.c.run_at)
            .outerjoin(o, sa.and_(o.c.kind == "webhook", o.c.ref == w.c.id))
            .where(*where)
            .order_by(w.c.created_at.desc(), w.c.id.desc())
            .limit(limit)
        )
        async with self._engine.connect() as conn:
            found = [dict(r._mapping) for r in (await conn.execute(q)).all()]
            tries = await _attempts(conn, [r["id"] for r in found])
        return [{**r, "tries": tries.get(r["id"], [])} for r in found]

    async def of_message(self, message_id: str) -> builtins.list[dict[str, Any]]:
        """Every delivery planned for a message, oldest first, with its attempts (the console's detail view)."""
        d = tables.webhook_deliveries
        cols = (d.c.id, d.c.event, d.c.url, d.c.method, d.c.status, d.c.attempts, d.c.last_status_code,
                d.c.last_error, d.c.created_at, d.c.updated_at)  # fmt: skip
        async with self._engine.connect() as conn:
            found = [
                {str(k): v for k, v in r._mapping.items()}
                for r in (
                    await conn.execute(sa.select(*cols).where(d.c.message_id == message_id).order_by(d.c.created_at))
                ).all()
            ]
            tries = await _attempts(conn, [r["id"] for r in found])
        return [{**r, "attempt_log": tries.get(r["id"], [])} for r in found]

    async def replay(self, account_id: str, delivery_id: str) -> None:
        """Queue a delivery again now: a waiting one is due at once; a finished one gets a new job (and so a fresh
        retry window) and is pending again."""
        w, o = tables.webhook_deliveries, tables.outbox
        now = time.time()
        async with self._engine.begin() as conn:
            moved = await conn.execute(
                o.update().where(o.c.kind == "webhook", o.c.ref == delivery_id).values(run_at=now)
            )
            if moved.rowcount == 0:
                await store_outbox.add(conn, "webhook", [(delivery_id, account_id, None, None)], now)
                await conn.execute(w.update().where(w.c.id == delivery_id).values(status="pending", updated_at=now))


async def _attempts(conn: AsyncConnection, ids: Sequence[str]) -> dict[str, builtins.list[dict[str, Any]]]:
    at = tables.webhook_attempts
    tries: dict[str, builtins.list[dict[str, Any]]] = {}
    if ids:
        for a in (await conn.execute(sa.select(at).where(at.c.delivery_id.in_(ids)).order_by(at.c.id))).all():
            tries.setdefault(a.delivery_id, []).append(
                {"at": a.at, "status_code": a.status_code, "latency_ms": a.latency_ms, "error": a.error}
            )
    return tries
