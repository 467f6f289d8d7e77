"""What a connector to the network is, in one hand.

A connector takes ready-made parts (bytes + UDH, already encoded by ``core.segments``) in batches and says
what happened to each; it hands delivery receipts and inbound parts to an ``InboundSink`` that persists them
before returning, so a connector acknowledges the network (deliver_sm_resp) only after the write.

The dispatcher only knows this module; concrete connectors are chosen by ``runtime``.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping, Sequence
from typing import Literal, Protocol, runtime_checkable

from smsgate.core import inbound as core_inbound
from smsgate.core import receipts as core_receipts


class ConnectorState(enum.Enum):
    """What an operator (``/readyz``, ``/metrics``, the console) is told about a connector."""

    UP = "up"  # can submit now (SMPP: bound; HTTP: circuit closed)
    DOWN = "down"  # cannot submit now (SMPP: not bound; HTTP: circuit open); messages wait in the outbox
    DEGRADED = "degraded"  # submits, but not at full capacity (throttled by the network, circuit half-open...)
    PAUSED = "paused"  # taken out of routing by the operator or by configuration


@dataclasses.dataclass(frozen=True, slots=True)
class ConnectorHealth:
    """A connector's state with one line of detail for a human ("bound to 10.0.0.5:2775", "circuit open: ...").

    The detail never holds credentials: it is shown on ``/readyz`` and in logs. ``in_flight`` counts the
    requests the connector has on the wire now, ``circuit`` is an HTTP connector's breaker ("closed", "open",
    "half-open"; None for connectors without one), ``retry_in`` the seconds until a connector that cannot submit
    now will try again, when it knows (an open circuit's next probe, a throttle's end)."""

    state: ConnectorState
    detail: str = ""
    in_flight: int = 0
    circuit: str | None = None
    retry_in: float | None = None


class SettingError(ValueError):
    """A bad value in a connector's settings, naming the key (``config check`` shows it as ``connectors[i].key``)."""

    def __init__(self, key: str, why: str) -> None:
        super().__init__(f"{key}: {why}")
        self.key = key
        self.why = why


class SubmitStatus(enum.Enum):
    """Outcome of one part's submit."""

    ACCEPTED = "accepted"  # the network took it; ``network_id`` is set
    RETRY = "retry"  # temporary: throttled, queue full, connection lost before the response
    FAILED = "failed"  # permanent: the network refused it (``error`` says why)
    # the request went out but no answer came (an HTTP upstream timed out) and retrying could send the SMS twice:
    # recorded as submitted with ``error`` saying so, and never retried nor offered to another connector
    UNKNOWN = "unknown"
    # its validity ran out (``OutboundPart.expires_at``) before it went on the wire: never sent, ends ``expired``
    EXPIRED = "expired"


@dataclasses.dataclass(slots=True)  # not frozen: built per message on the hot path (docs/decisions.md)
class OutboundPart:
    """One SMS part ready for the wire."""

    part_id: str  # our id of the part; unique, used to correlate the outcome
    message_id: str
    source: str  # sender as given: alphanumeric text or digits (E.164 without "+")
    source_ton: int  # SMPP type of number of the source (5 alphanumeric, 1 international, 3 short code...)
    source_npi: int
    destination: str  # E.164 without "+"
    data_coding: int  # 0 GSM-7 (one septet per octet), 8 UCS-2, 4 8-bit binary
    udh: bytes  # the user data header including its length octet, or b"" for a single part
    payload: bytes  # user data without the UDH
    part_index: int  # 1-based
    part_total: int
    concat_ref: int  # the concatenation reference shared by all parts of the message
    registered_delivery: bool = True
    validity_seconds: int | None = None
    expires_at: float | None = None  # epoch seconds: a part still unsent then is not sent at all (SubmitStatus.EXPIRED)
    protocol_id: int = 0
    message_class: int | None = None
    account_id: str = ""  # whose message it is: the sandbox network applies that account's behaviour switches


@dataclasses.dataclass(slots=True)  # not frozen: built per message on the hot path (docs/decisions.md)
class SubmitOutcome:
    part_id: str
    status: SubmitStatus
    network_id: str | None = None  # the network's message id, normalised by the connector
    error: str | None = None  # human-readable reason (the SMSC's status name, ...)
    error_code: int | None = None  # the network's numeric status, when it has one
    retry_after: float | None = None  # seconds, for RETRY
    # RETRY: True when the part certainly did not reach the network (connection refused, circuit open, HTTP 429/
    # 503...), so the dispatcher may offer it to another connector at once. False (SMPP: an unanswered submit_sm
    # may have been taken) sends it back to the outbox, to be tried again after its backoff.
    unsent: bool = False
    note: str | None = None  # for the event log, e.g. "final: no receipt from upstream"


# Receipts and inbound parts are core values (the store and services use them too); named here as well because
# they are what a connector hands its sink.
ReceiptState = core_receipts.ReceiptState
Receipt = core_receipts.Receipt
InboundPart = core_inbound.InboundPart


class InboundSink(Protocol):
    """Where connectors hand what the network sends; each call returns after the data is durable."""

    async def receipts(self, receipts: Sequence[Receipt]) -> None: ...

    async def inbound(self, parts: Sequence[InboundPart]) -> None: ...


class Connector(Protocol):
    """A route to the network."""

    name: str
    # set by the operator (``POST /v1/connectors/{name}/pause``): not ``available``, health PAUSED; a paused
    # connector still takes receipts and inbound messages, it only submits nothing
    paused: bool

    @property
    def available(self) -> bool:
        """True when the connector can submit now (bound, not backing off)."""
        ...

    def health(self) -> ConnectorHealth:
        """The state shown to the operator; cheap (no I/O), called on every ``/readyz`` and metrics scrape."""
        ...

    async def start(self, sink: InboundSink) -> None:
        """Connect (and keep reconnecting in the background); returns without waiting for a bind."""
        ...

    async def submit(self, parts: Sequence[OutboundPart]) -> list[SubmitOutcome]:
        """Submit a batch; one outcome per part, in any order. Never raises for a per-part problem."""
        ...

    async def close(self) -> None:
        """Stop gracefully (unbind) and release everything."""
        ...


@dataclasses.dataclass(frozen=True, slots=True)
class UpstreamCall:
    """A request an upstream made to our receiver, ``/connectors/{name}/receipts`` or ``/connectors/{name}/inbound``.

    Header names are lower-case; ``query`` holds the URL's parameters (Vonage may call with GET)."""

    kind: Literal["receipts", "inbound"]
    method: str
    headers: Mapping[str, str]
    query: Mapping[str, str]
    body: bytes


@runtime_checkable
class Receiver(Protocol):
    """A connector whose upstream calls back with receipts or inbound messages (HTTP upstreams).

    ``receive`` checks the call (signature, token), hands what it carries to the sink and returns once that is
    durable, with how many receipts or parts it took; it raises ``errors.AuthError`` for a bad signature,
    ``errors.NotFound`` for a kind this upstream does not send and ``errors.ValidationError`` for a body it cannot
    read."""

    name: str

    async def receive(self, call: UpstreamCall) -> int: ...
