"""An attacker's pass over wave 5's endpoints (``/v1/batches*``, ``/v1/suppressions*``, ``/v1/messages/export``,
``/v1/messages/{id}/cancel``, KPN's batch send with ``SubAccount``) on a real server: bad input gets the dialect's
4xx, never a 500; a sibling sub-account, a stranger or a sub-account reaching up to its parent reads, cancels and
exports none of another's data."""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
import pytest

from tests.support import GatewayProcess

ONE = [{"to": "+31612345678"}]


def auth(acc: dict[str, str]) -> tuple[str, str]:
    return (acc["api_key"], acc["api_secret"])


@pytest.fixture(scope="module")
def family(gateway: GatewayProcess) -> dict[str, dict[str, str]]:
    parent = gateway.create_account("sec-parent")
    return {
        "parent": parent,
        "stranger": gateway.create_account("sec-stranger"),
        "sub": gateway.create_account("sec-sub", parent_id=parent["account_id"]),
        "sibling": gateway.create_account("sec-sibling", parent_id=parent["account_id"]),
    }


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode()


BAD_BATCHES: list[Any] = [
    b"{",
    b"[]",
    b"null",
    {"text": 5, "recipients": ONE},
    {"text": "x", "recipients": "abc"},
    {"text": "x", "recipients": [{"to": 5}]},
    {"text": "x {a}", "recipients": [{"to": "+31612345678", "vars": {"a": [1]}}]},
    {"text": "x", "recipients": ONE, "validity_seconds": 10**30},
    {"text": "x", "recipients": ONE, "validity_seconds": -5},
    {"text": "x", "recipients": ONE, "send_at": "+99999999999999s"},
    {"text": "x", "recipients": ONE, "send_at": "nan"},
    {"text": "x", "recipients": ONE, "priority": "ultra"},
    {"text": "x", "recipients": ONE, "account": 5},
    {"text": "x", "recipients": ONE, "callback_url": "http://[::1"},
]


@pytest.mark.parametrize("body", BAD_BATCHES, ids=range(len(BAD_BATCHES)))
def test_bad_batches_are_our_400(gateway: GatewayProcess, family: dict[str, dict[str, str]], body: Any) -> None:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    r = httpx.post(gateway.url + "/v1/batches", content=content, auth=auth(family["parent"]),
                   headers={"content-type": "application/json"})  # fmt: skip
    assert r.status_code in (400, 422), r.text
    assert r.json()["error"]["code"]


@pytest.mark.parametrize("path", ["/v1/batches", "/v1/suppressions", "/v1/messages"])
@pytest.mark.parametrize("cursor", ["x", b64(b"nan|a"), b64(b"inf|a"), b64(b"1e999|a"), "%%%"])
def test_bad_cursors_and_export_windows_are_4xx(
    gateway: GatewayProcess, family: dict[str, dict[str, str]], path: str, cursor: str
) -> None:
    r = httpx.get(gateway.url + path, params={"cursor": cursor}, auth=auth(family["parent"]))
    assert r.status_code in (200, 400), r.text
    for window in ({"from": "nan"}, {"from": "inf"}, {"to": "-1e308"}, {"from": "0000-00-00"}, {"text": "maybe"}):
        r = httpx.get(gateway.url + "/v1/messages/export", params=window, auth=auth(family["parent"]))
        assert r.status_code in (200, 400), (window, r.text)


def test_no_account_reaches_anothers_batch_message_export_or_list(
    gateway: GatewayProcess, family: dict[str, dict[str, str]]
) -> None:
    parent, sub, sibling, stranger = (family[k] for k in ("parent", "sub", "sibling", "stranger"))
    later = {"text": "later", "send_at": "+3600s"}
    subs = httpx.post(gateway.url + "/v1/batches", json={**later, "recipients": ONE, "account": "sec-sub"},
                      auth=auth(parent)).json()["id"]  # fmt: skip
    parents = httpx.post(gateway.url + "/v1/batches", json={**later, "recipients": [{"to": "+31612345679"}]},
                         auth=auth(parent)).json()["id"]  # fmt: skip
    sub_mid = httpx.get(gateway.url + f"/v1/batches/{subs}/messages", auth=auth(sub)).json()["messages"][0]["id"]
    for who, bid in ((sibling, subs), (stranger, subs), (sub, parents), (stranger, parents)):
        for method, path in (("GET", ""), ("GET", "/messages"), ("POST", "/cancel")):
            r = httpx.request(method, gateway.url + f"/v1/batches/{bid}{path}", auth=auth(who))
            assert r.status_code == 404, (who["api_key"], path, r.text)
    for who in (sibling, stranger):
        assert httpx.post(gateway.url + f"/v1/messages/{sub_mid}/cancel", auth=auth(who)).status_code == 404
        for path in ("/v1/batches", "/v1/messages", "/v1/messages/export"):
            assert sub_mid not in httpx.get(gateway.url + path, auth=auth(who)).text
            assert subs not in httpx.get(gateway.url + path, auth=auth(who)).text
    assert parents not in httpx.get(gateway.url + "/v1/batches", auth=auth(sub)).text
    assert httpx.put(gateway.url + "/v1/suppressions/31612345671", auth=auth(sub)).status_code == 201
    assert httpx.get(gateway.url + "/v1/suppressions/31612345671", auth=auth(sibling)).status_code == 404
    assert "31612345671" not in httpx.get(gateway.url + "/v1/suppressions", auth=auth(stranger)).text
    # still there for its owner: nothing above canceled it
    assert httpx.get(gateway.url + f"/v1/batches/{subs}", auth=auth(sub)).json()["statuses"] == {"scheduled": 1}


def test_kpn_subaccount_header_names_only_the_callers_own(
    gateway: GatewayProcess, family: dict[str, dict[str, str]]
) -> None:
    body = {"messages": [{"mobile_number": "0612345678", "content": "x"}]}
    for caller, name, code in (("stranger", "sec-sub", 403), ("parent", "nope", 403), ("sub", "sec-sibling", 403),
                               ("parent", "x" * 5000, 403), ("parent", "sec-sub", 200)):  # fmt: skip
        token = gateway.token(family[caller])
        r = httpx.post(gateway.url + "/communication/kpn/sms/send", json=body,
                       headers={"Authorization": f"Bearer {token}", "SubAccount": name})  # fmt: skip
        assert r.status_code == code, (caller, name[:20], r.text)
        if code != 200:
            assert "errorResponse" in r.text or "error" in r.json(), r.text
