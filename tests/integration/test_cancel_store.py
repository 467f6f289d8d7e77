"""``store.messages.cancel`` on both backends, one call as a batch cancel's page makes it: every item gets its own
outcome from set-wise reads (the message twice in one page is canceled once, another account's message is not
found, one with a part already at the SMSC is too late), the refunds go to whoever paid, summed per payer, and
only what was canceled changes."""

from __future__ import annotations

import time
import uuid

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from smsgate import errors
from smsgate.store import accounts as store_accounts
from smsgate.store import messages as store_messages
from smsgate.store import tables

T = tables


async def scheduled(engine: AsyncEngine, account_id: str, price: int, *, parts_sent: bool = False) -> str:
    """A scheduled two-part message of ``account_id`` with its submit job; ``parts_sent``: its first part left."""
    mid, now = str(uuid.uuid4()), time.time()
    async with engine.begin() as conn:
        await conn.execute(
            T.messages.insert().values(
                id=mid, account_id=account_id, direction="outbound", dialect="api", sender="Shop",
                recipient="+31612345678", text="later", encoding="gsm7", parts_count=2, status="scheduled",
                price=price, created_at=now, updated_at=now,
            )
        )  # fmt: skip
        await conn.execute(
            T.parts.insert(),
            [
                {"id": uuid.uuid4().hex, "message_id": mid, "idx": i, "total": 2, "data_coding": 0, "udh": b"",
                 "payload": b"later", "price": price // 2,
                 "status": "submitted" if parts_sent and i == 1 else "accepted"}
                for i in (1, 2)
            ],
        )  # fmt: skip
        await conn.execute(T.outbox.insert().values(kind="submit", ref=mid, run_at=now + 3600, created_at=now))
    return mid


async def balance(engine: AsyncEngine, account_id: str) -> int:
    async with engine.connect() as conn:
        return int(await conn.scalar(sa.select(T.accounts.c.balance).where(T.accounts.c.id == account_id)) or 0)


async def test_one_page_of_cancels_answers_each_item_and_refunds_each_payer_once(engine: AsyncEngine) -> None:
    accounts = store_accounts.AccountStore(engine)
    parent, _ = await accounts.create("parent-" + uuid.uuid4().hex[:6], balance=1000)
    sub, _ = await accounts.create("sub-" + uuid.uuid4().hex[:6], balance=0, parent_id=parent.id)
    stranger, _ = await accounts.create("stranger-" + uuid.uuid4().hex[:6], balance=1000)
    p1, p2 = await scheduled(engine, parent.id, 300), await scheduled(engine, parent.id, 200)
    s1 = await scheduled(engine, sub.id, 70)
    late = await scheduled(engine, parent.id, 50, parts_sent=True)
    theirs = await scheduled(engine, stranger.id, 900)
    parent_before = await balance(engine, parent.id)

    items = [
        store_messages.Cancel(parent.id, p1),
        store_messages.Cancel(parent.id, p1),  # twice in one page
        store_messages.Cancel(parent.id, theirs),  # not the caller's
        store_messages.Cancel(sub.id, s1),  # the sub-account's: its parent paid
        store_messages.Cancel(parent.id, late),
        store_messages.Cancel(parent.id, str(uuid.uuid4())),  # no such message
        store_messages.Cancel(parent.id, p2),
    ]
    async with engine.begin() as conn:
        out, events = await store_messages.cancel(conn, items)

    assert [(o.refund, o.again) if isinstance(o, store_messages.Canceled) else type(o) for o in out] == [
        (300, False),
        (0, True),
        errors.NotFound,
        (70, False),
        errors.TooLate,
        errors.NotFound,
        (200, False),
    ]
    assert sorted(e.message_id for e in events) == sorted([p1, s1, p2])
    assert await balance(engine, parent.id) == parent_before + 300 + 70 + 200
    assert await balance(engine, sub.id) == 0
    assert await balance(engine, stranger.id) == 1000
    async with engine.connect() as conn:
        status = dict((await conn.execute(sa.select(T.messages.c.id, T.messages.c.status))).all())
        assert [status[m] for m in (p1, p2, s1, late, theirs)] == ["canceled"] * 3 + ["scheduled"] * 2
        parts = (await conn.execute(sa.select(T.parts.c.message_id, T.parts.c.status, T.parts.c.error_text))).all()
        assert {(s, e) for m, s, e in parts if m in (p1, p2, s1)} == {("canceled", "canceled by the client")}
        jobs = set((await conn.execute(sa.select(T.outbox.c.ref).where(T.outbox.c.kind == "submit"))).scalars())
        assert {p1, p2, s1}.isdisjoint(jobs) and {late, theirs} <= jobs

    async with engine.begin() as conn:  # the next page finds them canceled: no second refund
        again, _ = await store_messages.cancel(conn, [store_messages.Cancel(parent.id, p1)])
    assert again == [store_messages.Canceled(2, 0, again[0].created_at, again=True)]  # type: ignore[union-attr]
    assert await balance(engine, parent.id) == parent_before + 570
