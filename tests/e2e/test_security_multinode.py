"""Issue #14 on several nodes: two ``smsgate serve`` processes on one PostgreSQL and one Redis, two accounts.

Each node is told to trust its caches for a minute (``SMSGATE_CACHE_SECONDS=60``), so a change seen on the other
node within a second or two can only have come through the signal: PostgreSQL ``NOTIFY`` from the transaction
that made it (API or CLI), or Redis. Also: failed logins and seen signatures are counted once for all nodes.
A last test runs one node on SQLite with Redis, where the CLI's rotation reaches the server through Redis alone.
"""

from __future__ import annotations

import os
import pathlib
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from smsgate.core import signing
from tests import support

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

SEND = "/messaging/sms-kpn/v1/send"
MESSAGE = {"messages": [{"mobile_number": "0612345678", "content": "hi"}]}
SIGNAL = 2.0  # seconds a signalled change may take to show on the other node (its cache would keep it 60 s)


def env_for(db: str, redis_url: str) -> dict[str, str]:
    return {
        "SMSGATE_DATABASE_URL": db,
        "SMSGATE_REDIS_URL": redis_url,
        "SMSGATE_REDIS_PREFIX": f"smsgate-test-{os.urandom(4).hex()}:",
        "SMSGATE_CACHE_SECONDS": "60",
        "SMSGATE_SANDBOX": "false",
    }


@pytest.fixture(scope="module")
def nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[support.GatewayProcess]]:
    redis_url = support.require_redis()
    with (
        support.postgres_database() as db,
        support.gateway_nodes(tmp_path_factory.mktemp, env_for(db, redis_url)) as gws,
    ):
        yield gws


def sends(node: support.GatewayProcess, token: str) -> int:
    headers = {"authorization": f"Bearer {token}"}
    # polled every 50 ms: the CA bundle loaded once (support.system_cas), not per call (~27 ms of CPU each)
    return httpx.post(node.url + SEND, json=MESSAGE, headers=headers, verify=support.system_cas()).status_code


def until(predicate: Any, within: float = SIGNAL) -> float:
    """Seconds until ``predicate()`` held; AssertionError past ``within``."""
    start = time.monotonic()
    support.wait_for(predicate, timeout=within, interval=0.05)
    return time.monotonic() - start


def test_rotation_on_one_node_revokes_tokens_on_the_other(nodes: list[support.GatewayProcess]) -> None:
    a, b = nodes
    alice, bob = a.create_account("alice"), a.create_account("bob")
    ta, tb = a.token(alice), b.token(bob)
    assert sends(b, ta) == sends(a, tb) == sends(b, tb) == 200  # cached on both nodes now
    assert httpx.get(b.url + "/v1/account", auth=(alice["api_key"], alice["api_secret"])).status_code == 200
    r = httpx.post(a.url + "/v1/account/rotate-secret", auth=(alice["api_key"], alice["api_secret"]))
    assert r.status_code == 200
    until(lambda: sends(b, ta) == 401)
    basic = (alice["api_key"], alice["api_secret"])
    until(lambda: httpx.get(b.url + "/v1/account", auth=basic, verify=support.system_cas()).status_code == 401)
    assert sends(b, tb) == 200 and sends(a, tb) == 200  # bob's token is untouched


def test_cli_rotation_and_disable_reach_every_node(nodes: list[support.GatewayProcess]) -> None:
    a, b = nodes
    alice, bob = a.create_account("alice-cli"), a.create_account("bob-cli")
    ta, tb = a.token(alice), b.token(bob)
    assert sends(a, ta) == sends(b, ta) == sends(a, tb) == sends(b, tb) == 200
    support.run_cli("accounts", "rotate-secret", alice["api_key"], env=a.env)
    until(lambda: sends(a, ta) == 401 and sends(b, ta) == 401)
    support.run_cli("accounts", "disable", bob["api_key"], env=a.env)
    until(lambda: sends(a, tb) == 401 and sends(b, tb) == 401)
    support.run_cli("accounts", "enable", bob["api_key"], env=a.env)
    time.sleep(0.5)
    assert sends(a, tb) == sends(b, tb) == 401  # a disabled account's tokens stay dead


def test_failed_logins_are_counted_once_for_all_nodes(nodes: list[support.GatewayProcess]) -> None:
    a, b = nodes
    alice, bob = a.create_account("alice-fail"), a.create_account("bob-fail")
    for i in range(10):
        node = nodes[i % 2]
        r = httpx.post(
            node.url + "/v1/send-sms", json={"to": "31612345678", "text": "x"}, auth=(alice["api_key"], "no")
        )
        assert r.json()["code"] == 4030
    for node in (a, b):
        ok = httpx.post(
            node.url + "/v1/send-sms",
            json={"to": "31612345678", "text": "x"},
            auth=(alice["api_key"], alice["api_secret"]),
        )
        assert ok.status_code == 503 and ok.json()["code"] == 5030, ok.text  # alice's key from this address
        other = httpx.post(
            node.url + "/v1/send-sms", json={"to": "31612345678", "text": "x"}, auth=(bob["api_key"], bob["api_secret"])
        )
        assert other.status_code == 202, other.text


def test_a_signed_request_replayed_to_another_node_is_refused(nodes: list[support.GatewayProcess]) -> None:
    a, b = nodes
    acc = a.create_account("signer", signature_secret="multi-node-secret")
    params = {
        "api_key": acc["api_key"],
        "from": "Shop",
        "to": "31612345678",
        "text": "once",
        "timestamp": str(int(time.time())),
    }
    params["sig"] = signing.vonage_sign(params, "multi-node-secret")
    assert httpx.post(a.url + "/sms/json", data=params).json()["messages"][0]["status"] == "0"
    assert httpx.post(b.url + "/sms/json", data=params).json()["messages"][0]["status"] == "14"


def test_a_new_owner_is_seen_by_every_node_at_once(nodes: list[support.GatewayProcess]) -> None:
    a, b = nodes
    alice, bob = a.create_account("alice-num"), a.create_account("bob-num")
    number = "31970" + str(int(time.time() * 1000))[-8:]
    support.run_cli("numbers", "add", number, "--country", "NL", env=a.env)

    def status(node: support.GatewayProcess, acc: dict[str, str]) -> str:
        r = httpx.post(
            node.url + "/sms/json",
            data={"from": number, "to": "31612345678", "text": "x"},
            auth=(acc["api_key"], acc["api_secret"]),
            verify=support.system_cas(),
        )
        return str(r.json()["messages"][0]["status"])

    assert status(a, alice) == status(b, alice) == "15"  # nobody's yet, and both nodes have cached that
    support.run_cli("numbers", "assign", number, alice["api_key"], env=a.env)
    until(lambda: status(a, alice) == "0" and status(b, alice) == "0")
    assert status(b, bob) == "15"


def test_cli_rotation_reaches_a_sqlite_server_through_redis(tmp_path: pathlib.Path) -> None:
    redis_url = support.require_redis()
    env = env_for("", redis_url)
    del env["SMSGATE_DATABASE_URL"]
    with support.gateway_process(tmp_path, env=env) as gw:
        alice, bob = gw.create_account("alice"), gw.create_account("bob")
        ta, tb = gw.token(alice), gw.token(bob)
        assert sends(gw, ta) == sends(gw, tb) == 200
        support.run_cli("accounts", "rotate-secret", alice["api_key"], env=gw.env)
        took = until(lambda: sends(gw, ta) == 401)
        assert sends(gw, tb) == 200
        print(f"\nrevoked {took:.2f}s after the CLI returned (cache: 60 s)")
