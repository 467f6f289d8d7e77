"""Message and part statuses, and the one rule for how they may move.

Status only moves forward (a late "accepted" never overwrites "delivered"); a message's status is derived
from its parts: delivered when all parts are, failed / rejected / expired / canceled as soon as any part is.
A message sent for later is ``scheduled`` (its parts ``accepted``) until the dispatcher takes it at its time.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Iterable, Mapping
from typing import Any

from smsgate.core import schedule


class Status(enum.StrEnum):
    SCHEDULED = "scheduled"  # stored, waiting for its send time (a message only; its parts are accepted)
    ACCEPTED = "accepted"  # stored, waiting for the network
    SUBMITTED = "submitted"  # the network took it
    DELIVERED = "delivered"
    EXPIRED = "expired"
    FAILED = "failed"  # the network could not deliver it
    REJECTED = "rejected"  # the network refused it at submit
    RECEIVED = "received"  # inbound: stored
    CANCELED = "canceled"  # the client canceled it before it was submitted

    @property
    def final(self) -> bool:
        return self in _FINAL


_FINAL = frozenset({Status.DELIVERED, Status.EXPIRED, Status.FAILED, Status.REJECTED, Status.RECEIVED, Status.CANCELED})
_RANK = {
    Status.SCHEDULED: 0,
    Status.ACCEPTED: 0,
    Status.SUBMITTED: 1,
    Status.DELIVERED: 2,
    Status.EXPIRED: 2,
    Status.FAILED: 2,
    Status.REJECTED: 2,
    Status.RECEIVED: 2,
    Status.CANCELED: 2,
}
# when parts end differently, the message shows the worst
_BAD_ORDER = (Status.REJECTED, Status.FAILED, Status.EXPIRED, Status.CANCELED)


def can_move(current: Status, new: Status) -> bool:
    """A status may only move to a strictly later stage; final states never change."""
    return _RANK[new] > _RANK[current]


def derive(part_statuses: Iterable[Status]) -> Status:
    """The message status implied by its parts' statuses."""
    statuses = list(part_statuses)
    if not statuses:
        return Status.ACCEPTED
    for bad in _BAD_ORDER:
        if bad in statuses:
            return bad
    if all(s is Status.DELIVERED for s in statuses):
        return Status.DELIVERED
    if all(_RANK[s] >= 1 for s in statuses):
        return Status.SUBMITTED
    return Status.ACCEPTED


class Direction(enum.StrEnum):
    OUTBOUND = "outbound"
    INBOUND = "inbound"


# (meta key, Message attribute) of the references and flags an outbound message carries, in the order written
_REFERENCES = (
    ("account_ref", "account_ref"),
    ("entity_id", "entity_id"),
    ("content_id", "content_id"),
    ("trusted_number", "trusted_number"),
    ("inbound", "reply_routing"),
    ("requested_from", "requested_from"),
)


@dataclasses.dataclass(slots=True)  # not frozen: built per message on the hot path (docs/decisions.md)
class Part:
    """One SMS part of a message: the bytes that go on the wire and what became of them."""

    id: str
    message_id: str
    index: int  # 1-based
    total: int
    status: Status
    data_coding: int
    udh: bytes
    payload: bytes
    text: str | None
    connector: str | None = None
    concat_ref: int = 0
    price: int = 0  # 1e-8 units (core.pricing)
    attempts: int = 0
    network_id: str | None = None
    error_code: int | None = None
    error_text: str | None = None
    submitted_at: float | None = None
    done_at: float | None = None


