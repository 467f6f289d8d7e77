"""The store on both backends: the same SQLAlchemy Core code and Alembic migrations on SQLite and PostgreSQL.

Every test takes the ``backend`` fixture (parametrised, as procrastinate's acceptance tests are), so a
difference between the two databases shows up as one failing parameter rather than a copied test.
"""

from __future__ import annotations

import asyncio
import contextlib
import pathlib
import secrets
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from smsgate import errors
from smsgate.connectors import base
from smsgate.core import message as core_message
from smsgate.services import recording
from smsgate.store import accounts as store_accounts
from smsgate.store import committer as store_committer
from smsgate.store import engine as store_engine
from smsgate.store import fastsql, migrate, rows, tables
from smsgate.store import messages as store_messages
from smsgate.store import outbox as store_outbox
from smsgate.store import reads as store_reads

Status = store_messages.Status


class Node:
    """What one gateway node holds of the store: its writes (through group commit) and its outbox."""

    def __init__(self, engine: AsyncEngine, node_id: str, *, lease: float = 30.0, dead_after: float = 5.0) -> None:
        self.id = node_id
        self.writes = store_messages.MessageWrites(node_id=node_id, lease=lease)
        self.committer = store_committer.GroupCommitter(engine)
        recording.Recorder(self.writes, reassembly_timeout=60.0).register(self.committer)
        self.outbox = store_outbox.Outbox(engine, node_id=node_id, lease=lease, dead_after=dead_after)


@pytest.fixture
async def node(engine: AsyncEngine) -> AsyncIterator[Node]:
    n = Node(engine, "node_a")
    n.committer.start()
    try:
        yield n
    finally:
        await n.committer.close()


def new_message(account_id: str, *, parts: int = 1, unit_price: int = 100, claim: bool = False) -> Any:
    now = time.time()
    mid = str(uuid.uuid4())
    message = rows.message(
        {
            "id": mid,
            "account_id": account_id,
            "direction": "outbound",
            "dialect": "kpn",
            "sender": "smsgate",
            "recipient": "+31612345678",
            "text": "hello",
            "encoding": "gsm7",
            "parts_count": parts,
            "status": Status.ACCEPTED.value,
            "connector": "sandbox",
            "network": "kpn",
            "country": "NL",
            "price": unit_price * parts,
            "client_ref": None,
            "callback_url": None,
            "meta": {"status_report": True},
            "created_at": now,
            "updated_at": now,
        }
    )
    part_values = tuple(
        core_message.Part(
            id=secrets.token_hex(8).upper(),
            message_id=mid,
            index=i + 1,
            total=parts,
            status=Status.ACCEPTED,
            data_coding=0,
            udh=b"",
            payload=b"hello",
            text="hello",
            connector="sandbox",
            concat_ref=7,
            price=unit_price,
        )
        for i in range(parts)
    )
    return store_messages.NewMessage(message, part_values, unit_price * parts, claim=claim)


async def make_account(engine: AsyncEngine, balance: int = 10_000) -> str:
    acc, _secret = await store_accounts.AccountStore(engine).create("t", balance=balance, default_sender="smsgate")
    return acc.id


async def scalar(engine: AsyncEngine, q: Any) -> Any:
    async with engine.connect() as conn:
        return await conn.scalar(q)


async def test_accounts_roundtrip(engine: AsyncEngine) -> None:
    store = store_accounts.AccountStore(engine)
    acc, secret = await store.create("shop", default_sender="Shop", quota_limit=5, allowed_countries=["NL"])
    assert (await store.verify(acc.api_key, secret)) == acc
    assert await store.verify(acc.api_key, secret + "x") is None
    assert await store.verify("nokey", secret) is None
    updated = await store.update(acc.id, quota_limit=9, blocked_prefixes=["+3197"])
    assert (updated.quota_limit, updated.blocked_prefixes, updated.allowed_countries) == (9, ["+3197"], ["NL"])
    assert await store.find(acc.api_key) == updated
    token, _issued = await store.issue_token(acc.id, 60, updated.credential_gen)
    owner = await store.token_owner(token)
    assert owner is not None and owner[0] == acc.id and owner[1] > time.time() and owner[2] == 0
    new_secret = await store.rotate_secret(acc.id)
    assert await store.token_owner(token) is None  # rotating the secret revokes tokens
    assert await store.verify(acc.api_key, new_secret) is not None
    assert (await store.find(acc.api_key)).credential_gen == 1  # type: ignore[union-attr]
    await store.update(acc.id, status="disabled")  # so does disabling: a new generation
    assert (await store.find(acc.api_key)).credential_gen == 2  # type: ignore[union-attr]
    with pytest.raises(errors.NotFound):
        await store.update("acc_missing", quota_limit=1)


