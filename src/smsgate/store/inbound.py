"""Inbound (MO) messages in the store: fragments of concatenated messages waiting for their siblings, and the
message once whole (reassembly itself is ``core.inbound``; who owns it, ``store.ownership``).

A part of a concatenated message waits in ``inbound_fragments`` keyed by connector, source, destination and
reference; a sweep hands over what arrived once the reassembly timeout has passed, to be stored as incomplete.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from smsgate.core import concat
from smsgate.core import events as core_events
from smsgate.core import inbound as core_inbound
from smsgate.core import message as core_message
from smsgate.store import fastsql, rows, tables
from smsgate.store import messages as store_messages


@dataclasses.dataclass(frozen=True, slots=True)
class Overdue:
    """The fragments of one concatenated message whose siblings did not arrive in time."""

    connector: str
    source: str
    destination: str
    total: int
    pieces: list[core_inbound.Piece]


async def add_fragment(
    conn: AsyncConnection, part: core_inbound.InboundPart, info: concat.ConcatInfo, now: float
) -> list[core_inbound.Piece] | None:
    """Keep one fragment (a repeated one once); every piece, in order, when it completes its message."""
    f = tables.inbound_fragments
    key_ref = (
        f.c.connector == part.connector,
        f.c.source == part.source,
        f.c.destination == part.destination,
        f.c.ref == info.ref,
    )
    seen = await conn.scalar(sa.select(sa.func.count()).where(*key_ref, f.c.seq == info.seq))
    if not seen:
        kept = {c: getattr(part, c) for c in ("connector", "source", "destination", "data_coding", "payload")}
        await conn.execute(f.insert().values(**kept, ref=info.ref, total=info.total, seq=info.seq, received_at=now))
    found = (await conn.execute(sa.select(f).where(*key_ref).order_by(f.c.seq))).all()
    if len(found) < info.total:
        return None
    await conn.execute(f.delete().where(*key_ref))
    return [core_inbound.Piece(r.seq, r.data_coding, r.payload) for r in found]


async def overdue(conn: AsyncConnection, older_than: float) -> list[Overdue]:
    """Take out the fragments of messages whose first part arrived before ``older_than``."""
    f = tables.inbound_fragments
    groups = (
        await conn.execute(
            sa.select(f.c.connector, f.c.source, f.c.destination, f.c.ref)
            .group_by(f.c.connector, f.c.source, f.c.destination, f.c.ref)
            .having(sa.func.min(f.c.received_at) < older_than)
        )
    ).all()
    out = []
    for g in groups:
        cond = (
            f.c.connector == g.connector,
            f.c.source == g.source,
            f.c.destination == g.destination,
            f.c.ref == g.ref,
        )
        found = (await conn.execute(sa.select(f).where(*cond).order_by(f.c.seq))).all()
        await conn.execute(f.delete().where(*cond))
        pieces = [core_inbound.Piece(r.seq, r.data_coding, r.payload) for r in found]
        out.append(Overdue(g.connector, g.source, g.destination, found[0].total, pieces))
    return out


async def insert(
    conn: AsyncConnection,
    message: core_message.Message,
    parts: Sequence[core_message.Part],
    event: core_events.Event,
) -> None:
    """A received message with its parts and its ``received`` event."""
    await fastsql.insert_tuples(conn, tables.messages, rows.MESSAGE_COLUMNS, [rows.message_values(message)])
    await fastsql.insert_tuples(conn, tables.parts, rows.PART_COLUMNS, [rows.part_values(p) for p in parts])
    await store_messages.insert_events(conn, [event], log_changes=False)
