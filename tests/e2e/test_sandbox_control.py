"""The sandbox as a test double against a real gateway process (issue #22 items 1-3): waiting for a handset's newest
message and its one-time code, reset and deletion per account, scripted handsets, and every network-behaviour switch
(each on the calling account's traffic only)."""

from __future__ import annotations

import concurrent.futures
import datetime as dt
import re
import secrets
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support import GatewayProcess, add_numbers, handset, wait_for


def virtual_number() -> str:
    return "31970" + "".join(secrets.choice("0123456789") for _ in range(8))


class Party:
    """An account on the gateway with an open client, optionally owning a virtual number it sends from."""

    def __init__(self, gw: GatewayProcess, *, number: bool = False) -> None:
        acc = gw.create_account("sbx")
        self.id = acc["account_id"]
        self.client = gw.client(auth=(acc["api_key"], acc["api_secret"]))
        self.number = virtual_number() if number else None
        if self.number is not None:
            add_numbers(gw.database_url, {self.number: self.id})

    def send(self, to: str, text: str) -> str:
        body: dict[str, str] = {"to": to, "text": text}
        if self.number is not None:
            body["from"] = self.number
        r = self.client.post("/v1/send-sms", json=body)
        assert r.status_code == 202 and r.json()["code"] in (2020, 2021), r.text  # 2021: queued, the network is down
        return str(r.json()["message_id"])

    def message(self, message_id: str) -> dict[str, Any]:
        r = self.client.get(f"/v1/messages/{message_id}")
        assert r.status_code == 200, r.text
        return dict(r.json())

    def delivered(self, message_id: str) -> dict[str, Any]:
        return wait_for(lambda: (m := self.message(message_id))["status"] == "delivered" and m)  # type: ignore[no-any-return]

    def latest(self, msisdn: str, **params: Any) -> httpx.Response:
        return self.client.get(f"/sandbox/handsets/{msisdn}/messages/latest", params=params, timeout=40)

    def inbound(self) -> list[dict[str, Any]]:
        return list(self.client.get("/v1/messages", params={"direction": "inbound"}).json()["messages"])

    def conversation(self, msisdn: str) -> list[dict[str, Any]]:
        return list(self.client.get(f"/sandbox/handsets/{msisdn}/messages").json()["messages"])


@pytest.fixture
def parties(gateway: GatewayProcess) -> Iterator[tuple[Party, Party]]:
    a, b = Party(gateway, number=True), Party(gateway, number=True)
    try:
        yield a, b
    finally:
        a.client.close()
        b.client.close()


def events(m: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [e for e in m["events"] if e["type"] == kind]


# -- latest, with a wait ------------------------------------------------------------------------------------------
def test_latest_wakes_when_the_message_arrives_and_reads_its_otp(parties: tuple[Party, Party]) -> None:
    a, _ = parties
    phone = handset()
    assert a.latest(phone).status_code == 404
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        started = time.monotonic()
        waiting = pool.submit(a.latest, phone, wait=20)
        time.sleep(0.3)  # the poll is waiting before the message exists
        assert not waiting.done()
        sent = a.send(phone, "Your code is 482913. It expires in 10 minutes.")
        r = waiting.result(timeout=25)
        took = time.monotonic() - started
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["id"], body["otp"], body["to"], body["direction"]) == (sent, "482913", "+" + phone, "received")
    assert body["received_at"] >= body["at"]
    assert took < 10, took  # woken by the commit, not by the end of the 20 s wait


def test_latest_since_and_patterns(parties: tuple[Party, Party]) -> None:
    a, _ = parties
    phone = handset()
    before = time.time()
    first = a.send(phone, "code 1111 (first)")
    a.delivered(first)
    second = a.send(phone, "Use 2222-XY to log in; call +31201234567 for help")
    a.delivered(second)
    assert a.latest(phone).json()["id"] == second
    assert a.latest(phone, since=f"{before:.6f}").json()["id"] == second
    iso = dt.datetime.fromtimestamp(before, dt.UTC).isoformat()
    assert a.latest(phone, since=iso).json()["id"] == second
    assert a.latest(phone, since=first).json()["id"] == second  # a message id: anything newer
    r = a.latest(phone, since=second)
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    started = time.monotonic()
    r = a.latest(phone, since=second, wait=0.5)
    assert r.status_code == 404 and time.monotonic() - started >= 0.5
    assert "within 0.5 s" in r.json()["error"]["message"]
    # the default pattern takes the first whole run of 4-8 digits; a pattern of the caller's reads the rest
    assert a.latest(phone).json()["otp"] == "2222"
    assert a.latest(phone, otp_pattern=r"(\d{4})-(\w+)").json()["otp"] == "2222"
    assert a.latest(phone, otp_pattern=r"\d{4}-\w+").json()["otp"] == "2222-XY"
    assert a.latest(phone, otp_pattern=r"nothing(\d+)").json()["otp"] is None
    for params, word in [
        ({"otp_pattern": r"(?<!\d)\d{4}"}, "RE2"),
        ({"since": "yesterday"}, "since"),
        ({"since": "00000000-0000-0000-0000-000000000000"}, "since"),
        ({"wait": "31"}, "wait"),
    ]:
        r = a.latest(phone, **params)
        assert r.status_code == 400 and word in r.json()["error"]["message"], (params, r.text)