async def test_accept_debits_balance_and_refuses_overdraft(engine: AsyncEngine, node: Node) -> None:
    acc = await make_account(engine, balance=1000)
    # one batch: 3 parts (300) + 5 parts (500) fit, the next 3 parts (300) would overdraw
    items = [new_message(acc, parts=3), new_message(acc, parts=5), new_message(acc, parts=3)]
    results = await asyncio.gather(*(node.committer.write("accept", i) for i in items), return_exceptions=True)
    assert results[0] == 700 and results[1] == 200
    assert isinstance(results[2], errors.InsufficientBalance)
    assert await scalar(engine, sa.select(tables.accounts.c.balance).where(tables.accounts.c.id == acc)) == 200
    m, p, e, o = tables.messages, tables.parts, tables.events, tables.outbox
    assert await scalar(engine, sa.select(sa.func.count()).select_from(m)) == 2
    assert await scalar(engine, sa.select(sa.func.count()).select_from(p)) == 8
    assert await scalar(engine, sa.select(sa.func.count()).select_from(e).where(e.c.type == "accepted")) == 2
    refused = items[2].message.id
    assert await scalar(engine, sa.select(sa.func.count()).select_from(o).where(o.c.ref == refused)) == 0
    assert await store_reads.MessageReads(engine).count_since(acc, time.time() - 60) == 8  # parts, as quotas count


@pytest.mark.postgres
async def test_a_dropped_committer_connection_costs_no_write(pg_url: str) -> None:
    """The committer keeps its PostgreSQL connection between batches; when the server drops it (a restart, an
    idle timeout, an operator's pg_terminate_backend) the next batch still commits, on a new connection."""
    eng = store_engine.create(pg_url)
    await migrate.upgrade(eng)
    n = Node(eng, "node_kept")
    n.committer.start()
    try:
        acc = await make_account(eng, balance=1000)
        assert await n.committer.write("accept", new_message(acc)) == 900
        async with eng.connect() as admin:
            killed = await admin.scalar(
                sa.text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            )
        assert killed >= 1  # the committer's own connection was among them
        batch = [new_message(acc), new_message(acc)]
        assert sorted(await asyncio.gather(*(n.committer.write("accept", m) for m in batch))) == [700, 800]
        assert await scalar(eng, sa.select(tables.accounts.c.balance).where(tables.accounts.c.id == acc)) == 700
    finally:
        await n.committer.close()
        await eng.dispose()


@pytest.mark.postgres
async def test_a_batchs_core_and_fastsql_statements_commit_or_roll_back_together(pg_url: str) -> None:
    """On PostgreSQL the committer begins and commits on the asyncpg connection, ``fastsql`` statements go to it
    directly and other Core statements through SQLAlchemy (in autocommit mode, so it never ends the transaction
    itself): a failing handler must still undo both kinds, and the kept connection must serve the next batch."""
    eng = store_engine.create(pg_url)
    await migrate.upgrade(eng)
    committer = store_committer.GroupCommitter(eng, two_lanes=True)
    n = tables.nodes
    tag = uuid.uuid4().hex[:8]

    async def both(tx: Any, items: list[str]) -> list[None]:
        for item in items:
            await tx.execute(n.insert().values(id=f"core-{tag}-{item}", started_at=0.0, heartbeat_at=0.0))
            await fastsql.insert_many(tx, n, [{"id": f"raw-{tag}-{item}", "started_at": 0.0, "heartbeat_at": 0.0}])
            if item == "fail":
                raise RuntimeError("the handler failed after both writes")
        return [None] * len(items)

    committer.register("both", both)
    committer.start()
    try:
        with pytest.raises(errors.StoreUnavailable):
            await committer.write("both", "fail")
        await committer.write("both", "ok")
        async with eng.connect() as conn:
            ids = set((await conn.scalars(sa.select(n.c.id).where(n.c.id.like(f"%-{tag}-%")))).all())
        assert ids == {f"core-{tag}-ok", f"raw-{tag}-ok"}
        assert committer.batches == 1  # the failed one never committed
    finally:
        await committer.close()
        await eng.dispose()


