"""Receipts in the store: what ``core.receipts.apply`` needs (the parts a receipt matches and their messages),
writing what it decided, and holding receipts whose part is not known yet.

A receipt can overtake its ``submit_sm_resp`` (the network answers faster than we record the submit), so one
that matches no part is held in ``pending_receipts`` and applied when a submit result brings its network id, or
by the periodic sweep.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from smsgate.core import message as core_message
from smsgate.core import receipts as core_receipts
from smsgate.store import fastsql, tables
from smsgate.store import messages as store_messages

Status = core_message.Status


async def tracked(
    conn: AsyncConnection, receipts: Sequence[core_receipts.Receipt]
) -> tuple[dict[tuple[str, str], list[core_receipts.TrackedPart]], dict[str, core_receipts.TrackedMessage]]:
    """The parts each (connector, network id) of ``receipts`` names, and the messages of those parts (with every
    part's status for a multi-part message)."""
    p, m = tables.parts, tables.messages
    found: dict[tuple[str, str], list[core_receipts.TrackedPart]] = {}
    msgs: dict[str, dict[str, Any]] = {}
    by_conn: dict[str, list[str]] = {}
    for r in receipts:
        by_conn.setdefault(r.connector, []).append(r.network_id)
    for c, ids in by_conn.items():
        # the parts and their messages in one select (a statement per receipt batch fewer than two selects)
        for row in await fastsql.fetch_in(
            conn,
            "parts:by-network-id:with-message",
            lambda binds: sa.select(
                p.c.id, p.c.message_id, p.c.status, p.c.network_id, m.c.account_id,
                m.c.status.label("message_status"), m.c.parts_count,
            )
            .select_from(p.outerjoin(m, m.c.id == p.c.message_id))
            .where(p.c.connector == sa.bindparam("c"), p.c.network_id.in_(binds)),
            ids,
            {"c": c},
        ):  # fmt: skip
            part = core_receipts.TrackedPart(row["id"], row["message_id"], Status(row["status"]))
            found.setdefault((c, row["network_id"]), []).append(part)
            if row["parts_count"] is not None:
                msgs[row["message_id"]] = row
    if not found:
        return found, {}
    siblings: dict[str, dict[str, Status]] = {}
    multi = [mid for mid, r in msgs.items() if r["parts_count"] > 1]
    for row in await fastsql.fetch_in(
        conn,
        "parts:of-messages",
        lambda binds: sa.select(p.c.message_id, p.c.id, p.c.status).where(p.c.message_id.in_(binds)),
        multi,
    ):
        siblings.setdefault(row["message_id"], {})[row["id"]] = Status(row["status"])
    messages = {
        mid: core_receipts.TrackedMessage(
            mid, r["account_id"], Status(r["message_status"]), r["parts_count"], siblings.get(mid, {})
        )
        for mid, r in msgs.items()
    }
    return found, messages


async def write(conn: AsyncConnection, outcome: core_receipts.Outcome, now: float) -> None:
    """The parts' and messages' new statuses and the events ``core.receipts.apply`` decided."""
    if not outcome.parts:
        return
    await fastsql.update_many(
        conn,
        "parts:receipt",
        tables.parts,
        lambda: {"status": "st", "done_at": "now", "error_code": "ec"},
        [{"k": c.part_id, "st": c.status.value, "ec": c.error_code, "now": now} for c in outcome.parts],
    )
    await store_messages.set_status(conn, outcome.messages, now)
    if outcome.events:
        await store_messages.insert_events(conn, outcome.events)


async def hold(conn: AsyncConnection, receipts: Sequence[core_receipts.Receipt], now: float) -> None:
    """Keep receipts that matched no part, to apply when it is known."""
    await fastsql.insert_many(
        conn,
        tables.pending_receipts,
        [
            {
                "connector": r.connector,
                "network_id": r.network_id,
                "state": r.state.value,
                "error_code": r.error_code,
                "raw": r.raw[:1000],
                "received_at": now,
            }
            for r in receipts
        ],
    )


async def held(
    conn: AsyncConnection, by_conn: Mapping[str, Sequence[str]] | None = None, *, max_age: float = 86400.0
) -> list[tuple[int, core_receipts.Receipt]]:
    """Held receipts whose part is now known, oldest first: for these network ids, or (None) all of them.

    The full sweep also drops receipts held longer than ``max_age``: their part never appeared (another system's
    ids), and keeping them would make every sweep re-read them."""
    pr = tables.pending_receipts
    cols = (pr.c.id, pr.c.connector, pr.c.network_id, pr.c.state, pr.c.error_code, pr.c.raw)
    found: list[dict[str, Any]]
    if by_conn is None:
        await fastsql.execute(
            conn,
            "pending:expire",
            lambda: pr.delete().where(pr.c.received_at < sa.bindparam("before")),
            {"before": time.time() - max_age},
        )
        # only those whose part exists by now: receipts for ids no part carries (another system's, or the first
        # copy of a message sent again after a crash) would otherwise be re-read on every sweep
        p = tables.parts
        known = sa.exists().where(p.c.connector == pr.c.connector, p.c.network_id == pr.c.network_id)
        found = await fastsql.fetch(
            conn, "pending:known", lambda: sa.select(*cols).where(known).order_by(pr.c.id).limit(5000)
        )
    else:
        found = []
        for c, ids in by_conn.items():
            found += await fastsql.fetch_in(
                conn,
                "pending:by-id",
                lambda binds: sa.select(*cols).where(pr.c.connector == sa.bindparam("c"), pr.c.network_id.in_(binds)),
                ids,
                {"c": c},
            )
        found.sort(key=lambda r: r["id"])
    return [
        (
            r["id"],
            core_receipts.Receipt(
                connector=r["connector"],
                network_id=r["network_id"],
                state=core_receipts.ReceiptState(r["state"]),
                error_code=r["error_code"],
                raw=r["raw"] or "",
            ),
        )
        for r in found
    ]


async def release(conn: AsyncConnection, ids: Sequence[int]) -> None:
    """Held receipts that were applied."""
    pr = tables.pending_receipts
    await fastsql.executemany(
        conn, "pending:applied", lambda: pr.delete().where(pr.c.id == sa.bindparam("rid")), [{"rid": i} for i in ids]
    )
