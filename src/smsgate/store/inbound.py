"""Inbound (MO) messages: store parts, reassemble concatenated ones, decide which account owns them.

A part of a concatenated message waits in ``inbound_fragments`` until its siblings arrive (keyed by connector,
source, destination and reference); a sweep delivers what arrived once the reassembly timeout has passed, marked
incomplete. The owner is the owner of the destination (``store.ownership``); with none, the message is stored
for the operator and logged.
"""

from __future__ import annotations

import logging
import secrets
import time
import uuid
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from smsgate import errors
from smsgate.connectors import base
from smsgate.core import concat, encoding
from smsgate.core import message as core_message
from smsgate.store import messages as store_messages
from smsgate.store import ownership, tables

log = logging.getLogger(__name__)


def _concat_info(part: base.InboundPart) -> concat.ConcatInfo | None:
    if part.sar_total and part.sar_total > 1 and part.sar_seq:
        return concat.ConcatInfo(ref=part.sar_ref or 0, total=part.sar_total, seq=part.sar_seq)
    if part.udh:
        info = concat.parse_udh(part.udh)
        if info is not None and info.total > 1:
            return info
    return None


def _text(data_coding: int, payload: bytes) -> str | None:
    try:
        return encoding.decode(payload, data_coding)
    except errors.InvalidEncoding:
        return None


def _address(raw: str) -> str:
    return "+" + raw if raw.isdigit() else raw


class InboundWrites:
    def __init__(self, hooks: store_messages.Hooks) -> None:
        self.hooks = hooks

    async def inbound(self, conn: AsyncConnection, items: Sequence[base.InboundPart]) -> list[None]:
        now = time.time()
        complete: list[tuple[base.InboundPart, list[tuple[int, int, bytes]], bool]] = []
        f = tables.inbound_fragments
        for part in items:
            info = _concat_info(part)
            if info is None:
                complete.append((part, [(1, part.data_coding, part.payload)], False))
                continue
            key = (f.c.connector == part.connector, f.c.source == part.source, f.c.destination == part.destination)
            key_ref = (*key, f.c.ref == info.ref)
            seen = await conn.scalar(sa.select(sa.func.count()).where(*key_ref, f.c.seq == info.seq))
            if not seen:
                await conn.execute(
                    f.insert().values(
                        connector=part.connector,
                        source=part.source,
                        destination=part.destination,
                        ref=info.ref,
                        total=info.total,
                        seq=info.seq,
                        data_coding=part.data_coding,
                        payload=part.payload,
                        received_at=now,
                    )
                )
            rows = (await conn.execute(sa.select(f).where(*key_ref).order_by(f.c.seq))).all()
            if len(rows) >= info.total:
                await conn.execute(f.delete().where(*key_ref))
                complete.append((part, [(r.seq, r.data_coding, r.payload) for r in rows], False))
        for part, pieces, incomplete in complete:
            await self._store(conn, part.connector, part.source, part.destination, pieces, incomplete, now)
        return [None] * len(items)

    async def sweep(self, conn: AsyncConnection, older_than: float) -> int:
        """Deliver the parts of concatenated messages whose siblings did not arrive in time."""
        f = tables.inbound_fragments
        groups = (
            await conn.execute(
                sa.select(f.c.connector, f.c.source, f.c.destination, f.c.ref)
                .group_by(f.c.connector, f.c.source, f.c.destination, f.c.ref)
                .having(sa.func.min(f.c.received_at) < older_than)
            )
        ).all()
        now = time.time()
        for g in groups:
            cond = (
                f.c.connector == g.connector,
                f.c.source == g.source,
                f.c.destination == g.destination,
                f.c.ref == g.ref,
            )
            rows = (await conn.execute(sa.select(f).where(*cond).order_by(f.c.seq))).all()
            await conn.execute(f.delete().where(*cond))
            pieces = [(r.seq, r.data_coding, r.payload) for r in rows]
            await self._store(conn, g.connector, g.source, g.destination, pieces, True, now, total=rows[0].total)
        return len(groups)

    async def _store(
        self,
        conn: AsyncConnection,
        connector: str,
        source: str,
        destination: str,
        pieces: list[tuple[int, int, bytes]],
        incomplete: bool,
        now: float,
        total: int | None = None,
    ) -> None:
        found = await ownership.owner(conn, destination)
        account_id, how = (found.account_id, found.via) if found is not None else ("", None)
        message_id = str(uuid.uuid4())
        if found is None:  # no owner: kept for the operator (the console shows it), never given to a guess
            log.info("inbound message %s to %s has no owner; kept for the operator", message_id, _address(destination))
        texts = [_text(dc, payload) for _seq, dc, payload in pieces]
        data_coding = pieces[0][1]
        binary = any(t is None for t in texts)
        text = None if binary else "".join(t or "" for t in texts)
        enc = {0: "gsm7", 8: "ucs2"}.get(data_coding, "binary" if binary else "gsm7")
        meta: dict[str, Any] = {"routed_by": how}
        if incomplete:
            meta["incomplete"] = True
            meta["parts_received"] = [seq for seq, _dc, _p in pieces]
        if binary:
            meta["data"] = b"".join(p for _s, _d, p in pieces).hex()
        n_parts = total or len(pieces)
        await conn.execute(
            tables.messages.insert().values(
                id=message_id,
                account_id=account_id,
                direction=core_message.Direction.INBOUND.value,
                dialect="network",
                sender=_address(source),
                recipient=_address(destination),
                text=text,
                encoding=enc,
                parts_count=n_parts,
                status=core_message.Status.RECEIVED.value,
                connector=connector,
                meta=meta,
                created_at=now,
                updated_at=now,
            )
        )
        await conn.execute(
            tables.parts.insert(),
            [
                {
                    "id": secrets.token_hex(8).upper(),
                    "message_id": message_id,
                    "idx": seq,
                    "total": n_parts,
                    "concat_ref": 0,
                    "status": core_message.Status.RECEIVED.value,
                    "connector": connector,
                    "data_coding": dc,
                    "udh": b"",
                    "payload": payload,
                    "text": t,
                    "done_at": now,
                }
                for (seq, dc, payload), t in zip(pieces, texts, strict=True)
            ],
        )
        event = {
            "message_id": message_id,
            "part_id": None,
            "account_id": account_id,
            "type": "received",
            "at": now,
            "data": {"incomplete": incomplete} if incomplete else None,
        }
        await conn.execute(tables.events.insert().values(**event))
        await self.hooks.events_recorded(conn, [event])
