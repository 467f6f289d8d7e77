"""The middle of the gateway in one process: the real ``Runtime`` (use cases, group commit, dispatcher, planner)
on a temporary SQLite file with two sandbox connectors, driven through ``services`` without HTTP.

Fast and deterministic (no server subprocess, waits are for conditions), so the use cases and the dispatcher's
routing are tested where they live; the wire is tested by the e2e suite.
"""

from __future__ import annotations

import asyncio
import pathlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import sqlalchemy as sa

from smsgate.core import accounts, numbers, pricing, schedule
from smsgate.core import events as core_events
from smsgate.core.events import EventType
from smsgate.core.message import Status
from smsgate.runtime import Runtime
from smsgate.services import batches, sending
from smsgate.settings import Settings
from smsgate.store import reads, rows, tables


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


async def test_a_batch_stores_each_recipient_as_its_own_build_would(runtime: Runtime) -> None:
    """A batch builds the first recipient of each text and stores the others as copies of it
    (``store_messages.Copies``): every row must still be what ``Gateway.build`` makes for that recipient alone."""
    acc, _secret = await runtime.accounts.create("t", balance=10**10, default_sender="smsgate")
    gw = runtime.gateway
    texts = ("hello", "x" * 200)  # one part, two parts
    recipients = [batches.Recipient(numbers.parse_dutch_mobile(f"06{12345600 + i:08d}"), texts[i % 2], str(i), i)
                  for i in range(7)]  # fmt: skip
    send_at = time.time() + 3600  # scheduled: nothing moves while the rows are read
    req = batches.BatchRequest(account=acc, dialect="kpn", kind="api", recipients=recipients, sender=None,
                               callback_url="https://hooks.example/r", send_at=send_at,
                               priority=schedule.Priority.HIGH)  # fmt: skip
    result = await batches.send_batch(gw, req)
    assert len(result.message_ids) == len(recipients) and result.parts == 4 + 3 * 2
    m, p, e, o = tables.messages, tables.parts, tables.events, tables.outbox
    part_ids: set[str] = set()
    async with runtime.engine.connect() as conn:
        for mid, r in zip(result.message_ids, recipients, strict=True):
            row = (await conn.execute(sa.select(*(m.c[c] for c in rows.MESSAGE_COLUMNS)).where(m.c.id == mid))).one()
            one = sending.SendRequest(account=acc, dialect="kpn", recipient=r.number, sender="smsgate", text=r.text,
                                      callback_url=req.callback_url, send_at=send_at, priority=req.priority)  # fmt: skip
            built = gw.build(one, "smsgate", gw.segment(one), row.created_at, claim=False, batch_id=result.batch_id,
                             message_id=mid).item  # fmt: skip
            expected = dict(zip(rows.MESSAGE_COLUMNS, rows.message_values(built.message), strict=True))
            assert dict(row._mapping) == {**expected, "meta": built.message.meta}  # the driver decodes the JSON
            stored = (await conn.execute(sa.select(*(p.c[c] for c in rows.PART_COLUMNS))
                                         .where(p.c.message_id == mid).order_by(p.c.idx))).all()  # fmt: skip
            # part ids are made per batch, the concatenation reference per segmentation: the rest is the same
            same = [i for i, c in enumerate(rows.PART_COLUMNS) if c not in ("id", "concat_ref", "udh")]
            assert [[s[i] for i in same] for s in stored] == [[rows.part_values(x)[i] for i in same]
                                                              for x in built.parts]  # fmt: skip
            part_ids.update(s.id for s in stored)
            events = (await conn.execute(sa.select(*(e.c[c] for c in rows.EVENT_COLUMNS))
                                         .where(e.c.message_id == mid))).all()  # fmt: skip
            assert [rows.event(x._mapping) for x in events] == [core_events.accepted(built.message)]
            job = (await conn.execute(sa.select(o.c.run_at, o.c.priority, o.c.claimed_by).where(o.c.ref == mid))).one()
            assert tuple(job) == (send_at, 0, None)
    assert len(part_ids) == result.parts
    after = await runtime.accounts.get(acc.id)
    assert after is not None and after.balance == 10**10 - pricing.to_units(result.price)
