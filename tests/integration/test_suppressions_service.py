"""``services.suppressions`` on a real SQLite store: the batch form the batch endpoints call, and the in-memory
list: dropped on an import, changed in place for one entry, a filter for a large list, within a budget."""

from __future__ import annotations

import asyncio
import pathlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from smsgate import errors
from smsgate.core import accounts as core_accounts
from smsgate.core import numbers
from smsgate.services import suppressions
from smsgate.store import accounts as store_accounts
from smsgate.store import engine as store_engine
from smsgate.store import migrate
from smsgate.store import suppressions as store_suppressions

Service = tuple[suppressions.Suppressions, core_accounts.Account]


@pytest.fixture
async def service(tmp_path: pathlib.Path) -> AsyncIterator[Service]:
    engine = store_engine.create(f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}")
    await migrate.upgrade(engine)
    acc, _secret = await store_accounts.AccountStore(engine).create("shop")
    yield suppressions.Suppressions(store_suppressions.SuppressionStore(engine)), acc
    await engine.dispose()


async def test_refusals_name_only_the_suppressed_recipients(service: Service) -> None:
    svc, acc = service
    await svc.put(acc.id, "31612345678")
    batch = ["+31612345678", "31612345679", "31612345678", "+31612340000"]
    assert await svc.refusals(acc, batch) == {"+31612345678": "suppressed", "31612345678": "suppressed"}
    with pytest.raises(errors.Suppressed):
        await svc.check(acc, numbers.parse_international("31612345678"))
    await svc.check(acc, numbers.parse_international("31612345679"))


async def test_a_change_drops_the_list_even_while_it_is_read(service: Service) -> None:
    svc, acc = service
    assert await svc.refusals(acc, ["31612345678"]) == {}  # read and kept
    await svc.store.put(acc.id, "31612345678", "api", None)  # written behind the cache's back
    assert await svc.refusals(acc, ["31612345678"]) == {}  # still the kept copy (until a change is announced)
    svc.forget(acc.id)
    assert await svc.refusals(acc, ["31612345678"]) == {"31612345678": "suppressed"}
    await svc.delete(acc.id, "31612345678")  # through the service: forgotten at once (no bus: this process)
    assert await svc.refusals(acc, ["31612345678"]) == {}


def _large(service: Service, **kw: Any) -> suppressions.Suppressions:
    """The same store behind a service that keeps lists of more than 20 numbers as a filter."""
    svc, _acc = service
    return suppressions.Suppressions(svc.store, exact_max=20, **kw)


async def test_a_large_list_is_a_filter_whose_hits_the_store_confirms(service: Service) -> None:
    svc, acc = service
    listed = [f"3161234{i:04d}" for i in range(0, 400, 2)]  # 200 numbers: over exact_max
    await svc.store.add_many(acc.id, [(m, None) for m in listed], "import")
    large = _large(service)
    asked = [f"+3161234{i:04d}" for i in range(400)]
    assert await large.refusals(acc, asked) == {f"+{m}": "suppressed" for m in listed}
    copy = large._lists[acc.id]
    assert copy.exact is None and copy.bloom is not None
    with pytest.raises(errors.Suppressed):
        await large.check(acc, numbers.parse_international(listed[7]))
    await large.delete(acc.id, listed[7])  # lifted: still in the filter, the store says no
    await large.check(acc, numbers.parse_international(listed[7]))
    await large.put(acc.id, "31612349999")  # added in place, without reading the list again
    assert large._lists[acc.id] is copy
    with pytest.raises(errors.Suppressed):
        await large.check(acc, numbers.parse_international("31612349999"))


async def test_one_entrys_change_is_applied_in_place(service: Service) -> None:
    svc, acc = service
    assert await svc.refusals(acc, ["31612345678"]) == {}
    copy = svc._lists[acc.id]
    # announced by another node (its row is not in this store: only the announcement can have put it here)
    svc.forget(store_suppressions.change_key(acc.id, "31612345678", added=True))
    assert svc._lists[acc.id] is copy
    assert await svc.refusals(acc, ["31612345678"]) == {"31612345678": "suppressed"}
    svc.forget(store_suppressions.change_key(acc.id, "31612345678", added=False))
    assert await svc.refusals(acc, ["31612345678"]) == {}


async def test_a_change_announced_while_the_list_is_read_is_kept(service: Service) -> None:
    svc, acc = service
    reading = asyncio.ensure_future(svc.refusals(acc, ["31612345678"]))
    while acc.id not in svc._loading:  # noqa: ASYNC110 - the read in flight is what the test waits for
        await asyncio.sleep(0)
    svc.forget(store_suppressions.change_key(acc.id, "31612345678", added=True))
    assert await reading in ({}, {"31612345678": "suppressed"})  # the read raced the change: either is right
    assert await svc.refusals(acc, ["31612345678"]) == {"31612345678": "suppressed"}  # the copy kept has it


async def test_an_old_copy_is_read_again_only_when_the_list_moved(service: Service) -> None:
    svc, acc = service
    aging = suppressions.Suppressions(svc.store, max_age=0.0)
    await svc.store.put(acc.id, "31612345678", "api", None)
    assert await aging.refusals(acc, ["31612345678", "31612345679"]) == {"31612345678": "suppressed"}
    first = aging._lists[acc.id]
    assert await aging.refusals(acc, ["31612345679"]) == {}
    assert aging._lists[acc.id] is first  # same size, same newest entry: kept
    await svc.store.put(acc.id, "31612345679", "api", None)  # behind its back, no signal
    assert await aging.refusals(acc, ["31612345679"]) == {"31612345679": "suppressed"}
    assert aging._lists[acc.id] is not first


async def test_copies_are_held_within_the_budget(tmp_path: pathlib.Path) -> None:
    engine = store_engine.create(f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}")
    await migrate.upgrade(engine)
    try:
        accs = [(await store_accounts.AccountStore(engine).create(f"shop{i}"))[0] for i in range(4)]
        store = store_suppressions.SuppressionStore(engine)
        tight = suppressions.Suppressions(store, budget=2 * suppressions.ENTRY_BYTES)  # two one-number lists
        for i, a in enumerate(accs):
            await store.put(a.id, f"3161234567{i}", "api", None)
        for i, a in enumerate(accs):
            assert await tight.refusals(a, [f"3161234567{i}", "31600000000"]) == {f"3161234567{i}": "suppressed"}
            assert tight._held <= 2 * suppressions.ENTRY_BYTES
        assert list(tight._lists) == [accs[2].id, accs[3].id]  # the oldest read went first
    finally:
        await engine.dispose()
