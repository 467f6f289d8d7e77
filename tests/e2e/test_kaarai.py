"""Kaarai "Send Single SMS" against a real gateway process: every code of the spec's table, over loopback HTTP."""

from __future__ import annotations

import contextlib
import pathlib
import sqlite3
import time
from collections.abc import Generator, Iterator
from typing import Any

import httpx
import pytest

from tests.support import GatewayProcess, gateway_process, system_cas, wait_for

SEND = "/v1/send-sms"
NL = "31612345678"


def basic(acc: dict[str, str], secret: str | None = None) -> httpx.BasicAuth:
    return httpx.BasicAuth(acc["api_key"], acc["api_secret"] if secret is None else secret)


def send(
    gw: GatewayProcess,
    acc: dict[str, str] | None,
    body: Any = None,
    *,
    content: bytes | str | None = None,
    content_type: str | None = "application/json",
    auth: httpx.Auth | None = None,
    timeout: float = 10.0,
) -> httpx.Response:
    headers = {"content-type": content_type} if content_type is not None else {}
    if content is None and body is not None:
        content = httpx.Request("POST", "/", json=body).content
    if auth is None and acc is not None:
        auth = basic(acc)
    return httpx.post(gw.url + SEND, content=content, headers=headers, auth=auth, timeout=timeout)


def assert_code(r: httpx.Response, status: int, code: int, message: str | None = None) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/json"
    body: dict[str, Any] = r.json()
    assert body["code"] == code, body
    if message is not None:
        assert body["message"] == message
    assert set(body) <= {"code", "message", "message_id"}
    return body


def message(gw: GatewayProcess, acc: dict[str, str], message_id: str) -> dict[str, Any]:
    r = httpx.get(f"{gw.url}/v1/messages/{message_id}", auth=basic(acc), timeout=10, verify=system_cas())  # polled
    assert r.status_code == 200, r.text
    out: dict[str, Any] = r.json()
    return out


def stored_count(gw: GatewayProcess, acc: dict[str, str]) -> int:
    r = httpx.get(gw.url + "/v1/messages", params={"limit": 500}, auth=basic(acc), timeout=10)
    assert r.status_code == 200, r.text
    return len(r.json()["messages"])


@contextlib.contextmanager
def network_down(gw: GatewayProcess) -> Iterator[None]:
    def set_state(available: bool) -> None:
        r = httpx.post(
            gw.url + "/sandbox/network",
            json={"available": available},
            headers={"authorization": f"Bearer {gw.operator_token}"},
            timeout=10,
        )
        assert r.status_code == 200 and r.json() == {"available": available}, r.text

    set_state(False)
    try:
        yield
    finally:
        set_state(True)


# -- 202 ----------------------------------------------------------------------------------------------------
def test_2020_accepted_and_delivered_status_with_basic(gateway: GatewayProcess, account: dict[str, str]) -> None:
    r = send(gateway, account, {"to": "+" + NL, "text": "Your OTP code is 1234"})
    body = assert_code(r, 202, 2020, "Accepted for delivery")
    m = wait_for(lambda: (x := message(gateway, account, body["message_id"]))["status"] == "delivered" and x)
    assert m["dialect"] == "kaarai"
    assert m["to"] == "+" + NL
    assert m["from"] == "smsgate"  # no "from": the account's default sender
    assert m["text"] == "Your OTP code is 1234"


def test_from_used_when_allowed_default_otherwise(gateway: GatewayProcess) -> None:
    acc = gateway.create_account("senders", allowed_senders=["87349"])
    ok = assert_code(send(gateway, acc, {"to": NL, "from": 87349, "text": "hi"}), 202, 2020)
    refused = assert_code(send(gateway, acc, {"to": NL, "from": "Other", "text": "hi"}), 202, 2020)
    assert message(gateway, acc, ok["message_id"])["from"] == "87349"
    assert message(gateway, acc, refused["message_id"])["from"] == "smsgate"
    fixed = gateway.create_account("fixed", may_choose_sender=False, default_sender="Kaarai")
    mine = assert_code(send(gateway, fixed, {"to": NL, "from": "87349", "text": "hi"}), 202, 2020)
    assert message(gateway, fixed, mine["message_id"])["from"] == "Kaarai"


def test_2021_queued_while_route_down_then_delivered(gateway: GatewayProcess, account: dict[str, str]) -> None:
    with network_down(gateway):
        body = assert_code(send(gateway, account, {"to": "573001234567", "text": "later"}), 202, 2021)
        assert body["message"] == "Queued for later delivery" and body["message_id"]
        time.sleep(0.5)  # the dispatcher has tried (and put it back) while the route is down
        held = message(gateway, account, body["message_id"])
        assert held["status"] == "accepted"
        assert not any(p["status"] in ("submitted", "delivered") for p in held["parts"])
    m = wait_for(lambda: (x := message(gateway, account, body["message_id"]))["status"] == "delivered" and x, 15)
    assert m["to"] == "+573001234567"


