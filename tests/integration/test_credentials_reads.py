"""``credentials.Credentials.account`` on a real SQLite store: requests that miss the cache together share one
read of the account, and a read begun before a change to the account is not kept in the cache."""

from __future__ import annotations

import asyncio
import pathlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from smsgate import credentials, errors
from smsgate.core import accounts as core_accounts
from smsgate.store import accounts as store_accounts
from smsgate.store import engine as store_engine
from smsgate.store import migrate


class CountingStore(store_accounts.AccountStore):
    """The real store, counting its account reads; ``hold`` keeps a read from finishing until it is set."""

    reads = 0
    hold: asyncio.Event | None = None

    async def get(self, account_id: str) -> core_accounts.Account | None:
        self.reads += 1
        if self.hold is not None:
            await self.hold.wait()
        return await super().get(account_id)


@pytest.fixture
async def store(tmp_path: pathlib.Path) -> AsyncIterator[tuple[CountingStore, core_accounts.Account]]:
    engine = store_engine.create(f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}")
    await migrate.upgrade(engine)
    store = CountingStore(engine)
    acc, _secret = await store.create("shop")
    yield store, acc
    await engine.dispose()


async def test_concurrent_misses_share_one_read(store: Any) -> None:
    accounts, acc = store
    creds = credentials.Credentials(accounts, token_ttl=3600)
    got = await asyncio.gather(*(creds.account(acc.id) for _ in range(20)))
    assert accounts.reads == 1 and all(a is not None and a.id == acc.id for a in got)
    assert await creds.account(acc.id) is got[0] and accounts.reads == 1  # cached


async def test_a_read_across_a_change_is_not_cached(store: Any) -> None:
    accounts, acc = store
    creds = credentials.Credentials(accounts, token_ttl=3600)
    accounts.hold = asyncio.Event()
    first = asyncio.ensure_future(creds.account(acc.id))
    await asyncio.sleep(0.01)
    await store_accounts.AccountStore(accounts._engine).update(acc.id, status="disabled")  # another process's change
    creds.forget(acc.id)
    accounts.hold.set()
    assert (await first) is not None  # its callers get what they read
    fresh = await creds.account(acc.id)
    assert accounts.reads == 2 and fresh is not None and not fresh.active


async def test_a_cancelled_caller_does_not_cancel_the_read(store: Any) -> None:
    accounts, acc = store
    creds = credentials.Credentials(accounts, token_ttl=3600)
    accounts.hold = asyncio.Event()
    first = asyncio.ensure_future(creds.account(acc.id))
    second = asyncio.ensure_future(creds.account(acc.id))
    await asyncio.sleep(0.01)
    first.cancel()
    accounts.hold.set()
    assert (await second) is not None and accounts.reads == 1


async def test_concurrent_logins_share_one_check(store: Any) -> None:
    accounts, acc = store
    secret = await accounts.rotate_secret(acc.id)
    checks = 0
    verify = accounts.verify

    async def counted(api_key: str, given: str) -> Any:
        nonlocal checks
        checks += 1
        return await verify(api_key, given)

    accounts.verify = counted
    creds = credentials.Credentials(accounts, token_ttl=3600)
    got = await asyncio.gather(*(creds.authenticate(acc.api_key, secret) for _ in range(20)))
    assert checks == 1 and {a.id for a in got} == {acc.id}
    with pytest.raises(errors.AuthError):
        await creds.authenticate(acc.api_key, secret + "x")
    assert checks == 2