def test_latest_shows_only_the_callers_messages(parties: tuple[Party, Party]) -> None:
    a, b = parties
    phone = handset()
    mine = a.send(phone, "code 1234")
    a.delivered(mine)
    theirs = b.send(phone, "code 9876")
    b.delivered(theirs)
    assert a.latest(phone).json()["id"] == mine
    assert a.latest(phone, since=mine).status_code == 404
    assert a.latest(phone, since=theirs).status_code == 400  # not one of the caller's messages
    assert b.latest(phone).json()["otp"] == "9876"


# -- reset and deletion --------------------------------------------------------------------------------------------
def test_reset_touches_only_the_calling_account(gateway: GatewayProcess, parties: tuple[Party, Party]) -> None:
    a, b = parties
    phone, other_phone = handset(), handset()
    rules = {"rules": [{"match": "ping", "reply": "pong"}]}
    for p in (a, b):
        assert p.client.put(f"/sandbox/handsets/{phone}/script", json=rules).status_code == 200
        assert p.client.put("/sandbox/behaviour", json={"receipts": {"late_by": 0.1}}).status_code == 200
        p.delivered(p.send(phone, "hello"))
        p.delivered(p.send(other_phone, "hello"))
        r = p.client.post(f"/sandbox/handsets/{phone}/reply", json={"to": p.number, "text": "hi back"})
        assert r.status_code == 202
        wait_for(lambda p=p: len(p.conversation(phone)) == 2)
    b_before = (b.conversation(phone), b.conversation(other_phone), b.inbound())
    # a message of A still in flight (the network is down): it stays, and arrives after the reset
    op = {"Authorization": f"Bearer {gateway.operator_token}"}
    assert httpx.post(gateway.url + "/sandbox/network", json={"available": False}, headers=op).status_code == 200
    try:
        in_flight = a.send(phone, "sent before the reset, code 5555")
        r = a.client.post("/sandbox/reset")
    finally:
        httpx.post(gateway.url + "/sandbox/network", json={"available": True}, headers=op)
    assert r.status_code == 200, r.text
    assert r.json() == {"deleted": {"messages": 3, "scripts": 1, "behaviour": True}}
    assert a.client.get(f"/sandbox/handsets/{phone}/script").status_code == 404
    assert a.client.get("/sandbox/behaviour").json()["receipts"]["late_by"] == 0
    assert a.inbound() == []
    assert [m["id"] for m in a.conversation(other_phone)] == []
    assert wait_for(lambda: a.conversation(phone))[0]["id"] == in_flight
    assert a.latest(phone).json()["otp"] == "5555"
    assert "late" not in str(a.delivered(in_flight)["events"])  # the normal network again
    # B: everything as it was
    assert (b.conversation(phone), b.conversation(other_phone), b.inbound()) == b_before
    assert b.client.get(f"/sandbox/handsets/{phone}/script").json()["rules"][0]["reply"] == "pong"
    assert b.client.get("/sandbox/behaviour").json()["receipts"]["late_by"] == 0.1
    assert "receipt 0.1 s late" in str(b.delivered(b.send(phone, "after A's reset"))["events"])


def test_delete_a_handsets_conversation(parties: tuple[Party, Party]) -> None:
    a, b = parties
    phone, keep = handset(), handset()
    for p in (a, b):
        p.delivered(p.send(phone, "one"))
        p.client.post(f"/sandbox/handsets/{phone}/reply", json={"to": p.number, "text": "two"}).raise_for_status()
        wait_for(lambda p=p: len(p.conversation(phone)) == 2)
    a.delivered(a.send(keep, "three"))
    r = a.client.delete(f"/sandbox/handsets/{phone}/messages")
    assert r.status_code == 200 and r.json() == {"msisdn": "+" + phone, "deleted": 2}
    assert a.conversation(phone) == [] and a.inbound() == []
    assert len(a.conversation(keep)) == 1
    assert len(b.conversation(phone)) == 2
    assert a.client.delete(f"/sandbox/handsets/0{phone[2:]}/messages").json()["deleted"] == 0  # Dutch form too


