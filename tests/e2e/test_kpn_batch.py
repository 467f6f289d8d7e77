"""KPN's batch API (``POST /communication/kpn/sms/send``) against real gateway processes on loopback: a 5,000-recipient
call in one transaction, all-or-nothing validation, SIGKILL during a batch, receipts to ``webhook_url`` on their
retry schedule, and SubAccount billing."""

from __future__ import annotations

import asyncio
import http.server
import itertools
import json
import pathlib
import threading
import time
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from smsgate.store import engine as store_engine
from smsgate.store import tables
from tests.support import GatewayProcess, free_port, postgres_database, run_cli, serve_http, stop_http, wait_for

SEND = "/communication/kpn/sms/send"


def numbers(n: int, start: int = 0) -> list[str]:
    return [f"06{20000010 + start + i:08d}" for i in range(n)]  # no sandbox fault endings (0001-0004)


def batch(nums: list[str], content: str = "Hello from the batch", **extra: Any) -> dict[str, Any]:
    return {"messages": [{"mobile_number": n, "content": content} for n in nums], **extra}


def post(gw: GatewayProcess, token: str, body: Any, **headers: str) -> httpx.Response:
    return httpx.post(gw.url + SEND, json=body, headers={"Authorization": f"Bearer {token}", **headers}, timeout=60)


def query(gw: GatewayProcess, stmt: Any) -> list[Any]:
    async def run() -> list[Any]:
        engine = store_engine.create(gw.database_url)
        try:
            async with engine.connect() as conn:
                return list((await conn.execute(stmt)).all())
        finally:
            await engine.dispose()

    return asyncio.run(run())


def count_messages(gw: GatewayProcess, account_id: str) -> int:
    m = tables.messages
    return int(query(gw, sa.select(sa.func.count()).where(m.c.account_id == account_id))[0][0])


def balance_of(gw: GatewayProcess, account_id: str) -> int:
    a = tables.accounts
    return int(query(gw, sa.select(a.c.balance).where(a.c.id == account_id))[0][0])


def test_5000_recipients_in_one_call_are_stored_together_and_delivered(gateway: GatewayProcess) -> None:
    acc = gateway.create_account("bulk")
    token = gateway.token(acc)
    before = balance_of(gateway, acc["account_id"])
    # 2,500 items of one number and 1,250 of two (comma-separated, both forms): 5,000 recipients
    nums = numbers(5000)
    items = [{"mobile_number": n, "content": "Hi"} for n in nums[:2500]]
    items += [
        {"mobile_number": f"{a}, +31{b[1:]}", "content": "Hi"}
        for a, b in zip(nums[2500::2], nums[2501::2], strict=True)
    ]
    r = post(gateway, token, {"sender": "Shop", "expirein": "3600", "messages": items})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/json"
    assert r.headers["quota-used"] == "5000"
    doc = r.json()
    assert doc["status"] == "OK"
    b = tables.batches
    row = query(gateway, sa.select(b).where(b.c.id == doc["document_id"]))[0]
    assert (row.account_id, row.kind, row.messages, row.parts) == (acc["account_id"], "kpn", 5000, 5000)
    assert before - balance_of(gateway, acc["account_id"]) == row.price > 0
    m = tables.messages
    stored = query(gateway, sa.select(m.c.recipient, m.c.sender, m.c.meta).where(m.c.batch_id == doc["document_id"]))
    assert len(stored) == 5000
    assert {s.recipient for s in stored} == {"+31" + n[1:] for n in nums}
    assert all(s.sender == "Shop" and s.meta["ttl_seconds"] == 3600 for s in stored)

    def delivered() -> bool:
        st = query(
            gateway, sa.select(sa.func.count()).where(m.c.batch_id == doc["document_id"], m.c.status == "delivered")
        )
        return int(st[0][0]) == 5000

    wait_for(delivered, timeout=60, interval=0.5)


