"""``Idempotency-Key`` on KPN's batch call (``POST /communication/kpn/sms/send``) against a real gateway process:
a retry gets the first answer byte for byte and stores nothing; the same key with another body, SubAccount or send
header is KPN's 400; concurrent duplicates make one batch; a refused call keeps nothing for its key."""

from __future__ import annotations

import asyncio
import json
import uuid

import httpx
import sqlalchemy as sa

from smsgate.store import tables
from tests.e2e.test_kpn_batch import SEND, balance_of, batch, count_messages, numbers, post, query
from tests.support import GatewayProcess, run_cli


def batches_of(gw: GatewayProcess, account_id: str) -> list[str]:
    b = tables.batches
    return [r.id for r in query(gw, sa.select(b.c.id).where(b.c.account_id == account_id))]


def refused_as_reused(r: httpx.Response) -> bool:
    err = r.json().get("errorResponse", {})
    return r.status_code == 400 and err.get("code") == "400" and "Idempotency-Key" in err.get("info", "") + str(err)


def test_a_retried_batch_gets_the_first_answer_and_stores_nothing_again(gateway: GatewayProcess) -> None:
    acc = gateway.create_account("kb-retry")
    token, key = gateway.token(acc), str(uuid.uuid4())
    body = batch(numbers(500), content="once per key")
    first = post(gateway, token, body, **{"Idempotency-Key": key})
    assert first.status_code == 200, first.text
    assert "idempotent-replayed" not in first.headers
    after = balance_of(gateway, acc["account_id"])
    again = post(gateway, token, body, **{"Idempotency-Key": key})
    assert again.status_code == 200 and again.content == first.content
    assert again.headers["idempotent-replayed"] == "true"
    assert again.headers["content-type"] == first.headers["content-type"]
    assert batches_of(gateway, acc["account_id"]) == [first.json()["document_id"]]
    assert count_messages(gateway, acc["account_id"]) == 500
    assert balance_of(gateway, acc["account_id"]) == after  # debited once
    k = tables.idempotency_keys
    row = query(gateway, sa.select(k.c.message_id, k.c.body).where(k.c.key == key))[0]
    assert row.message_id == first.json()["document_id"] and bytes(row.body) == first.content
    # another key, or none: another batch each time
    other = post(gateway, token, body, **{"Idempotency-Key": str(uuid.uuid4())})
    assert other.status_code == 200 and other.json()["document_id"] != first.json()["document_id"]
    assert post(gateway, token, body).status_code == 200
    assert len(batches_of(gateway, acc["account_id"])) == 3


def test_the_same_key_with_another_request_is_kpns_400(gateway: GatewayProcess) -> None:
    parent = gateway.create_account("kb-reuse")
    env = {"SMSGATE_DATA_DIR": str(gateway.data_dir)}
    sub = json.loads(run_cli("accounts", "create", "shop", "--parent", parent["api_key"], "--json", env=env).stdout)
    token, key = gateway.token(parent), str(uuid.uuid4())
    body = batch(numbers(3), content="first")
    first = post(gateway, token, body, **{"Idempotency-Key": key, "X-Priority": "bulk"})
    assert first.status_code == 200, first.text
    variants: list[tuple[dict[str, object], dict[str, str]]] = [
        (batch(numbers(3), content="second"), {"X-Priority": "bulk"}),  # another body
        (body, {}),  # the priority header left out
        (body, {"X-Priority": "high"}),
        (body, {"X-Priority": "bulk", "X-Send-At": "+3600s"}),
        (body, {"X-Priority": "bulk", "X-Validity-Seconds": "600"}),
        (body, {"X-Priority": "bulk", "SubAccount": "shop"}),  # the same key for a sub-account
    ]
    for other_body, headers in variants:
        r = post(gateway, token, other_body, **{"Idempotency-Key": key, **headers})
        assert refused_as_reused(r), (headers, r.text)
        assert "idempotent-replayed" not in r.headers
    assert batches_of(gateway, parent["account_id"]) == [first.json()["document_id"]]
    assert count_messages(gateway, sub["account_id"]) == 0
    # the sub-account's batch with its own key, then retried: one batch, billed to the parent once
    sub_key = str(uuid.uuid4())
    a = post(gateway, token, body, **{"Idempotency-Key": sub_key, "SubAccount": "shop"})
    b = post(gateway, token, body, **{"Idempotency-Key": sub_key, "SubAccount": "shop"})
    assert a.status_code == b.status_code == 200 and a.content == b.content, b.text
    assert b.headers["idempotent-replayed"] == "true"
    assert count_messages(gateway, sub["account_id"]) == 3


def test_a_refused_batch_keeps_nothing_for_its_key(gateway: GatewayProcess) -> None:
    acc = gateway.create_account("kb-refused")
    token, key = gateway.token(acc), str(uuid.uuid4())
    nums = numbers(20)
    nums[7] = "0601234567"  # not a mobile range: the whole call is refused
    r = post(gateway, token, batch(nums), **{"Idempotency-Key": key})
    assert r.status_code == 400 and "messages[7]" in r.json()["errorResponse"]["info"]
    fixed = post(gateway, token, batch(numbers(20)), **{"Idempotency-Key": key})
    assert fixed.status_code == 200 and "idempotent-replayed" not in fixed.headers, fixed.text
    assert count_messages(gateway, acc["account_id"]) == 20
    bad = post(gateway, token, batch(numbers(1)), **{"Idempotency-Key": "tab\there"})
    assert bad.status_code == 400 and bad.json()["errorResponse"]["code"] == "400"


def test_concurrent_duplicates_make_one_batch(gateway: GatewayProcess) -> None:
    acc = gateway.create_account("kb-burst")
    token, key = gateway.token(acc), str(uuid.uuid4())
    body = batch(numbers(2000), content="a burst of retries")

    async def burst() -> list[httpx.Response]:
        headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": key}
        async with httpx.AsyncClient(base_url=gateway.url, headers=headers, timeout=60) as client:
            return await asyncio.gather(*(client.post(SEND, json=body) for _ in range(12)))

    answers = asyncio.run(burst())
    assert [r.status_code for r in answers] == [200] * 12, [r.text for r in answers if r.status_code != 200]
    assert len({r.content for r in answers}) == 1
    assert sum(r.headers.get("idempotent-replayed") == "true" for r in answers) == 11
    assert len(batches_of(gateway, acc["account_id"])) == 1
    assert count_messages(gateway, acc["account_id"]) == 2000


def test_openapi_documents_the_header_on_the_batch_call(gateway: GatewayProcess) -> None:
    spec = httpx.get(gateway.url + "/openapi.json", timeout=10).json()
    names = [p["name"] for p in spec["paths"][SEND]["post"]["parameters"]]
    assert "Idempotency-Key" in names and "SubAccount" in names
