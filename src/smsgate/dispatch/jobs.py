"""A submit job as the dispatcher holds it in memory: a message's parts ready for the wire, their statuses, and
where it may go (its route, the connectors it already tried since it left the outbox).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from smsgate.connectors import base
from smsgate.core import message as core_message
from smsgate.core import routing, senders

Status = core_message.Status


@dataclasses.dataclass(slots=True)
class Job:
    message_id: str
    account_id: str
    connector: str
    created_at: float
    expires_at: float
    parts: list[base.OutboundPart]
    part_status: dict[str, Status]
    attempts: int = 0
    recipient: str = ""
    country: str | None = None
    dialect: str = ""
    route: routing.Route | None = None
    tried: set[str] = dataclasses.field(default_factory=set)  # connectors this job went to since it left the outbox
    lane: int = 1  # core.schedule.Priority.lane: 0 high, 1 normal, 2 bulk
    scheduled: bool = False  # the message still shows ``scheduled``: its first round moves it on, even to a retry


def job_from(message: core_message.Message, parts: Iterable[core_message.Part]) -> Job:
    """A job for an accepted message and its parts (what the accept transaction wrote)."""
    sender = senders.parse_sender(message.sender)  # cached there: a stream of messages has a few senders
    validity = int(message.ttl_seconds) if message.ttl_seconds else None
    part_list = list(parts)
    expires_at = message.expires_at
    destination = message.recipient.lstrip("+")
    # (part, message, source, its TON and NPI, destination, data coding, UDH, payload, index, total, reference)
    outbound = [
        base.OutboundPart(p.id, message.id, sender.value, sender.ton, sender.npi, destination, p.data_coding, p.udh,
                          p.payload, p.index, p.total, p.concat_ref, registered_delivery=message.status_report,
                          validity_seconds=validity, protocol_id=message.protocol_id,
                          message_class=message.message_class, account_id=message.account_id,
                          expires_at=expires_at)
        for p in part_list
    ]  # fmt: skip
    return Job(
        message_id=message.id,
        account_id=message.account_id,
        connector=message.connector or "",
        created_at=message.created_at,
        expires_at=expires_at,
        parts=outbound,
        part_status={p.id: p.status for p in part_list},
        recipient=message.recipient,
        country=message.country,
        dialect=message.dialect,
        # a demo account's message stays on the sandbox connector it was given (services.sending.Gateway.send)
        route=routing.Route((message.connector or "",)) if message.pinned else None,
        lane=message.priority.lane,
        scheduled=message.status is Status.SCHEDULED,
    )
