"""Receipts in any order (and before their submit), inbound routing, and webhook planning in the same transaction.

Drives the real use cases (``services.recording.Recorder``: the store's writes, the receipt rule, the webhook
planner) through a real ``GroupCommitter`` on a real SQLite file.
"""

from __future__ import annotations

import json
import pathlib
import secrets
import time
import urllib.parse
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine
from vonage_http_client import auth as vonage_auth  # type: ignore[import-untyped]

from smsgate.connectors import base
from smsgate.core import concat, encoding, segments, signing
from smsgate.core import message as core_message
from smsgate.services import recording
from smsgate.store import accounts as store_accounts
from smsgate.store import committer as store_committer
from smsgate.store import engine as store_engine
from smsgate.store import messages as store_messages
from smsgate.store import migrate, rows, tables

ST = store_messages.Status
RS = base.ReceiptState


class Store:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.writes = store_messages.MessageWrites(node_id="node_test", lease=60)
        self.recorder = recording.Recorder(self.writes, reassembly_timeout=0.0)
        self.committer = store_committer.GroupCommitter(engine)
        self.recorder.register(self.committer)
        self.accounts = store_accounts.AccountStore(engine)

    async def account(self, **settings: Any) -> dict[str, Any]:
        acc, _secret = await self.accounts.create("t", balance=10**12, **settings)
        return {"id": acc.id, "api_key": acc.api_key}

    async def own(self, account_id: str, *msisdns: str, mo_http_url: str | None = None) -> None:
        """Pool numbers held by ``account_id`` (the owner of their inbound messages)."""
        now = time.time()
        async with self.engine.begin() as conn:
            await conn.execute(
                tables.numbers.insert(),
                [
                    {"msisdn": n, "country": "NL", "account_id": account_id, "mo_http_url": mo_http_url,
                     "created_at": now, "updated_at": now}
                    for n in msisdns
                ],
            )  # fmt: skip

    async def send(self, account_id: str, *, dialect: str = "kpn", parts: int = 1, **extra: Any) -> list[str]:
        """Accept a message; returns its id followed by its part ids."""
        text = "x" * (153 * parts if parts > 1 else 20)
        seg = segments.segment_text(text, reference=7)
        assert seg.count == parts
        mid = str(uuid.uuid4())
        now = time.time()
        pids = [secrets.token_hex(8).upper() for _ in seg.parts]
        message = {
            "client_ref": None, "callback_url": None,
            "id": mid, "account_id": account_id, "direction": "outbound", "dialect": dialect,
            "sender": extra.pop("sender", "smsgate"), "recipient": extra.pop("recipient", "+31612345678"),
            "text": text, "encoding": "gsm7", "parts_count": seg.count, "status": "accepted", "connector": "sbx",
            "network": "20408", "country": "NL", "price": 100 * seg.count, "meta": extra.pop("meta", {}),
            "created_at": now, "updated_at": now, **extra,
        }  # fmt: skip
        parts = tuple(
            core_message.Part(pid, mid, p.index, p.total, ST.ACCEPTED, 0, p.udh, p.payload, p.text, connector="sbx",
                              concat_ref=7, price=100)
            for pid, p in zip(pids, seg.parts, strict=True)
        )  # fmt: skip
        item = store_messages.NewMessage(rows.message(message), parts, 100 * seg.count, claim=False)
        await self.committer.write("accept", item)
        return [mid, *pids]

    async def submitted(self, ids: list[str], nids: list[str], status: ST = ST.SUBMITTED) -> None:
        mid, pids = ids[0], ids[1:]
        updates = [store_messages.PartUpdate(pid, status, "sbx", nid) for pid, nid in zip(pids, nids, strict=True)]
        acc = await self.scalar(sa.select(tables.messages.c.account_id).where(tables.messages.c.id == mid))
        result = store_messages.JobResult(mid, acc, updates, status, done=True)
        await self.committer.write("job_results", result)

    async def receipts(self, *items: tuple[str, RS, int]) -> None:
        await self.committer.write_many(
            "receipts", [base.Receipt("sbx", nid, state, error_code=err) for nid, state, err in items]
        )

    async def scalar(self, q: Any) -> Any:
        async with self.engine.connect() as conn:
            return await conn.scalar(q)

    async def rows(self, q: Any) -> list[Any]:
        async with self.engine.connect() as conn:
            return list((await conn.execute(q)).all())

    async def statuses(self, mid: str) -> tuple[str, list[tuple[str, int | None]]]:
        p, m = tables.parts, tables.messages
        parts = await self.rows(sa.select(p.c.status, p.c.error_code).where(p.c.message_id == mid).order_by(p.c.idx))
        return await self.scalar(sa.select(m.c.status).where(m.c.id == mid)), [(r[0], r[1]) for r in parts]

    async def deliveries(self, mid: str | None = None) -> list[dict[str, Any]]:
        w, o = tables.webhook_deliveries, tables.outbox
        q = sa.select(w, o.c.id.label("job")).outerjoin(o, sa.and_(o.c.kind == "webhook", o.c.ref == w.c.id))
        if mid is not None:
            q = q.where(w.c.message_id == mid)
        return [dict(r._mapping) for r in await self.rows(q.order_by(w.c.created_at, w.c.event))]


