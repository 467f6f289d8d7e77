"""The ``idempotency_keys`` rows on both backends: a key is claimed once, a second transaction's claim of it waits
for the first and then inserts nothing (how the losing PostgreSQL node learns it lost), old keys are swept."""

from __future__ import annotations

import asyncio
import time

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from smsgate.core import idempotency as core_idempotency
from smsgate.services import recording
from smsgate.store import committer as store_committer
from smsgate.store import engine as store_engine
from smsgate.store import idempotency as store_idempotency
from smsgate.store import messages as store_messages
from smsgate.store import migrate, tables


def new_key(message_id: str, body: bytes, *, at: float | None = None) -> store_idempotency.NewKey:
    answer = core_idempotency.StoredResponse(201, (("content-type", "application/json"),), body)
    return store_idempotency.NewKey("acc", "k-1", "f" * 64, message_id, at or time.time(), lambda _left: answer)


async def test_a_key_is_claimed_once_and_read_back(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        assert await store_idempotency.claim(conn, new_key("m1", b'{"id":"m1"}'), 100)
        assert not await store_idempotency.claim(conn, new_key("m2", b'{"id":"m2"}'), 100)
    kept = await store_idempotency.IdempotencyStore(engine).get("acc", "k-1", since=0)
    assert kept is not None and kept.fingerprint == "f" * 64
    assert kept.response == core_idempotency.StoredResponse(
        201, (("content-type", "application/json"),), b'{"id":"m1"}'
    )
    assert await store_idempotency.IdempotencyStore(engine).get("other", "k-1", since=0) is None


@pytest.mark.postgres
async def test_a_concurrent_claim_waits_for_the_first_transaction_and_loses(pg_url: str) -> None:
    eng = store_engine.create(pg_url)
    try:
        await migrate.upgrade(eng)
        async with eng.begin() as conn:
            await conn.execute(tables.idempotency_keys.delete())
        async with eng.connect() as first, eng.connect() as second:
            await first.begin()
            await second.begin()
            assert await store_idempotency.claim(first, new_key("m1", b"1"), 0)
            racing = asyncio.create_task(store_idempotency.claim(second, new_key("m2", b"2"), 0))
            await asyncio.sleep(0.3)
            assert not racing.done()  # held by the first transaction's uncommitted row
            await first.commit()
            assert await racing is False
            await second.rollback()
    finally:
        await eng.dispose()


async def test_old_keys_are_swept(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await store_idempotency.claim(conn, new_key("m1", b"1", at=time.time() - 7200), 0)
    store = store_idempotency.IdempotencyStore(engine)
    assert await store.get("acc", "k-1", since=time.time() - 3600) is None  # past its time, not yet swept
    async with engine.begin() as conn:
        assert await store_idempotency.sweep(conn, time.time() - 3600) == 1
    assert await store.get("acc", "k-1", since=0) is None


async def test_the_recorders_sweep_forgets_keys_past_their_time(engine: AsyncEngine) -> None:
    committer = store_committer.GroupCommitter(engine)
    writes = store_messages.MessageWrites(node_id="n", lease=30.0)
    recording.Recorder(writes, reassembly_timeout=60.0, keys_kept=3600.0).register(committer)
    async with engine.begin() as conn:
        await store_idempotency.claim(conn, new_key("m1", b"1", at=time.time() - 7200), 0)
    committer.start()
    try:
        await committer.write("sweep", None)
    finally:
        await committer.close()
    async with engine.connect() as conn:
        assert (await conn.execute(tables.idempotency_keys.select())).first() is None
