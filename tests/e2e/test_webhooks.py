"""Webhooks end to end: a real gateway process, real HTTP receivers on loopback that fail in the usual ways.

Receivers are ``http.server`` threads told what to do with each request (answer, answer 500, hang past the
gateway's timeout, drop the connection) or not started at all (down). The gateway runs with short retry delays.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import http.server
import itertools
import json
import pathlib
import socket
import sqlite3
import threading
import time
import urllib.parse
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from vonage_http_client import auth as vonage_auth  # type: ignore[import-untyped]

from smsgate.core import signing
from tests import support
from tests.support import GatewayProcess, free_port, wait_for

SEND = "/messaging/sms-kpn/v1/send"
WINDOW = 9.0
FAST = {
    "SMSGATE_WEBHOOK_RETRY_BASE": "0.2",
    "SMSGATE_WEBHOOK_RETRY_MAX_DELAY": "0.6",
    "SMSGATE_WEBHOOK_TIMEOUT": "1",
    "SMSGATE_WEBHOOK_RETRY_HOURS": "0.0025",  # 9 s: a receiver that fails longer makes the delivery dead
    "SMSGATE_WEBHOOK_PER_TARGET_CONCURRENCY": "2",
    "SMSGATE_WEBHOOK_CONCURRENCY": "6",
}


class Receiver:
    """An HTTP receiver on 127.0.0.1; ``script`` says what to do with the next requests (then it answers 200)."""

    def __init__(self, port: int | None = None, *, delay: float = 0.0) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self.script: list[tuple[str, float]] = []
        self.delay = delay
        self.seen: list[dict[str, Any]] = []  # every request, with what was done to it
        self.lock = threading.Lock()
        self._server: support.QuietHTTPServer | None = None

    @property
    def ok(self) -> list[dict[str, Any]]:
        with self.lock:
            return [r for r in self.seen if r["action"] == "ok"]

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(r["body"]) for r in self.ok]

    def start(self) -> Receiver:
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length).decode() if length else ""
                with receiver.lock:
                    action, arg = receiver.script.pop(0) if receiver.script else ("ok", 0.0)
                    receiver.seen.append(
                        {"method": self.command, "path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()}, "body": body,
                         "action": action, "at": time.time()}
                    )  # fmt: skip
                if action == "close":
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                if action == "hang":
                    time.sleep(arg)
                elif receiver.delay:
                    time.sleep(receiver.delay)
                status = int(arg) if action == "status" else 200
                try:
                    self.send_response(status)
                    self.send_header("content-length", "2")
                    self.end_headers()
                    self.wfile.write(b"ok")
                except OSError:
                    pass

            do_GET = do_POST = _handle

        self._server = support.serve_http(self.port, Handler, f"receiver-{self.port}")
        return self

    def stop(self) -> None:
        if self._server is not None:
            support.stop_http(self._server)
            self._server = None


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver().start()
    yield r
    r.stop()


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    g = GatewayProcess(tmp_path_factory.mktemp("webhooks"), env=FAST).start()
    yield g
    g.stop()


def send_kpn(gw: GatewayProcess, acc: dict[str, str], n: int = 1, number: str = "0612345678") -> list[str]:
    headers = {"Authorization": f"Bearer {gw.token(acc)}"}
    ids = []
    with gw.client(headers=headers) as c:
        for i in range(n):
            r = c.post(SEND, json={"sender": "Shop", "messages": [{"mobile_number": number, "content": f"hello {i}"}]})
            assert r.status_code == 200, r.text
            ids.append(r.json()["document_id"])
    return ids


def deliveries(gw: GatewayProcess, acc: dict[str, str], **params: str) -> list[dict[str, Any]]:
    r = httpx.get(gw.url + "/v1/webhooks/deliveries", params=params, auth=(acc["api_key"], acc["api_secret"]))
    assert r.status_code == 200, r.text
    return list(r.json()["deliveries"])


def reply(gw: GatewayProcess, acc: dict[str, str], handset: str, to: str, text: str) -> None:
    """The handset writes to ``to``: a number the account owns (given to it here if it is not yet)."""
    if to.lstrip("+").isdigit() and to.lstrip("+").startswith("3197"):
        with contextlib.suppress(Exception):  # already in the pool
            support.add_numbers(gw.database_url, {to.lstrip("+"): acc["account_id"]})
    r = httpx.post(
        f"{gw.url}/sandbox/handsets/{handset}/reply",
        json={"to": to, "text": text},
        auth=(acc["api_key"], acc["api_secret"]),
    )
    assert r.status_code == 202, r.text


def set_receipt_url(gw: GatewayProcess, acc: dict[str, str], url: str) -> None:
    """Straight into the database, past the registration check (as an old row or an operator would)."""
    with contextlib.closing(sqlite3.connect(gw.data_dir / "smsgate.db", timeout=10)) as db, db:
        db.execute("UPDATE accounts SET receipt_url = ? WHERE id = ?", (url, acc["account_id"]))


def verify_own(headers: dict[str, str], body: str, secret: str) -> bool:
    """The verification snippet of docs/webhooks.md."""
    sig = headers["x-smsgate-signature"]
    fields = dict(item.split("=", 1) for item in sig.split(","))
    mac = hmac.new(secret.encode(), fields["t"].encode() + b"." + body.encode(), hashlib.sha256).hexdigest()
    return hmac.compare_digest(mac, fields["v1"]) and abs(time.time() - int(fields["t"])) < 300


# -- happy path and formats --------------------------------------------------------------------------------------
def test_status_events_signed_and_logged(gw: GatewayProcess, receiver: Receiver) -> None:
    acc = gw.create_account("own", receipt_url=receiver.url, signature_secret="whsec-1")
    [mid] = send_kpn(gw, acc)
    wait_for(lambda: len(receiver.ok) == 2, timeout=10)
    events = receiver.events()
    assert sorted(e["type"] for e in events) == ["message.delivered", "message.submitted"]
    for req, ev in zip(receiver.ok, events, strict=True):
        assert req["method"] == "POST" and req["headers"]["content-type"] == "application/json"
        assert verify_own(req["headers"], req["body"], "whsec-1")
        assert not verify_own(req["headers"], req["body"].replace("hello", "HELLO"), "whsec-1")
        assert ev["data"]["id"] == mid and ev["data"]["to"] == "+31612345678" and ev["data"]["from"] == "Shop"
        assert req["headers"]["x-smsgate-delivery"] == ev["id"]
    log = wait_for(lambda: [d for d in deliveries(gw, acc, message=mid) if d["status"] == "delivered"] or None)
    assert len(log) == 2
    for d in log:
        assert d["url"] == receiver.url and d["attempt_count"] == 1
        assert [a["status_code"] for a in d["attempts"]] == [200] and d["attempts"][0]["latency_ms"] >= 0
    other = gw.create_account("other")
    assert deliveries(gw, other) == []  # account-scoped
    auth = (acc["api_key"], acc["api_secret"])
    page1 = httpx.get(gw.url + "/v1/webhooks/deliveries", params={"limit": 1}, auth=auth).json()
    page2 = httpx.get(
        gw.url + "/v1/webhooks/deliveries", params={"limit": 1, "cursor": page1["next_cursor"]}, auth=auth
    ).json()
    assert {page1["deliveries"][0]["id"], page2["deliveries"][0]["id"]} == {d["id"] for d in log}
    assert page2["next_cursor"] is None
    one = httpx.get(f"{gw.url}/v1/webhooks/deliveries/{log[0]['id']}", auth=auth).json()
    assert one["id"] == log[0]["id"] and one["attempts"] == log[0]["attempts"]
    other_auth = (other["api_key"], other["api_secret"])
    assert httpx.get(f"{gw.url}/v1/webhooks/deliveries/{log[0]['id']}", auth=other_auth).status_code == 404
    for params in ({"cursor": "%%%"}, {"status": "bogus"}, {"limit": "0"}, {"limit": "x"}):
        r = httpx.get(gw.url + "/v1/webhooks/deliveries", params=params, auth=auth)
        assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_request", (params, r.text)


def test_long_inbound_arrives_as_one_text(gw: GatewayProcess, receiver: Receiver) -> None:
    acc = gw.create_account("mo", inbound_url=receiver.url)
    send_kpn(gw, acc, number="0612340001")
    text = "Lorem ipsum dolor sit amet " * 15 + "THE END"
    assert len(text) > 400
    reply(gw, acc, "+31612340001", "+3197012340001", text)
    wait_for(lambda: [e for e in receiver.events() if e["type"] == "message.received"], timeout=10)
    [event] = [e for e in receiver.events() if e["type"] == "message.received"]
    assert event["data"]["text"] == text and event["data"]["parts_count"] == 3 and not event["data"]["incomplete"]


def test_vonage_inbound_via_register_is_signed_and_uses_get(gw: GatewayProcess, receiver: Receiver) -> None:
    acc = gw.create_account(
        "vonage", signature_secret="vsecret", signature_method="sha256", sign_webhooks=True, webhook_method="GET"
    )
    token = gw.token(acc)
    r = httpx.post(
        gw.url + "/communication/nexmo/sms/register",
        data={"to": "31612349999", "callback_url": receiver.url},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert r.status_code == 200, r.text
    text = "Ja graag, " + "x" * 300
    reply(gw, acc, "+31612340002", "+31612349999", text)
    wait_for(lambda: receiver.ok, timeout=10)
    [req] = receiver.ok
    assert req["method"] == "GET" and req["body"] == ""
    params = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(req["path"]).query))
    assert params["text"] == text and params["msisdn"] == "31612340002" and params["to"] == "31612349999"
    assert params["type"] == "text" and params["keyword"] == "JA" and "concat" not in params
    assert vonage_auth.Auth(
        api_key=acc["api_key"], signature_secret="vsecret", signature_method="sha256"
    ).check_signature(dict(params))
    assert signing.vonage_verify(params, "vsecret", "sha256")


def test_vonage_receipts_per_part_to_the_message_callback(gw: GatewayProcess, receiver: Receiver) -> None:
    acc = gw.create_account("dlr", receipt_url="http://127.0.0.1:9/never-used", webhook_format="form")
    r = httpx.post(
        gw.url + "/communication/nexmo/sms/send",
        data={
            "from": "Shop",
            "to": "31612340020",
            "text": "z" * 200,
            "callback": receiver.url,
            "client-ref": "c-7",
            "status-report-req": "true",
        },  # KPN's proxy asks for no receipt unless told (status-report-req defaults to false there)
        headers={"Authorization": f"Bearer {gw.token(acc)}"},
    )
    assert r.status_code == 200 and r.json()["message-count"] == "2", r.text
    part_ids = {m["message-id"] for m in r.json()["messages"]}
    wait_for(lambda: len(receiver.ok) == 2, timeout=10)
    receipts = [dict(urllib.parse.parse_qsl(req["body"])) for req in receiver.ok]
    assert {p["messageId"] for p in receipts} == part_ids
    for req, p in zip(receiver.ok, receipts, strict=True):
        assert req["headers"]["content-type"] == "application/x-www-form-urlencoded"
        assert (p["status"], p["err-code"], p["msisdn"], p["to"], p["client-ref"]) == (
            "delivered",
            "0",
            "31612340020",
            "Shop",
            "c-7",
        )
        assert p["api-key"] == acc["api_key"] and "sig" not in p


def test_names_are_resolved_and_the_host_header_kept(gw: GatewayProcess, receiver: Receiver) -> None:
    url = f"http://localhost:{receiver.port}/named?source=test"  # private targets are allowed on this gateway
    acc = gw.create_account("named", receipt_url=url)
    send_kpn(gw, acc, number="0612340021")
    wait_for(lambda: len(receiver.ok) == 2, timeout=10)
    for req in receiver.ok:
        assert req["headers"]["host"] == f"localhost:{receiver.port}" and req["path"] == "/named?source=test"
        assert req["headers"]["user-agent"].startswith("smsgate-webhooks/")


# -- failures and retries ------------------------------------------------------------------------------------------
def test_500_timeout_and_dropped_connection_are_retried(gw: GatewayProcess, receiver: Receiver) -> None:
    acc = gw.create_account("flaky", inbound_url=receiver.url)
    send_kpn(gw, acc, number="0612340003")
    receiver.script = [("status", 500), ("hang", 1.5), ("close", 0), ("status", 503)]
    reply(gw, acc, "+31612340003", "+3197012340003", "are you there?")
    wait_for(lambda: receiver.ok, timeout=20)
    assert [r["action"] for r in receiver.seen] == ["status", "hang", "close", "status", "ok"]
    assert receiver.events()[0]["data"]["text"] == "are you there?"
    [d] = wait_for(lambda: [d for d in deliveries(gw, acc, status="delivered")] or None)
    tries = d["attempts"]
    assert [a["status_code"] for a in tries] == [500, None, None, 503, 200]
    assert "timed out" in tries[1]["error"] and "connection closed" in tries[2]["error"]
    assert tries[0]["error"] == "HTTP 500" and d["attempt_count"] == 5
    gaps = [b["at"] - a["at"] for a, b in itertools.pairwise(tries)]
    assert all(g >= 0.09 for g in gaps)  # backed off, not hammered


def test_receiver_down_for_a_while_gets_every_event(gw: GatewayProcess) -> None:
    down = Receiver()  # nothing listens on its port yet
    acc = gw.create_account("down", receipt_url=down.url)
    # not …0004: its slow receipt (3 s) would leave the "delivered" events little of the retry window
    ids = send_kpn(gw, acc, n=4, number="0612340014")
    wait_for(lambda: len([d for d in deliveries(gw, acc) if d["status"] == "retrying"]) == 8, timeout=10)
    failing = deliveries(gw, acc)[0]
    assert "connection failed" in failing["last_error"] and failing["next_attempt_at"] is not None
    down.start()
    try:
        wait_for(lambda: len(down.ok) == 8, timeout=15)
        got = {(e["data"]["id"], e["type"]) for e in down.events()}
        assert got == {(i, t) for i in ids for t in ("message.submitted", "message.delivered")}
        wait_for(lambda: all(d["status"] == "delivered" for d in deliveries(gw, acc)))
    finally:
        down.stop()


def test_slow_receiver_does_not_starve_the_others(gw: GatewayProcess) -> None:
    slow, fast = Receiver(delay=0.6).start(), Receiver().start()  # slow, but within the 1 s timeout
    try:
        acc_slow = gw.create_account("slow", receipt_url=slow.url)
        acc_fast = gw.create_account("fast", receipt_url=fast.url)
        send_kpn(gw, acc_slow, n=4, number="0612340005")
        wait_for(lambda: len(slow.seen) >= 2, timeout=10)
        send_kpn(gw, acc_fast, number="0612340006")
        wait_for(lambda: len(fast.ok) == 2, timeout=10)
        assert len(slow.ok) < 8  # served while the slow one is still busy
        wait_for(lambda: len(slow.ok) == 8, timeout=15)
        with slow.lock:  # never more than 2 at once at one target
            starts = sorted(r["at"] for r in slow.seen)
        assert all(b - a >= 0.55 for a, b in zip(starts, starts[2:], strict=False))
    finally:
        slow.stop()
        fast.stop()


# -- durability, dead letters, replay -------------------------------------------------------------------------------
def test_dead_after_the_retry_window_then_replayed(gw: GatewayProcess, receiver: Receiver) -> None:
    acc = gw.create_account("dead", inbound_url=receiver.url)
    send_kpn(gw, acc, number="0612340008")
    receiver.script = [("status", 500)] * 100
    reply(gw, acc, "+31612340008", "+3197012340008", "hello?")
    [d] = wait_for(lambda: deliveries(gw, acc, status="dead") or None, timeout=WINDOW + 5)
    assert d["attempt_count"] >= 4 and d["last_status_code"] == 500 and d["next_attempt_at"] is None
    assert all(a["status_code"] == 500 for a in d["attempts"])
    assert WINDOW - 0.2 <= d["attempts"][-1]["at"] - d["created_at"] <= WINDOW + 2.5  # the last try: at the deadline
    n = len(receiver.seen)
    time.sleep(0.8)
    assert len(receiver.seen) == n  # dead means no more tries
    receiver.script = []
    auth = (acc["api_key"], acc["api_secret"])
    r = httpx.post(f"{gw.url}/v1/webhooks/deliveries/{d['id']}/replay", auth=auth)
    assert r.status_code == 202 and r.json()["status"] in ("pending", "delivered")
    wait_for(lambda: receiver.ok, timeout=10)
    [again] = wait_for(lambda: deliveries(gw, acc, status="delivered") or None)
    assert again["id"] == d["id"] and again["attempts"][-1]["status_code"] == 200
    bad = httpx.post(f"{gw.url}/v1/webhooks/deliveries/nope/replay", auth=auth)
    assert bad.status_code == 404 and bad.json()["error"]["code"] == "not_found"


def test_sigkill_with_pending_webhooks_delivers_after_restart(gw: GatewayProcess) -> None:
    """SIGKILL the module's gateway while its receiver is down; the restarted process delivers everything."""
    down = Receiver()
    try:
        acc = gw.create_account("crash", receipt_url=down.url)
        ids = send_kpn(gw, acc, n=3, number="0612340007")
        wait_for(lambda: len([d for d in deliveries(gw, acc) if d["status"] == "retrying"]) == 6, timeout=10)
        gw.kill()
        down.start()
        gw.start()
        wait_for(lambda: len(down.ok) >= 6, timeout=20)
        got = {(e["data"]["id"], e["type"]) for e in down.events()}
        assert got == {(i, t) for i in ids for t in ("message.submitted", "message.delivered")}
        wait_for(lambda: all(d["status"] == "delivered" for d in deliveries(gw, acc)), timeout=10)
    finally:
        down.stop()


