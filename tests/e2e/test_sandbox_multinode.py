"""The sandbox as a test double on two nodes (one PostgreSQL, one Redis): a wait on one node ends when the other
node puts the message on the handset (its commit is not seen here: the 0.25 s look), and scripts and behaviour
switches set through one node hold for the messages the other submits (the change is announced, and each node's
caches would otherwise keep it for a minute)."""

from __future__ import annotations

import concurrent.futures
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests import support
from tests.e2e.test_security_multinode import env_for  # caches kept a minute: a change seen is a signal

pytestmark = [pytest.mark.postgres, pytest.mark.redis]
PHONE = "31612345678"


@pytest.fixture(scope="module")
def nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[support.GatewayProcess]]:
    redis_url = support.require_redis()
    with (
        support.postgres_database() as db,
        support.gateway_nodes(tmp_path_factory.mktemp, env_for(db, redis_url)) as gws,
    ):
        yield gws


def clients(nodes: list[support.GatewayProcess], acc: dict[str, str]) -> tuple[httpx.Client, httpx.Client]:
    auth = (acc["api_key"], acc["api_secret"])
    return nodes[0].client(auth=auth), nodes[1].client(auth=auth)


def send(c: httpx.Client, text: str, **extra: str) -> str:
    r = c.post("/v1/send-sms", json={"to": PHONE, "text": text, **extra})
    assert r.json()["code"] == 2020, r.text
    return str(r.json()["message_id"])


def test_a_wait_on_one_node_ends_when_the_other_submits(nodes: list[support.GatewayProcess]) -> None:
    a, b = clients(nodes, nodes[0].create_account("waits"))
    with a, b, concurrent.futures.ThreadPoolExecutor(1) as pool:
        since = f"{time.time():.6f}"
        waiting = pool.submit(
            a.get, f"/sandbox/handsets/{PHONE}/messages/latest", params={"wait": 20, "since": since}, timeout=40
        )
        time.sleep(0.3)
        sent = send(b, "code 7788")  # node B accepted it, so node B submits it
        started = time.monotonic()
        r = waiting.result(timeout=30)
        took = time.monotonic() - started
    assert r.status_code == 200 and r.json()["id"] == sent and r.json()["otp"] == "7788", r.text
    assert took < 5, took  # the 0.25 s look on PostgreSQL, not the end of the 20 s wait


def test_switches_and_scripts_set_on_one_node_hold_on_the_other(nodes: list[support.GatewayProcess]) -> None:
    acc = nodes[0].create_account("switches")
    number = "31970" + str(int(time.time() * 1000))[-8:]
    support.add_numbers(nodes[0].database_url, {number: acc["account_id"]})
    a, b = clients(nodes, acc)
    with a, b:
        a.put("/sandbox/behaviour", json={"receipts": {"late_by": 0.2}}).raise_for_status()
        script = {"rules": [{"match": r"order (\d+)", "reply": r"YES \1"}]}
        a.put(f"/sandbox/handsets/{PHONE}/script", json=script).raise_for_status()
        support.wait_for(lambda: b.get("/sandbox/behaviour").json()["receipts"]["late_by"] == 0.2, timeout=2)
        sent = send(b, "Confirm order 31", **{"from": number})

        def submitted() -> dict[str, Any]:
            m = b.get(f"/v1/messages/{sent}").json()
            return next((e for e in m["events"] if e["type"] == "submitted"), {})

        assert "receipt 0.2 s late" in support.wait_for(submitted)["data"]["note"]
        inbound = support.wait_for(lambda: b.get("/v1/messages", params={"direction": "inbound"}).json()["messages"])
        assert inbound[0]["text"] == "YES 31"
        a.delete("/sandbox/behaviour").raise_for_status()
        support.wait_for(lambda: b.get("/sandbox/behaviour").json()["receipts"]["late_by"] == 0, timeout=2)


def test_a_reset_on_one_node_drops_the_answers_waiting_on_the_other(nodes: list[support.GatewayProcess]) -> None:
    acc = nodes[0].create_account("reset")
    number = "31970" + str(int(time.time() * 1000) + 1)[-8:]
    support.add_numbers(nodes[0].database_url, {number: acc["account_id"]})
    a, b = clients(nodes, acc)
    with a, b:
        script = {
            "rules": [
                {"match": "^now$", "reply": "right back"},
                {"match": "^later$", "reply": "late", "delay_ms": 1500},
            ]
        }
        a.put(f"/sandbox/handsets/{PHONE}/script", json=script).raise_for_status()
        support.wait_for(lambda: b.get(f"/sandbox/handsets/{PHONE}/script").status_code == 200, timeout=2)
        send(b, "now", **{"from": number})  # node B submits, so node B runs the script
        inbound = support.wait_for(lambda: b.get("/v1/messages", params={"direction": "inbound"}).json()["messages"])
        assert [m["text"] for m in inbound] == ["right back"]
        later = send(b, "later", **{"from": number})
        support.wait_for(lambda: b.get(f"/v1/messages/{later}").json()["status"] == "delivered")  # answer waits on B
        a.post("/sandbox/reset").raise_for_status()
        time.sleep(2.5)
        assert b.get("/v1/messages", params={"direction": "inbound"}).json()["messages"] == []
