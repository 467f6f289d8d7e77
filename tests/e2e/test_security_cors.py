"""Issue #14 item 11: the KPN routes allow browser credentials only for the operator's origins.

Two real gateways on SQLite: one with ``SMSGATE_CORS_ORIGINS`` naming one origin, one without (the default). A
listed origin is named with ``Access-Control-Allow-Credentials: true``; any other origin, on either gateway, gets
``*`` without credentials, on the preflight, a send, the token endpoint and an error alike.
"""

from __future__ import annotations

import pathlib

import httpx

from tests.support import gateway_process

SEND = "/messaging/sms-kpn/v1/send"
TOKEN = "/oauth/client_credential/accesstoken?grant_type=client_credentials"
LISTED, OTHER = "https://app.example", "https://evil.example"
MESSAGE = {"messages": [{"mobile_number": "0612345678", "content": "cors"}]}


def answers(url: str, origin: str, accounts: list[dict[str, str]]) -> list[httpx.Response]:
    out = [
        httpx.options(url + SEND, headers={"Origin": origin, "Access-Control-Request-Method": "POST"}),
        httpx.post(url + SEND, json=MESSAGE, headers={"Origin": origin, "Authorization": "Bearer nonsense"}),
    ]
    for acc in accounts:
        r = httpx.post(
            url + TOKEN,
            data={"client_id": acc["api_key"], "client_secret": acc["api_secret"]},
            headers={"Origin": origin},
        )
        out.append(r)
        token = r.json()["access_token"]
        out.append(httpx.post(url + SEND, json=MESSAGE, headers={"Origin": origin, "Authorization": f"Bearer {token}"}))
    assert [r.status_code for r in out] == [200, 401] + [200, 200] * len(accounts), [r.text for r in out]
    return out


def test_credentials_only_for_listed_origins(tmp_path: pathlib.Path) -> None:
    with gateway_process(tmp_path / "listed", env={"SMSGATE_CORS_ORIGINS": f"{LISTED}, https://other.example"}) as gw:
        accounts = [gw.create_account("alice"), gw.create_account("bob")]
        for r in answers(gw.url, LISTED, accounts):
            assert r.headers["access-control-allow-origin"] == LISTED
            assert r.headers["access-control-allow-credentials"] == "true"
            assert r.headers["vary"] == "Origin"
        for r in answers(gw.url, OTHER, accounts):
            assert r.headers["access-control-allow-origin"] == "*"
            assert r.headers["access-control-allow-credentials"] == "false"
    with gateway_process(tmp_path / "default") as gw:
        accounts = [gw.create_account("alice"), gw.create_account("bob")]
        for origin in (LISTED, OTHER):
            for r in answers(gw.url, origin, accounts):
                assert r.headers["access-control-allow-origin"] == "*"
                assert r.headers["access-control-allow-credentials"] == "false"
