"""The middle of the gateway in one process: the real ``Runtime`` (use cases, group commit, dispatcher, planner)
on a temporary SQLite file with two sandbox connectors, driven through ``services`` without HTTP.

Fast and deterministic (no server subprocess, waits are for conditions), so the use cases and the dispatcher's
routing are tested where they live; the wire is tested by the e2e suite.
"""

from __future__ import annotations

import asyncio
import pathlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from smsgate.core import accounts, numbers
from smsgate.core.events import EventType
from smsgate.core.message import Status
from smsgate.runtime import Runtime
from smsgate.services import sending
from smsgate.settings import Settings
from smsgate.store import reads


@pytest.fixture
async def runtime(tmp_path: pathlib.Path) -> AsyncIterator[Runtime]:
    settings = Settings(
        data_dir=tmp_path,
        sandbox=False,
        sandbox_receipt_delay=0.01,
        poll_interval=0.05,
        connectors=[{"type": "sandbox", "name": "a"}, {"type": "sandbox", "name": "b"}],
        routing={"default": "a", "rules": [{"prefix": "316", "connectors": ["a", "b"], "strategy": "failover"}]},
    )
    async with Runtime(settings) as rt:
        yield rt


async def until(check: Callable[[], Awaitable[Any]], within: float = 5.0) -> Any:
    """``check()``'s first truthy answer; AssertionError after ``within`` seconds."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        found = await check()
        if found:
            return found
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not within {within}s")
        await asyncio.sleep(0.01)


async def send(rt: Runtime, account: accounts.Account, to: str = "0612345678") -> str:
    req = sending.SendRequest(account=account, dialect="kpn", recipient=numbers.parse_dutch_mobile(to),
                              sender=None, text="hello")  # fmt: skip
    return (await rt.gateway.send(req)).message_id


async def settled(rt: Runtime, account: accounts.Account, mid: str, status: Status) -> reads.Detail:
    async def check() -> reads.Detail | None:
        found = await rt.reads.get(account.id, mid)
        return found if found is not None and found.message.status is status else None

    detail: reads.Detail = await until(check)
    return detail


async def test_a_send_is_submitted_delivered_and_announced(runtime: Runtime) -> None:
    acc, _secret = await runtime.accounts.create("t", balance=10**10, default_sender="smsgate",
                                                 receipt_url="https://hooks.example/receipts")  # fmt: skip
    mid = await send(runtime, acc)
    detail = await settled(runtime, acc, mid, Status.DELIVERED)
    assert [e.type for e in detail.events] == [EventType.ACCEPTED, EventType.SUBMITTED, EventType.DELIVERED]
    assert [p.connector for p in detail.parts] == ["a"] and detail.parts[0].network_id
    # the planner ran in the same transactions: one event of ours per status reached
    log = await runtime.webhook_service.page(acc, before=None, limit=10)
    assert sorted(d["event"] for d in log) == ["message.delivered", "message.submitted"]
    assert runtime.recorder.accepted == {"kpn": 1} and runtime.ingest.receipt_count == 1


async def test_the_route_skips_a_connector_that_is_down(runtime: Runtime) -> None:
    acc, _secret = await runtime.accounts.create("t", balance=10**10, default_sender="smsgate")
    runtime.connectors["a"].up = False  # type: ignore[attr-defined]
    detail = await settled(runtime, acc, await send(runtime, acc), Status.DELIVERED)
    assert detail.message.connector == "b" and [p.connector for p in detail.parts] == ["b"]


async def test_nothing_usable_puts_the_job_back_until_a_connector_returns(runtime: Runtime) -> None:
    acc, _secret = await runtime.accounts.create("t", balance=10**10, default_sender="smsgate")
    for name in ("a", "b"):
        runtime.connectors[name].up = False  # type: ignore[attr-defined]
    mid = await send(runtime, acc)

    async def retried() -> bool:
        found = await runtime.reads.get(acc.id, mid)
        return found is not None and any(e.type is EventType.RETRY for e in found.events)

    await until(retried)
    runtime.connectors["b"].up = True  # type: ignore[attr-defined]
    runtime.dispatcher.wake()
    detail = await settled(runtime, acc, mid, Status.DELIVERED)
    assert detail.message.connector == "b"