# -- 400 ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("content_type", "content", "named"),
    [
        ("text/plain", b'{"to": "31612345678", "text": "hi"}', "text/plain"),
        ("application/x-www-form-urlencoded", b"to=31612345678&text=hi", "application/x-www-form-urlencoded"),
        (None, b'{"to": "31612345678", "text": "hi"}', "none"),
        ("application/json; charset=latin-1", b'{"to": "31612345678", "text": "hi"}', "charset=latin-1"),
        ("application/json", b'{"to": "31612345678", "text": ', "not valid UTF-8 JSON"),
        ("application/json", b'{"to": "31612345678", "text": "\xff"}', "not valid UTF-8 JSON"),
        ("application/json", b'["31612345678", "hi"]', "JSON array"),
        ("application/json", b'"hello"', "JSON string"),
        ("application/json", b"null", "JSON null"),
    ],
)
def test_4000_not_a_json_object(
    gateway: GatewayProcess, account: dict[str, str], content_type: str | None, content: bytes, named: str
) -> None:
    body = assert_code(send(gateway, account, content=content, content_type=content_type), 400, 4000)
    assert body["message"].startswith("Invalid content-type: ")
    assert named in body["message"]


def test_json_with_utf8_charset_is_fine(gateway: GatewayProcess, account: dict[str, str]) -> None:
    r = send(gateway, account, {"to": NL, "text": "Grüße €"}, content_type="application/json; charset=UTF-8")
    assert_code(r, 202, 2020)


@pytest.mark.parametrize("body", [{"text": "hi"}, {"to": None, "text": "hi"}, {"to": "", "text": "hi"}, {}])
def test_4001_missing_receiver(gateway: GatewayProcess, account: dict[str, str], body: dict[str, Any]) -> None:
    assert_code(send(gateway, account, body), 400, 4001, "Missing receiver number, rejected")


@pytest.mark.parametrize(
    "body",
    [{"to": NL}, {"to": NL, "text": ""}, {"to": NL, "text": None}, {"to": NL, "text": ["a"]}, {"to": NL, "text": 7}],
)
def test_4002_missing_text(gateway: GatewayProcess, account: dict[str, str], body: dict[str, Any]) -> None:
    assert_code(send(gateway, account, body), 400, 4002, "Missing text message, rejected")


def test_4002_text_too_long(gateway: GatewayProcess, account: dict[str, str]) -> None:
    body = assert_code(send(gateway, account, {"to": NL, "text": "x" * 60_000}), 400, 4002)
    assert "too long" in body["message"]


@pytest.mark.parametrize(
    "to",
    ["0612345678", "12", "abc", "+999123456", "3161234567890123", "+31 6 12", "31601234567", 31612345678, True, ["1"]],
)
def test_4003_invalid_receiver(gateway: GatewayProcess, account: dict[str, str], to: Any) -> None:
    before = stored_count(gateway, account)
    assert_code(send(gateway, account, {"to": to, "text": "hi"}), 400, 4003, "Invalid receiver number, rejected")
    assert stored_count(gateway, account) == before


# -- 403 ----------------------------------------------------------------------------------------------------
def test_4030_same_answer_for_unknown_user_and_wrong_password(gateway: GatewayProcess, account: dict[str, str]) -> None:
    unknown_user = "f" * len(account["api_key"])
    assert unknown_user != account["api_key"]
    unknown = send(gateway, None, {"to": NL, "text": "hi"}, auth=httpx.BasicAuth(unknown_user, "whatever"))
    wrong = send(gateway, None, {"to": NL, "text": "hi"}, auth=basic(account, "not-the-secret"))
    assert_code(unknown, 403, 4030, f"Authorization failed for user: {unknown_user}")
    assert_code(wrong, 403, 4030, f"Authorization failed for user: {account['api_key']}")
    assert unknown.content.replace(unknown_user.encode(), b"U") == wrong.content.replace(
        account["api_key"].encode(), b"U"
    )
    assert len(unknown.content) == len(wrong.content)
    assert {k: v for k, v in unknown.headers.items() if k != "date"} == {
        k: v for k, v in wrong.headers.items() if k != "date"
    }
    assert_code(send(gateway, None, {"to": NL, "text": "hi"}), 403, 4030, "Authorization failed for user: ")
    token = gateway.token(account)  # a bearer token is not Kaarai's scheme
    r = send(gateway, None, {"to": NL, "text": "hi"}, auth=_Header(f"Bearer {token}"))
    assert_code(r, 403, 4030)


class _Header(httpx.Auth):
    def __init__(self, value: str) -> None:
        self.value = value

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["authorization"] = self.value
        yield request


@pytest.mark.parametrize(
    ("settings", "to"),
    [
        ({"allowed_countries": ["NL"]}, "573001234567"),
        ({"blocked_prefixes": ["+3161234"]}, NL),
        ({"level": "demo", "demo_allowlist": ["31687654321"]}, NL),
        ({"balance": 0}, NL),
    ],
)
def test_4031_not_routable(gateway: GatewayProcess, settings: dict[str, Any], to: str) -> None:
    acc = gateway.create_account("limited", **settings)
    assert_code(send(gateway, acc, {"to": to, "text": "hi"}), 403, 4031, "Not routable. Do not try again")
    assert stored_count(gateway, acc) == 0


