"""``services.suppressions`` on a real SQLite store: the batch form the batch endpoints call, and the in-memory
list dropped on a change."""

from __future__ import annotations

import pathlib
from collections.abc import AsyncIterator

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
