"""``Idempotency-Key`` on every send endpoint, against a real gateway process (sandbox network, SQLite file).

A retry with the same key and body gets the first answer byte for byte (same ids) with ``Idempotent-Replayed:
true`` and sends nothing; the same key with another body is each dialect's 400-class error (our 422).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import pathlib
import socket
import sqlite3
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import orjson
import pytest

from smsgate.core import signing
from tests.support import GatewayProcess, wait_for

NL = "31612345678"


@dataclasses.dataclass(frozen=True)
class Endpoint:
    name: str
    send: Callable[[GatewayProcess, dict[str, str], str, str | None], httpx.Response]  # (gw, acc, text, key)
    ok: int
    refused: Callable[[httpx.Response], bool]  # the dialect's answer to a key reused with another body


def _headers(key: str | None, extra: dict[str, str] | None = None) -> dict[str, str]:
    return {**({"idempotency-key": key} if key is not None else {}), **(extra or {})}


def _basic(acc: dict[str, str]) -> httpx.BasicAuth:
    return httpx.BasicAuth(acc["api_key"], acc["api_secret"])


def kpn(gw: GatewayProcess, acc: dict[str, str], text: str, key: str | None) -> httpx.Response:
    body = {"messages": [{"mobile_number": "0612345678", "content": text}]}
    auth = {"authorization": f"Bearer {acc.setdefault('token', gw.token(acc))}"}
    return httpx.post(gw.url + "/messaging/sms-kpn/v1/send", json=body, headers=_headers(key, auth), timeout=10)


def nexmo(gw: GatewayProcess, acc: dict[str, str], text: str, key: str | None) -> httpx.Response:
    auth = {"authorization": f"Bearer {acc.setdefault('token', gw.token(acc))}"}
    form = {"from": "smsgate", "to": NL, "text": text}
    return httpx.post(gw.url + "/communication/nexmo/sms/send", data=form, headers=_headers(key, auth), timeout=10)


def vonage(gw: GatewayProcess, acc: dict[str, str], text: str, key: str | None) -> httpx.Response:
    form = {"api_key": acc["api_key"], "api_secret": acc["api_secret"], "from": "smsgate", "to": NL, "text": text}
    return httpx.post(gw.url + "/sms/json", data=form, headers=_headers(key), timeout=10)


def vonage_xml(gw: GatewayProcess, acc: dict[str, str], text: str, key: str | None) -> httpx.Response:
    form = {"api_key": acc["api_key"], "api_secret": acc["api_secret"], "from": "smsgate", "to": NL, "text": text}
    return httpx.post(gw.url + "/sms/xml", data=form, headers=_headers(key), timeout=10)


def kaarai(gw: GatewayProcess, acc: dict[str, str], text: str, key: str | None) -> httpx.Response:
    body = {"to": NL, "text": text}
    return httpx.post(gw.url + "/v1/send-sms", json=body, auth=_basic(acc), headers=_headers(key), timeout=10)


def ours(gw: GatewayProcess, acc: dict[str, str], text: str, key: str | None) -> httpx.Response:
    body = {"to": "+" + NL, "text": text}
    return httpx.post(gw.url + "/v1/messages", json=body, auth=_basic(acc), headers=_headers(key), timeout=10)


ENDPOINTS = [
    Endpoint("kpn", kpn, 200, lambda r: r.status_code == 400 and r.json()["errorResponse"]["code"] == "400"),
    Endpoint("nexmo", nexmo, 200, lambda r: r.status_code == 200 and r.json()["messages"][0]["status"] == "3"),
    Endpoint("vonage", vonage, 200, lambda r: r.status_code == 200 and r.json()["messages"][0]["status"] == "3"),
    Endpoint("vonage-xml", vonage_xml, 200, lambda r: r.status_code == 200 and b"<status>3</status>" in r.content),
    Endpoint("kaarai", kaarai, 202, lambda r: r.status_code == 400 and r.json()["code"] == 4000),
    Endpoint(
        "v1",
        ours,
        201,
        lambda r: r.status_code == 422 and r.json()["error"]["code"] == "idempotency_key_reused",
    ),
]


def stored(gw: GatewayProcess, acc: dict[str, str]) -> list[dict[str, Any]]:
    r = httpx.get(gw.url + "/v1/messages", params={"limit": 500}, auth=_basic(acc), timeout=10)
    assert r.status_code == 200, r.text
    out: list[dict[str, Any]] = r.json()["messages"]
    return out


def balance(gw: GatewayProcess, acc: dict[str, str]) -> float:
    r = httpx.get(gw.url + "/account/get-balance", auth=_basic(acc), timeout=10)
    return float(r.json()["value"])


@pytest.mark.parametrize("ep", ENDPOINTS, ids=lambda e: e.name)
def test_a_retry_gets_the_first_answer_byte_for_byte(gateway: GatewayProcess, ep: Endpoint) -> None:
    acc = gateway.create_account(ep.name)
    key = str(uuid.uuid4())
    first = ep.send(gateway, acc, "pay 10 EUR", key)
    assert first.status_code == ep.ok, first.text
    assert "idempotent-replayed" not in first.headers
    after_first = balance(gateway, acc)
    again = ep.send(gateway, acc, "pay 10 EUR", key)
    assert again.status_code == ep.ok and again.content == first.content
    assert again.headers["idempotent-replayed"] == "true"
    assert again.headers["content-type"] == first.headers["content-type"]
    assert len(stored(gateway, acc)) == 1
    assert balance(gateway, acc) == after_first  # debited once
    # the same key with another body: the dialect's refusal, nothing sent
    other = ep.send(gateway, acc, "pay 99 EUR", key)
    assert ep.refused(other), other.text
    assert len(stored(gateway, acc)) == 1
    # another key, or none: a new message each time
    assert ep.send(gateway, acc, "pay 10 EUR", str(uuid.uuid4())).content != first.content
    ep.send(gateway, acc, "pay 10 EUR", None)
    ep.send(gateway, acc, "pay 10 EUR", None)
    assert len(stored(gateway, acc)) == 4


@pytest.mark.parametrize("key", ["", "x" * 256, "naïve".encode(), "tab\there"])
def test_a_malformed_key_is_refused(gateway: GatewayProcess, account: dict[str, str], key: Any) -> None:
    r = ours(gateway, account, "x", key)
    assert r.status_code == 400 and r.json()["error"]["field"] == "Idempotency-Key", r.text
    assert kpn(gateway, account, "x", key).status_code == 400
    assert stored(gateway, account) == []


def test_a_refused_request_is_not_kept(gateway: GatewayProcess, account: dict[str, str]) -> None:
    key = str(uuid.uuid4())
    r = httpx.post(
        gateway.url + "/v1/messages",
        json={"to": "0612345678", "text": "national"},
        auth=_basic(account),
        headers={"idempotency-key": key},
        timeout=10,
    )
    assert r.status_code == 400
    r = ours(gateway, account, "fixed", key)
    assert r.status_code == 201 and "idempotent-replayed" not in r.headers, r.text


def test_thirty_concurrent_duplicates_send_one_message(gateway: GatewayProcess, account: dict[str, str]) -> None:
    key = str(uuid.uuid4())

    async def burst() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=gateway.url, auth=_basic(account), timeout=20) as client:
            return await asyncio.gather(
                *(
                    client.post("/v1/messages", json={"to": "+" + NL, "text": "once"}, headers={"idempotency-key": key})
                    for _ in range(30)
                )
            )

    answers = asyncio.run(burst())
    assert [r.status_code for r in answers] == [201] * 30
    assert len({r.content for r in answers}) == 1
    assert sum(r.headers.get("idempotent-replayed") == "true" for r in answers) == 29
    assert len(stored(gateway, account)) == 1


def test_keys_are_per_account(gateway: GatewayProcess) -> None:
    a, b = gateway.create_account("a"), gateway.create_account("b")
    key = str(uuid.uuid4())
    ra, rb = ours(gateway, a, "same", key), ours(gateway, b, "same", key)
    assert ra.status_code == rb.status_code == 201
    assert ra.json()["id"] != rb.json()["id"] and "idempotent-replayed" not in rb.headers


def test_the_send_headers_are_part_of_the_request(gateway: GatewayProcess, account: dict[str, str]) -> None:
    """A retry that moves the send time (or validity, or lane) is another request: refused, not replayed."""
    key, url = str(uuid.uuid4()), gateway.url + "/messaging/sms-kpn/v1/send"
    body = {"messages": [{"mobile_number": "0612345678", "content": "later"}]}
    auth = {"authorization": f"Bearer {gateway.token(account)}", "idempotency-key": key}
    first = httpx.post(url, json=body, headers={**auth, "X-Send-At": "+3600s"})
    assert first.status_code == 200, first.text
    again = httpx.post(url, json=body, headers={**auth, "X-Send-At": "+3600s"})
    assert again.content == first.content and again.headers["idempotent-replayed"] == "true"
    moved = httpx.post(url, json=body, headers={**auth, "X-Send-At": "+60s"})
    assert moved.status_code == 400 and "idempotent-replayed" not in moved.headers, moved.text


def test_a_kill_between_commit_and_reply_then_the_retry_gets_the_same_id(data_dir: pathlib.Path) -> None:
    """The request goes out on a raw socket; the moment its key's row is committed (read from the SQLite file) the
    gateway is SIGKILLed, before the test reads any reply. After a restart the retry replays the stored answer."""
    gw = GatewayProcess(data_dir).start()
    try:
        acc = gw.create_account("crash")
        key = str(uuid.uuid4())
        body = orjson.dumps({"to": "+" + NL, "text": "exactly once"})
        creds = base64.b64encode(f"{acc['api_key']}:{acc['api_secret']}".encode()).decode()
        db = data_dir / "smsgate.db"
        with socket.create_connection(("127.0.0.1", gw.port)) as sock:
            sock.sendall(
                f"POST /v1/messages HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Basic {creds}\r\n"
                f"Content-Type: application/json\r\nIdempotency-Key: {key}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
                + body
            )

            def committed() -> str | None:
                with contextlib.closing(sqlite3.connect(db, timeout=5)) as conn:
                    row = conn.execute("SELECT message_id FROM idempotency_keys WHERE key = ?", (key,)).fetchone()
                return str(row[0]) if row else None

            message_id = wait_for(committed, timeout=10, interval=0.001)
            gw.kill()
        gw.start()
        again = ours(gw, acc, "exactly once", key)
        assert again.status_code == 201, again.text
        assert again.json()["id"] == message_id and again.headers["idempotent-replayed"] == "true"
        assert [m["id"] for m in stored(gw, acc)] == [message_id]
    finally:
        gw.stop()


def test_openapi_documents_the_header_on_every_send(gateway: GatewayProcess) -> None:
    paths = httpx.get(gateway.url + "/openapi.json", timeout=10).json()["paths"]
    sends = ["/messaging/sms-kpn/v1/send", "/communication/nexmo/sms/send", "/sms/json", "/sms/xml", "/v1/send-sms",
             "/v1/messages"]  # fmt: skip
    for path in sends:
        names = [p["name"] for p in paths[path]["post"].get("parameters", [])]
        assert "Idempotency-Key" in names, path


def test_a_signed_vonage_request_sent_again_replays_but_never_sends_again(gateway: GatewayProcess) -> None:
    """The very same signed request twice is refused as a replay (status 14) without a key; with its key it gets
    the kept answer. A captured signed request with a fresh key (the key is not signed) sends nothing."""
    acc = gateway.create_account("signed", signature_secret="s3cr3t", signature_method="sha256")
    form = {
        "api_key": acc["api_key"],
        "from": "smsgate",
        "to": NL,
        "text": "signed",
        "timestamp": str(int(time.time())),
    }
    form["sig"] = signing.vonage_sign(form, "s3cr3t", "sha256")
    key = str(uuid.uuid4())
    first = httpx.post(gateway.url + "/sms/json", data=form, headers={"idempotency-key": key}, timeout=10)
    assert first.json()["messages"][0]["status"] == "0", first.text
    again = httpx.post(gateway.url + "/sms/json", data=form, headers={"idempotency-key": key}, timeout=10)
    assert again.content == first.content and again.headers["idempotent-replayed"] == "true"
    other = httpx.post(gateway.url + "/sms/json", data=form, headers={"idempotency-key": "captured"}, timeout=10)
    assert other.json()["messages"][0]["status"] == "14", other.text
    bare = httpx.post(gateway.url + "/sms/json", data=form, timeout=10)
    assert bare.json()["messages"][0]["status"] == "14", bare.text
    assert len(stored(gateway, acc)) == 1


def test_a_replay_counts_no_quota(gateway: GatewayProcess) -> None:
    acc = gateway.create_account("quota", quota_limit=10)
    key = str(uuid.uuid4())
    first = kpn(gateway, acc, "counted once", key)
    assert first.headers["quota-used"] == "1", first.headers
    again = kpn(gateway, acc, "counted once", key)
    assert again.headers["idempotent-replayed"] == "true" and again.headers["quota-used"] == "1"
    assert kpn(gateway, acc, "the next one", None).headers["quota-used"] == "2"