def test_over_the_limit_and_one_bad_number_refuse_the_whole_call(gateway: GatewayProcess) -> None:
    acc = gateway.create_account("bulk-bad")
    token = gateway.token(acc)
    before = balance_of(gateway, acc["account_id"])

    r = post(gateway, token, batch(numbers(5001)))
    assert r.status_code == 400
    assert "5000" in r.json()["errorResponse"]["message"] + r.json()["errorResponse"]["info"]
    # 5,001 recipients in fewer items count the same
    two = [f"{a},{b}" for a, b in zip(numbers(2500), numbers(2500, 2500), strict=True)]
    r = post(gateway, token, batch([*two, "0699999999" if False else "0612345678"]))
    assert r.status_code == 400

    nums = numbers(5000)
    nums[3210] = "0601234567"  # 06-0: not a mobile range
    r = post(gateway, token, batch(nums))
    assert r.status_code == 400
    info = r.json()["errorResponse"]["info"]
    assert "messages[3210]" in info and "0601234567" in info
    assert count_messages(gateway, acc["account_id"]) == 0
    assert balance_of(gateway, acc["account_id"]) == before
    assert query(gateway, sa.select(tables.batches.c.id).where(tables.batches.c.account_id == acc["account_id"])) == []

    for body, fragment in [
        ({"messages": [{"mobile_number": "0612345678", "content": "x" * 1001}]}, "1000"),
        ({"messages": [{"mobile_number": "0612345678", "content": "x"}], "expirein": "5"}, "expirein"),
        ({"messages": [{"mobile_number": "0612345678", "content": "x"}], "sender": "TwelveChars!"}, "sender"),
        ({"messages": [{"mobile_number": "0612345678,", "content": "x"}]}, "messages[0]"),
        ({"messages": [{"mobile_number": "0612345678", "content": "x"}], "webhook_url": "ftp://x.example"}, "http"),
        ({"messages": []}, "messages"),
    ]:
        r = post(gateway, token, body)
        assert r.status_code == 400, body
        assert fragment in r.json()["errorResponse"]["info"], (body, r.text)
    assert count_messages(gateway, acc["account_id"]) == 0


def test_balance_and_quota_count_every_recipient_and_part(gateway: GatewayProcess) -> None:
    acc = gateway.create_account("bulk-poor", quota_limit=5, quota_unit="day")
    token = gateway.token(acc)
    r = post(gateway, token, batch(numbers(3), content="y" * 200))  # 3 recipients × 2 parts = 6 > 5
    assert r.status_code == 429
    assert count_messages(gateway, acc["account_id"]) == 0
    r = post(gateway, token, batch(numbers(2), content="y" * 200))  # 4 parts
    assert r.status_code == 200
    assert r.headers["quota-used"] == "4"
    r = post(gateway, token, batch(numbers(1), content="y" * 200))  # 2 more parts: over the quota
    assert r.status_code == 429 and r.headers["quota-used"] == "4" and r.headers["quota-limit"] == "5"

    poor = gateway.create_account("bulk-poor2", balance=1)
    r = post(gateway, gateway.token(poor), batch(numbers(10)))
    assert r.status_code == 403
    assert r.json()["errorResponse"]["info"] == "Insufficient balance"
    assert count_messages(gateway, poor["account_id"]) == 0


def test_subaccount_header_scopes_and_bills_a_batch(gateway: GatewayProcess) -> None:
    parent = gateway.create_account("bulk-parent")
    other = gateway.create_account("bulk-other")
    env = {"SMSGATE_DATA_DIR": str(gateway.data_dir)}
    sub = json.loads(run_cli("accounts", "create", "branch", "--parent", parent["api_key"], "--json", env=env).stdout)
    token = gateway.token(parent)
    before = balance_of(gateway, parent["account_id"])
    r = post(gateway, token, batch(numbers(3)), SubAccount="branch")
    assert r.status_code == 200, r.text
    assert count_messages(gateway, sub["account_id"]) == 3
    assert count_messages(gateway, parent["account_id"]) == 0
    assert balance_of(gateway, parent["account_id"]) < before
    assert balance_of(gateway, sub["account_id"]) == 0
    row = query(gateway, sa.select(tables.batches).where(tables.batches.c.id == r.json()["document_id"]))[0]
    assert row.account_id == sub["account_id"]
    for name in ("nobody", "bulk-other"):
        r = post(gateway, token, batch(numbers(1)), SubAccount=name)
        assert r.status_code == 403
        assert "errorResponse" in r.json()
    assert post(gateway, gateway.token(other), batch(numbers(1)), SubAccount="branch").status_code == 403
    assert post(gateway, token, batch(numbers(1)), SubAccount="").status_code == 200  # blank: the caller


def kill_during_batches(gw: GatewayProcess) -> None:
    """Four 5,000-recipient calls in flight, then SIGKILL; every batch stored is whole, and nothing else is."""
    try:
        gw.start()
        acc = gw.create_account("bulk-kill")
        token = gw.token(acc)
        results: list[int] = []

        def fire(start: int) -> None:
            try:
                results.append(post(gw, token, batch(numbers(5000, start))).status_code)
            except httpx.HTTPError:
                results.append(-1)

        threads = [threading.Thread(target=fire, args=(i * 5000,)) for i in range(4)]
        for t in threads:
            t.start()
            time.sleep(0.15)
        gw.kill()
        for t in threads:
            t.join(30)
    finally:
        gw.kill()
    assert -1 in results  # at least one call was cut off by the kill
    m, b = tables.messages, tables.batches
    per_batch = query(gw, sa.select(m.c.batch_id, sa.func.count()).where(m.c.account_id == acc["account_id"])
                      .group_by(m.c.batch_id))  # fmt: skip
    rows = {
        r.id: r.messages for r in query(gw, sa.select(b.c.id, b.c.messages).where(b.c.account_id == acc["account_id"]))
    }
    assert dict(per_batch) == rows
    assert all(n == 5000 for n in rows.values())
    assert len(rows) >= results.count(200)


