"""Delivery receipts and the one rule for what they do to a message: ``apply(receipts, parts, messages)``.

The rule, pure (the store loads what it needs and writes what it returns, ``services.recording`` runs both in one
transaction):

* a receipt matches the parts its connector gave that network id to (an upstream that answers one id per
  message puts it on every part, so one receipt then settles them all); one that matches nothing is returned
  unmatched, to be held until its part is known (a receipt may overtake its ``submit_sm_resp``);
* a part moves to the receipt's status only forward (``core.message.can_move``): a late "accepted" never
  overwrites "delivered"; a part that moved gets an event with the network id, error code and receipt text;
* the message's status is derived from its parts (``core.message.derive``); a multi-part message that moved gets
  its own event too (a single-part message's part event says it all).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
from collections.abc import Mapping, Sequence

from smsgate.core import events as core_events
from smsgate.core import message as core_message

Status = core_message.Status


class ReceiptState(enum.Enum):
    """Final or intermediate state a network reports for a part."""

    ENROUTE = "enroute"
    DELIVERED = "delivered"
    EXPIRED = "expired"
    DELETED = "deleted"
    UNDELIVERABLE = "undeliverable"
    ACCEPTED = "accepted"
    UNKNOWN = "unknown"
    REJECTED = "rejected"


RECEIPT_STATUS = {
    ReceiptState.DELIVERED: Status.DELIVERED,
    ReceiptState.EXPIRED: Status.EXPIRED,
    ReceiptState.DELETED: Status.FAILED,
    ReceiptState.UNDELIVERABLE: Status.FAILED,
    ReceiptState.UNKNOWN: Status.FAILED,
    ReceiptState.REJECTED: Status.REJECTED,
    ReceiptState.ENROUTE: Status.SUBMITTED,
    ReceiptState.ACCEPTED: Status.SUBMITTED,
}


@dataclasses.dataclass(slots=True)  # not frozen: built per message on the hot path (docs/decisions.md)
class Receipt:
    """A delivery receipt for one part, keyed by the network's id."""

    connector: str
    network_id: str
    state: ReceiptState
    error_code: int = 0  # network error code (Vonage err-code semantics where known)
    done_at: dt.datetime | None = None
    submitted_at: dt.datetime | None = None
    raw: str = ""  # the receipt text as received, for the event log


@dataclasses.dataclass(slots=True)  # not frozen: built per message on the hot path (docs/decisions.md)
class TrackedPart:
    """A part a receipt may match: what the rule needs of it."""

    id: str
    message_id: str
    status: Status


@dataclasses.dataclass(slots=True)  # not frozen: built per message on the hot path (docs/decisions.md)
class TrackedMessage:
    """The message of a matched part; ``parts``: every part's status (multi-part messages only)."""

    id: str
    account_id: str
    status: Status
    parts_count: int
    parts: Mapping[str, Status] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(slots=True)  # not frozen: built per message on the hot path (docs/decisions.md)
class PartChange:
    part_id: str
    status: Status
    error_code: int  # of the receipt that set this status (not of an earlier intermediate one)


@dataclasses.dataclass(slots=True)  # not frozen: built per message on the hot path (docs/decisions.md)
class Outcome:
    matched: list[bool]  # per receipt, in order
    parts: list[PartChange]
    messages: list[tuple[str, Status]]  # message id, its new status
    events: list[core_events.Event]


def apply(
    receipts: Sequence[Receipt],
    found: Mapping[tuple[str, str], Sequence[TrackedPart]],
    messages: Mapping[str, TrackedMessage],
    now: float,
) -> Outcome:
    """The changes ``receipts`` make, given the parts each (connector, network id) matched and their messages."""
    matched: list[bool] = []
    part_status: dict[str, Status] = {}
    part_message: dict[str, str] = {}
    moved: list[tuple[TrackedPart, Status, Receipt]] = []
    for r in receipts:
        hits = found.get((r.connector, r.network_id))
        matched.append(bool(hits))
        new = RECEIPT_STATUS[r.state]
        for hit in hits or ():
            if core_message.can_move(part_status.get(hit.id, hit.status), new):
                part_status[hit.id] = new
                part_message[hit.id] = hit.message_id
                moved.append((hit, new, r))
    if not part_status:
        return Outcome(matched, [], [], [])
    last_code = {hit.id: r.error_code for hit, _st, r in moved}
    parts = [PartChange(pid, st, last_code[pid]) for pid, st in part_status.items()]
    changes: list[tuple[str, Status]] = []
    by_message: dict[str, list[Status]] = {}  # grouped once: a scan per message was quadratic in a big round
    for pid, st in part_status.items():
        by_message.setdefault(part_message[pid], []).append(st)
    for mid in sorted(by_message):
        msg = messages.get(mid)
        if msg is None:
            continue
        if msg.parts_count > 1 and msg.parts:
            statuses = [part_status.get(pid, st) for pid, st in msg.parts.items()]
        else:
            statuses = by_message[mid]
        new_status = core_message.derive(statuses)
        if new_status is not msg.status and core_message.can_move(msg.status, new_status):
            changes.append((mid, new_status))
    events: list[core_events.Event] = []
    for hit, st, r in moved:
        msg = messages.get(hit.message_id)
        if msg is None:
            continue
        data: dict[str, object] = {"network_id": r.network_id, "error_code": r.error_code}
        if r.raw:
            data["receipt"] = r.raw[:500]
        events.append(core_events.Event(hit.message_id, hit.id, msg.account_id, core_events.EventType(st), now, data))
    for mid, st in changes:
        msg = messages[mid]
        if msg.parts_count > 1:
            events.append(core_events.Event(mid, None, msg.account_id, core_events.EventType(st), now, None))
    return Outcome(matched, parts, changes, events)