async def test_job_results_submit_retry_and_done(engine: AsyncEngine, node: Node) -> None:
    acc = await make_account(engine)
    ok, later = new_message(acc, parts=2), new_message(acc)
    for item in (ok, later):
        await node.committer.write("accept", item)
    claimed = dict(await node.outbox.claim("submit", 10))
    assert set(claimed) == {ok.message.id, later.message.id}
    retry_at = time.time() + 30
    await node.committer.write_many(
        "job_results",
        [
            store_messages.JobResult(
                ok.message.id,
                acc,
                [store_messages.PartUpdate(pt.id, Status.SUBMITTED, "sandbox", f"nid-{pt.index}") for pt in ok.parts],
                Status.SUBMITTED,
                done=True,
            ),
            store_messages.JobResult(
                later.message.id,
                acc,
                [store_messages.PartUpdate(later.parts[0].id, Status.ACCEPTED, "sandbox")],
                None,
                done=False,
                retry_at=retry_at,
                retry_reason="throttled",
            ),
        ],
    )
    o, p = tables.outbox, tables.parts
    async with engine.connect() as conn:
        jobs = {r.ref: r for r in (await conn.execute(sa.select(o))).all()}
        parts = {r.id: r for r in (await conn.execute(sa.select(p))).all()}
    assert set(jobs) == {later.message.id}  # the finished job left the outbox
    job = jobs[later.message.id]
    assert (job.claimed_by, job.attempts) == (None, 1) and job.run_at == pytest.approx(retry_at)
    assert [parts[pt.id].status for pt in ok.parts] == ["submitted", "submitted"]
    assert (parts[later.parts[0].id].status, parts[later.parts[0].id].attempts) == ("accepted", 1)
    got = await store_reads.MessageReads(engine).get(acc, ok.message.id)
    assert got is not None and got.message.status is Status.SUBMITTED
    assert [ev.type.value for ev in got.events] == ["accepted", "submitted", "submitted"]
    assert await node.outbox.claim("submit", 10) == []  # the retry is not due yet
    assert await node.outbox.next_due("submit") == pytest.approx(retry_at)


async def test_receipts_and_pending_receipts(engine: AsyncEngine, node: Node) -> None:
    acc = await make_account(engine)
    item = new_message(acc, parts=2)
    await node.committer.write("accept", item)
    pid1, pid2 = (pt.id for pt in item.parts)
    # the receipt for part 2 overtakes its submit result: it is held, not lost
    await node.committer.write("receipts", base.Receipt("sandbox", "nid-2", base.ReceiptState.DELIVERED, raw="r2"))
    pr = tables.pending_receipts
    assert await scalar(engine, sa.select(sa.func.count()).select_from(pr)) == 1
    await node.committer.write(
        "job_results",
        store_messages.JobResult(
            item.message.id,
            acc,
            [
                store_messages.PartUpdate(pid1, Status.SUBMITTED, "sandbox", "nid-1"),
                store_messages.PartUpdate(pid2, Status.SUBMITTED, "sandbox", "nid-2"),
            ],
            Status.SUBMITTED,
            done=True,
        ),
    )
    assert await scalar(engine, sa.select(sa.func.count()).select_from(pr)) == 0
    await node.committer.write("receipts", base.Receipt("sandbox", "nid-1", base.ReceiptState.DELIVERED, raw="r1"))
    got = await store_reads.MessageReads(engine).get(acc, item.message.id)
    assert got is not None
    assert [pt.status.value for pt in got.parts] == ["delivered", "delivered"]
    assert got.message.status is Status.DELIVERED
    # a late duplicate receipt does not move a final part back
    await node.committer.write("receipts", base.Receipt("sandbox", "nid-1", base.ReceiptState.UNDELIVERABLE))
    again = await store_reads.MessageReads(engine).get(acc, item.message.id)
    assert again is not None and again.message.status is Status.DELIVERED


async def test_outbox_lease_and_dead_node_reclaim(engine: AsyncEngine, node: Node) -> None:
    acc = await make_account(engine)
    a = store_outbox.Outbox(engine, node_id="node_a", lease=30.0, dead_after=1.0)
    b = store_outbox.Outbox(engine, node_id="node_b", lease=0.3, dead_after=1.0)
    await a.heartbeat()
    await b.heartbeat()
    first = new_message(acc)
    await node.committer.write("accept", first)
    assert [r for r, _ in await b.claim("submit", 10)] == [first.message.id]
    assert await a.claim("submit", 10) == []  # b holds the lease
    await asyncio.sleep(0.4)
    await b.heartbeat()  # alive, but its lease ran out: the job is due again
    assert [r for r, _ in await a.claim("submit", 10)] == [first.message.id]
    # a job claimed in the accept transaction by node_a (the fast path), then node_a stops heart-beating
    second = new_message(acc, claim=True)
    await a.heartbeat()
    await node.committer.write("accept", second)
    assert await b.claim("submit", 10) == []
    await asyncio.sleep(1.1)
    await b.heartbeat()
    got = {r for r, _ in await b.claim("submit", 10)}
    assert got == {first.message.id, second.message.id}  # node_a is dead: b takes its jobs
    # node_a comes back (it was only slow): it learns the jobs are no longer its own before submitting them
    assert await a.extend("submit", [first.message.id, second.message.id]) == set()
    assert await b.extend("submit", [second.message.id]) == {second.message.id}
    await b.leave()  # a clean shutdown hands the claims back at once
    assert (
        await scalar(engine, sa.select(sa.func.count()).select_from(tables.nodes).where(tables.nodes.c.id == "node_b"))
        == 0
    )
    assert {r for r, _ in await a.claim("submit", 10)} == got
    await a.leave()  # and the connection it kept for renewing leases (PostgreSQL)


