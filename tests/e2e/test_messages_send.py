"""``POST /v1/messages`` against a real gateway process (sandbox network, real SQLite file)."""

from __future__ import annotations

import itertools
from typing import Any

import httpx
import pytest

from tests.support import GatewayProcess

SEND = "/v1/messages"


def basic(acc: dict[str, str]) -> httpx.BasicAuth:
    return httpx.BasicAuth(acc["api_key"], acc["api_secret"])


def post(gw: GatewayProcess, acc: dict[str, str], body: Any, **kw: Any) -> httpx.Response:
    return httpx.post(gw.url + SEND, json=body, auth=basic(acc), timeout=10, **kw)


def error(r: httpx.Response, status: int, field: str | None, reason: str | None = None) -> dict[str, Any]:
    assert r.status_code == status, r.text
    err: dict[str, Any] = r.json()["error"]
    assert err.get("field") == field, err
    if reason is not None:
        assert err["reason"] == reason, err
    return err


def test_send_answers_201_with_the_message_as_get_shows_it(gateway: GatewayProcess, account: dict[str, str]) -> None:
    token = gateway.token(account)
    r = httpx.post(
        gateway.url + SEND,
        json={"to": "+4915112345678", "text": "Hello from our own API", "client_ref": "order-7"},
        headers={"authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert r.status_code == 201, r.text
    body = r.json()
    assert r.headers["location"] == f"/v1/messages/{body['id']}"
    assert body["status"] == "accepted" and body["to"] == "+4915112345678" and body["country"] == "DE"
    assert body["encoding"] == "gsm7" and body["parts_count"] == 1 and len(body["parts"]) == 1
    assert body["client_ref"] == "order-7" and body["dialect"] == "v1"
    assert body["from"] == "smsgate" and body["price"] == body["parts"][0]["price"]
    got = httpx.get(gateway.url + r.headers["location"], auth=basic(account), timeout=10).json()
    assert set(got) == set(body)
    for key in ("id", "from", "to", "text", "encoding", "parts_count", "price", "created_at", "meta", "client_ref"):
        assert got[key] == body[key], key
    assert [p["id"] for p in got["parts"]] == [p["id"] for p in body["parts"]]
    assert got["events"][0] == body["events"][0]  # the accepted event, as stored


def test_unicode_long_text_and_forced_ucs2(gateway: GatewayProcess, account: dict[str, str]) -> None:
    r = post(gateway, account, {"to": "31612345678", "text": "Grüße ✓ " * 20})
    assert r.status_code == 201, r.text
    assert r.json()["encoding"] == "ucs2" and r.json()["parts_count"] == 3
    r = post(gateway, account, {"to": "31612345678", "text": "plain", "encoding": "ucs2"})
    assert r.status_code == 201 and r.json()["encoding"] == "ucs2", r.text


def test_binary(gateway: GatewayProcess, account: dict[str, str]) -> None:
    r = post(gateway, account, {"to": "31612345678", "binary": {"udh": "0605040b8423f0", "data": "cafebabe"}})
    assert r.status_code == 201, r.text
    assert r.json()["text"] is None and r.json()["parts_count"] == 1


def test_schedule_validity_and_priority_are_carried(gateway: GatewayProcess, account: dict[str, str]) -> None:
    r = post(
        gateway,
        account,
        {"to": "31612345678", "text": "later", "send_at": "+3600s", "validity_seconds": 600, "priority": "high"},
    )
    assert r.status_code == 201, r.text
    assert r.json()["meta"]["ttl_seconds"] == 600


@pytest.mark.parametrize(
    ("body", "field", "reason"),
    [
        ({"text": "no recipient"}, "to", None),
        ({"to": "", "text": "x"}, "to", "empty"),
        ({"to": "0612345678", "text": "x"}, "to", "no_country_code"),
        ({"to": "31612345678"}, "text", None),
        ({"to": "31612345678", "text": ""}, "text", "empty"),
        ({"to": "31612345678", "text": "x", "binary": {"data": "00"}}, "text", None),
        ({"to": "31612345678", "binary": {"data": "zz"}}, "binary.data", "invalid_encoding"),
        ({"to": "31612345678", "text": "x", "send_at": "tomorrow"}, "send_at", None),
        ({"to": "31612345678", "text": "x", "send_at": "2030-01-01T09:00:00"}, "send_at", None),
        ({"to": "31612345678", "text": "x", "validity_seconds": 0}, "validity_seconds", None),
        ({"to": "31612345678", "text": "x", "priority": "urgent"}, "priority", None),
        ({"to": "31612345678", "text": "x", "encoding": "latin1"}, "encoding", None),
        ({"to": "31612345678", "text": "x", "callback_url": "ftp://example.com/"}, "callback_url", "invalid_url"),
        ({"to": "31612345678", "text": "x", "client_ref": "a\nb"}, "client_ref", None),
        ({"to": "31612345678", "text": "x", "colour": "red"}, "colour", None),
        ({"to": "31612345678", "text": "ü" * 3201}, "text", None),
        ({"to": "31612345678", "text": "✓", "encoding": "gsm7"}, "encoding", "invalid_encoding"),
    ],
)
def test_bad_input_names_its_field(
    gateway: GatewayProcess, account: dict[str, str], body: dict[str, Any], field: str, reason: str | None
) -> None:
    r = post(gateway, account, body)
    err = error(r, 400, field, reason)
    assert err["code"] == "invalid_request" and err["message"]


def test_not_json_and_credentials(gateway: GatewayProcess, account: dict[str, str]) -> None:
    r = httpx.post(gateway.url + SEND, content=b"{", auth=basic(account), timeout=10)
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_request", r.text
    r = httpx.post(gateway.url + SEND, json={"to": "31612345678", "text": "x"}, timeout=10)
    assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized", r.text


def test_countries_the_account_may_not_send_to_are_forbidden(gateway: GatewayProcess) -> None:
    acc = gateway.create_account("nl-only", allowed_countries=["NL"])
    assert post(gateway, acc, {"to": "31612345678", "text": "ok"}).status_code == 201
    r = post(gateway, acc, {"to": "+4915112345678", "text": "no"})
    assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden", r.text


def test_balance_is_debited_and_insufficient_balance_is_402(gateway: GatewayProcess) -> None:
    acc = gateway.create_account("poor", balance=0)
    r = post(gateway, acc, {"to": "31612345678", "text": "x"})
    assert r.status_code == 402 and r.json()["error"]["code"] == "insufficient_balance", r.text


def test_openapi_documents_the_send(gateway: GatewayProcess) -> None:
    doc = httpx.get(gateway.url + "/openapi.json", timeout=10).json()
    op = doc["paths"]["/v1/messages"]["post"]
    assert {"201", "400", "401", "402", "403", "422", "429", "503"} <= set(op["responses"])
    assert any(p["name"] == "Idempotency-Key" for p in op["parameters"])
    assert "application/json" in op["requestBody"]["content"]
    assert {"Location", "Idempotent-Replayed"} <= set(op["responses"]["201"]["headers"])


def test_single_sends_take_consecutive_part_ids(gateway: GatewayProcess, account: dict[str, str]) -> None:
    """One process's single sends number their parts on from one start: each insert then lands beside the last
    one in the ``parts`` primary key instead of on a random page of it."""
    first = post(gateway, account, {"to": "31612345678", "text": "x" * 200})  # two parts
    second = post(gateway, account, {"to": "31612345679", "text": "one part"})
    assert first.status_code == second.status_code == 201, (first.text, second.text)
    made = [int(p["id"], 16) for r in (first, second) for p in r.json()["parts"]]
    assert [b - a for a, b in itertools.pairwise(made)] == [1, 1], made