# -- account settings and target safety ------------------------------------------------------------------------------
def test_account_webhook_settings_api(gw: GatewayProcess, receiver: Receiver) -> None:
    acc = gw.create_account("settings")
    auth = (acc["api_key"], acc["api_secret"])
    r = httpx.put(
        gw.url + "/v1/account/webhooks",
        json={"receipt_url": receiver.url, "method": "GET", "format": "form"},
        auth=auth,
    )
    assert r.status_code == 200, r.text
    assert r.json()["receipt_url"] == receiver.url and r.json()["method"] == "GET" and r.json()["format"] == "form"
    assert httpx.get(gw.url + "/v1/account/webhooks", auth=auth).json()["receipt_url"] == receiver.url
    bad = httpx.put(gw.url + "/v1/account/webhooks", json={"inbound_url": "ftp://x.example.com/"}, auth=auth)
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_request"
    bad = httpx.put(gw.url + "/v1/account/webhooks", json={"sign_webhooks": True}, auth=auth)
    assert bad.status_code == 400 and "signature secret" in bad.json()["error"]["message"]
    bad = httpx.put(gw.url + "/v1/account/webhooks", json={"method": "DELETE"}, auth=auth)
    assert bad.status_code == 400
    assert httpx.get(gw.url + "/v1/account/webhooks").status_code == 401
    send_kpn(gw, acc, number="0612340009")  # our own events are always POSTed JSON
    wait_for(lambda: len(receiver.ok) == 2)
    cleared = httpx.put(gw.url + "/v1/account/webhooks", json={"receipt_url": None}, auth=auth)
    assert cleared.json()["receipt_url"] is None