async def test_claims_a_node_lost_track_of_come_back_at_once(engine: AsyncEngine, node: Node) -> None:
    """A claim that committed but whose answer was lost leaves jobs leased to a live node: ``release_unheld``
    gives back all but the ones the node is working on, and only its own."""
    acc = await make_account(engine)
    a = store_outbox.Outbox(engine, node_id="node_a", lease=60.0, dead_after=60.0)
    b = store_outbox.Outbox(engine, node_id="node_b", lease=60.0, dead_after=60.0)
    await a.heartbeat()
    await b.heartbeat()
    ids = []
    for _ in range(4):
        item = new_message(acc)
        await node.committer.write("accept", item)
        ids.append(item.message.id)
    assert {r for r, _ in await a.claim("submit", 3)} == set(ids[:3])  # "lost": node_a works on ids[0] only
    assert [r for r, _ in await b.claim("submit", 1)] == [ids[3]]
    assert await a.claim("submit", 10) == []  # its own lease keeps them from it for 60 s
    assert await a.release_unheld("submit", [ids[0]]) == 2
    assert {r for r, _ in await a.claim("submit", 10)} == set(ids[1:3])  # back at once; node_b's stays node_b's
    assert await b.extend("submit", [ids[3]]) == {ids[3]}
    assert await a.extend("submit", [ids[0]]) == {ids[0]}
    await a.leave()
    await b.leave()


@pytest.mark.postgres
async def test_concurrent_claims_never_share_a_job(pg_url: str) -> None:
    """Two nodes (each its own engine) claim the same backlog at once: every job is claimed exactly once."""
    engines = [store_engine.create(pg_url) for _ in range(2)]
    try:
        await migrate.upgrade(engines[0])
        async with engines[0].begin() as conn:
            for t in reversed(tables.metadata.sorted_tables):
                await conn.execute(t.delete())
            now = time.time()
            await conn.execute(
                tables.outbox.insert(),
                [
                    {"kind": "submit", "ref": f"m{i}", "run_at": now, "attempts": 0, "created_at": now}
                    for i in range(2000)
                ],
            )
        outboxes = [
            store_outbox.Outbox(eng, node_id=f"node_{i}_{k}", lease=60, dead_after=60)
            for i, eng in enumerate(engines)
            for k in range(3)
        ]
        for ob in outboxes:
            await ob.heartbeat()

        async def drain(ob: store_outbox.Outbox) -> list[str]:
            got: list[str] = []
            while batch := await ob.claim("submit", 25):
                got += [r for r, _ in batch]
            return got

        results = await asyncio.wait_for(asyncio.gather(*(drain(ob) for ob in outboxes)), 30)
        everything = [r for got in results for r in got]
        assert len(everything) == 2000 and len(set(everything)) == 2000
        assert all(results), "every claimer got some of the work (SKIP LOCKED, not one-after-the-other)"
    finally:
        for eng in engines:
            await eng.dispose()


@pytest.mark.postgres
async def test_listen_notify_wakes_other_nodes(pg_url: str) -> None:
    """Accepting a job nobody holds, or putting a retry back, notifies every listening node on commit."""
    from smsgate.store import notify

    engine = store_engine.create(pg_url)
    woken = asyncio.Event()
    listener = notify.Listener(pg_url, {notify.CHANNEL: lambda _payload: woken.set()}, reconnect_delay=0.1)
    task = asyncio.create_task(listener.run())
    writer = Node(engine, "node_w")
    writer.committer.start()
    try:
        await migrate.upgrade(engine)
        await asyncio.wait_for(listener.connected.wait(), 5)
        await asyncio.sleep(0.05)
        woken.clear()  # the listener wakes once on connect, for what it may have missed
        acc = await make_account(engine)
        await writer.committer.write("accept", new_message(acc, claim=True))
        await asyncio.sleep(0.3)
        assert not woken.is_set()  # claimed by the accepting node itself: nobody else needs waking
        item = new_message(acc, claim=False)
        await writer.committer.write("accept", item)
        await asyncio.wait_for(woken.wait(), 5)
        woken.clear()
        retry = store_messages.JobResult(
            item.message.id,
            acc,
            [store_messages.PartUpdate(item.parts[0].id, Status.ACCEPTED, "sandbox")],
            None,
            done=False,
            retry_at=time.time(),
            retry_reason="throttled",
        )
        await writer.committer.write("job_results", retry)
        await asyncio.wait_for(woken.wait(), 5)
        assert listener.received >= 2
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await writer.committer.close()
        await engine.dispose()