# -- scripted handsets -------------------------------------------------------------------------------------------
def test_script_drives_a_two_way_flow(parties: tuple[Party, Party]) -> None:
    a, b = parties
    assert a.number is not None  # the fixture's first party sends from its own virtual number
    phone = handset()
    script = {
        "rules": [
            {"match": r"(?i)reply YES to confirm order (?P<order>\d+)", "reply": r"YES \g<order>"},
            {"match": r"(?i)\bsale\b", "reply": "STOP", "delay_ms": 400},
            {"match": r".", "reply": "never: an earlier rule matched"},
        ]
    }
    r = a.client.put(f"/sandbox/handsets/{phone}/script", json=script)
    assert r.status_code == 200 and r.json()["rules"][1]["delay_ms"] == 400, r.text
    a.send(phone, "Reply YES to confirm order 1234")
    answer = wait_for(lambda: [m for m in a.inbound() if m["from"] == "+" + phone])
    assert [(m["text"], m["to"]) for m in answer] == [("YES 1234", "+" + a.number)]
    sent_at = time.time()
    a.send(phone, "Big SALE today!")
    stop = wait_for(lambda: [m for m in a.inbound() if m["text"] == "STOP"])
    assert stop[0]["created_at"] - sent_at >= 0.4
    run = a.client.get(f"/sandbox/handsets/{phone}/script").json()["last_run"]
    assert (run["status"], run["rule"], run["reply"], run["to"], run["parts"]) == ("sent", 1, "STOP", a.number, 1)
    # B's messages to the same handset are not A's script's business
    b.delivered(b.send(phone, "Reply YES to confirm order 99"))
    assert b.client.get(f"/sandbox/handsets/{phone}/script").status_code == 404
    assert not [m for m in b.inbound() if m["from"] == "+" + phone]


def test_script_answers_only_a_sender_the_account_owns(gateway: GatewayProcess) -> None:
    a = Party(gateway)  # sends as "smsgate", a name nobody reserved for it
    phone = handset()
    a.client.put(f"/sandbox/handsets/{phone}/script", json={"rules": [{"match": "ping", "reply": "pong"}]})
    a.send(phone, "ping")
    run = wait_for(lambda: a.client.get(f"/sandbox/handsets/{phone}/script").json()["last_run"])
    assert run["status"] == "refused" and "not a number (or reserved name) your account owns" in run["reason"]
    assert a.inbound() == []


@pytest.mark.parametrize(
    ("rules", "word"),
    [
        ([{"match": r"(?<=x)y", "reply": "z"}], "rules[0].match"),
        ([{"match": r"(\d+)", "reply": r"\2"}], "rules[0].reply"),
        ([{"match": "a", "reply": r"\g<nope>"}], "rules[0].reply"),
        ([{"match": "a", "reply": "b", "delay_ms": 60_001}], "delay_ms"),
        ([{"match": "", "reply": "b"}], "match"),
        ([{"match": "a", "reply": "b"}] * 21, "rules"),
    ],
)
def test_script_refuses_bad_rules(gateway: GatewayProcess, account: dict[str, str], rules: Any, word: str) -> None:
    with gateway.client(auth=(account["api_key"], account["api_secret"])) as c:
        r = c.put("/sandbox/handsets/31612345678/script", json={"rules": rules})
    assert r.status_code == 400 and word in r.json()["error"]["message"], r.text


def test_script_read_and_delete(gateway: GatewayProcess, account: dict[str, str]) -> None:
    with gateway.client(headers={"Authorization": f"Bearer {gateway.token(account)}"}) as c:
        url = "/sandbox/handsets/0612345678/script"  # Dutch form: the same handset as +31612345678
        assert c.get(url).status_code == 404
        assert c.put(url, json={"rules": [{"match": "a", "reply": "b"}]}).status_code == 200
        got = c.get("/sandbox/handsets/+31612345678/script").json()
        assert got["msisdn"] == "+31612345678" and got["last_run"] is None
        assert c.delete(url).status_code == 204
        assert c.delete(url).status_code == 404


# -- network behaviour ---------------------------------------------------------------------------------------------
def receipts_persisted(gw: GatewayProcess) -> int:
    r = httpx.get(gw.url + "/metrics", headers={"Authorization": f"Bearer {gw.operator_token}"})
    found = re.search(r"^smsgate_receipts_total (\S+)$", r.text, re.M)
    assert found, r.text
    return int(float(found.group(1)))


