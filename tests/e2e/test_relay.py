"""Gateway A relays through its ``kpn``, ``vonage`` and ``kaarai`` connectors to gateway B's real dialects.

B is a second ``smsgate serve`` on loopback, in sandbox mode: its virtual handsets are the phones, its accounts
are made through the store. A takes messages in any dialect and sends them on to B as an application would to
KPN, Vonage or Kaarai. What B's handsets received, B's receipt and inbound webhooks reaching A's receivers, an
outage of B, failover and weights are checked end to end.
"""

from __future__ import annotations

import collections
import dataclasses
import pathlib
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support import (
    GatewayProcess,
    KpnStream,
    Sender,
    TcpProxy,
    connectors_view,
    list_messages,
    relay_gateway,
    run_cli,
    wait_for,
)

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
    with relay_gateway(tmp_path, list(tables.values()), rules) as a:
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
    with relay_gateway(tmp_path, [tables["vonage"]], []) as a:
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
    with relay_gateway(tmp_path, [tables["kpn"]], []) as a:
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


def test_failover_to_the_second_connector_and_back(tmp_path: pathlib.Path, upstream: Upstream) -> None:
    """A's first connector points at an upstream that is down (a proxy to B that refuses connections): traffic
    flows through the second within one circuit-breaker interval, and back through the first once it recovers."""
    proxy = TcpProxy(("127.0.0.1", upstream.gw.port))  # not started yet: connections are refused
    tables = upstream_tables(upstream)
    first = {**tables["kpn"], "name": "first", "base_url": f"http://127.0.0.1:{proxy.port}"}
    second = {**tables["kaarai"], "name": "second"}
    interval = FAST["circuit_open_seconds"]
    with relay_gateway(tmp_path, [first, second], [{"connectors": ["first", "second"], "strategy": "failover"}]) as a:
        sender = Sender(a, a.create_account("failover"))
        started = time.monotonic()
        ids = [sender.send(HANDSET["kpn"], f"failover down {i}") for i in range(20)]

        def on_b(prefix: str) -> dict[str, str]:
            return {m["text"]: m["dialect"] for m in upstream.outbound() if m["text"].startswith(prefix)}

        wait_for(lambda: len(on_b("failover down ")) == 20, timeout=interval + 3)
        took = time.monotonic() - started
        assert set(on_b("failover down ").values()) == {"kaarai"}
        assert took < interval + 1.0, f"failover took {took:.1f}s, more than one circuit interval ({interval}s)"
        msgs = [sender.message(mid) for mid in ids]
        assert {m["connector"] for m in msgs} == {"second"}
        rerouted = [e["data"] for m in msgs for e in m["events"] if e["type"] == "rerouted"]
        assert rerouted and all(d["from"] == "first" and d["to"] == "second" for d in rerouted), rerouted
        assert len(rerouted) < 20  # once the circuit is open, messages go straight to the second
        assert connectors_view(a)["first"]["circuit"] == "open"

        proxy.start()  # the first upstream is back
        back = time.monotonic()
        sent_back: list[str] = []

        def through_first() -> bool:
            sent_back.append(sender.send(HANDSET["kpn"], f"failover back {len(sent_back)}"))
            return bool(wait_for(lambda: sender.message(sent_back[-1])["status"] == "submitted", timeout=5)) and (
                sender.message(sent_back[-1])["connector"] == "first"
            )

        wait_for(through_first, timeout=interval + 5, interval=0.2)
        print(f"\nfailover: all 20 through the second in {took:.2f}s; back on the first {time.monotonic() - back:.1f}s "
              "after it recovered")  # fmt: skip
        assert connectors_view(a)["first"]["circuit"] == "closed"
        after = [sender.send(HANDSET["kpn"], f"failover after {i}") for i in range(5)]
        wait_for(lambda: all(sender.message(mid)["status"] == "submitted" for mid in after))
        assert {sender.message(mid)["connector"] for mid in after} == {"first"}
    proxy.stop()


def test_weights_share_the_traffic(tmp_path: pathlib.Path, upstream: Upstream) -> None:
    """weights = [3, 1] over 4,000 messages: 3,000 through the first (± 5 %), all of them on B."""
    tables = upstream_tables(upstream, kpn={"concurrency": 16}, kaarai={"concurrency": 16})
    rules = [{"connectors": ["kpn", "kaarai"], "strategy": "weighted", "weights": [3, 1]}]
    with relay_gateway(tmp_path, [tables["kpn"], tables["kaarai"]], rules) as a:
        acc = a.create_account("weights")
        started = time.monotonic()
        stream = KpnStream(a, acc, "weights", number="0611234567").start(threads=4, limit=4000)
        stream.join(timeout=120)
        assert len(stream.accepted) == 4000, (stream.refused, stream.refusals[:2])

        def relayed() -> int:
            return sum(1 for m in upstream.outbound() if m["text"].startswith("weights "))

        wait_for(lambda: relayed() >= 4000, timeout=60, interval=0.5)
        elapsed = time.monotonic() - started
        by = collections.Counter(m["connector"] for m in list_messages(a, acc, "outbound"))
        print(f"\nweights 3:1 over 4,000 messages: {dict(by)}; A accepted and B received all in {elapsed:.1f}s "
              f"({4000 / elapsed:.0f} msg/s relayed)")  # fmt: skip
        assert sum(by.values()) == 4000 and abs(by["kpn"] - 3000) <= 150, by


