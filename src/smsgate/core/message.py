"""Message and part statuses, and the one rule for how they may move.

Status only moves forward (a late "accepted" never overwrites "delivered"); a message's status is derived
from its parts: delivered when all parts are, failed / rejected / expired as soon as any part is.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable


class Status(enum.StrEnum):
    ACCEPTED = "accepted"  # stored, waiting for the network
    SUBMITTED = "submitted"  # the network took it
    DELIVERED = "delivered"
    EXPIRED = "expired"
    FAILED = "failed"  # the network could not deliver it
    REJECTED = "rejected"  # the network refused it at submit
    RECEIVED = "received"  # inbound: stored

    @property
    def final(self) -> bool:
        return self in _FINAL


_FINAL = frozenset({Status.DELIVERED, Status.EXPIRED, Status.FAILED, Status.REJECTED, Status.RECEIVED})
_RANK = {
    Status.ACCEPTED: 0,
    Status.SUBMITTED: 1,
    Status.DELIVERED: 2,
    Status.EXPIRED: 2,
    Status.FAILED: 2,
    Status.REJECTED: 2,
    Status.RECEIVED: 2,
}
# when parts end differently, the message shows the worst
_BAD_ORDER = (Status.REJECTED, Status.FAILED, Status.EXPIRED)


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
