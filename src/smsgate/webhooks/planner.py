"""Turns recorded events into webhook deliveries: pure, so the rule below can be read and tested on its own.

``services.recording`` runs it inside the transaction that records the events: it asks what to load
(``needs``), the store loads it (``store.webhooks.context``), ``plan`` decides, and the store writes each delivery
with its ``webhook`` outbox job. So a delivery commits together with the receipt or inbound message that causes
it: a crash can lose neither, and a rolled-back event plans nothing.

Which webhook, to where (the log's ``event`` name in brackets):

    event                     message dialect   payload                         target
    part delivered/expired/   nexmo, vonage     Vonage DLR per part             message callback_url, else
      failed/rejected                           (receipt.<status>)              account receipt_url
    message reaches a status  any other         our JSON event                  message callback_url, else
      (submitted...rejected)                    (message.<status>)              account receipt_url
    message reaches a final   kpn, in a batch   KPN batch receipt, retried on   the batch's webhook_url
      status                                    its own schedule (kpn.<status>) (message callback_url)
    inbound received          -                 Vonage inbound (inbound)        1. the number's moHttpUrl
      (to its owner only,                                                       2. /register callback of the number
      ``store.ownership``)                                                      3. the owner's /register callback of
                                                                                   the handset an ``inbound: yes``
                                                                                   message went to
                              -                 Vonage inbound if the last      4. account inbound_url
                                                message to the sender was
                                                Vonage, else our JSON event
                                                (message.received)
    (no target: nothing is sent; GET /v1/messages?direction=inbound shows it; no owner: the operator's console)
    inbound STOP / START      -                 our JSON event                  account inbound_url, else
      keyword (``optout``)                      (optout.added / optout.removed) account receipt_url
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence

from smsgate.core import accounts as core_accounts
from smsgate.core import deliveries as core_deliveries
from smsgate.core import events as core_events
from smsgate.core import message as core_message
from smsgate.webhooks import formats

EventType = core_events.EventType
VONAGE_DIALECTS = frozenset({"nexmo", "vonage"})
Messages = Mapping[str, core_message.Message]
Accounts = Mapping[str, core_accounts.Account]


def relevant(events: Sequence[core_events.Event]) -> list[core_events.Event]:
    """The events that can cause a webhook: a status reached, an inbound message received."""
    return [e for e in events if e.type in core_events.STATUSES or e.type is EventType.RECEIVED]


def _target(msg: core_message.Message, accs: Accounts) -> str | None:
    acc = accs.get(msg.account_id)
    return core_deliveries.target(msg.callback_url, acc.receipt_url if acc is not None else None)


def _vonage_receipts(events: Sequence[core_events.Event], msgs: Messages, accs: Accounts) -> list[core_events.Event]:
    return [
        e
        for e in events
        if e.part_id
        and e.type in core_events.RECEIPTS
        and msgs[e.message_id].dialect in VONAGE_DIALECTS
        and msgs[e.message_id].status_report
        and _target(msgs[e.message_id], accs)
    ]


def _kpn_batch(msg: core_message.Message) -> bool:
    """A message of a KPN batch call: its receipts go to the batch's ``webhook_url`` in KPN's shape."""
    return msg.dialect == "kpn" and msg.batch_id is not None


def _own(events: Sequence[core_events.Event], msgs: Messages, accs: Accounts) -> dict[str, str]:
    """A message whose status now equals a status recorded in this batch just reached it: ``message.<status>``
    (``kpn.<status>`` for a KPN batch message, at its final status only)."""
    own: dict[str, str] = {}
    for e in events:
        msg = msgs[e.message_id]
        if msg.dialect in VONAGE_DIALECTS or e.type.value != msg.status.value or not _target(msg, accs):
            continue
        if _kpn_batch(msg):
            if msg.status.final and msg.callback_url:
                own[msg.id] = "kpn." + msg.status.value
            continue
        own[msg.id] = "message." + msg.status.value
    return own


def _split(
    events: Sequence[core_events.Event], msgs: Messages
) -> tuple[list[core_events.Event], list[core_message.Message]]:
    """Outbound events (of messages found) and inbound messages, in event order."""
    outbound = [e for e in events if e.message_id in msgs and msgs[e.message_id].direction.value == "outbound"]
    inbound = [msgs[mid] for mid in sorted({e.message_id for e in events}) if mid in msgs]
    return outbound, [m for m in inbound if m.direction is core_message.Direction.INBOUND]


def needs(events: Sequence[core_events.Event], msgs: Messages, accs: Accounts) -> core_deliveries.Needs:
    outbound, inbound = _split(events, msgs)
    own = _own(outbound, msgs, accs)
    vonage = _vonage_receipts(outbound, msgs, accs)
    routed = tuple(m.id for m in inbound if m.account_id in accs)
    return core_deliveries.Needs(
        parts_of=frozenset(own) | {e.message_id for e in vonage} | frozenset(routed),
        sent=frozenset(own.items()),
        inbound=routed,
    )


def plan(
    events: Sequence[core_events.Event],
    msgs: Messages,
    accs: Accounts,
    ctx: core_deliveries.Context,
    now: float,
    *,
    new_id: Callable[[], str] = lambda: str(uuid.uuid4()),
    kpn_retry_delays: str | None = None,
) -> list[core_deliveries.Delivery]:
    """The deliveries ``events`` cause (see the table above); ``kpn_retry_delays`` is KPN batch receipts' own
    schedule (``SMSGATE_KPN_WEBHOOK_RETRY_DELAYS``)."""
    outbound, inbound = _split(events, msgs)
    out: list[core_deliveries.Delivery] = []
    for msg in inbound:
        acc = accs.get(msg.account_id)
        route = ctx.routes.get(msg.id)
        if acc is not None and route is not None:
            out += _inbound(msg, acc, route, ctx.parts.get(msg.id, ()), now, new_id)
    if not outbound:
        return out
    for mid, ev in _own(outbound, msgs, accs).items():
        if (mid, ev) in ctx.sent:
            continue
        msg = msgs[mid]
        delivery_id = new_id()
        if _kpn_batch(msg):
            body = formats.kpn_receipt(msg, msg.updated_at)
            out.append(core_deliveries.Delivery(delivery_id, msg.account_id, mid, ev, msg.callback_url or "", "POST",
                                                formats.JSON, body, kpn_retry_delays))  # fmt: skip
            continue
        body = formats.event(delivery_id, ev, now, formats.message_data(msg, ctx.parts.get(mid, [])))
        out.append(
            core_deliveries.Delivery(
                delivery_id, msg.account_id, mid, ev, _target(msg, accs) or "", "POST", formats.JSON, body
            )
        )
    for e in _vonage_receipts(outbound, msgs, accs):
        part = next((p for p in ctx.parts.get(e.message_id, ()) if p.id == e.part_id), None)
        if part is None:
            continue
        msg = msgs[e.message_id]
        acc = accs[msg.account_id]
        params = formats.vonage_receipt(msg, part, acc, e.type.value, e.at)
        out.append(_vonage(msg, acc, "receipt." + e.type.value, _target(msg, accs) or "", params, now, new_id))
    return out


def route_inbound(
    msg: core_message.Message, acc: core_accounts.Account, route: core_deliveries.InboundRoute
) -> tuple[str | None, bool]:
    """(url, vonage_format) for an inbound message its owner received; (None, False) when it is kept for polling.

    The owner was decided when the message was stored (``store.ownership``, the one rule); here it only picks
    among the owner's own targets: the number's URL, then (``inbound: yes``) the callback of the owner's handset
    the conversation was with, then the account's inbound URL."""
    if route.number_url:
        return route.number_url, True
    if any(reply_routing for _dialect, reply_routing in route.conversation) and route.callback_url:
        return route.callback_url, True
    if acc.inbound_url:
        return acc.inbound_url, bool(route.conversation) and route.conversation[0][0] in VONAGE_DIALECTS
    return None, False


