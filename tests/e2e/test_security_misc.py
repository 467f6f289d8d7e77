"""Issue #14 items 8 (signed Vonage requests cannot be replayed) and 12 (hygiene), against real gateways on SQLite
with two accounts: file permissions, ``/metrics`` for the operator or this machine only, non-ASCII credentials and
``Last-Event-ID``, control characters in ``client-ref``, the SIM-message permission, quotas and throughput in
parts, and the cap on console streams. (The token endpoint's reuse and limit are in
``test_security_credentials.py``.)
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import stat
import threading
import time
from collections.abc import Iterator
from xml.etree import ElementTree

import httpx
import pytest

from smsgate.core import signing
from tests.support import GatewayProcess, gateway_process

SEND = "/messaging/sms-kpn/v1/send"


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    with gateway_process(tmp_path_factory.mktemp("misc"), env={"SMSGATE_CONSOLE_STREAMS_PER_ACCOUNT": "2"}) as g:
        yield g


def basic(acc: dict[str, str]) -> tuple[str, str]:
    return acc["api_key"], acc["api_secret"]


# -- item 8 ------------------------------------------------------------------------------------------------------
def test_a_signed_request_is_accepted_once(gw: GatewayProcess) -> None:
    alice = gw.create_account("alice", signature_secret="alice-sig-secret", signature_method="sha256")
    bob = gw.create_account("bob", signature_secret="bob-sig-secret", signature_method="sha256")
    ts = str(int(time.time()))
    for acc, secret in ((alice, "alice-sig-secret"), (bob, "bob-sig-secret")):
        params = {"api_key": acc["api_key"], "from": "Shop", "to": "31612345678", "text": "pay 10", "timestamp": ts}
        params["sig"] = signing.vonage_sign(params, secret, "sha256")
        first = httpx.post(gw.url + "/sms/json", data=params).json()["messages"][0]
        again = httpx.post(gw.url + "/sms/json", data=params).json()["messages"][0]
        assert first["status"] == "0", first
        assert again == {"status": "14", "error-text": "Invalid Signature"}, again  # the replay is refused
        listed = httpx.get(gw.url + "/v1/messages", auth=basic(acc)).json()["messages"]
        assert [m["text"] for m in listed] == ["pay 10"]  # and billed once


# -- item 12 -----------------------------------------------------------------------------------------------------
def test_the_database_is_private_to_its_user(tmp_path: pathlib.Path) -> None:
    data = tmp_path / "private"  # not there yet: the gateway creates it
    with gateway_process(tmp_path, env={"SMSGATE_DATABASE_URL": f"sqlite+aiosqlite:///{data / 'smsgate.db'}"}) as g:
        a, b = g.create_account("alice"), g.create_account("bob")
        for acc in (a, b):
            assert (
                httpx.post(g.url + "/v1/send-sms", json={"to": "31612345678", "text": "x"}, auth=basic(acc)).status_code
                == 202
            )
        assert stat.S_IMODE(os.stat(data).st_mode) == 0o700
        for f in ("smsgate.db", "smsgate.db-wal", "smsgate.db-shm"):
            assert stat.S_IMODE(os.stat(data / f).st_mode) == 0o600, f


def test_metrics_for_the_operator_or_this_machine_only(tmp_path: pathlib.Path, gw: GatewayProcess) -> None:
    assert httpx.get(gw.url + "/metrics").status_code == 401  # an operator token is set: it is needed
    assert httpx.get(gw.url + "/metrics", headers={"authorization": "Bearer wrong"}).status_code == 401
    assert (
        httpx.get(gw.url + "/metrics", headers={"authorization": "Bearer t\u00f6ken".encode("latin-1")}).status_code
        == 401
    )
    assert httpx.get(gw.url + "/metrics", headers={"authorization": f"Bearer {gw.operator_token}"}).status_code == 200
    with gateway_process(tmp_path / "open", env={"SMSGATE_OPERATOR_TOKEN": ""}) as g:
        assert httpx.get(g.url + "/metrics").status_code == 200  # this machine
        for forwarded in (
            {"X-Forwarded-For": "203.0.113.9"},
            {"Forwarded": "for=203.0.113.9"},
            {"X-Real-IP": "1.2.3.4"},
        ):
            assert httpx.get(g.url + "/metrics", headers=forwarded).status_code == 401  # passed on by a proxy
    with gateway_process(
        tmp_path / "proxied", env={"SMSGATE_OPERATOR_TOKEN": "", "SMSGATE_TRUSTED_PROXIES": "127.0.0.1"}
    ) as g:
        assert httpx.get(g.url + "/metrics", headers={"X-Forwarded-For": "203.0.113.9"}).status_code == 401
        assert httpx.get(g.url + "/metrics", headers={"X-Forwarded-For": "127.0.0.1"}).status_code == 200


def test_non_ascii_credentials_and_event_ids_are_refused_not_crashed(gw: GatewayProcess) -> None:
    odd = {"authorization": "Bearer \u00e9t\u00e9".encode("latin-1")}  # not ASCII on the wire
    assert httpx.post(gw.url + "/sandbox/network", json={"available": True}, headers=odd).status_code == 401
    assert httpx.get(gw.url + "/console/api/whoami", headers=odd).status_code == 401
    acc = gw.create_account("events")
    for value in ("\u00b2", "12\u00b3", "-1", "x"):
        r = httpx.get(
            gw.url + "/console/api/stream", headers={"last-event-id": value.encode("latin-1")}, auth=basic(acc)
        )
        assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_request", (value, r.text)
    assert "Traceback" not in gw.log.read_text()


def test_control_characters_in_client_ref_are_refused(gw: GatewayProcess) -> None:
    acc = gw.create_account("refs")
    for path in ("/sms/json", "/sms/xml"):
        for ref in ("a\x01b", "line\nbreak", "nul\x00"):
            r = httpx.post(
                gw.url + path,
                data={"from": "Shop", "to": "31612345678", "text": "x", "client-ref": ref},
                auth=basic(acc),
            )
            if path == "/sms/xml":
                root = ElementTree.fromstring(r.content)  # well-formed, whatever was sent
                status = root.findtext("messages/message/status")
            else:
                status = r.json()["messages"][0]["status"]
            assert status == "3", (path, ref, r.text)
    r = httpx.post(
        gw.url + "/sms/xml",
        data={"from": "Shop", "to": "31612345678", "text": "x", "client-ref": "fine ref"},
        auth=basic(acc),
    )
    assert ElementTree.fromstring(r.content).findtext("messages/message/clientRef") == "fine ref"


@pytest.mark.parametrize(
    "form",
    [
        {"type": "text", "text": "ping", "protocol-id": "64"},  # silent ("type 0")
        {"type": "binary", "body": "0102", "protocol-id": "127"},  # SIM data download
        {"type": "binary", "body": "0102", "message-class": "2"},  # class 2: to the SIM
    ],
    ids=["silent", "sim-download", "class-2-binary"],
)
def test_sim_messages_need_the_operators_permission(gw: GatewayProcess, form: dict[str, str]) -> None:
    plain, allowed = gw.create_account("plain"), gw.create_account("operator-allowed", allow_sim_messages=True)
    data = {"from": "Shop", "to": "31612345678", **form}
    refused = httpx.post(gw.url + "/sms/json", data=data, auth=basic(plain)).json()["messages"][0]
    assert refused == {"status": "19", "error-text": refused["error-text"]} and "Facility" in refused["error-text"]
    assert httpx.post(gw.url + "/sms/json", data=data, auth=basic(allowed)).json()["messages"][0]["status"] == "0"
    ordinary = {"from": "Shop", "to": "31612345678", "type": "binary", "body": "0102", "message-class": "1"}
    assert httpx.post(gw.url + "/sms/json", data=ordinary, auth=basic(plain)).json()["messages"][0]["status"] == "0"


def test_quotas_and_throughput_count_parts(gw: GatewayProcess) -> None:
    long_text = "x" * 400  # three parts
    quota = gw.create_account("quota", quota_limit=5, quota_interval=1, quota_unit="day")
    with gw.client(headers={"authorization": f"Bearer {gw.token(quota)}"}) as c:
        first = c.post(SEND, json={"messages": [{"mobile_number": "0612345678", "content": long_text}]})
        assert first.status_code == 200 and first.headers["quota-used"] == "3", first.headers
        second = c.post(SEND, json={"messages": [{"mobile_number": "0612345678", "content": long_text}]})
        assert second.status_code == 429, second.text  # 3 + 3 parts > 5
        third = c.post(SEND, json={"messages": [{"mobile_number": "0612345678", "content": "short"}]})
        assert third.status_code == 200 and third.headers["quota-used"] == "4"
    tps = gw.create_account("tps", rate_limit_tps=2)
    with gw.client(auth=basic(tps)) as c:
        assert c.post("/v1/send-sms", json={"to": "31612345678", "text": long_text}).status_code == 202
        r = c.post("/v1/send-sms", json={"to": "31612345678", "text": "y"})
        assert r.status_code == 503 and r.json()["code"] == 5030 and int(r.headers["retry-after"]) >= 1, r.text


def test_console_streams_are_capped_per_account(gw: GatewayProcess) -> None:
    alice, bob = gw.create_account("alice-streams"), gw.create_account("bob-streams")
    stop = threading.Event()
    opened: list[int] = []

    def hold(acc: dict[str, str]) -> None:
        with (
            contextlib.suppress(httpx.HTTPError),
            httpx.stream("GET", gw.url + "/console/api/stream", auth=basic(acc), timeout=10) as r,
        ):
            opened.append(r.status_code)
            for _ in r.iter_lines():
                if stop.is_set():
                    return

    threads = [threading.Thread(target=hold, args=(alice,), daemon=True) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        deadline = time.monotonic() + 5
        while len(opened) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert opened == [200, 200]
        third = httpx.get(gw.url + "/console/api/stream", auth=basic(alice), timeout=5)
        assert third.status_code == 429 and int(third.headers["retry-after"]) >= 1, third.text
        with httpx.stream("GET", gw.url + "/console/api/stream", auth=basic(bob), timeout=5) as r:
            assert r.status_code == 200  # another account's streams are its own
    finally:
        stop.set()
        for t in threads:
            t.join(20)