@pytest.fixture
async def store(tmp_path: pathlib.Path) -> AsyncIterator[Store]:
    engine = store_engine.create(f"sqlite+aiosqlite:///{tmp_path / 'smsgate.db'}")
    await migrate.upgrade(engine)
    s = Store(engine)
    s.committer.start()
    try:
        yield s
    finally:
        await s.committer.close()
        await engine.dispose()


# -- receipts --------------------------------------------------------------------------------------------------
async def test_receipts_out_of_order_and_before_submit(store: Store) -> None:
    acc = await store.account()
    ids = await store.send(acc["id"], parts=3)
    # part 2's receipt overtakes its submit_sm_resp: held, not lost
    await store.receipts(("N2", RS.DELIVERED, 0))
    assert await store.statuses(ids[0]) == ("accepted", [("accepted", None)] * 3)
    assert await store.scalar(sa.select(sa.func.count()).select_from(tables.pending_receipts)) == 1
    await store.submitted(ids, ["N1", "N2", "N3"])
    assert await store.statuses(ids[0]) == ("submitted", [("submitted", None), ("delivered", 0), ("submitted", None)])
    assert await store.scalar(sa.select(sa.func.count()).select_from(tables.pending_receipts)) == 0
    # a final receipt, then the intermediate one that was sent before it: status never moves back
    await store.receipts(("N3", RS.DELIVERED, 0))
    await store.receipts(("N3", RS.ENROUTE, 0), ("N1", RS.ACCEPTED, 0))
    assert await store.statuses(ids[0]) == ("submitted", [("submitted", None), ("delivered", 0), ("delivered", 0)])
    await store.receipts(("N1", RS.DELIVERED, 0))
    assert await store.statuses(ids[0]) == ("delivered", [("delivered", 0)] * 3)
    await store.receipts(("N1", RS.UNDELIVERABLE, 2))  # a late contradicting receipt changes nothing
    assert await store.statuses(ids[0]) == ("delivered", [("delivered", 0)] * 3)
    e = tables.events
    types = [r[0] for r in await store.rows(sa.select(e.c.type).where(e.c.message_id == ids[0], e.c.part_id.is_(None)))]
    assert types == ["accepted", "delivered"]