# -- 404 ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("method", "path"),
    [("POST", "/v1/send-sms-bulk"), ("GET", "/v1/nothing"), ("GET", SEND), ("PUT", SEND), ("DELETE", SEND)],
)
def test_4040_unknown_request(gateway: GatewayProcess, account: dict[str, str], method: str, path: str) -> None:
    r = httpx.request(method, gateway.url + path, auth=basic(account), json={"to": NL, "text": "x"}, timeout=10)
    assert_code(r, 404, 4040, "Unknown request")


def test_own_v1_routes_keep_their_format(gateway: GatewayProcess, account: dict[str, str]) -> None:
    r = httpx.get(gateway.url + "/v1/messages/no-such-id", auth=basic(account), timeout=10)
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    r = httpx.get(gateway.url + "/v1/messages", auth=basic(account, "wrong"), timeout=10)
    assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
    r = httpx.post(gateway.url + "/v1/segments", auth=basic(account), json={"text": "hello"}, timeout=10)
    assert r.status_code == 200 and r.json()["parts"] == 1
    r = httpx.post(gateway.url + "/v1/segments", auth=basic(account), json={"text": 5}, timeout=10)
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_request"


# -- 503 ----------------------------------------------------------------------------------------------------
def test_5030_store_locked_nothing_written(gateway: GatewayProcess, account: dict[str, str]) -> None:
    path = gateway.database_url.split("sqlite+aiosqlite:///", 1)[1]
    conn = sqlite3.connect(path, timeout=10, isolation_level=None)
    try:

        def rows() -> int:
            q = "SELECT count(*) FROM messages WHERE account_id = ?"
            return int(conn.execute(q, (account["account_id"],)).fetchone()[0])

        before = rows()
        conn.execute("BEGIN EXCLUSIVE")
        try:
            r = send(gateway, account, {"to": NL, "text": "store is locked"}, timeout=30)
        finally:
            conn.execute("ROLLBACK")
        assert_code(r, 503, 5030, "Temporal failure, try again later")
        assert int(r.headers["retry-after"]) >= 1
        assert rows() == before
        parts = conn.execute("SELECT count(*) FROM parts WHERE text = 'store is locked'").fetchone()[0]
        assert parts == 0
    finally:
        conn.close()
    assert_code(send(gateway, account, {"to": NL, "text": "store is back"}), 202, 2020)


def test_5030_rate_limit_and_quota_with_retry_after(gateway: GatewayProcess) -> None:
    for settings in ({"rate_limit_tps": 0.01}, {"quota_limit": 1, "quota_unit": "day"}):
        acc = gateway.create_account("limited", **settings)
        assert_code(send(gateway, acc, {"to": NL, "text": "first"}), 202, 2020)
        r = send(gateway, acc, {"to": NL, "text": "second"})
        assert_code(r, 503, 5030, "Temporal failure, try again later")
        assert int(r.headers["retry-after"]) >= 1
        assert stored_count(gateway, acc) == 1


def test_repeated_auth_failures_are_locked_out(tmp_path: pathlib.Path) -> None:
    """Own gateway: failures count per (client address, user); ten lock that pair out, and only that pair."""
    with gateway_process(tmp_path / "lockout") as gw:
        acc, other = gw.create_account("victim"), gw.create_account("bystander")
        body = {"to": NL, "text": "hi"}
        for _ in range(10):
            assert_code(send(gw, None, body, auth=basic(acc, "guess")), 403, 4030)
            assert_code(send(gw, None, body, auth=httpx.BasicAuth("ffffffff", "x")), 403, 4030)
        locked = send(gw, acc, body)  # right secret, but this user is locked out from this address
        assert_code(locked, 503, 5030, "Temporal failure, try again later")
        assert int(locked.headers["retry-after"]) >= 1
        nobody = send(gw, None, body, auth=httpx.BasicAuth("ffffffff", "x"))
        assert nobody.content == locked.content  # says nothing about whether the user exists
        assert stored_count_raw(gw) == 0
        assert_code(send(gw, other, body), 202, 2020)  # another user from the same address is not refused


def stored_count_raw(gw: GatewayProcess) -> int:
    path = gw.database_url.split("sqlite+aiosqlite:///", 1)[1]
    with contextlib.closing(sqlite3.connect(path, timeout=10)) as conn:
        return int(conn.execute("SELECT count(*) FROM messages").fetchone()[0])


def test_openapi_documents_every_code(gateway: GatewayProcess) -> None:
    doc = httpx.get(gateway.url + "/openapi.json", timeout=10).json()
    op = doc["paths"][SEND]["post"]
    assert op["security"] == [{"basicAuth": []}]
    assert "application/json" in op["requestBody"]["content"]
    found = {}
    for status, resp in op["responses"].items():
        for name, ex in resp["content"]["application/json"]["examples"].items():
            assert ex["value"]["code"] == int(name) and ex["value"]["code"] // 10 == int(status)
            found[int(name)] = ex["value"]
    assert sorted(found) == [2020, 2021, 4000, 4001, 4002, 4003, 4030, 4031, 4040, 5030]
    assert "message_id" in found[2020] and "message_id" not in found[4031]
