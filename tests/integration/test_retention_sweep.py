"""The retention sweep on both backends, through a real group committer: its batches are sized by the time their
work takes (a tight budget keeps them to one message, a loose one lets them grow to SMSGATE_RETENTION_BATCH), and
whatever the size, a deleted message leaves nothing behind (parts, events, outbox jobs, webhook deliveries and
their attempts) while a blanked one keeps its rows, status and price but loses its text, payloads, a binary
message's hex data and its webhook bodies."""

from __future__ import annotations

import time
import uuid

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from smsgate.core import retention as core_retention
from smsgate.services import retention as services_retention
from smsgate.store import committer as store_committer
from smsgate.store import retention as store_retention
from smsgate.store import tables

DAY = 86_400.0
T = tables


async def seed(engine: AsyncEngine, count: int, days_old: float, *, binary: bool = False) -> list[str]:
    """``count`` messages ``days_old`` days old, each with a part, an event, an outbox job and a webhook delivery
    with an attempt; ``binary``: inbound binary messages whose hex payload is in ``meta["data"]``."""
    at = time.time() - days_old * DAY
    ids = [str(uuid.uuid4()) for _ in range(count)]
    deliveries = [str(uuid.uuid4()) for _ in ids]
    common = {"account_id": "acc", "created_at": at, "updated_at": at}
    async with engine.begin() as conn:
        await conn.execute(
            T.messages.insert(),
            [
                {
                    **common,
                    "id": m,
                    "direction": "inbound" if binary else "outbound",
                    "dialect": "kpn",
                    "sender": "Shop",
                    "recipient": "+31612345678",
                    "text": None if binary else f"secret {i}",
                    "encoding": "binary" if binary else "gsm7",
                    "parts_count": 1,
                    "status": "delivered",
                    "price": 7000,
                    "meta": {"data": "c0ffee", "udh": "050003"} if binary else None,
                }
                for i, m in enumerate(ids)
            ],
        )
        await conn.execute(
            T.parts.insert(),
            [
                {
                    "id": uuid.uuid4().hex,
                    "message_id": m,
                    "idx": 1,
                    "total": 1,
                    "status": "delivered",
                    "data_coding": 0,
                    "udh": b"",
                    "payload": b"secret",
                    "text": "secret",
                    "price": 7000,
                }
                for m in ids
            ],
        )
        await conn.execute(
            T.events.insert(), [{"message_id": m, "account_id": "acc", "type": "delivered", "at": at} for m in ids]
        )
        await conn.execute(
            T.outbox.insert(),
            [{"kind": "submit", "ref": m, "run_at": at, "created_at": at} for m in ids]
            + [{"kind": "webhook", "ref": d, "run_at": at, "created_at": at} for d in deliveries],
        )
        await conn.execute(
            T.webhook_deliveries.insert(),
            [
                {
                    **common,
                    "id": d,
                    "message_id": m,
                    "event": "message.delivered",
                    "url": "https://example.org/hook",
                    "method": "POST",
                    "content_type": "application/json",
                    "body": '{"text": "secret"}',
                    "status": "delivered",
                }
                for m, d in zip(ids, deliveries, strict=True)
            ],
        )
        await conn.execute(
            T.webhook_attempts.insert(), [{"delivery_id": d, "at": at, "status_code": 200} for d in deliveries]
        )
    return ids


async def counts(engine: AsyncEngine) -> dict[str, int]:
    async with engine.connect() as conn:
        return {
            t.name: int(await conn.scalar(sa.select(sa.func.count()).select_from(t)) or 0)
            for t in (T.messages, T.parts, T.events, T.outbox, T.webhook_deliveries, T.webhook_attempts)
        }


async def sweep(engine: AsyncEngine, *, budget: float, cap: int, days: int = 30, content_days: int = 0) -> int:
    """One pass; how many transactions the committer ran for it."""
    committer = store_committer.GroupCommitter(engine)
    sweeper = services_retention.Retention(
        store_retention.Limits(engine),
        committer,
        days=days,
        content_days=content_days,
        batch=cap,
        budget=budget,
        pause=0.0,
        idle_ratio=0.0,
    )
    committer.start()
    try:
        before = committer.batches
        await sweeper.sweep()
        return committer.batches - before
    finally:
        await committer.close()


async def test_a_tight_budget_keeps_batches_at_the_floor_and_leaves_nothing(engine: AsyncEngine) -> None:
    kept = await seed(engine, 3, days_old=1)
    await seed(engine, 60, days_old=40)
    transactions = await sweep(engine, budget=1e-9, cap=100)
    assert transactions == 12 + 1  # every batch overran a budget of no time: five at a time (the floor), to empty
    assert await counts(engine) == {
        "messages": 3,
        "parts": 3,
        "events": 3,
        "outbox": 6,
        "webhook_deliveries": 3,
        "webhook_attempts": 3,
    }
    async with engine.connect() as conn:
        assert set((await conn.execute(sa.select(T.messages.c.id))).scalars()) == set(kept)