def test_operator_pauses_and_resumes_a_connector(tmp_path: pathlib.Path, upstream: Upstream) -> None:
    """A paused connector is skipped by routing (its failover partner takes the traffic), holds nothing, and on a
    single-connector route messages wait until it is resumed. ``/v1/connectors`` and ``/metrics`` show each
    connector; neither says a credential."""
    tables = upstream_tables(upstream)
    rules = [
        {"prefix": "31611", "connectors": ["kpn", "kaarai"], "strategy": "failover"},
        {"prefix": "31622", "connector": "vonage"},
    ]
    with relay_gateway(tmp_path, list(tables.values()), rules) as a:
        sender = Sender(a, a.create_account("pausing"))
        op = {"authorization": "Bearer " + a.operator_token}
        with a.client() as c:
            assert c.get("/v1/connectors").status_code == 401
            assert c.post("/v1/connectors/kpn/pause").status_code == 401
            assert c.post("/v1/connectors/nope/pause", headers=op).status_code == 404
            r = c.post("/v1/connectors/kpn/pause", headers=op, json={"reason": "KPN maintenance"})
            assert r.status_code == 200 and r.json()["state"] == "paused", r.text
            assert r.json()["pause_reason"] == "KPN maintenance"
            paused = [sender.send(HANDSET["kpn"], f"paused kpn {i}") for i in range(5)]
            wait_for(lambda: all(sender.message(m)["status"] == "submitted" for m in paused))
            assert {sender.message(m)["connector"] for m in paused} == {"kaarai"}

            assert c.post("/v1/connectors/vonage/pause", headers=op).status_code == 200
            held = [sender.send(HANDSET["vonage"], f"paused vonage {i}") for i in range(3)]
            time.sleep(0.5)
            assert {sender.message(m)["status"] for m in held} == {"accepted"}
            view = connectors_view(a)["vonage"]
            assert (view["state"], view["queued"], view["in_flight"]) == ("paused", 0, 0), view

            assert c.post("/v1/connectors/kpn/resume", headers=op).json()["state"] == "up"
            assert c.post("/v1/connectors/vonage/resume", headers=op).json()["state"] == "up"
            resumed = sender.send(HANDSET["kpn"], "resumed kpn")
            wait_for(lambda: sender.message(resumed)["status"] == "submitted")
            assert sender.message(resumed)["connector"] == "kpn"
            wait_for(lambda: {sender.message(m)["status"] for m in held} == {"delivered"}, timeout=40)

            metrics = c.get("/metrics", headers=op).text
            listing = c.get("/v1/connectors", headers=op).text
        for line in (
            'smsgate_upstream_requests_total{connector="kpn",verdict="accepted"}',
            'smsgate_upstream_request_seconds_bucket{connector="kaarai",le="0.5"}',
            'smsgate_upstream_circuit{connector="vonage",state="closed"} 1.0',
            'smsgate_connector_parts_total{connector="kaarai",outcome="submitted"} 5.0',
            'smsgate_connector_state{connector="kpn",state="up"} 1.0',
        ):
            assert line in metrics, line
        for secret_value in (upstream.account["api_secret"], SIG):
            assert secret_value not in metrics and secret_value not in listing and secret_value not in a.log.read_text()


def test_a_rejected_part_is_offered_to_the_next_connector_when_the_rule_says_so(
    tmp_path: pathlib.Path, upstream: Upstream
) -> None:
    """B's Kaarai account may not send to 31655… (4031 "Not routable"): with ``reroute_on = ["rejected"]`` the
    message goes on through the KPN connector; without it, it is rejected."""
    strict = upstream.gw.create_account("strict", blocked_prefixes=["31655"])
    tables = upstream_tables(upstream, kaarai={"username": strict["api_key"], "password": strict["api_secret"]})
    rules = [
        {"prefix": "316551", "connectors": ["kaarai", "kpn"], "reroute_on": ["rejected"]},
        {"prefix": "316552", "connectors": ["kaarai", "kpn"]},
    ]
    with relay_gateway(tmp_path, [tables["kaarai"], tables["kpn"]], rules) as a:
        sender = Sender(a, a.create_account("reroute"))
        rerouted, refused = sender.send("31655100001", "reroute me"), sender.send("31655200002", "refuse me")
        msg = wait_for(lambda: (m := sender.message(rerouted))["status"] == "submitted" and m)
        assert msg["connector"] == "kpn"
        [event] = [e["data"] for e in msg["events"] if e["type"] == "rerouted"]
        assert (event["from"], event["to"]) == ("kaarai", "kpn") and "4031" in event["reason"], event
        msg = wait_for(lambda: (m := sender.message(refused))["status"] == "rejected" and m)
        [event] = [e["data"] for e in msg["events"] if e["type"] == "rejected"]
        assert event["connector"] == "kaarai" and "4031" in event["error_text"], event
        assert [m["text"] for m in upstream.outbound() if m["text"] in ("reroute me", "refuse me")] == ["reroute me"]