async def test_notify_is_a_no_op_on_sqlite(tmp_path: pathlib.Path) -> None:
    from smsgate.store import notify

    engine = store_engine.create(f"sqlite+aiosqlite:///{tmp_path / 'n.db'}")
    try:
        async with engine.begin() as conn:
            await notify.notify_outbox(conn)
    finally:
        await engine.dispose()


async def test_sandbox_store(engine: AsyncEngine) -> None:
    """The sandbox's per-account state (issue #22) reads and deletes the same on both backends: the newest message
    after a cursor, deletion that leaves messages in flight, scripts and behaviour switches."""
    from smsgate.store import sandbox as store_sandbox

    store = store_sandbox.SandboxStore(engine)
    now = time.time()

    def row(mid: str, at: float, **kw: Any) -> dict[str, Any]:
        base = {"id": mid, "account_id": "acc_a", "direction": "outbound", "dialect": "kaarai", "sender": "Shop",
                "recipient": "+31612345678", "text": f"code {mid[-4:]}", "encoding": "gsm7", "parts_count": 1,
                "status": "delivered", "connector": "sandbox", "created_at": at, "updated_at": at}  # fmt: skip
        return {**base, **kw}

    ids = [f"00000000-0000-0000-0000-00000000000{i}" for i in range(5)]
    async with engine.begin() as conn:
        await conn.execute(
            tables.messages.insert(),
            [
                row(ids[0], now),
                row(ids[1], now),  # same time: the id orders them
                row(ids[2], now + 1, status="accepted"),  # in flight
                row(ids[3], now + 2, direction="inbound", sender="+31612345678", recipient="Shop", status="received"),
                row(ids[4], now + 3, account_id="acc_b"),
            ],
        )
        await conn.execute(
            tables.parts.insert(),
            [{"id": f"P{i}", "message_id": m, "idx": 1, "total": 1, "status": "delivered", "data_coding": 0,
              "udh": b"", "payload": b"x", "text": "x", "submitted_at": now + i} for i, m in enumerate(ids)],
        )  # fmt: skip
        await conn.execute(tables.outbox.insert().values(kind="submit", ref=ids[2], run_at=now, created_at=now))
    latest = await store.latest("acc_a", ["sandbox"], "+31612345678", None)
    assert latest is not None and latest.id == ids[1] and latest.received_at == now + 1
    after = await store.cursor_of("acc_a", ids[0])
    assert after == store_sandbox.Cursor(now, ids[0])
    assert (await store.latest("acc_a", ["sandbox"], "+31612345678", after)).id == ids[1]  # type: ignore[union-attr]
    assert await store.latest("acc_a", ["sandbox"], "+31612345678", store_sandbox.Cursor(now)) is None
    assert await store.cursor_of("acc_a", ids[4]) is None  # another account's
    await store.put_script("acc_a", "+31612345678", [{"match": "a", "reply": "b", "delay_ms": 0}])
    await store.record_run("acc_a", "+31612345678", {"status": "sent"})
    [script] = await store.scripts("acc_a")
    assert script.rules[0]["reply"] == "b" and script.last_run == {"status": "sent"}
    await store.put_behaviour("acc_a", {"throttle": 0.5})
    assert await store.behaviours() == {"acc_a": {"throttle": 0.5}}
    assert await store.delete_messages("acc_a", ["sandbox"], "+31612345679") == 0
    done = await store.reset("acc_a", ["sandbox"])
    assert done == store_sandbox.Reset(messages=3, scripts=1, behaviour=True)
    async with engine.connect() as conn:
        left = set((await conn.scalars(sa.select(tables.messages.c.id))).all())
        parts_left = set((await conn.scalars(sa.select(tables.parts.c.message_id))).all())
    assert left == parts_left == {ids[2], ids[4]}  # in flight, and the other account's
    assert await store.scripts() == [] and await store.behaviours() == {}
