"""Our own send: ``POST /v1/messages`` (Bearer token or Basic api_key:api_secret).

JSON in, ``201 Created`` out with ``Location: /v1/messages/{id}`` and the message exactly as
``GET /v1/messages/{id}`` shows it at that moment (built from the values just stored, no read back). Any country
the account may send to (E.164); the segments and prices come from the core, as in every dialect. ``send_at``,
``validity_seconds`` and ``priority`` are parsed by ``core.schedule`` and carried on the ``SendRequest``; a
``callback_url`` obeys the webhook target policy. Errors are ``{"error": {code, message, field, reason}}``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Literal, TypeVar

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from smsgate import errors
from smsgate.api import auth, bodies, idempotent, responses
from smsgate.api import messages as api_messages
from smsgate.core import accounts as core_accounts
from smsgate.core import encoding, numbers, schedule
from smsgate.core import events as core_events
from smsgate.services import numbers as services_numbers
from smsgate.services import sending

router = APIRouter(tags=["Messages"])

MAX_CHARS = 3200  # as Vonage: a longer text is refused, not cut
MAX_BINARY = 140 * 255  # octets: at most 255 parts
_HEX = re.compile(r"(?:[0-9a-fA-F]{2})*")


class BinaryIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    udh: str | None = Field(None, max_length=2 * 140, description="user data header, hex (e.g. a port header)")
    data: str = Field(..., min_length=2, max_length=2 * MAX_BINARY, description="payload, hex")


class SendIn(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    to: str = Field(..., max_length=32, examples=["+31612345678"], description="E.164, with or without +")
    from_: str | None = Field(
        None, alias="from", max_length=20, description="sender; the account's default when absent"
    )
    text: str | None = Field(None, max_length=MAX_CHARS, examples=["Your code is 123456"])
    binary: BinaryIn | None = Field(None, description="instead of text")
    send_at: str | None = Field(None, description="ISO-8601 with offset, or relative: +3600s")
    validity_seconds: int | None = Field(None, description=f"1 … {schedule.MAX_VALIDITY_SECONDS}")
    priority: Literal["high", "normal", "bulk"] | None = None
    callback_url: str | None = Field(None, max_length=services_numbers.MAX_URL, description="receipts for this one")
    client_ref: str | None = Field(None, max_length=100)
    encoding: Literal["auto", "gsm7", "ucs2"] = "auto"


class SentOut(api_messages.MessageDetailOut):
    pass


def _error_doc(description: str, code: str, field: str | None = None, reason: str = "invalid") -> dict[str, object]:
    error: dict[str, object] = {"code": code, "message": "…", "reason": reason}
    if field:
        error["field"] = field
    return {"description": description, "content": {"application/json": {"example": {"error": error}}}}


@router.post(
    "/v1/messages",
    summary="Send a message",
    status_code=201,
    openapi_extra={
        "security": [{"kpnOAuth2": []}, {"basicAuth": []}],
        "parameters": [idempotent.HEADER_DOC],
        **bodies.doc(SendIn),
    },
    responses={
        201: {
            "model": SentOut,
            "description": "Accepted; `Location` names it. With a replayed Idempotency-Key: the first answer again, "
            "with `Idempotent-Replayed: true`.",
            "headers": {
                "Location": {"schema": {"type": "string"}, "description": "/v1/messages/{id}"},
                "Idempotent-Replayed": {
                    "schema": {"type": "string", "enum": ["true"]},
                    "description": "only on a replayed answer",
                },
            },
        },
        400: _error_doc("Invalid input; `field` names it", "invalid_request", "to", "no_country_code"),
        401: _error_doc("Missing or bad credentials", "unauthorized"),
        402: _error_doc("The balance does not cover the message", "insufficient_balance"),
        403: _error_doc("Destination or sender not allowed for this account", "forbidden"),
        422: _error_doc(
            "Idempotency-Key used before with another request", "idempotency_key_reused", "Idempotency-Key", "reused"
        ),
        429: _error_doc("Quota used up or rate limited (see Retry-After)", "quota_exceeded"),
        503: _error_doc("Store or route unavailable; nothing was stored", "store_unavailable"),
    },
)
async def send_message(request: Request, account: core_accounts.Account = Depends(auth.any_credentials)) -> Response:
    raw = await bodies.read(request)
    body = bodies.validate(raw, SendIn)
    req = send_request(account, body, allow_private=bool(request.app.state.settings.webhooks_allow_private))
    try:
        return await idempotent.send(request, req, _created, raw)
    except errors.ValidationError as exc:
        raise exc.at(exc.field or next((f for cls, f in _FIELDS if isinstance(exc, cls)), None)) from None


# the field a validation error from the send itself (segmenting, the sender) is about
_FIELDS: list[tuple[type[errors.ValidationError], str]] = [
    (errors.InvalidSender, "from"),
    (errors.InvalidNumber, "to"),
    (errors.EmptyText, "text"),
    (errors.TextTooLong, "text"),
    (errors.InvalidEncoding, "encoding"),
]


def _created(result: sending.SendResult) -> Response:
    m = result.message
    body = api_messages.message_json(m, result.stored_parts, [core_events.accepted(m)])
    return responses.json(body, 201, {"location": f"/v1/messages/{m.id}"})


def send_request(account: core_accounts.Account, body: SendIn, *, allow_private: bool) -> sending.SendRequest:
    """The body as a SendRequest; each error names its field."""
    if not body.to.strip():
        raise errors.InvalidNumber("to is required", reason="empty").at("to")
    recipient = _field("to", numbers.parse_international, body.to)
    assert recipient is not None
    req = sending.SendRequest(
        account=account, dialect="v1", recipient=recipient, sender=body.from_, max_chars=MAX_CHARS
    )
    if (body.text is None) == (body.binary is None):
        raise errors.ValidationError("give either text or binary").at("text")
    if body.binary is not None:
        if body.encoding != "auto":
            raise errors.ValidationError("encoding applies to text only").at("encoding")
        req.body = _hex(body.binary.data, "binary.data")
        req.udh = _hex(body.binary.udh, "binary.udh") if body.binary.udh else None
    else:
        if body.text == "":
            raise errors.EmptyText("text must not be empty").at("text")
        req.text = body.text
        req.encoding = None if body.encoding == "auto" else encoding.Encoding(body.encoding)
    now = time.time()
    req.send_at = _field("send_at", lambda v: schedule.parse_send_at(v, now=now), body.send_at)
    req.ttl_seconds = _field("validity_seconds", schedule.parse_validity, body.validity_seconds)
    req.priority = _field("priority", schedule.parse_priority, body.priority)
    if body.callback_url is not None:
        req.callback_url = _field(
            "callback_url", lambda u: services_numbers.check_url(u, allow_private=allow_private), body.callback_url
        )
    if body.client_ref is not None and not body.client_ref.isprintable():
        raise errors.ValidationError("control characters are not allowed").at("client_ref")
    req.client_ref = body.client_ref
    return req


T = TypeVar("T")
V = TypeVar("V")


def _field(name: str, parse: Callable[[V], T], value: V | None) -> T | None:
    """``parse(value)`` (None stays None), its ValidationError naming ``name``."""
    if value is None:
        return None
    try:
        return parse(value)
    except errors.ValidationError as exc:
        raise exc.at(name) from None


def _hex(raw: str, field: str) -> bytes:
    if not _HEX.fullmatch(raw):
        raise errors.InvalidEncoding("not hex octets").at(field)
    return bytes.fromhex(raw)
