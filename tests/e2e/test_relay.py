"""Gateway A relays through its ``kpn``, ``vonage`` and ``kaarai`` connectors to gateway B's real dialects.

B is a second ``smsgate serve`` on loopback, in sandbox mode: its virtual handsets are the phones, its accounts
are made through the store. A takes messages in any dialect and sends them on to B as an application would to
KPN, Vonage or Kaarai. What B's handsets received, B's receipt and inbound webhooks reaching A's receivers, an
outage of B, failover and weights are checked end to end.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import pathlib
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support import GatewayProcess, run_cli, wait_for

SIG = "relay-signature-secret-01"  # B's account signs its webhooks with it; A's vonage connector signs with it too
HANDSET = {"kpn": "31611234567", "vonage": "31622234567", "kaarai": "31633234567"}
VIRTUAL = "3197010240555"  # a number B's account owns (inbound to it goes to A) and A's account owns
FAST = {  # short timers, so a test sees the circuit open and close in seconds
    "timeout": 5.0,
    "connect_timeout": 1.0,
    "retries": 1,
    "backoff": 0.1,
    "backoff_max": 1.0,
    "circuit_failures": 2,
    "circuit_open_seconds": 2.0,
}
LONG = "Relayed through two gateways. " * 7  # 210 characters: two GSM-7 parts


@dataclasses.dataclass
class Upstream:
    gw: GatewayProcess
    account: dict[str, str]

    @property
    def auth(self) -> tuple[str, str]:
        return self.account["api_key"], self.account["api_secret"]

    def handset(self, msisdn: str) -> list[dict[str, Any]]:
        r = httpx.get(f"{self.gw.url}/sandbox/handsets/{msisdn}/messages", auth=self.auth, timeout=10)
        assert r.status_code == 200, r.text
        return [m for m in r.json()["messages"] if m["direction"] == "received"]

    def outbound(self) -> list[dict[str, Any]]:
        """Every message B's relay account sent (text, dialect, status), through ``GET /v1/messages``."""
        return list_messages(self.gw, self.account, "outbound")


