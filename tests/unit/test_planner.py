"""Webhook planning (``webhooks.planner``) on its own: events, messages and accounts in, deliveries out."""

from __future__ import annotations

import dataclasses
import itertools
import urllib.parse
from typing import Any

import orjson

from smsgate.core import deliveries
from smsgate.core.accounts import Account
from smsgate.core.events import Event, EventType
from smsgate.core.message import Direction, Message, Part, Status
from smsgate.webhooks import planner

NOW = 1_700_000_000.0


def account(**kw: Any) -> Account:
    return Account(id="acc", name="t", api_key="key1", **kw)


def message(dialect: str = "kpn", status: Status = Status.DELIVERED, **kw: Any) -> Message:
    return Message(id="m1", account_id="acc", direction=Direction.OUTBOUND, dialect=dialect, sender="smsgate",
                   recipient="+31612345678", text="hi", encoding="gsm7", parts_count=1, status=status,
                   created_at=NOW, updated_at=NOW, **kw)  # fmt: skip


def part(pid: str = "P1", status: Status = Status.DELIVERED) -> Part:
    return Part(pid, "m1", 1, 1, status, 0, b"", b"hi", "hi", price=7_000_000, network_id="N1", done_at=NOW)


def ids() -> Any:
    counter = itertools.count(1)
    return lambda: f"d{next(counter)}"


def run(events: list[Event], msg: Message, acc: Account, *, sent: frozenset[tuple[str, str]] = frozenset(),
        route: deliveries.InboundRoute | None = None) -> list[deliveries.Delivery]:  # fmt: skip
    msgs, accs = {msg.id: msg}, {acc.id: acc}
    relevant = planner.relevant(events)
    needs = planner.needs(relevant, msgs, accs)
    parts = {mid: [part()] for mid in needs.parts_of}
    ctx = deliveries.Context(parts, sent & needs.sent, {msg.id: route} if route else {})
    return planner.plan(relevant, msgs, accs, ctx, NOW, new_id=ids())


def test_our_event_once_when_the_message_reaches_a_status() -> None:
    ev = Event("m1", "P1", "acc", EventType.DELIVERED, NOW, {"network_id": "N1"})
    [d] = run([ev], message(), account(receipt_url="https://hooks.example/r"))
    assert (d.event, d.url, d.method, d.content_type) == ("message.delivered", "https://hooks.example/r", "POST",
                                                          "application/json")  # fmt: skip
    body = orjson.loads(d.body)
    assert body["id"] == d.id == "d1" and body["data"]["parts"][0]["network_message_id"] == "N1"
    # planned already in an earlier transaction: not again
    assert run([ev], message(), account(receipt_url="https://hooks.example/r"), sent=frozenset({("m1", d.event)})) == []


def test_the_message_callback_wins_and_no_target_plans_nothing() -> None:
    ev = Event("m1", "P1", "acc", EventType.DELIVERED, NOW)
    [d] = run([ev], message(callback_url="https://cb.example/x"), account(receipt_url="https://hooks.example/r"))
    assert d.url == "https://cb.example/x"
    assert run([ev], message(), account()) == []
    # an event for a status the message has since left (submitted, now delivered) is not ours to announce
    assert (
        run([Event("m1", "P1", "acc", EventType.SUBMITTED, NOW)], message(), account(receipt_url="https://h/r")) == []
    )


def test_vonage_dialects_get_a_signed_dlr_per_part_unless_no_receipt_was_asked() -> None:
    ev = Event("m1", "P1", "acc", EventType.DELIVERED, NOW)
    acc = account(receipt_url="https://hooks.example/r", sign_webhooks=True, signature_secret="s3cret",
                  signature_method="sha256", webhook_method="GET")  # fmt: skip
    [d] = run([ev], message("vonage", client_ref="order-1"), acc)
    assert (d.event, d.method) == ("receipt.delivered", "GET")
    params = dict(urllib.parse.parse_qsl(d.body))
    assert params["messageId"] == "P1" and params["status"] == "delivered" and params["client-ref"] == "order-1"
    assert params["price"] == "0.07000000" and {"sig", "timestamp", "nonce"} <= set(params)
    assert run([ev], message("vonage", status_report=False), acc) == []


def inbound(**kw: Any) -> Message:
    return Message(id="m1", account_id="acc", direction=Direction.INBOUND, dialect="network", sender="+31611110000",
                   recipient="+3197010000001", text="STOP", encoding="gsm7", parts_count=1, status=Status.RECEIVED,
                   created_at=NOW, updated_at=NOW, routed_by="number", **kw)  # fmt: skip


def test_inbound_goes_to_the_number_then_the_conversation_callback_then_the_account() -> None:
    ev = Event("m1", None, "acc", EventType.RECEIVED, NOW)
    acc = account(inbound_url="https://hooks.example/in")
    to_number = deliveries.InboundRoute("https://num.example/mo", (), None)
    [d] = run([ev], inbound(), acc, route=to_number)
    assert (d.url, d.event) == ("https://num.example/mo", "inbound")
    assert orjson.loads(d.body)["text"] == "STOP" and orjson.loads(d.body)["to"] == "3197010000001"
    conversation = deliveries.InboundRoute(None, (("nexmo", True),), "https://cb.example/handset")
    assert [d.url for d in run([ev], inbound(), acc, route=conversation)] == ["https://cb.example/handset"]
    # nothing of the owner's own: the account's inbound URL, in our format unless it last wrote in Vonage's
    plain = run([ev], inbound(), acc, route=deliveries.InboundRoute(None, (("kpn", False),), None))
    assert [(d.url, d.event) for d in plain] == [("https://hooks.example/in", "message.received")]
    assert run([ev], inbound(), account(), route=deliveries.InboundRoute(None, (), None)) == []


def test_kpn_batch_receipt_at_the_final_status_only_on_its_own_schedule() -> None:
    cb = "https://hooks.example/kpn"
    acc = account(receipt_url="https://hooks.example/account")
    msgs: dict[str, Message] = {}
    accs = {acc.id: acc}

    def plan(status: Status, **kw: Any) -> list[deliveries.Delivery]:
        msg = dataclasses.replace(message(status=status, batch_id="B1", callback_url=cb), **kw)
        msgs[msg.id] = msg
        ev = [Event("m1", "P1", "acc", EventType(status.value), NOW + 5, None)]
        ctx = deliveries.Context({}, frozenset(), {})
        return planner.plan(planner.relevant(ev), msgs, accs, ctx, NOW, new_id=ids(), kpn_retry_delays="60,120,240")

    assert plan(Status.SUBMITTED) == []  # not final: nothing for KPN's webhook_url
    [d] = plan(Status.DELIVERED, updated_at=NOW + 5)
    assert (d.event, d.url, d.retry_delays) == ("kpn.delivered", cb, "60,120,240")
    assert orjson.loads(d.body) == {"document_id": "B1", "message_id": "m1", "mobile_number": "+31612345678",
                                    "status": "DELIVERED", "StatusDateTime": int(NOW + 5)}  # fmt: skip
    [d] = plan(Status.FAILED)
    assert orjson.loads(d.body)["status"] == "FAILED"
    # a KPN batch message without a webhook_url goes nowhere (not to the account's receipt URL)
    msg = message(status=Status.DELIVERED, batch_id="B1")
    ev = [Event("m1", "P1", "acc", EventType.DELIVERED, NOW, None)]
    assert planner.plan(ev, {"m1": msg}, accs, deliveries.Context({}, frozenset(), {}), NOW, new_id=ids()) == []
