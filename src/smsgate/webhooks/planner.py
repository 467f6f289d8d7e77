"""Turns recorded events into durable webhook deliveries, inside the transaction that records the events.

Called by ``store.messages.MessageWrites`` and ``store.inbound.InboundWrites`` (as their ``Hooks``), so a
delivery row and its ``webhook`` outbox job commit together with the receipt or inbound message that causes
them: a crash can lose neither, and a rolled-back event plans nothing.

Which webhook, to where (the log's ``event`` name in brackets):

    event                     message dialect   payload                         target
    part delivered/expired/   nexmo, vonage     Vonage DLR per part             message callback_url, else
      failed/rejected                           (receipt.<status>)              account receipt_url
    message reaches a status  any other         our JSON event                  message callback_url, else
      (submitted...rejected)                    (message.<status>)              account receipt_url
    inbound received          -                 Vonage inbound (inbound)        1. the number's moHttpUrl
      (to its owner only,                                                       2. /register callback of the number
      ``store.ownership``)                                                      3. the owner's /register callback of
                                                                                   the handset an ``inbound: yes``
                                                                                   message went to
                              -                 Vonage inbound if the last      4. account inbound_url
                                                message to the sender was
                                                Vonage, else our JSON event
                                                (message.received)
    (no target: nothing is sent; GET /v1/messages?direction=inbound shows it; no owner: the operator's console)
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from smsgate.store import fastsql, ownership, tables
from smsgate.store import messages as store_messages
from smsgate.webhooks import formats

VONAGE_DIALECTS = frozenset({"nexmo", "vonage"})
RECEIPT_TYPES = frozenset({"delivered", "expired", "failed", "rejected"})
STATUS_TYPES = RECEIPT_TYPES | {"submitted"}
Row = Mapping[str, Any]


class Planner(store_messages.Hooks):
    """The ``Hooks`` the runtime hands to the write handlers."""

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self.dirty = False  # set when a transaction planned deliveries; the sender is woken after commit

    async def events_recorded(self, conn: AsyncConnection, events: Sequence[Mapping[str, Any]]) -> None:
        relevant = [e for e in events if e["type"] in STATUS_TYPES or e["type"] == "received"]
        if not relevant:
            return
        m, a = tables.messages, tables.accounts
        message_ids = sorted({e["message_id"] for e in relevant})
        rows = await fastsql.fetch_in(
            conn, "planner:messages", lambda b: sa.select(m).where(m.c.id.in_(b)), message_ids
        )
        msgs = {r["id"]: r for r in rows}
        account_ids = sorted({r["account_id"] for r in msgs.values() if r["account_id"]})
        if not account_ids:
            return
        rows = await fastsql.fetch_in(
            conn, "planner:accounts", lambda b: sa.select(a).where(a.c.id.in_(b)), account_ids
        )
        accs = {r["id"]: r for r in rows}
        now = self._clock()
        planned: list[dict[str, Any]] = []
        inbound = [msgs[mid] for mid in message_ids if mid in msgs and msgs[mid]["direction"] == "inbound"]
        for msg in inbound:
            acc = accs.get(msg["account_id"])
            if acc is not None:
                planned.extend(await self._inbound(conn, msg, acc, now))
        outbound = [e for e in relevant if e["message_id"] in msgs and msgs[e["message_id"]]["direction"] == "outbound"]
        if outbound:
            planned.extend(await self._outbound(conn, outbound, msgs, accs, now))
        if not planned:
            return
        await conn.execute(tables.webhook_deliveries.insert(), planned)
        await conn.execute(
            tables.outbox.insert(),
            [
                {
                    "kind": "webhook",
                    "ref": d["id"],
                    "run_at": now,
                    "attempts": 0,
                    "created_at": now,
                    "account_id": d["account_id"],
                }
                for d in planned
            ],
        )
        self.dirty = True

    # -- outbound: receipts and status events -------------------------------------------------------------------
    async def _outbound(
        self,
        conn: AsyncConnection,
        events: Sequence[Mapping[str, Any]],
        msgs: Mapping[str, Row],
        accs: Mapping[str, Row],
        now: float,
    ) -> list[dict[str, Any]]:
        def target(msg: Row) -> str | None:
            acc = accs.get(msg["account_id"])
            url = msg["callback_url"] or (acc["receipt_url"] if acc is not None else None)
            return str(url) if url else None

        vonage = [
            e
            for e in events
            if e["part_id"]
            and e["type"] in RECEIPT_TYPES
            and msgs[e["message_id"]]["dialect"] in VONAGE_DIALECTS
            and (msgs[e["message_id"]]["meta"] or {}).get("status_report", True) is not False
            and target(msgs[e["message_id"]])
        ]
        # own events: a message whose status now equals a status recorded in this batch just reached it
        own: dict[str, str] = {}
        for e in events:
            msg = msgs[e["message_id"]]
            if msg["dialect"] in VONAGE_DIALECTS or e["type"] != msg["status"] or not target(msg):
                continue
            own[msg["id"]] = "message." + msg["status"]
        part_ids = sorted({e["part_id"] for e in vonage})
        need_parts = sorted(set(own) | {e["message_id"] for e in vonage})
        if not need_parts:
            return []
        p, w = tables.parts, tables.webhook_deliveries
        parts: dict[str, list[Row]] = {}
        by_id: dict[str, Row] = {}
        q = sa.select(p).where(p.c.message_id.in_(need_parts)).order_by(p.c.message_id, p.c.idx)
        for r in (await conn.execute(q)).all():
            parts.setdefault(r.message_id, []).append(dict(r._mapping))
            by_id[r.id] = dict(r._mapping)
        out: list[dict[str, Any]] = []
        if own:
            done = {
                (r.message_id, r.event)
                for r in (
                    await conn.execute(
                        sa.select(w.c.message_id, w.c.event).where(
                            w.c.message_id.in_(sorted(own)), w.c.event.in_(sorted(set(own.values())))
                        )
                    )
                ).all()
            }
            for mid, ev in own.items():
                if (mid, ev) in done:
                    continue
                msg = msgs[mid]
                delivery_id = str(uuid.uuid4())
                body = formats.event(delivery_id, ev, now, formats.message_data(msg, parts.get(mid, [])))
                out.append(_delivery(delivery_id, msg, ev, target(msg) or "", "POST", formats.JSON, body, now))
        for e in vonage:
            part = by_id.get(e["part_id"])
            if part is None or e["part_id"] not in part_ids:
                continue
            msg = msgs[e["message_id"]]
            acc = accs[msg["account_id"]]
            params = formats.vonage_receipt(msg, part, acc, e["type"], float(e["at"]))
            out.append(_vonage_delivery(msg, acc, "receipt." + e["type"], target(msg) or "", params, now))
        return out

    # -- inbound ---------------------------------------------------------------------------------------------------
    async def _inbound(self, conn: AsyncConnection, msg: Row, acc: Row, now: float) -> list[dict[str, Any]]:
        url, vonage = await route_inbound(conn, msg, acc)
        if url is None:
            return []
        p = tables.parts
        parts = [
            dict(r._mapping)
            for r in (await conn.execute(sa.select(p).where(p.c.message_id == msg["id"]).order_by(p.c.idx))).all()
        ]
        if not vonage:
            delivery_id = str(uuid.uuid4())
            body = formats.event(delivery_id, "message.received", now, formats.message_data(msg, parts))
            return [_delivery(delivery_id, msg, "message.received", url, "POST", formats.JSON, body, now)]
        return [
            _vonage_delivery(msg, acc, "inbound", url, params, now)
            for params in formats.vonage_inbound(msg, parts, acc)
        ]


async def route_inbound(conn: AsyncConnection, msg: Row, acc: Row) -> tuple[str | None, bool]:
    """(url, vonage_format) for an inbound message its owner received; (None, False) when it is kept for polling.

    The owner was decided when the message was stored (``store.ownership``, the one rule); here it only picks
    among the owner's own targets: the number's URL, then (``inbound: yes``) the callback of the owner's handset
    the conversation was with, then the account's inbound URL."""
    cb, m = tables.callbacks, tables.messages
    account_id = msg["account_id"]
    found = await ownership.owner(conn, str(msg["recipient"]))
    if found is not None and found.account_id == account_id and found.url:
        return found.url, True
    from_digits = str(msg["sender"]).lstrip("+")
    to_digits = str(msg["recipient"]).lstrip("+")
    # the owner's conversation: what it last sent to the handset from the number written to
    recent = (
        await conn.execute(
            sa.select(m.c.dialect, m.c.meta)
            .where(
                m.c.account_id == account_id,
                m.c.direction == "outbound",
                m.c.recipient == "+" + from_digits,
                m.c.sender.in_([msg["recipient"], to_digits, "+" + to_digits]),
            )
            .order_by(m.c.created_at.desc())
            .limit(20)
        )
    ).all()
    if any((r.meta or {}).get("inbound") is True for r in recent):
        url = await conn.scalar(
            sa.select(cb.c.callback_url).where(cb.c.msisdn == from_digits, cb.c.account_id == account_id).limit(1)
        )
        if url:
            return str(url), True
    if acc["inbound_url"]:
        return str(acc["inbound_url"]), bool(recent) and recent[0].dialect in VONAGE_DIALECTS
    return None, False


def _delivery(
    delivery_id: str, msg: Row, event: str, url: str, method: str, content_type: str, body: str, now: float
) -> dict[str, Any]:
    return {
        "id": delivery_id,
        "account_id": msg["account_id"],
        "message_id": msg["id"],
        "event": event,
        "url": url,
        "method": method,
        "content_type": content_type,
        "body": body,
        "status": "pending",
        "attempts": 0,
        "created_at": now,
        "updated_at": now,
    }


def _vonage_delivery(msg: Row, acc: Row, event: str, url: str, params: dict[str, str], now: float) -> dict[str, Any]:
    if acc["sign_webhooks"] and acc["signature_secret"]:
        params = formats.sign_vonage(params, acc["signature_secret"], acc["signature_method"] or "md5hash", now)
    method = "GET" if str(acc["webhook_method"]).upper() == "GET" else "POST"
    content_type, body = formats.encode_vonage(params, method, str(acc["webhook_format"]).lower())
    return _delivery(str(uuid.uuid4()), msg, event, url, method, content_type, body, now)
