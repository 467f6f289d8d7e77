"""Batches in the store: a whole batch accepted in one transaction (all or nothing), and what ``/v1/batches`` and the
console read back (counts per status, cost, its messages).

A batch is one group-commit item (``store.committer``): its messages, parts, events, outbox jobs, the debit and the
``batches`` row are written by ``executemany`` per table inside one transaction, so a crash leaves all or none.
"""

from __future__ import annotations

import builtins
import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from smsgate.core import message as core_message
from smsgate.store import accounts as store_accounts
from smsgate.store import idempotency as store_idempotency
from smsgate.store import messages as store_messages
from smsgate.store import reads, rows, tables

# ids per page of a batch cancel (``BatchReads.unsent``): one page is one group-commit transaction of cancels
UNSENT_PAGE = 250


@dataclasses.dataclass(frozen=True, slots=True)
class NewBatch:
    id: str
    account_id: str
    kind: str  # kpn | api
    groups: tuple[store_messages.Copies, ...]  # its messages, one group per distinct text
    payer: str  # the account debited (a sub-account's parent)
    refused: int = 0  # recipients refused at validation (``/v1/batches``; never stored)
    created_at: float = 0.0
    idempotency_key: str | None = None
    answer: dict[str, Any] | None = None  # what the call answers, kept for a repeat of its key
    key: store_idempotency.NewKey | None = None  # an Idempotency-Key claimed in the transaction (KPN's batch call)

    @property
    def charge(self) -> int:
        return sum(g.charge for g in self.groups)

    @property
    def count(self) -> int:
        """Messages (recipients)."""
        return sum(g.count for g in self.groups)

    @property
    def parts(self) -> int:
        return sum(g.parts for g in self.groups)


async def payer_balance(conn: AsyncConnection, batch: NewBatch) -> int:
    """The payer's balance as this transaction sees it (locked on PostgreSQL until it commits)."""
    return (await store_accounts.balances(conn, [batch.payer], lock=True)).get(batch.payer, 0)


async def insert(conn: AsyncConnection, batch: NewBatch) -> None:
    await conn.execute(
        tables.batches.insert().values(
            id=batch.id,
            account_id=batch.account_id,
            kind=batch.kind,
            messages=batch.count,
            parts=batch.parts,
            price=batch.charge,
            refused=batch.refused,
            created_at=batch.created_at,
            idempotency_key=batch.idempotency_key,
            answer=batch.answer,
        )
    )


@dataclasses.dataclass(frozen=True, slots=True)
class Summary:
    id: str
    account_id: str
    kind: str
    messages: int
    parts: int
    price: int
    refused: int
    created_at: float
    statuses: dict[str, int]  # messages per status, now


class BatchReads:
    """Batches as an account sees them: its own and its sub-accounts' (``account_id`` None = the operator)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def get(self, account_id: str | None, batch_id: str) -> Summary | None:
        found = await self.list(account_id, batch_id=batch_id, limit=1)
        return found[0] if found else None

    async def list(
        self,
        account_id: str | None,
        *,
        batch_id: str | None = None,
        before: tuple[float, str] | None = None,
        limit: int = 50,
    ) -> builtins.list[Summary]:
        b, m = tables.batches, tables.messages
        q = sa.select(*(c for c in b.c if c.key not in ("idempotency_key", "answer")))
        if account_id is not None:
            q = q.where(reads.visible_to(b.c.account_id, account_id))
        if batch_id is not None:
            q = q.where(b.c.id == batch_id)
        if before is not None:
            t, bid = before
            q = q.where(sa.or_(b.c.created_at < t, sa.and_(b.c.created_at == t, b.c.id < bid)))
        q = q.order_by(b.c.created_at.desc(), b.c.id.desc()).limit(limit)
        async with self._engine.connect() as conn:
            found = [dict(r._mapping) for r in (await conn.execute(q)).all()]
            counts: dict[str, dict[str, int]] = {}
            ids = [r["id"] for r in found]
            if ids:
                stmt = (
                    sa.select(m.c.batch_id, m.c.status, sa.func.count())
                    .where(m.c.batch_id.in_(ids))
                    .group_by(m.c.batch_id, m.c.status)
                )
                for bid, status, n in (await conn.execute(stmt)).all():
                    counts.setdefault(bid, {})[status] = int(n)
        return [Summary(**r, statuses=counts.get(r["id"], {})) for r in found]

    async def answer(self, account_id: str, key: str) -> dict[str, Any] | None:
        """What the batch stored under this Idempotency-Key answered (None: no such batch yet)."""
        b = tables.batches.c
        async with self._engine.connect() as conn:
            row = (await conn.execute(sa.select(b.answer).where(b.account_id == account_id,
                                                                b.idempotency_key == key))).first()  # fmt: skip
        return dict(row.answer) if row is not None and row.answer is not None else None

    async def unsent(self, batch_id: str, *, page: int = UNSENT_PAGE) -> AsyncIterator[builtins.list[str]]:
        """The ids of a batch's messages not yet submitted (scheduled or accepted), what a cancel may still stop,
        ``page`` at a time in id order: a 5,000-recipient batch is never held in memory whole. The next page is
        read after the caller has dealt with this one, from past its last id, so a message of this page that is
        still ``accepted`` (too late: being submitted) is not read again."""
        m = tables.messages
        q = sa.select(m.c.id).where(m.c.batch_id == batch_id, m.c.status.in_(("scheduled", "accepted")))
        after = ""
        while True:
            async with self._engine.connect() as conn:
                ids = list((await conn.execute(q.where(m.c.id > after).order_by(m.c.id).limit(page))).scalars())
            if ids:
                yield ids
            if len(ids) < page:
                return
            after = ids[-1]

    async def messages(
        self, batch_id: str, *, status: str | None = None, after: str | None = None, limit: int = 100
    ) -> builtins.list[core_message.Message]:
        """A batch's messages in id order, from after ``after`` (a cursor that holds while statuses change)."""
        m = tables.messages
        q = sa.select(m).where(m.c.batch_id == batch_id)
        if status:
            q = q.where(m.c.status == status)
        if after:
            q = q.where(m.c.id > after)
        async with self._engine.connect() as conn:
            found = (await conn.execute(q.order_by(m.c.id).limit(limit))).all()
        return [rows.message(r._mapping) for r in found]