async def test_after_a_held_receipt_submit_results_look_only_for_what_is_still_held(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once one receipt overtook its submit result, later submit results do not ask the store for held receipts
    (they did, for every batch, for ten minutes): only one naming a receipt this process still holds does."""
    looked: list[Any] = []
    held = recording.store_receipts.held

    async def counting(tx: Any, by_conn: Any = None, **kw: Any) -> Any:
        if by_conn is not None:
            looked.append(by_conn)
        return await held(tx, by_conn, **kw)

    monkeypatch.setattr(recording.store_receipts, "held", counting)
    acc = await store.account()
    ids = await store.send(acc["id"])
    await store.receipts(("H1", RS.DELIVERED, 0))
    await store.submitted(ids, ["H1"])
    assert await store.statuses(ids[0]) == ("delivered", [("delivered", 0)])
    assert looked == [{"sbx": ["H1"]}]
    for n in range(5):
        await store.submitted(await store.send(acc["id"]), [f"L{n}"])
    assert len(looked) == 1


async def test_a_receipt_another_process_held_is_applied_by_the_sweep(store: Store) -> None:
    """A submit result looks only for the receipts its own process held (no select on every submit result);
    what another process of the node held on the same file waits for the periodic sweep."""
    acc = await store.account()
    ids = await store.send(acc["id"])
    other = Store(store.engine)
    other.committer.start()
    try:
        await other.receipts(("X1", RS.DELIVERED, 0))
    finally:
        await other.committer.close()
    await store.submitted(ids, ["X1"])
    assert await store.statuses(ids[0]) == ("submitted", [("submitted", None)])
    await store.committer.write("sweep", None)
    assert await store.statuses(ids[0]) == ("delivered", [("delivered", 0)])


async def test_remembered_receipts_are_bounded_and_the_sweep_applies_the_forgotten(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(recording, "HELD_TRACKED", 1)
    acc = await store.account()
    first, second = await store.send(acc["id"]), await store.send(acc["id"])
    await store.receipts(("B1", RS.DELIVERED, 0))
    await store.receipts(("B2", RS.DELIVERED, 0))  # B1 is forgotten: one is remembered
    await store.submitted(first, ["B1"])
    await store.submitted(second, ["B2"])
    assert await store.statuses(first[0]) == ("submitted", [("submitted", None)])
    assert await store.statuses(second[0]) == ("delivered", [("delivered", 0)])
    await store.committer.write("sweep", None)
    assert await store.statuses(first[0]) == ("delivered", [("delivered", 0)])


async def test_failure_wins_and_keeps_its_error_code(store: Store) -> None:
    acc = await store.account()
    ids = await store.send(acc["id"], parts=2)
    await store.submitted(ids, ["F1", "F2"])
    # one batch with an intermediate and then a final receipt for the same part: the final one's code is kept
    await store.receipts(("F1", RS.ENROUTE, 0), ("F1", RS.UNDELIVERABLE, 2))
    assert await store.statuses(ids[0]) == ("failed", [("failed", 2), ("submitted", None)])
    await store.receipts(("F2", RS.DELIVERED, 0))
    assert await store.statuses(ids[0]) == ("failed", [("failed", 2), ("delivered", 0)])


async def test_receipts_for_unknown_ids_wait_then_apply_by_sweep(store: Store) -> None:
    acc = await store.account()
    ids = await store.send(acc["id"])
    await store.receipts(("S1", RS.EXPIRED, 1), ("GHOST", RS.DELIVERED, 0))
    # the part learns its network id in a transaction that did not look at held receipts (another node)
    async with store.engine.begin() as conn:
        p = tables.parts
        await conn.execute(p.update().where(p.c.id == ids[1]).values(status="submitted", network_id="S1"))
    async with store.engine.begin() as conn:
        assert await store.recorder.apply_held(conn) == 1
    assert await store.statuses(ids[0]) == ("expired", [("expired", 1)])
    pr = tables.pending_receipts
    assert [r[0] for r in await store.rows(sa.select(pr.c.network_id))] == ["GHOST"]
    # held receipts nobody claims are dropped after a day, so the sweep stays small
    async with store.engine.begin() as conn:
        await conn.execute(pr.update().values(received_at=time.time() - 2 * 86400))
    async with store.engine.begin() as conn:
        await store.recorder.apply_held(conn)
    assert await store.scalar(sa.select(sa.func.count()).select_from(pr)) == 0


async def test_rejected_at_submit(store: Store) -> None:
    acc = await store.account(receipt_url="https://hooks.example.com/r")
    ids = await store.send(acc["id"])
    await store.submitted(ids, [None], status=ST.REJECTED)  # type: ignore[list-item]
    assert (await store.statuses(ids[0]))[0] == "rejected"
    d = await store.deliveries(ids[0])
    assert [x["event"] for x in d] == ["message.rejected"]


# -- webhook planning -------------------------------------------------------------------------------------------
async def test_own_events_once_per_status_in_the_same_transaction(store: Store) -> None:
    acc = await store.account(receipt_url="https://hooks.example.com/receipts")
    ids = await store.send(acc["id"], parts=2, client_ref="order-1")
    assert await store.deliveries(ids[0]) == []  # accepting is answered by the API itself
    await store.submitted(ids, ["O1", "O2"])
    await store.receipts(("O1", RS.UNDELIVERABLE, 2))
    await store.receipts(("O2", RS.UNDELIVERABLE, 3))  # the message was failed already: no second event
    d = await store.deliveries(ids[0])
    assert [x["event"] for x in d] == ["message.submitted", "message.failed"]
    for x in d:
        assert x["url"] == "https://hooks.example.com/receipts" and x["method"] == "POST"
        assert x["status"] == "pending" and x["job"] is not None  # the outbox job exists with the row
        body = json.loads(x["body"])
        assert body["id"] == x["id"] and body["type"] == x["event"]
        assert body["data"]["id"] == ids[0] and body["data"]["client_ref"] == "order-1"
    failed = json.loads(d[1]["body"])["data"]
    assert failed["status"] == "failed" and [p["status"] for p in failed["parts"]] == ["failed", "submitted"]


async def test_no_target_no_delivery_and_rollback_plans_nothing(store: Store) -> None:
    acc = await store.account()
    ids = await store.send(acc["id"])
    await store.submitted(ids, ["Z1"])
    await store.receipts(("Z1", RS.DELIVERED, 0))
    assert await store.deliveries() == []
    acc2 = await store.account(receipt_url="https://hooks.example.com/x")
    ids2 = await store.send(acc2["id"])
    await store.submitted(ids2, ["Z2"])
    before = len(await store.deliveries())
    with pytest.raises(RuntimeError):
        async with store.engine.begin() as conn:
            await store.recorder.receipts(conn, [base.Receipt("sbx", "Z2", RS.DELIVERED)])
            raise RuntimeError("crash before commit")
    assert len(await store.deliveries()) == before
    assert await store.scalar(sa.select(tables.parts.c.status).where(tables.parts.c.id == ids2[1])) == "submitted"


@pytest.mark.parametrize("method", ["sha256", "md5", "sha512"])
async def test_vonage_receipts_per_part_signed_for_the_official_sdk(store: Store, method: str) -> None:
    acc = await store.account(
        receipt_url="https://hooks.example.com/account", sign_webhooks=True, signature_secret="s3cr3t-KEY",
        signature_method=method, webhook_format="form",
    )  # fmt: skip
    ids = await store.send(
        acc["id"], dialect="nexmo", parts=2, client_ref="ref&=1", callback_url="https://hooks.example.com/msg"
    )
    await store.submitted(ids, ["V1", "V2"])
    assert await store.deliveries(ids[0]) == []  # Vonage sends no DLR for "submitted"
    await store.receipts(("V2", RS.UNDELIVERABLE, 2), ("V1", RS.DELIVERED, 0))
    d = await store.deliveries(ids[0])
    assert sorted(x["event"] for x in d) == ["receipt.delivered", "receipt.failed"]
    for x in d:
        assert x["url"] == "https://hooks.example.com/msg" and x["content_type"] == "application/x-www-form-urlencoded"
        params = dict(urllib.parse.parse_qsl(x["body"], keep_blank_values=True))
        assert set(params) >= {"msisdn", "to", "network-code", "messageId", "price", "status", "scts", "err-code",
                               "api-key", "client-ref", "message-timestamp", "timestamp", "nonce", "sig"}  # fmt: skip
        assert params["msisdn"] == "31612345678" and params["to"] == "smsgate" and params["network-code"] == "20408"
        assert (
            params["price"] == "0.00000100" and params["api-key"] == acc["api_key"] and params["client-ref"] == "ref&=1"
        )
        assert len(params["scts"]) == 10 and len(params["message-timestamp"]) == 19
        part = {"delivered": ids[1], "failed": ids[2]}[params["status"]]
        assert params["messageId"] == part
        assert params["err-code"] == ("0" if params["status"] == "delivered" else "2")
        sdk = vonage_auth.Auth(api_key=acc["api_key"], signature_secret="s3cr3t-KEY", signature_method=method)
        assert sdk.check_signature(dict(params))
        assert signing.vonage_verify(params, "s3cr3t-KEY", method)
        assert not sdk.check_signature({**params, "status": "expired"})


async def test_vonage_status_report_off_means_no_receipt(store: Store) -> None:
    acc = await store.account(receipt_url="https://hooks.example.com/account")
    ids = await store.send(acc["id"], dialect="vonage", meta={"status_report": False})
    await store.submitted(ids, ["Q1"])
    await store.receipts(("Q1", RS.DELIVERED, 0))
    assert await store.deliveries(ids[0]) == []


# -- inbound ----------------------------------------------------------------------------------------------------
def mo_parts(text: str, source: str, destination: str, ref: int = 9) -> list[base.InboundPart]:
    seg = segments.segment_text(text, reference=ref)
    return [
        base.InboundPart("sbx", source, destination, encoding.DATA_CODING[seg.encoding], p.payload, p.udh)
        for p in seg.parts
    ]


async def inbound_routes(store: Store, source: str, destination: str) -> list[dict[str, Any]]:
    await store.committer.write_many("inbound", mo_parts("Stop all messages please", source, destination))
    m = tables.messages
    mid = await store.scalar(
        sa.select(m.c.id)
        .where(m.c.sender == "+" + source, m.c.recipient == "+" + destination)
        .order_by(m.c.created_at.desc())
    )
    return await store.deliveries(mid)


async def test_inbound_routing_order(store: Store) -> None:
    now = time.time()
    acc = await store.account(inbound_url="https://hooks.example.com/inbound", webhook_method="GET")
    await store.own(acc["id"], "3197010000001", mo_http_url="https://hooks.example.com/mo")
    await store.own(acc["id"], "3197010000009", "3197010000008", "3197010000007")  # owned, no URL of their own
    async with store.engine.begin() as conn:
        await conn.execute(
            tables.callbacks.insert(),
            [
                {"account_id": acc["id"], "msisdn": "31611110002", "callback_url": "https://hooks.example.com/reg",
                 "created_at": now},
                {"account_id": acc["id"], "msisdn": "31622220003", "callback_url": "https://hooks.example.com/handset",
                 "created_at": now},
            ],
        )  # fmt: skip
    # 1. the number's moHttpUrl (Vonage format, GET as the account asks)
    d = await inbound_routes(store, "31600000001", "3197010000001")
    assert [(x["url"], x["method"], x["event"]) for x in d] == [("https://hooks.example.com/mo", "GET", "inbound")]
    params = dict(urllib.parse.parse_qsl(d[0]["body"]))
    assert params["msisdn"] == "31600000001" and params["to"] == "3197010000001" and params["type"] == "text"
    assert params["text"] == "Stop all messages please" and params["keyword"] == "STOP" and "concat" not in params
    assert params["api-key"] == acc["api_key"] and params["nonce"] and params["timestamp"].isdigit()
    # 2. a /register callback for the number written to
    await store.send(acc["id"], dialect="nexmo", sender="31611110002", recipient="+31600000002")
    d = await inbound_routes(store, "31600000002", "31611110002")
    assert [x["url"] for x in d] == ["https://hooks.example.com/reg"]
    # 3. "inbound: yes": a reply to a message sent with it goes to the callback of the handset it went to
    await store.send(
        acc["id"], dialect="nexmo", sender="3197010000009", recipient="+31622220003", meta={"inbound": True}
    )
    d = await inbound_routes(store, "31622220003", "3197010000009")
    assert [x["url"] for x in d] == ["https://hooks.example.com/handset"]
    # 4. the account's inbound URL: Vonage format when the conversation is Vonage, ours otherwise
    await store.send(acc["id"], dialect="vonage", sender="3197010000008", recipient="+31633330004")
    d = await inbound_routes(store, "31633330004", "3197010000008")
    assert [(x["url"], x["content_type"]) for x in d] == [
        ("https://hooks.example.com/inbound", "application/x-www-form-urlencoded")
    ]
    await store.send(acc["id"], dialect="kpn", sender="3197010000007", recipient="+31644440005")
    d = await inbound_routes(store, "31644440005", "3197010000007")
    assert [(x["url"], x["content_type"], x["method"]) for x in d] == [
        ("https://hooks.example.com/inbound", "application/json", "POST")
    ]
    event = json.loads(d[0]["body"])
    assert event["type"] == "message.received" and event["data"]["text"] == "Stop all messages please"
    assert event["data"]["from"] == "+31644440005" and event["data"]["direction"] == "inbound"


async def test_inbound_goes_to_the_owner_never_to_the_last_sender(store: Store) -> None:
    """Issue #14 item 3: whoever wrote last from an address does not get its replies; the owner does, and with no
    owner the message is kept for the operator (no account) with no webhook."""
    alice = await store.account(inbound_url="https://hooks.example.com/alice")
    mallory = await store.account(inbound_url="https://hooks.example.com/mallory")
    await store.own(alice["id"], "3197010000011")
    await store.send(alice["id"], sender="3197010000011", recipient="+31600000011")
    await store.send(mallory["id"], sender="3197010000011", recipient="+31600000011")  # the latest, from alice's number
    await store.send(mallory["id"], sender="31655550011", recipient="+31600000011")
    d = await inbound_routes(store, "31600000011", "3197010000011")
    assert [x["url"] for x in d] == ["https://hooks.example.com/alice"]
    assert await inbound_routes(store, "31600000011", "31655550011") == []  # nobody owns it
    m = tables.messages
    rows = await store.rows(sa.select(m.c.account_id, m.c.recipient).where(m.c.direction == "inbound"))
    assert sorted((r[0], r[1]) for r in rows) == [("", "+31655550011"), (alice["id"], "+3197010000011")]


async def test_inbound_without_target_is_kept_for_polling(store: Store) -> None:
    acc = await store.account()
    await store.own(acc["id"], "3197010009999")
    await store.send(acc["id"], sender="3197010009999", recipient="+31600000009")
    assert await inbound_routes(store, "31600000009", "3197010009999") == []
    m = tables.messages
    rows = await store.rows(sa.select(m.c.account_id, m.c.text).where(m.c.direction == "inbound"))
    assert [(r[0], r[1]) for r in rows] == [(acc["id"], "Stop all messages please")]


async def test_long_inbound_reassembled_out_of_order_is_one_webhook(store: Store) -> None:
    acc = await store.account(inbound_url="https://hooks.example.com/inbound")
    await store.own(acc["id"], "31655551111")
    await store.send(acc["id"], dialect="nexmo", sender="31655551111", recipient="+31600001111")
    text = "".join(chr(ord("a") + i % 26) for i in range(400))
    parts = mo_parts(text, "31600001111", "31655551111", ref=200)
    assert len(parts) == 3 and concat.parse_udh(parts[0].udh) is not None
    for part in (parts[2], parts[0], parts[0], parts[1]):  # out of order, one duplicate
        await store.committer.write("inbound", part)
    m = tables.messages
    rows = await store.rows(sa.select(m.c.id, m.c.text, m.c.parts_count).where(m.c.direction == "inbound"))
    assert [(r[1], r[2]) for r in rows] == [(text, 3)]
    d = await store.deliveries(rows[0][0])
    assert len(d) == 1
    body = json.loads(d[0]["body"])
    assert body["text"] == text and "concat" not in body and body["type"] == "text"


async def test_incomplete_inbound_goes_out_part_by_part(store: Store) -> None:
    acc = await store.account(inbound_url="https://hooks.example.com/inbound")
    await store.own(acc["id"], "31655552222")
    await store.send(acc["id"], dialect="nexmo", sender="31655552222", recipient="+31600002222")
    parts = mo_parts("y" * 400, "31600002222", "31655552222", ref=201)
    await store.committer.write_many("inbound", [parts[0], parts[2]])
    async with store.engine.begin() as conn:
        await store.recorder.sweep(conn, [None])
    d = await store.deliveries()
    bodies = sorted((json.loads(x["body"]) for x in d), key=lambda b: b["concat-part"])
    assert [(b["concat"], b["concat-total"], b["concat-part"]) for b in bodies] == [
        ("true", "3", "1"),
        ("true", "3", "3"),
    ]
    assert bodies[0]["concat-ref"] == bodies[1]["concat-ref"] and bodies[0]["text"] == "y" * 153
