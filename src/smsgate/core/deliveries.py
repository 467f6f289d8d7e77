"""The values webhook planning works with: what it needs loaded, what was loaded, and the deliveries it decides.

They sit in ``core`` because both sides use them: ``webhooks.planner`` (pure) decides, ``store.webhooks`` loads
and writes, and neither may import the other.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

from smsgate.core import message as core_message


@dataclasses.dataclass(frozen=True, slots=True)
class InboundRoute:
    """What decides where an inbound message goes, loaded for its owner (``store.webhooks.inbound_route``)."""

    number_url: str | None  # the URL the owner set on the number written to (moHttpUrl / its /register callback)
    conversation: tuple[tuple[str, bool], ...]  # (dialect, reply_routing) of what the owner last sent the handset
    callback_url: str | None  # the owner's /register callback of the handset's own number


@dataclasses.dataclass(frozen=True, slots=True)
class Needs:
    """What ``plan`` will read besides the messages and accounts."""

    parts_of: frozenset[str]  # messages whose parts it shows
    sent: frozenset[tuple[str, str]]  # (message id, event) of own events that may have been planned already
    inbound: tuple[str, ...]  # inbound messages to route


@dataclasses.dataclass(frozen=True, slots=True)
class Context:
    parts: Mapping[str, Sequence[core_message.Part]]  # by message, in order
    sent: frozenset[tuple[str, str]]  # of ``Needs.sent``, those that were
    routes: Mapping[str, InboundRoute]


@dataclasses.dataclass(frozen=True, slots=True)
class Delivery:
    id: str
    account_id: str
    message_id: str
    event: str
    url: str
    method: str
    content_type: str
    body: str
    retry_delays: str | None = None  # its own retry schedule (comma-separated seconds); None: the sender's backoff


@dataclasses.dataclass(frozen=True, slots=True)
class Outcome:
    delivery_id: str
    at: float
    status: str  # delivered | retrying | dead | pending (deferred: not tried)
    status_code: int | None = None
    latency_ms: float | None = None
    error: str | None = None
    retry_at: float | None = None

    @property
    def tried(self) -> bool:
        return self.status != "pending"


def target(callback_url: str | None, receipt_url: str | None) -> str | None:
    """Where an outbound message's receipts and status events go: its own callback, else its account's receipt
    URL; None when neither is set (then nothing is planned for it, and the store need not even load it)."""
    return callback_url or receipt_url or None