def test_behaviour_read_set_and_refused(parties: tuple[Party, Party]) -> None:
    a, b = parties
    normal = {"receipts": {"duplicate": 0.0, "missing": 0.0, "out_of_order": False, "late_by": 0.0}, "throttle": 0.0}
    assert a.client.get("/sandbox/behaviour").json() == normal
    r = a.client.put("/sandbox/behaviour", json={"receipts": {"missing": 0.25}, "throttle": 1})
    assert r.status_code == 200 and r.json()["receipts"]["missing"] == 0.25 and r.json()["throttle"] == 1.0
    assert a.client.get("/sandbox/behaviour").json() == r.json()
    assert b.client.get("/sandbox/behaviour").json() == normal
    for bad in ({"throttle": 1.5}, {"receipts": {"late_by": -1}}, {"receipts": {"duplicat": 1}}, {"receipts": 3}):
        assert a.client.put("/sandbox/behaviour", json=bad).status_code == 400, bad
    assert a.client.delete("/sandbox/behaviour").json() == normal
    assert a.client.get("/sandbox/behaviour").json() == normal


def test_duplicate_receipts(gateway: GatewayProcess, parties: tuple[Party, Party]) -> None:
    a, b = parties
    phone = handset()
    a.client.put("/sandbox/behaviour", json={"receipts": {"duplicate": 1}}).raise_for_status()
    before = receipts_persisted(gateway)
    mine = a.delivered(a.send(phone, "x" * 200))  # two parts
    theirs = b.delivered(b.send(phone, "y"))
    # A's two parts got two receipts each, B's one: the gateway took all five and recorded each part once
    wait_for(lambda: receipts_persisted(gateway) - before >= 5)
    assert len([e for e in events(mine, "delivered") if e["part_id"]]) == 2
    assert all("receipt sent twice" in e["data"]["note"] for e in events(mine, "submitted"))
    assert "note" not in events(theirs, "submitted")[0]["data"]


def test_missing_receipts(parties: tuple[Party, Party]) -> None:
    a, b = parties
    phone = handset()
    a.client.put("/sandbox/behaviour", json={"receipts": {"missing": 0.5}}).raise_for_status()
    first, second = a.send(phone, "one"), a.send(phone, "two")
    a.delivered(first)  # 0.5 is every second receipt: the first comes, the second does not
    b.delivered(b.send(phone, "sent after A's second: its receipt came"))
    lost = a.message(second)
    assert lost["status"] == "submitted"
    assert "no receipt will come" in events(lost, "submitted")[0]["data"]["note"]
    assert a.latest(phone).json()["id"] == second  # it did reach the handset


def test_late_receipts(parties: tuple[Party, Party]) -> None:
    a, b = parties
    phone = handset()
    a.client.put("/sandbox/behaviour", json={"receipts": {"late_by": 1.5}}).raise_for_status()
    late = a.send(phone, "late")
    normal = b.delivered(b.send(phone, "on time"))
    assert a.message(late)["status"] == "submitted"
    m = a.delivered(late)
    waited = events(m, "delivered")[0]["at"] - events(m, "submitted")[0]["at"]
    assert waited >= 1.5, waited
    assert events(normal, "delivered")[0]["at"] - events(normal, "submitted")[0]["at"] < 1.5


def test_out_of_order_receipts(parties: tuple[Party, Party]) -> None:
    a, b = parties
    phone = handset()
    a.client.put("/sandbox/behaviour", json={"receipts": {"out_of_order": True}}).raise_for_status()
    sent = [a.send(phone, f"message {i}") for i in range(3)]
    control = [b.send(phone, f"control {i}") for i in range(3)]
    done = [events(a.delivered(mid), "delivered")[0]["at"] for mid in sent]
    assert done[0] > done[1] > done[2], done  # the newest message's receipt came first
    assert all("newest first" in events(a.message(mid), "submitted")[0]["data"]["note"] for mid in sent)
    theirs = [events(b.delivered(mid), "delivered")[0]["at"] for mid in control]
    assert theirs == sorted(theirs)


def test_throttled_submits_are_retried(parties: tuple[Party, Party]) -> None:
    a, b = parties
    phone = handset()
    a.client.put("/sandbox/behaviour", json={"throttle": 0.5}).raise_for_status()
    sent = [a.send(phone, f"throttled? {i}") for i in range(2)]
    control = b.delivered(b.send(phone, "never throttled"))
    done = [a.delivered(mid) for mid in sent]
    retries = [e for m in done for e in events(m, "retry")]
    assert len(retries) == 1 and "throttled by the sandbox network" in retries[0]["data"]["reason"], retries
    assert events(control, "retry") == []