def list_messages(gw: GatewayProcess, account: dict[str, str], direction: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    params: dict[str, Any] = {"direction": direction, "limit": 500}
    with gw.client(auth=(account["api_key"], account["api_secret"])) as c:
        for _ in range(100):
            r = c.get("/v1/messages", params=params)
            assert r.status_code == 200, r.text
            out += r.json()["messages"]
            if not r.json()["next_cursor"]:
                return out
            params["cursor"] = r.json()["next_cursor"]
    raise AssertionError("more than 50,000 messages?")


def toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "{ " + ", ".join(f'"{k}" = {toml(v)}' for k, v in value.items()) + " }"
    if isinstance(value, list):
        return "[" + ", ".join(toml(v) for v in value) + "]"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return repr(value)


def relay_config(path: pathlib.Path, connectors: list[dict[str, Any]], rules: list[dict[str, Any]]) -> pathlib.Path:
    lines = []
    for table in connectors:
        lines += ["[[connectors]]", *(f"{k} = {toml(v)}" for k, v in table.items()), ""]
    lines += ["[routing]", f"default = {toml(connectors[0]['name'])}", f"rules = {toml(rules)}", ""]
    path.write_text("\n".join(lines))
    return path


def upstream_tables(b: Upstream, **overrides: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """A's three connectors to B: its KPN API, its native Vonage API (signed) and its Kaarai endpoint."""
    key, secret = b.auth
    tables = {
        "kpn": {"name": "kpn", "type": "kpn", "base_url": b.gw.url, "client_id": key, "client_secret": secret},
        "vonage": {"name": "vonage", "type": "vonage", "base_url": b.gw.url, "api_key": key,
                   "signature_secret": SIG, "signature_method": "sha256"},
        "kaarai": {"name": "kaarai", "type": "kaarai", "url": b.gw.url + "/v1/send-sms", "username": key,
                   "password": secret},
    }  # fmt: skip
    return {name: {**t, **FAST, **overrides.get(name, {})} for name, t in tables.items()}


@contextlib.contextmanager
def relay(
    tmp: pathlib.Path, connectors: list[dict[str, Any]], rules: list[dict[str, Any]], **env: str
) -> Iterator[GatewayProcess]:
    """Gateway A with these connectors and rules; its public URL is its own loopback address."""
    a = GatewayProcess(tmp, env={"SMSGATE_SANDBOX": "false", **env})
    a.env["SMSGATE_PUBLIC_URL"] = a.url
    a.config = relay_config(tmp / "relay.toml", connectors, rules)
    a.start()
    try:
        yield a
    finally:
        a.stop()


class Sender:
    """Sends through A's KPN dialect (any dialect would do: the route is A's config) with one token."""

    def __init__(self, a: GatewayProcess, account: dict[str, str]) -> None:
        self.client = a.client(headers={"authorization": "Bearer " + a.token(account)})

    def send(self, number: str, text: str) -> str:
        body = {"sender": "Shop", "messages": [{"mobile_number": "+" + number, "content": text}]}
        r = self.client.post("/messaging/sms-kpn/v1/send", json=body)
        assert r.status_code == 200, r.text
        return str(r.json()["document_id"])

    def message(self, mid: str) -> dict[str, Any]:
        r = self.client.get(f"/v1/messages/{mid}")
        assert r.status_code == 200, r.text
        return dict(r.json())


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Upstream]:
    gw = GatewayProcess(tmp_path_factory.mktemp("upstream-b"), env={"SMSGATE_WEBHOOK_RETRY_BASE": "0.2"})
    gw.start()
    try:
        acc = gw.create_account("relay", signature_secret=SIG, signature_method="sha256", sign_webhooks=True)
        yield Upstream(gw, acc)
    finally:
        gw.stop()


def test_relay_to_kpn_vonage_and_kaarai(tmp_path: pathlib.Path, upstream: Upstream) -> None:
    """A long message through each connector lands on B's handset as the same text in the same parts; Vonage's
    receipt comes back signed to A's receiver and A's message is delivered; KPN and Kaarai end submitted, saying
    no receipt will come; B's upstream ids are on A's parts."""
    tables = upstream_tables(upstream)
    rules = [{"prefix": HANDSET[name][:5], "connector": name} for name in tables]
    with relay(tmp_path, list(tables.values()), rules) as a:
        acc = a.create_account("shop")
        sender = Sender(a, acc)
        sent = {name: sender.send(HANDSET[name], f"{name}: {LONG}") for name in tables}
        for name, mid in sent.items():
            got = wait_for(
                lambda name=name: [m for m in upstream.handset(HANDSET[name]) if m["text"] == f"{name}: {LONG}"]
            )
            [on_b] = got
            assert on_b["from"] == "Shop" and on_b["to"] == "+" + HANDSET[name]
            assert [(p["index"], p["total"]) for p in on_b["parts"]] == [(1, 2), (2, 2)]
            assert "".join(p["text"] for p in on_b["parts"]) == f"{name}: {LONG}"
            final = "delivered" if name == "vonage" else "submitted"
            msg = wait_for(lambda mid=mid, final=final: (m := sender.message(mid))["status"] == final and m)
            assert msg["connector"] == name
            assert [p["connector"] for p in msg["parts"]] == [name, name]
            if name == "vonage":  # one upstream id per part: B's part ids
                b_parts = httpx.get(f"{upstream.gw.url}/v1/messages/{on_b['id']}", auth=upstream.auth).json()["parts"]
                assert [p["network_message_id"] for p in msg["parts"]] == [p["id"] for p in b_parts]
                assert {e["type"] for e in msg["events"]} >= {"submitted", "delivered"}
            else:  # one id per message: B's message id, and a note that no receipt will come
                assert {p["network_message_id"] for p in msg["parts"]} == {on_b["id"]}
                notes = [e["data"].get("note") for e in msg["events"] if e["type"] == "submitted"]
                assert notes and all(n and "final: no receipt from upstream" in n for n in notes), msg["events"]
        log = a.log.read_text()
        for secret_value in (upstream.account["api_secret"], SIG):
            assert secret_value not in log


def test_handset_reply_reaches_the_relaying_account(tmp_path: pathlib.Path, upstream: Upstream) -> None:
    """B's handset answers the virtual number B's account owns; B posts it (signed, Vonage format) to A's
    ``/connectors/vonage/inbound``; A gives it to the account that owns the number on A."""
    tables = upstream_tables(upstream)
    with relay(tmp_path, [tables["vonage"]], []) as a:
        acc = a.create_account("replies")
        run_cli("numbers", "add", VIRTUAL, "--country", "NL", "--account", acc["api_key"], env=a.env)
        run_cli(
            "numbers", "add", VIRTUAL, "--country", "NL", "--account", upstream.account["api_key"], env=upstream.gw.env
        )
        inbound_url = f"{a.url}/connectors/vonage/inbound"
        r = httpx.post(upstream.gw.url + "/number/update", auth=upstream.auth, timeout=10,
                       data={"country": "NL", "msisdn": VIRTUAL, "moHttpUrl": inbound_url})  # fmt: skip
        assert r.status_code == 200, r.text
        handset = HANDSET["vonage"]
        text = "Yes please, deliver on Tuesday " + "x" * 150  # two parts, joined again on B and on A
        r = httpx.post(f"{upstream.gw.url}/sandbox/handsets/{handset}/reply", auth=upstream.auth, timeout=10,
                       json={"to": VIRTUAL, "text": text})  # fmt: skip
        assert r.status_code == 202, r.text
        [got] = wait_for(lambda: list_messages(a, acc, "inbound"))
        assert (got["from"], got["to"], got["text"]) == ("+" + handset, "+" + VIRTUAL, text)
        assert got["connector"] == "vonage" and got["meta"]["routed_by"] == "number"
        # a forged call (no signature) is refused
        r = httpx.post(inbound_url, json={"msisdn": handset, "to": VIRTUAL, "text": "forged", "messageId": "x"})
        assert r.status_code == 401, r.text


def test_upstream_down_for_20_seconds_loses_nothing(tmp_path: pathlib.Path, upstream: Upstream) -> None:
    """B stops (SIGTERM) for 20 s while A keeps accepting: A's circuit opens, messages wait in A's outbox, and once
    B is back every accepted message reaches B's handset exactly once."""
    tables = upstream_tables(upstream)
    with relay(tmp_path, [tables["kpn"]], []) as a:
        sender = Sender(a, a.create_account("outage"))
        texts: list[str] = []

        def send(n: int, tag: str, pause: float = 0.0) -> None:
            for i in range(n):
                texts.append(f"outage {tag} {i}")
                sender.send(HANDSET["kpn"], texts[-1])
                time.sleep(pause)

        send(20, "before")
        upstream.gw.stop()
        down_at = time.monotonic()
        send(200, "during", pause=0.09)  # about 20 s of accepting while B is down
        wait_for(lambda: time.monotonic() - down_at >= 20.0, timeout=30, interval=0.2)
        state = connectors_view(a)["kpn"]
        assert state["state"] == "down" and state["circuit"] == "open", state
        upstream.gw.start()
        back_at = time.monotonic()
        send(20, "after")

        def arrived() -> collections.Counter[str]:
            return collections.Counter(m["text"] for m in upstream.outbound() if m["text"].startswith("outage "))

        got = wait_for(lambda: (c := arrived()) and len(c) >= len(texts) and c, timeout=30, interval=0.5)
        print(f"\nB down 20 s: {len(texts)} accepted by A, all on B {time.monotonic() - back_at:.1f}s after B returned")
        assert set(got) == set(texts)
        assert all(n == 1 for n in got.values()), [t for t, n in got.items() if n > 1][:5]


def connectors_view(a: GatewayProcess) -> dict[str, dict[str, Any]]:
    r = httpx.get(a.url + "/v1/connectors", headers={"authorization": "Bearer " + a.operator_token}, timeout=10)
    assert r.status_code == 200, r.text
    return {c["name"]: c for c in r.json()["connectors"]}
