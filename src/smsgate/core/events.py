"""What happened to a message, as a typed value: one ``Event`` per status change, retry, reroute or arrival.

Events are written in the transaction that makes the change (``store``) and are what webhooks are planned from
(``webhooks.planner``) and what the console's live list follows. ``data`` carries the detail a person reads in
the message's history (the connector, the upstream id, an error); its keys are part of the ``/v1`` output.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from typing import Any

from smsgate.core import message as core_message


class EventType(enum.StrEnum):
    ACCEPTED = "accepted"  # stored with its parts and outbox job
    SUBMITTED = "submitted"  # a part (or, multi-part, the message) was taken by the network
    DELIVERED = "delivered"
    EXPIRED = "expired"
    FAILED = "failed"
    REJECTED = "rejected"
    RECEIVED = "received"  # an inbound message was stored
    CANCELED = "canceled"  # the client canceled it before it was submitted (``POST /v1/messages/{id}/cancel``)
    RETRY = "retry"  # the job went back to the outbox: ``data.at`` is when it is due again
    REROUTED = "rerouted"  # offered to another connector of its route at once


# the types a part or a message reaches as a status (the others are moments in its history)
STATUSES = frozenset(
    {EventType.SUBMITTED, EventType.DELIVERED, EventType.EXPIRED, EventType.FAILED, EventType.REJECTED,
     EventType.CANCELED}
)  # fmt: skip
RECEIPTS = frozenset({EventType.DELIVERED, EventType.EXPIRED, EventType.FAILED, EventType.REJECTED})


@dataclasses.dataclass(slots=True)  # not frozen: built per message on the hot path (docs/decisions.md)
class Event:
    message_id: str
    part_id: str | None  # None: about the whole message
    account_id: str
    type: EventType
    at: float
    data: Mapping[str, Any] | None = None


def accepted(message: core_message.Message) -> Event:
    """A message's first event, stamped with its ``created_at``: what the accept transaction writes and what an
    answer built before the commit (``POST /v1/messages``) shows, the same."""
    data = (
        {"dialect": message.dialect}
        if message.send_at is None
        else {"dialect": message.dialect, "send_at": message.send_at}
    )
    return Event(message.id, None, message.account_id, EventType.ACCEPTED, message.created_at, data)  # fmt: skip
