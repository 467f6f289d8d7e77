"""STOP means stop, on a real server: a sandbox handset replies STOP to the account's number, and the next send to
it is refused in every dialect and never reaches the network; START lets it through again. The change is told to
the account (``optout.added`` / ``optout.removed``) and, when the account wants it, confirmed to the handset."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests import support
from tests.e2e.test_suppressions import basic, refused_in_own_words, send_everywhere
from tests.support import GatewayProcess, handset


@pytest.fixture
def sink() -> Iterator[support.WebhookSink]:
    s = support.WebhookSink().start()
    yield s
    s.stop()


def own_number(gw: GatewayProcess, acc: dict[str, str]) -> str:
    number = "31970" + str(secrets.randbelow(10**8)).zfill(8)
    support.add_numbers(gw.database_url, {number: acc["account_id"]})
    return number


def reply(c: httpx.Client, phone: str, number: str, text: str) -> None:
    r = c.post(f"/sandbox/handsets/{phone}/reply", json={"to": number, "text": text})
    assert r.status_code == 202, r.text


def inbox(c: httpx.Client, phone: str) -> list[dict[str, Any]]:
    """What the handset received (its conversation also lists what it sent)."""
    messages = c.get(f"/sandbox/handsets/{phone}/messages").json()["messages"]
    return [m for m in messages if m["direction"] == "received"]


def optout_events(sink: support.WebhookSink) -> list[dict[str, Any]]:
    with sink.lock:
        events = list(sink.events.values())
    return sorted((e for e in events if e["type"].startswith("optout.")), key=lambda e: e["created_at"])


def test_stop_then_start(gateway: GatewayProcess, sink: support.WebhookSink) -> None:
    acc = gateway.create_account("shop", inbound_url=sink.url)
    number, phone = own_number(gateway, acc), handset()
    with basic(gateway, acc) as c:
        reply(c, phone, number, "  Stop ")
        entry = support.wait_for(lambda: (r := c.get(f"/v1/suppressions/{phone}")).status_code == 200 and r.json())
        assert entry["source"] == "keyword" and entry["reason"] == "replied Stop"
        inbound = c.get("/v1/messages", params={"direction": "inbound", "number": "+" + phone}).json()["messages"]
        assert [m["text"] for m in inbound] == ["  Stop "]
        events = c.get(f"/v1/messages/{inbound[0]['id']}").json()["events"]
        assert events[0]["type"] == "received" and events[0]["data"] == {"optout": "added"}

        refused_in_own_words(send_everywhere(gateway, acc, phone))
        assert inbox(c, phone) == []  # nothing reached the network
        added = support.wait_for(lambda: optout_events(sink))
        assert added[0]["type"] == "optout.added" and added[0]["data"]["msisdn"] == "+" + phone
        assert added[0]["data"]["to"] == "+" + number and added[0]["data"]["keyword"] == "Stop"

        reply(c, phone, number, "please stop sending me offers")  # a sentence is a message, not a keyword
        reply(c, phone, number, "start")
        support.wait_for(lambda: c.get(f"/v1/suppressions/{phone}").status_code == 404)
        sent = send_everywhere(gateway, acc, phone)
        assert sent["kpn"].status_code == 200 and sent["kaarai"].status_code == 202, sent["kaarai"].text
        assert support.wait_for(lambda: len(inbox(c, phone)) == len(sent))  # one per dialect, ours too
        types = [e["type"] for e in support.wait_for(lambda: len(optout_events(sink)) == 2 and optout_events(sink))]
        assert types == ["optout.added", "optout.removed"]


def test_keywords_and_confirmation_are_per_account(gateway: GatewayProcess) -> None:
    acc = gateway.create_account(
        "own words", stop_keywords=["HALT"], start_keywords=["GO ON"], optout_reply="You will get no more messages."
    )
    other = gateway.create_account("defaults")
    number, other_number, phone = own_number(gateway, acc), own_number(gateway, other), handset()
    with basic(gateway, acc) as c, basic(gateway, other) as o:
        reply(c, phone, number, "STOP")  # not this account's keyword
        reply(o, phone, other_number, "STOP")  # the other account's list only
        support.wait_for(lambda: o.get(f"/v1/suppressions/{phone}").status_code == 200)
        time.sleep(0.3)
        assert c.get(f"/v1/suppressions/{phone}").status_code == 404
        reply(c, phone, number, "halt")
        support.wait_for(lambda: c.get(f"/v1/suppressions/{phone}").status_code == 200)
        confirmation = support.wait_for(lambda: inbox(c, phone))
        assert confirmation[0]["text"] == "You will get no more messages." and confirmation[0]["from"] == number
        # a stored message of the account, written in the keyword's own transaction (its created_at is the STOP's):
        # in the outbox the moment the opt-out is, so a crash cannot lose it and it is retried like any other
        listed = c.get("/v1/messages", params={"number": "+" + phone}).json()["messages"]
        halt = next(m for m in listed if m["direction"] == "inbound" and m["text"] == "halt")
        sent = support.wait_for(
            lambda: [
                m
                for m in c.get("/v1/messages", params={"direction": "outbound", "number": "+" + phone}).json()[
                    "messages"
                ]
                if m["status"] == "delivered"
            ]
        )
        assert [m["text"] for m in sent] == ["You will get no more messages."]
        assert sent[0]["created_at"] == halt["created_at"] and sent[0]["from"] == number
        assert c.post("/v1/send-sms", json={"to": phone, "text": "offer"}).json()["code"] == 4031
        reply(c, phone, number, "go  on")
        support.wait_for(lambda: c.get(f"/v1/suppressions/{phone}").status_code == 404)
        assert c.post("/v1/send-sms", json={"to": phone, "text": "offer"}).status_code == 202
        assert o.get(f"/v1/suppressions/{phone}").status_code == 200
