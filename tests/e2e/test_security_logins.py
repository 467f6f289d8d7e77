"""Issue #14 item 5: login throttling that cannot lock others out.

Real gateways on SQLite, two accounts. Failures count per (client address, api_key): ten for one key throttle that
key from that address with each dialect's own answer, and never another key's valid credentials; forwarding
headers are believed only from ``SMSGATE_TRUSTED_PROXIES``; each failure is logged at INFO with the address and
the key. The Redis-shared counters are in ``test_security_multinode.py``.
"""

from __future__ import annotations

import pathlib
from collections.abc import Iterator

import httpx
import pytest

from tests.support import GatewayProcess, gateway_process

TOKEN = "/oauth/client_credential/accesstoken?grant_type=client_credentials"
KAARAI = {"to": "31612345678", "text": "hi"}


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    with gateway_process(tmp_path_factory.mktemp("logins")) as g:
        yield g


def fail(gw: GatewayProcess, api_key: str, n: int = 10, headers: dict[str, str] | None = None) -> None:
    for _ in range(n):
        r = httpx.post(gw.url + "/v1/send-sms", json=KAARAI, auth=(api_key, "wrong"), headers=headers)
        assert r.status_code == 403 and r.json()["code"] == 4030, r.text


def answers(gw: GatewayProcess, acc: dict[str, str], headers: dict[str, str] | None = None) -> dict[str, object]:
    """What each dialect answers this key and secret."""
    auth, h = (acc["api_key"], acc["api_secret"]), headers or {}
    kaarai = httpx.post(gw.url + "/v1/send-sms", json=KAARAI, auth=auth, headers=h)
    vonage = httpx.post(
        gw.url + "/sms/json", data={"from": "Shop", "to": "31612345678", "text": "x"}, auth=auth, headers=h
    )
    numbers = httpx.get(gw.url + "/account/get-balance", auth=auth, headers=h)
    token = httpx.post(
        gw.url + TOKEN, data={"client_id": acc["api_key"], "client_secret": acc["api_secret"]}, headers=h
    )
    ours = httpx.get(gw.url + "/v1/account", auth=auth, headers=h)
    return {
        "kaarai": (kaarai.status_code, kaarai.json()["code"]),
        "vonage": vonage.json()["messages"][0]["status"],
        "numbers": numbers.status_code,
        "token": token.status_code,
        "ours": ours.status_code,
    }


OK = {"kaarai": (202, 2020), "vonage": "0", "numbers": 200, "token": 200, "ours": 200}
THROTTLED = {"kaarai": (503, 5030), "vonage": "1", "numbers": 429, "token": 429, "ours": 429}


def test_forwarding_headers_are_ignored_by_default(gw: GatewayProcess) -> None:
    """An attacker cannot spread its failures over made-up addresses, nor pin them on someone else's."""
    victim = gw.create_account("victim")
    for i in range(10):
        fail(gw, victim["api_key"], 1, {"X-Forwarded-For": f"198.51.100.{i}", "Forwarded": f"for=203.0.113.{i}"})
    assert answers(gw, victim) == THROTTLED  # all ten counted against 127.0.0.1, the real peer


def test_failures_throttle_only_their_own_key(gw: GatewayProcess) -> None:
    alice, bob = gw.create_account("alice"), gw.create_account("bob")
    fail(gw, alice["api_key"])
    assert answers(gw, alice) == THROTTLED  # the pair is throttled, right secret or not
    assert answers(gw, bob) == OK  # the same address, another key: never refused for alice's failures
    for key in ("ffffffff", "eeeeeeee", "dddddddd"):  # a spray over many keys from this address
        fail(gw, key)
    assert answers(gw, bob) == OK


def test_behind_a_trusted_proxy_the_forwarded_client_counts(tmp_path: pathlib.Path) -> None:
    with gateway_process(tmp_path, env={"SMSGATE_TRUSTED_PROXIES": "127.0.0.1/32, 10.0.0.0/8"}, log_level="info") as gw:
        alice, bob = gw.create_account("alice"), gw.create_account("bob")
        attacker = {"X-Forwarded-For": "203.0.113.7, 10.1.2.3"}  # the client, then a trusted hop
        rfc7239 = {"Forwarded": 'for="[2001:db8::7]:4711";proto=https, for=10.9.9.9'}
        fail(gw, alice["api_key"], headers=attacker)
        fail(gw, bob["api_key"], headers=rfc7239)
        assert answers(gw, alice, attacker) == THROTTLED
        assert answers(gw, bob, rfc7239) == THROTTLED
        assert answers(gw, alice, {"X-Forwarded-For": "198.51.100.2"}) == OK  # alice herself, elsewhere
        assert answers(gw, bob, {"Forwarded": "for=198.51.100.3"}) == OK
        assert answers(gw, gw.create_account("carol"), attacker) == OK
        log = gw.log.read_text()
        assert f"failed login from 203.0.113.7 for api_key '{alice['api_key']}'" in log, log[-2000:]
        assert f"failed login from 2001:db8::7 for api_key '{bob['api_key']}'" in log, log[-2000:]
        assert "wrong" not in log  # never the secret
