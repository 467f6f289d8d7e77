"""Issue #14 item 1 (a token cannot take the account over; rotation and disabling revoke tokens at once) and the
token endpoint's hygiene of item 12 (a live token is handed out again; clients are rate-limited).

Real gateways on SQLite, two accounts each. The multi-node half of item 1 (PostgreSQL + Redis) is in
``test_security_multinode.py``.
"""

from __future__ import annotations

import pathlib
import sqlite3
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.support import GatewayProcess, gateway_process, run_cli, system_cas, wait_for

SEND = "/messaging/sms-kpn/v1/send"
TOKEN = "/oauth/client_credential/accesstoken?grant_type=client_credentials"
MESSAGE = {"messages": [{"mobile_number": "0612345678", "content": "hi"}]}


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    with gateway_process(tmp_path_factory.mktemp("credentials")) as g:
        yield g


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def sends(gw: GatewayProcess, token: str) -> int:
    # polled every 0.1 s: the CA bundle loaded once (system_cas), not per call (~27 ms of CPU each)
    return httpx.post(gw.url + SEND, json=MESSAGE, headers=bearer(token), verify=system_cas()).status_code


def test_a_token_cannot_rotate_the_secret_or_move_the_webhooks(gw: GatewayProcess) -> None:
    alice, bob = gw.create_account("alice"), gw.create_account("bob")
    for acc in (alice, bob):
        token, basic = gw.token(acc), (acc["api_key"], acc["api_secret"])
        r = httpx.post(gw.url + "/v1/account/rotate-secret", headers=bearer(token))
        assert r.status_code == 403 and r.json()["error"]["code"] == "insufficient_scope", r.text
        r = httpx.put(
            gw.url + "/v1/account/webhooks", json={"receipt_url": "http://127.0.0.1:9/x"}, headers=bearer(token)
        )
        assert r.status_code == 403 and r.json()["error"]["code"] == "insufficient_scope", r.text
        r = httpx.put(gw.url + "/v1/account/webhooks", json={"receipt_url": 5}, headers=bearer("not a token"))
        assert r.status_code == 401, r.text  # a bad token is a bad token, whatever the call
        assert httpx.get(gw.url + "/v1/account/webhooks", headers=bearer(token)).json()["receipt_url"] is None
        assert httpx.get(gw.url + "/v1/account", auth=basic).status_code == 200  # the secret still works
        assert sends(gw, token) == 200  # and so does the token, for what tokens are for
    # the secret may: the old secret and the token stop working at once
    token = gw.token(alice)
    r = httpx.post(gw.url + "/v1/account/rotate-secret", auth=(alice["api_key"], alice["api_secret"]))
    assert r.status_code == 200, r.text
    assert httpx.get(gw.url + "/v1/account", auth=(alice["api_key"], alice["api_secret"])).status_code == 401
    assert sends(gw, token) == 401
    assert httpx.get(gw.url + "/v1/account", auth=(alice["api_key"], r.json()["api_secret"])).status_code == 200
    # and so may the operator, naming the account
    op = bearer(gw.operator_token)
    r = httpx.put(
        gw.url + "/v1/account/webhooks",
        params={"account": bob["api_key"]},
        json={"inbound_url": "http://127.0.0.1:9/in"},
        headers=op,
    )
    assert r.status_code == 200 and r.json()["inbound_url"] == "http://127.0.0.1:9/in", r.text
    r = httpx.post(gw.url + "/v1/account/rotate-secret", params={"account": bob["account_id"]}, headers=op)
    assert r.status_code == 200 and r.json()["api_key"] == bob["api_key"], r.text
    assert httpx.post(gw.url + "/v1/account/rotate-secret", headers=op).status_code == 400  # which account?


def test_cli_rotation_and_disable_revoke_tokens_in_the_running_server(tmp_path: pathlib.Path) -> None:
    """The CLI is another process, on SQLite with no signal: the server sees the change within 5 s."""
    with gateway_process(tmp_path) as gw:
        alice, bob = gw.create_account("alice"), gw.create_account("bob")
        ta, tb = gw.token(alice), gw.token(bob)
        assert sends(gw, ta) == sends(gw, tb) == 200  # both cached by the server now
        assert httpx.get(gw.url + "/v1/messages", auth=(alice["api_key"], alice["api_secret"])).status_code == 200
        run_cli("accounts", "rotate-secret", alice["api_key"], env=gw.env)  # committed when the CLI returns
        wait_for(lambda: sends(gw, ta) == 401, timeout=5.5, interval=0.1)
        assert httpx.get(gw.url + "/v1/messages", auth=(alice["api_key"], alice["api_secret"])).status_code == 401
        assert httpx.get(gw.url + "/v1/messages", headers=bearer(ta)).status_code == 401
        assert sends(gw, tb) == 200  # bob's token is untouched
        run_cli("accounts", "disable", bob["api_key"], env=gw.env)
        wait_for(lambda: sends(gw, tb) == 401, timeout=5.5, interval=0.1)
        run_cli("accounts", "enable", bob["api_key"], env=gw.env)
        time.sleep(5.5)  # every cache has expired: enabling the account does not bring its old tokens back
        assert sends(gw, tb) == 401
        assert sends(gw, gw.token(bob)) == 200


def test_token_endpoint_hands_out_the_live_token_and_limits_each_client(tmp_path: pathlib.Path) -> None:
    with gateway_process(tmp_path, env={"SMSGATE_TOKEN_REQUESTS_PER_MINUTE": "6"}) as gw:
        alice, bob = gw.create_account("alice"), gw.create_account("bob")

        def token_call(acc: dict[str, str]) -> httpx.Response:
            return httpx.post(gw.url + TOKEN, data={"client_id": acc["api_key"], "client_secret": acc["api_secret"]})

        first = [token_call(alice) for _ in range(6)]  # 6 a minute, all at once if need be
        assert [r.status_code for r in first] == [200] * 6
        assert len({r.json()["access_token"] for r in first}) == 1  # the live token, again
        assert all(int(r.json()["expires_in"]) <= 3599 for r in first)
        limited = token_call(alice)
        assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1, limited.text
        assert limited.json()["fault"]["detail"]["errorcode"] == "policies.ratelimit.SpikeArrestViolation"
        assert token_call(bob).status_code == 200  # per client
        db = gw.database_url.split("///", 1)[1]
        with sqlite3.connect(db) as conn:
            rows = conn.execute("SELECT account_id, count(*) FROM tokens GROUP BY account_id").fetchall()
        assert sorted(n for _, n in rows) == [1, 1]  # one row per client, not one per call
