"""The send options the vendor dialects take as headers, since their bodies have no field for them:

    X-Send-At            ISO-8601 with an offset (2026-12-24T09:00:00+01:00) or relative (+3600s): scheduled
    X-Validity-Seconds   1 … 604800: not submitted by then, the message ends ``expired`` (Vonage's ``ttl`` wins)
    X-Priority           high | normal | bulk: the dispatcher's lane (else the account's default)

One pass over the raw header list, so a send without them pays a few comparisons (the hot path); the values are
parsed by ``core.schedule``, and a bad one is the dialect's own 400-class error (a ``ValidationError``).
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Protocol

from fastapi import Request

from smsgate import errors
from smsgate.core import schedule


class Options(Protocol):
    """What the headers set: a single send's ``sending.SendRequest`` or a whole batch's ``batches.BatchRequest``."""

    send_at: float | None
    ttl_seconds: float | None
    priority: schedule.Priority | None


@dataclasses.dataclass(slots=True)
class Given:
    """The options on their own, for a request value that is frozen (a batch's): read, then copied onto it."""

    send_at: float | None = None
    ttl_seconds: float | None = None
    priority: schedule.Priority | None = None


SEND_AT, VALIDITY, PRIORITY = b"x-send-at", b"x-validity-seconds", b"x-priority"
_NAMES = frozenset({SEND_AT, VALIDITY, PRIORITY})
MAX_VALUE = 64  # longer is no date, number or lane: refused before parsing


def apply(request: Request, req: Options) -> None:
    """Set ``req``'s send time, validity and lane from the request's headers, where given."""
    for name, raw in request.scope["headers"]:  # ASGI names are lower-case bytes
        if name not in _NAMES:
            continue
        if len(raw) > MAX_VALUE:
            raise errors.ValidationError(f"{name.decode()} is too long")
        value = raw.decode("latin-1")
        if name == SEND_AT:
            req.send_at = schedule.parse_send_at(value, now=time.time())
        elif name == VALIDITY:
            if req.ttl_seconds is None:
                req.ttl_seconds = schedule.parse_validity(value)
        else:
            req.priority = schedule.parse_priority(value)


def given_raw(request: Request) -> list[bytes]:
    """The headers as sent, for an ``Idempotency-Key``'s fingerprint: a retry that changes the send time, validity
    or lane is another request, not a replay."""
    return [name + b"=" + raw for name, raw in request.scope["headers"] if name in _NAMES]


def openapi_parameters() -> list[dict[str, Any]]:
    """The headers, for a send endpoint's OpenAPI ``parameters``."""
    return [
        {
            "name": "X-Send-At",
            "in": "header",
            "required": False,
            "schema": {"type": "string", "examples": ["2026-12-24T09:00:00+01:00", "+3600s"]},
            "description": "Send later: ISO-8601 with a UTC offset, or +<seconds>s. The message is `scheduled` "
            "until then (cancel it with POST /v1/messages/{id}/cancel); a time that has passed means now.",
        },
        {
            "name": "X-Validity-Seconds",
            "in": "header",
            "required": False,
            "schema": {"type": "integer", "minimum": 1, "maximum": schedule.MAX_VALIDITY_SECONDS},
            "description": "Validity: a part not submitted within this many seconds (from its send time) ends "
            "`expired` and is never sent late; passed to SMPP as validity_period. (Vonage: `ttl` wins.)",
        },
        {
            "name": "X-Priority",
            "in": "header",
            "required": False,
            "schema": {"type": "string", "enum": [p.value for p in schedule.Priority]},
            "description": "The dispatcher lane: high (one-time codes) before normal before bulk, by weight; "
            "default: the account's.",
        },
    ]