def _inbound(
    msg: core_message.Message,
    acc: core_accounts.Account,
    route: core_deliveries.InboundRoute,
    parts: Sequence[core_message.Part],
    now: float,
    new_id: Callable[[], str],
) -> list[core_deliveries.Delivery]:
    url, vonage = route_inbound(msg, acc, route)
    if url is None:
        return []
    if not vonage:
        delivery_id = new_id()
        body = formats.event(delivery_id, "message.received", now, formats.message_data(msg, parts))
        return [
            core_deliveries.Delivery(
                delivery_id, msg.account_id, msg.id, "message.received", url, "POST", formats.JSON, body
            )
        ]
    return [
        _vonage(msg, acc, "inbound", url, params, now, new_id) for params in formats.vonage_inbound(msg, parts, acc)
    ]


def _vonage(
    msg: core_message.Message,
    acc: core_accounts.Account,
    event: str,
    url: str,
    params: dict[str, str],
    now: float,
    new_id: Callable[[], str],
) -> core_deliveries.Delivery:
    if acc.sign_webhooks and acc.signature_secret:
        params = formats.sign_vonage(params, acc.signature_secret, acc.signature_method or "md5hash", now)
    method = "GET" if str(acc.webhook_method).upper() == "GET" else "POST"
    content_type, body = formats.encode_vonage(params, method, str(acc.webhook_format).lower())
    return core_deliveries.Delivery(new_id(), msg.account_id, msg.id, event, url, method, content_type, body)


def optout(
    acc: core_accounts.Account,
    msg: core_message.Message,
    added: bool,
    now: float,
    *,
    new_id: Callable[[], str] = lambda: str(uuid.uuid4()),
) -> core_deliveries.Delivery | None:
    """``optout.added`` / ``optout.removed`` for a keyword that changed the account's suppression list, or None
    when the account has no URL to tell."""
    url = acc.inbound_url or acc.receipt_url
    if not url:
        return None
    ev = "optout.added" if added else "optout.removed"
    delivery_id = new_id()
    data = {"msisdn": msg.sender, "to": msg.recipient, "keyword": (msg.text or "").strip(), "message_id": msg.id,
            "source": "keyword"}  # fmt: skip
    body = formats.event(delivery_id, ev, now, data)
    return core_deliveries.Delivery(delivery_id, acc.id, msg.id, ev, url, "POST", formats.JSON, body)
