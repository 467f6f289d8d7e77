"""Vonage SMS through KPN's API Store (``/communication/nexmo/sms``): KPN token, Vonage bodies, demo callbacks."""

from __future__ import annotations

import http.server
import json
import secrets
import threading
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest

from tests.support import GatewayProcess, wait_for

SEND = "/communication/nexmo/sms/send"
REGISTER = "/communication/nexmo/sms/register"


class Receiver:
    """A real HTTP server on 127.0.0.1 that records what it is sent (webhook target)."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        received = self.requests

        class Handler(http.server.BaseHTTPRequestHandler):
            def _record(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length) if length else b""
                path, _, query = self.path.partition("?")
                try:
                    body: Any = json.loads(raw) if raw[:1] == b"{" else dict(parse_qsl(raw.decode()))
                except ValueError:
                    body = raw.decode(errors="replace")
                received.append({"method": self.command, "path": path, "query": dict(parse_qsl(query)), "body": body})
                self.send_response(200)
                self.send_header("content-length", "0")
                self.end_headers()

            do_GET = do_POST = _record

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def payloads(self) -> list[dict[str, Any]]:
        """Vonage webhooks may come as JSON, a form, or GET query parameters."""
        return [r["body"] if r["method"] != "GET" else r["query"] for r in self.requests]


def random_mobile() -> str:
    return "3161" + "".join(secrets.choice("0123456789") for _ in range(7))


@pytest.fixture
def kpn(gateway: GatewayProcess, account: dict[str, str]) -> Iterator[httpx.Client]:
    token = gateway.token(account)
    with gateway.client(headers={"authorization": f"Bearer {token}"}) as c:
        yield c


def test_send_form_answers_in_vonage_shape(kpn: httpx.Client) -> None:
    r = kpn.post(SEND, data={"from": "smsgate", "to": "31612345678", "text": "Hello", "client-ref": "abc"})
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    body = r.json()
    assert body["message-count"] == "1"
    m = body["messages"][0]
    assert m["status"] == "0" and m["to"] == "31612345678" and m["network"] == "20408" and m["client-ref"] == "abc"
    assert all(isinstance(v, str) for v in m.values())
    assert m["message-price"] == "0.07000000" and m["remaining-balance"] == "999.93000000"


def test_send_json_body_and_long_text(kpn: httpx.Client) -> None:
    r = kpn.post(SEND, json={"from": "smsgate", "to": "31612345678", "text": "é" * 100, "type": "unicode"})
    body = r.json()
    assert body["message-count"] == "2"  # UCS-2: 67 per part
    assert len({m["message-id"] for m in body["messages"]}) == 2


def test_legacy_bearertoken_scheme(gateway: GatewayProcess, account: dict[str, str]) -> None:
    token = gateway.token(account)
    with gateway.client(headers={"authorization": f"BearerToken {token}"}) as c:
        assert (
            c.post(SEND, data={"from": "smsgate", "to": "31612345678", "text": "x"}).json()["messages"][0]["status"]
            == "0"
        )


def test_bad_or_missing_token_is_a_kpn_fault(gateway: GatewayProcess) -> None:
    with gateway.client() as c:
        for headers in ({}, {"authorization": "Bearer nope"}):
            r = c.post(SEND, data={"from": "smsgate", "to": "31612345678", "text": "x"}, headers=headers)
            assert r.status_code == 401
            assert r.json()["fault"]["detail"]["errorcode"] == "oauth.v2.InvalidAccessToken"


def test_quota_is_a_kpn_429_and_tps_is_status_1(gateway: GatewayProcess) -> None:
    acc = gateway.create_account("quota", quota_limit=1)
    with gateway.client(headers={"authorization": f"Bearer {gateway.token(acc)}"}) as c:
        form = {"from": "smsgate", "to": "31612345678", "text": "x"}
        assert c.post(SEND, data=form).json()["messages"][0]["status"] == "0"
        r = c.post(SEND, data=form)
        assert r.status_code == 429 and r.json()["fault"]["detail"]["errorcode"] == "policies.ratelimit.QuotaViolation"
    acc = gateway.create_account("tps", rate_limit_tps=1)
    with gateway.client(headers={"authorization": f"Bearer {gateway.token(acc)}"}) as c:
        assert c.post(SEND, data=form).json()["messages"][0]["status"] == "0"
        r = c.post(SEND, data=form)
        assert r.status_code == 200 and r.json()["messages"][0] == {"status": "1", "error-text": "Throttled"}


@pytest.mark.parametrize(
    ("form", "status"),
    [
        ({"to": "31612345678", "text": "x"}, "2"),
        ({"from": "smsgate", "to": "31612345678"}, "2"),
        ({"from": "smsgate", "to": "phone", "text": "x"}, "3"),
        ({"from": "smsgate", "to": "31612345678", "text": "x", "ttl": "5"}, "3"),
        ({"from": "smsgate", "to": "31612345678", "text": "x", "type": "binary", "body": "zz"}, "3"),
        ({"from": "smsgate", "to": "999123456", "text": "x"}, "6"),
        ({"from": "smsgate", "to": "31612345678", "text": "x" * 3201}, "12"),
        ({"from": "far too long a sender", "to": "31612345678", "text": "x"}, "15"),
        ({"from": "smsgate", "to": "31612345678", "text": "x", "callback": "ftp://example.com/dlr"}, "23"),
    ],
)
def test_vonage_status_codes(kpn: httpx.Client, form: dict[str, str], status: str) -> None:
    r = kpn.post(SEND, data=form)
    assert r.status_code == 200
    m = r.json()["messages"][0]
    assert m["status"] == status and m["error-text"]


def test_register_refuses_bad_urls(kpn: httpx.Client) -> None:
    r = kpn.post(REGISTER, data={"to": random_mobile(), "callback_url": "not a url"})
    assert r.status_code == 400 and r.json()["name"] == "Invalid Callback Url"
    r = kpn.post(REGISTER, data={"to": random_mobile()})
    assert r.status_code == 400 and "callback_url" in r.json()["info"]


def test_register_send_inbound_reply_flow(gateway: GatewayProcess, account: dict[str, str], kpn: httpx.Client) -> None:
    """token → register a callback for our test number → send from it with ``inbound: yes`` → the handset replies
    → the reply is stored for the account and posted to the registered callback in Vonage's inbound format."""
    mine, handset = random_mobile(), random_mobile()
    with Receiver() as receiver:
        r = kpn.post(REGISTER, data={"to": mine, "callback_url": receiver.url + "/inbound"})
        assert r.status_code == 200 and r.json() == {"message": "Your callback url is registered."}
        sent = kpn.post(SEND, data={"from": mine, "to": handset, "text": "Reply to me"}, headers={"inbound": "yes"})
        assert sent.json()["messages"][0]["status"] == "0"
        with gateway.client(auth=(account["api_key"], account["api_secret"])) as own:
            out = own.get("/v1/messages", params={"direction": "outbound"}).json()["messages"][0]
            assert out["meta"]["inbound"] is True and out["dialect"] == "nexmo"
            reply = own.post(f"/sandbox/handsets/{handset}/reply", json={"to": mine, "text": "Yes please"})
            assert reply.status_code == 202
            inbound = wait_for(lambda: own.get("/v1/messages", params={"direction": "inbound"}).json()["messages"])
        assert inbound[0]["from"] == "+" + handset and inbound[0]["to"] == "+" + mine
        assert inbound[0]["text"] == "Yes please"
        hook = wait_for(receiver.payloads, timeout=10)[0]
        assert receiver.requests[0]["path"] == "/inbound"
        assert (hook["msisdn"], hook["to"], hook["text"], hook["type"]) == (handset, mine, "Yes please", "text")


@pytest.mark.parametrize(
    ("settings", "status"),
    [({"allowed_countries": ["BE"]}, "7"), ({"balance": 0}, "9"), ({"demo_allowlist": ["+31600000001"]}, "29")],
)
def test_account_policy_status_codes(gateway: GatewayProcess, settings: dict[str, Any], status: str) -> None:
    acc = gateway.create_account("policy", **settings)
    with gateway.client(headers={"authorization": f"Bearer {gateway.token(acc)}"}) as c:
        r = c.post(SEND, data={"from": "smsgate", "to": "31612345678", "text": "x"})
    assert r.status_code == 200 and r.json()["messages"][0]["status"] == status