@dataclasses.dataclass(slots=True)  # not frozen: built per message on the hot path (docs/decisions.md)
class Message:
    """A message, outbound or inbound, with its delivery settings as attributes.

    The store keeps the settings in the message's ``meta`` column (``store.rows``); ``/v1/messages`` shows that
    column as it is, so its keys are part of our API.
    """

    id: str
    account_id: str
    direction: Direction
    dialect: str
    sender: str
    recipient: str
    text: str | None
    encoding: str
    parts_count: int
    status: Status
    created_at: float
    updated_at: float
    connector: str | None = None
    network: str | None = None
    country: str | None = None
    price: int = 0  # 1e-8 units, all parts
    client_ref: str | None = None
    callback_url: str | None = None
    error_code: int | None = None
    error_text: str | None = None
    batch_id: str | None = None  # the batch it came in (KPN batch ``document_id``, ``/v1/batches`` id)
    # -- delivery settings (outbound)
    ttl_seconds: float | None = None  # validity asked for; else the gateway retries for ``retry_max_seconds``
    retry_max_seconds: float | None = None
    status_report: bool = True  # a delivery receipt was asked for (Vonage status-report-req)
    message_class: int | None = None
    protocol_id: int = 0
    pinned: bool = False  # a sandbox-only account's message: never leaves the connector it was given
    send_at: float | None = None  # scheduled: not submitted before this (epoch seconds); validity counts from it
    priority: schedule.Priority = schedule.Priority.NORMAL  # the dispatcher's lane
    reply_routing: bool = False  # KPN's ``inbound: yes``: replies to the sender go to its /register callback
    # -- references echoed back to the client (Vonage account-ref..., Kaarai's requested ``from``)
    account_ref: str | None = None
    entity_id: str | None = None
    content_id: str | None = None
    trusted_number: bool | None = None
    requested_from: str | None = None
    # -- inbound
    routed_by: str | None = None  # how its owner was found (store.ownership: number, callback, reserved)
    incomplete: bool = False  # not every part arrived before the reassembly timeout
    parts_received: tuple[int, ...] | None = None
    data: str | None = None  # a binary inbound message's payload, hex

    @property
    def meta(self) -> dict[str, Any]:
        """The settings as the ``meta`` column keeps them and ``/v1/messages`` shows them (names and order kept
        from before they were attributes: they are part of our API)."""
        if self.direction is Direction.INBOUND:
            out: dict[str, Any] = {"routed_by": self.routed_by}
            if self.incomplete:
                out["incomplete"] = True
                out["parts_received"] = list(self.parts_received or ())
            if self.data is not None:
                out["data"] = self.data
            return out
        out = {}
        for key, attr in _REFERENCES:
            value = getattr(self, attr)
            if value is not None and (value is not False or attr == "trusted_number"):
                out[key] = value
        if self.ttl_seconds:
            out["ttl_seconds"] = self.ttl_seconds
        else:
            out["retry_max_seconds"] = self.retry_max_seconds
        out["status_report"] = self.status_report
        if self.message_class is not None:
            out["message_class"] = self.message_class
        if self.protocol_id:
            out["protocol_id"] = self.protocol_id
        if self.pinned:
            out["pinned"] = True
        if self.send_at is not None:
            out["send_at"] = self.send_at
        if self.priority is not schedule.Priority.NORMAL:
            out["priority"] = self.priority.value
        return out

    @property
    def lifetime(self) -> float:
        """Seconds after its start (``starts_at``) that the gateway keeps trying to submit it."""
        return float(self.ttl_seconds or self.retry_max_seconds or 24 * 3600)

    @property
    def starts_at(self) -> float:
        """When it may first be submitted: its send time, else its acceptance."""
        return self.send_at if self.send_at is not None else self.created_at

    @property
    def expires_at(self) -> float:
        """When a part not yet submitted ends ``expired`` instead (its validity, or the retry window, from its start)."""
        return self.starts_at + self.lifetime


def settings(meta: Mapping[str, Any]) -> dict[str, Any]:
    """The ``Message`` attributes a ``meta`` column holds: the inverse of ``Message.meta``."""
    out: dict[str, Any] = {attr: meta[key] for key, attr in _REFERENCES if key in meta}
    out["reply_routing"] = meta.get("inbound") is True
    ttl = meta.get("ttl_seconds")
    received = meta.get("parts_received")
    out.update(
        ttl_seconds=float(ttl) if ttl else None,
        retry_max_seconds=meta.get("retry_max_seconds"),
        status_report=meta.get("status_report", True) is not False,
        message_class=meta.get("message_class"),
        protocol_id=int(meta.get("protocol_id", 0)),
        pinned=bool(meta.get("pinned")),
        send_at=meta.get("send_at"),
        priority=schedule.Priority(meta.get("priority", "normal")),
        routed_by=meta.get("routed_by"),
        incomplete=bool(meta.get("incomplete")),
        parts_received=tuple(received) if received is not None else None,
        data=meta.get("data"),
    )
    return out