async def test_a_loose_budget_grows_batches_up_to_the_cap(engine: AsyncEngine) -> None:
    await seed(engine, 250, days_old=40)
    transactions = await sweep(engine, budget=60.0, cap=64)
    assert transactions == 7  # 5, 10, 20, 40, 64, 64, 47: doubling up to the cap, not past it
    assert (await counts(engine))["messages"] == 0


async def test_blanking_keeps_rows_status_and_price_and_drops_every_copy_of_the_content(engine: AsyncEngine) -> None:
    texts = await seed(engine, 12, days_old=10)
    binary = await seed(engine, 12, days_old=10, binary=True)
    fresh = await seed(engine, 2, days_old=1)
    await sweep(engine, budget=1e-9, cap=100, days=0, content_days=7)
    assert (await counts(engine))["messages"] == 26
    async with engine.connect() as conn:
        m = (await conn.execute(sa.select(T.messages).where(T.messages.c.id.in_(texts + binary)))).all()
        assert {(r.text, r.status, r.price) for r in m} == {(None, "delivered", 7000)}
        assert [r.meta for r in m if r.id in binary] == [{"udh": "050003"}] * 12
        p = (
            await conn.execute(
                sa.select(T.parts.c.text, T.parts.c.payload).where(T.parts.c.message_id.in_(texts + binary))
            )
        ).all()
        assert set(p) == {(None, b"")}
        bodies = (await conn.execute(sa.select(T.webhook_deliveries.c.message_id, T.webhook_deliveries.c.body))).all()
        assert {b for mid, b in bodies if mid not in fresh} == {""}
        assert {b for mid, b in bodies if mid in fresh} == {'{"text": "secret"}'}
        assert set((await conn.execute(sa.select(T.messages.c.text).where(T.messages.c.id.in_(fresh)))).scalars()) == {
            "secret 0",
            "secret 1",
        }


def test_next_batch_follows_the_budget_within_its_bounds() -> None:
    assert core_retention.next_batch(40, took=0.004, budget=0.002, cap=100) == 20
    assert core_retention.next_batch(10, took=0.0001, budget=0.002, cap=100) == 20  # at most twice as many
    assert core_retention.next_batch(80, took=0.0001, budget=0.002, cap=100) == 100
    assert core_retention.next_batch(40, took=0.05, budget=0.002, cap=100) == 5  # never below the floor
    assert core_retention.next_batch(40, took=0.05, budget=0.002, cap=100, floor=1) == 1
    assert core_retention.next_batch(4, took=0.05, budget=0.002, cap=3) == 3  # nor above the cap, even below it
    assert core_retention.next_batch(7, took=0.0, budget=0.002, cap=100) == 14


async def test_a_new_sweeper_goes_on_from_where_the_last_blanking_pass_got_to(engine: AsyncEngine) -> None:
    """As after a restart (or on another node): the pass's mark is in the database, so the rows it already walked
    are not walked again; a row put back behind the mark shows it (a pass from the start would blank it)."""
    first = await seed(engine, 5, days_old=10)
    await sweep(engine, budget=1.0, cap=100, days=0, content_days=7)
    async with engine.begin() as conn:
        await conn.execute(T.messages.update().where(T.messages.c.id == first[0]).values(text="behind the mark"))
    later = await seed(engine, 3, days_old=9)
    await sweep(engine, budget=1.0, cap=100, days=0, content_days=7)
    async with engine.connect() as conn:
        texts = dict((await conn.execute(sa.select(T.messages.c.id, T.messages.c.text))).all())
    assert texts[first[0]] == "behind the mark"
    assert [texts[m] for m in first[1:] + later] == [None] * 7


async def marks(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int(await conn.scalar(sa.select(sa.func.count()).select_from(T.retention_marks)) or 0)


async def test_a_changed_plan_leaves_one_mark_per_scope_it_blanks(engine: AsyncEngine) -> None:
    """The default scope's key names the accounts with limits of their own, so each change of that set starts a
    new mark; the old scope's mark goes then, instead of staying one row per change."""
    await seed(engine, 4, days_old=10)
    await sweep(engine, budget=1.0, cap=100, days=0, content_days=7)
    assert await marks(engine) == 1
    for n, name in enumerate(["own-a", "own-b"]):
        async with engine.begin() as conn:
            await conn.execute(
                T.accounts.insert().values(
                    id=name,
                    name=name,
                    api_key=f"key-{name}",
                    secret_salt="s",
                    secret_hash="h",
                    created_at=time.time(),
                    content_retention_days=30,
                )
            )
        await seed(engine, 2, days_old=10)  # more of "acc"'s messages to blank, so the new default scope marks
        await sweep(engine, budget=1.0, cap=100, days=0, content_days=7)
        assert await marks(engine) == 1, f"after account {n + 1} got its own limits"