def test_sigkill_during_a_batch_leaves_all_or_none(tmp_path: pathlib.Path) -> None:
    kill_during_batches(GatewayProcess(tmp_path / "gw"))


def test_postgres_batch_is_one_transaction_too(tmp_path: pathlib.Path) -> None:
    with postgres_database() as db:
        gw = GatewayProcess(tmp_path / "pg", env={"SMSGATE_DATABASE_URL": db}).start()
        try:
            acc = gw.create_account("pg-bulk")
            nums = numbers(5000)
            r = post(gw, gw.token(acc), batch(nums))
            assert r.status_code == 200, r.text
            assert count_messages(gw, acc["account_id"]) == 5000
            nums[17] = "0031701234567"  # a landline
            assert post(gw, gw.token(acc), batch(nums)).status_code == 400
            assert count_messages(gw, acc["account_id"]) == 5000
        finally:
            gw.stop()
        kill_during_batches(GatewayProcess(tmp_path / "pg-kill", env={"SMSGATE_DATABASE_URL": db}))


class FlakyReceiver:
    """Answers 503 to the first ``fail`` tries of each message's receipt, then 200; remembers every try's time."""

    def __init__(self, fail: int) -> None:
        self.fail = fail
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/receipts?token=x"
        self.tries: dict[str, list[tuple[float, dict[str, Any]]]] = {}
        self.lock = threading.Lock()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("content-length") or 0)))
                with receiver.lock:
                    seen = receiver.tries.setdefault(body["message_id"], [])
                    seen.append((time.monotonic(), body))
                    ok = len(seen) > receiver.fail
                self.send_response(200 if ok else 503)
                self.send_header("content-length", "0")
                self.end_headers()

        self.server = serve_http(self.port, Handler, f"kpn-receipts-{self.port}")


@pytest.mark.parametrize("fail", [2])
def test_receipts_reach_webhook_url_on_the_retry_schedule(tmp_path: pathlib.Path, fail: int) -> None:
    receiver = FlakyReceiver(fail)
    gw = GatewayProcess(tmp_path / "gw", env={"SMSGATE_KPN_WEBHOOK_RETRY_DELAYS": "1,2,4"}).start()
    try:
        acc = gw.create_account("bulk-hooks")
        token = gw.token(acc)
        r = post(gw, token, batch(["0612345001", "0612345002,0612345003"], webhook_url=receiver.url))
        assert r.status_code == 200, r.text
        doc = r.json()["document_id"]
        wait_for(lambda: len(receiver.tries) == 3 and all(len(t) == fail + 1 for t in receiver.tries.values()),
                 timeout=20, interval=0.1)  # fmt: skip
        for tries in receiver.tries.values():
            gaps = [b[0] - a[0] for a, b in itertools.pairwise(tries)]
            assert 0.9 <= gaps[0] < 1.9 and 1.9 <= gaps[1] < 3.5, gaps  # after 1 s, then 2 s
            body = tries[-1][1]
            assert body["document_id"] == doc
            assert body["status"] == "DELIVERED"
            assert abs(body["StatusDateTime"] - time.time()) < 60 and isinstance(body["StatusDateTime"], int)
        assert {t[-1][1]["mobile_number"] for t in receiver.tries.values()} == {"+31612345001", "+31612345002",
                                                                              "+31612345003"}  # fmt: skip
        time.sleep(1.5)  # delivered: no further tries
        assert all(len(t) == fail + 1 for t in receiver.tries.values())

        # a receiver that never answers 2xx gets the first try and the three retries, then the delivery is dead
        receiver.fail = 100
        r = post(gw, token, batch(["0612345009"], webhook_url=receiver.url))
        mid = query(gw, sa.select(tables.messages.c.id).where(tables.messages.c.batch_id == r.json()["document_id"]))[
            0
        ][0]
        w = tables.webhook_deliveries
        wait_for(lambda: query(gw, sa.select(w.c.status).where(w.c.message_id == mid)) == [("dead",)], timeout=20)
        assert len(receiver.tries[mid]) == 4
    finally:
        gw.stop()
        stop_http(receiver.server)