PRIVATE_URLS = [
    "http://127.0.0.1:{port}/hook",
    "http://localhost:{port}/hook",
    "http://10.1.2.3/hook",
    "http://169.254.169.254/latest/meta-data/",
    "http://[::1]:{port}/hook",
    "http://[::ffff:127.0.0.1]:{port}/hook",
    "http://2130706433:{port}/hook",
    "http://[fd00:ec2::254]/latest",
]


def test_private_targets_refused_at_registration_and_delivery(data_dir: pathlib.Path, receiver: Receiver) -> None:
    g = GatewayProcess(data_dir, env={**FAST, "SMSGATE_WEBHOOKS_ALLOW_PRIVATE": "false"}).start()
    try:
        acc = g.create_account("ssrf")
        auth = (acc["api_key"], acc["api_secret"])
        for template in PRIVATE_URLS:
            url = template.format(port=receiver.port)
            r = httpx.put(g.url + "/v1/account/webhooks", json={"receipt_url": url}, auth=auth)
            assert r.status_code == 400, (url, r.text)
            assert "refused" in r.json()["error"]["message"]
        ok = httpx.put(g.url + "/v1/account/webhooks", json={"receipt_url": "https://hooks.example.com/x"}, auth=auth)
        assert ok.status_code == 200
        # URLs stored before the rule (or by the operator) are checked again at every delivery, before connecting
        for template in PRIVATE_URLS[:4]:
            url = template.format(port=receiver.port)
            set_receipt_url(g, acc, url)
            [mid] = send_kpn(g, acc, number="0612340010")
            dead = wait_for(
                lambda m=mid: len(deliveries(g, acc, message=m, status="dead")) == 2 and deliveries(g, acc, message=m)
            )
            for d in dead:
                assert d["url"] == url and d["attempt_count"] == 1 and "refused" in d["last_error"], d
                assert d["attempts"][0]["status_code"] is None
        time.sleep(0.3)
        assert receiver.seen == []  # nothing reached the loopback receiver
    finally:
        g.stop()