def test_a_batch_body_may_be_larger_than_other_routes_allow(gateway: GatewayProcess) -> None:
    """5,000 items of 200 distinct characters (1.3 MB): over every other route's 1 MiB cap, within the batch cap."""
    acc = gateway.create_account("bulk-big", balance=10**8 * 10**5)
    items = [{"mobile_number": n, "content": f"{i:05d}" + "x" * 195} for i, n in enumerate(numbers(5000))]
    body = {"messages": items}
    r = post(gateway, gateway.token(acc), body)
    assert r.status_code == 200, r.text
    assert count_messages(gateway, acc["account_id"]) == 5000
    # the same bytes to v1 are refused before they are read through
    r = httpx.post(gateway.url + "/messaging/sms-kpn/v1/send", json=body,
                   headers={"Authorization": f"Bearer {gateway.token(acc)}"})  # fmt: skip
    assert r.status_code == 400 and "too large" in r.json()["errorResponse"]["info"]


def test_a_suppressed_number_refuses_the_whole_call_naming_it(gateway: GatewayProcess) -> None:
    """KPN's batch is all or nothing: an opted-out recipient is a 403 naming the item and the number, so the
    caller can drop it and send again; nothing is stored or debited."""
    acc = gateway.create_account("bulk-optout")
    token = gateway.token(acc)
    before = balance_of(gateway, acc["account_id"])
    nums = numbers(20)
    assert httpx.put(gateway.url + f"/v1/suppressions/+316{nums[7][2:]}", auth=(acc["api_key"], acc["api_secret"])
                     ).status_code == 201  # fmt: skip
    r = post(gateway, token, batch(nums))
    assert r.status_code == 403, r.text
    info = r.json()["errorResponse"]["info"]
    assert "messages[7]" in info and "opted out" in info, info
    assert count_messages(gateway, acc["account_id"]) == 0
    assert balance_of(gateway, acc["account_id"]) == before
    del nums[7]
    assert post(gateway, token, batch(nums)).status_code == 200


def test_send_at_and_priority_headers_apply_to_the_whole_batch(gateway: GatewayProcess) -> None:
    acc = gateway.create_account("bulk-later")
    token = gateway.token(acc)
    r = post(gateway, token, batch(numbers(3, 700)), **{"X-Send-At": "+3600s", "X-Priority": "bulk"})
    assert r.status_code == 200, r.text
    bid = r.json()["document_id"]
    basic = (acc["api_key"], acc["api_secret"])
    assert httpx.get(gateway.url + f"/v1/batches/{bid}", auth=basic).json()["statuses"] == {"scheduled": 3}
    msgs = httpx.get(gateway.url + f"/v1/batches/{bid}/messages", auth=basic).json()["messages"]
    assert {m["meta"]["priority"] for m in msgs} == {"bulk"}, msgs[0]
    assert all(m["meta"]["send_at"] > time.time() + 3000 for m in msgs)
    assert post(gateway, token, batch(numbers(1)), **{"X-Send-At": "tomorrow"}).status_code == 400


def test_a_pending_receipt_retry_survives_a_restart(tmp_path: pathlib.Path) -> None:
    """The retry schedule is the delivery row's (``retry_delays``, ``attempts``, next try time), not a timer in the
    process: SIGKILL after the first refused try, start again, and the next tries come on the same schedule."""
    receiver = FlakyReceiver(2)
    env = {"SMSGATE_KPN_WEBHOOK_RETRY_DELAYS": "4,2,2"}
    gw = GatewayProcess(tmp_path / "gw", env=env).start()
    try:
        acc = gw.create_account("bulk-restart")
        r = post(gw, gw.token(acc), batch(["0612345021"], webhook_url=receiver.url))
        assert r.status_code == 200, r.text
        wait_for(lambda: len(receiver.tries) == 1, timeout=20, interval=0.05)
        (mid,) = receiver.tries
        w = tables.webhook_deliveries
        row = sa.select(w.c.status, w.c.attempts, w.c.retry_delays).where(w.c.message_id == mid)
        wait_for(lambda: query(gw, row) == [("retrying", 1, "4,2,2")], timeout=3)
        gw.kill()
        time.sleep(0.5)
        assert len(receiver.tries[mid]) == 1
        gw.start()
        wait_for(lambda: len(receiver.tries[mid]) == 3, timeout=30, interval=0.1)
        first, second, third = (t[0] for t in receiver.tries[mid])
        assert second - first >= 3.9 and third - second >= 1.9  # the schedule held across the restart
        stored = sa.select(w.c.status, w.c.attempts).where(w.c.message_id == mid)  # written after the answer
        wait_for(lambda: query(gw, stored) == [("delivered", 3)], timeout=10, interval=0.1)
    finally:
        gw.stop()
        stop_http(receiver.server)
