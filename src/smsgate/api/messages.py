"""Our own API: message status and history (``/v1/messages``) and the segment preview (``/v1/segments``).

Any of an account's credentials work (Bearer token or Basic api_key:api_secret); an account sees only its own
messages and its sub-accounts'. Errors: ``{"error": {"code", "message"}}`` with the matching HTTP status.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from smsgate import errors
from smsgate.api import auth, bodies, responses
from smsgate.core import accounts as core_accounts
from smsgate.core import encoding, pricing, segments
from smsgate.core import events as core_events
from smsgate.core import message as core_message

router = APIRouter(tags=["Messages"])

_STATUS = [
    (errors.TokenError, 401, "invalid_token"),
    (errors.AuthError, 401, "unauthorized"),
    (errors.NotFound, 404, "not_found"),
    (errors.TooLate, 409, "too_late"),
    (errors.QuotaExceeded, 429, "quota_exceeded"),
    (errors.RateLimited, 429, "rate_limited"),
    (errors.InsufficientBalance, 402, "insufficient_balance"),
    (errors.InsufficientScope, 403, "insufficient_scope"),
    (errors.Suppressed, 422, "suppressed"),
    (errors.PolicyError, 403, "forbidden"),
    (errors.IdempotencyKeyReused, 422, "idempotency_key_reused"),
    (errors.ValidationError, 400, "invalid_request"),
    (errors.StoreUnavailable, 503, "store_unavailable"),
    (errors.RouteUnavailable, 503, "route_unavailable"),
]
_HINTS = {404: "not_found", 405: "method_not_allowed", 400: "invalid_request"}


def render_error(request: Request, exc: Exception, status_hint: int | None) -> Response:
    headers: dict[str, str] = {}
    for cls, status, code in _STATUS:
        if isinstance(exc, cls):
            if isinstance(exc, errors.QuotaExceeded | errors.RateLimited):
                headers.update(responses.retry_after(exc.retry_after))
            if status == 401:
                headers["www-authenticate"] = 'Bearer, Basic realm="smsgate"'
            return responses.json({"error": {"code": code, "message": exc.message, **_detail(exc)}}, status, headers)
    if status_hint in _HINTS:
        detail = getattr(exc, "detail", None) or _HINTS[status_hint].replace("_", " ")
        return responses.json({"error": {"code": _HINTS[status_hint], "message": str(detail)}}, status_hint, headers)
    return responses.json({"error": {"code": "internal_error", "message": "unexpected error"}}, 500)


# a machine-readable reason for the validation errors that have one of their own
_REASONS: list[tuple[type[errors.ValidationError], str]] = [
    (errors.MissingParameter, "missing"),
    (errors.EmptyText, "empty"),
    (errors.TextTooLong, "too_long"),
    (errors.InvalidEncoding, "invalid_encoding"),
    (errors.InvalidSender, "invalid_sender"),
    (errors.InvalidUrl, "invalid_url"),
    (errors.IdempotencyKeyReused, "reused"),
]


def _detail(exc: errors.SmsgateError) -> dict[str, str]:
    """``field`` and ``reason`` of a validation error: which input is wrong, and how (``invalid`` when no more
    specific reason is known); an InvalidNumber's reason is its own (``not_a_number``, ``no_country_code``...)."""
    if not isinstance(exc, errors.ValidationError):
        return {}
    out = {"field": exc.field} if exc.field else {}
    if isinstance(exc, errors.InvalidNumber):
        out["reason"] = exc.reason
    else:
        out["reason"] = next((r for cls, r in _REASONS if isinstance(exc, cls)), "invalid")
    return out


def _amount(units: int | None) -> str:
    return pricing.format_amount(pricing.from_units(units or 0))


def _error(code: int | None, text: str | None) -> dict[str, Any] | None:
    return {"code": code, "text": text} if text else None


_DETAIL_ONLY = ("connector", "country", "client_ref", "meta")


def message_json(
    m: core_message.Message,
    parts: Sequence[core_message.Part] | None = None,
    events: Sequence[core_events.Event] | None = None,
    *,
    brief: bool = False,
    part_columns: tuple[str, ...] = ("connector",),
) -> dict[str, Any]:
    """A message as our APIs show it, with its parts and events when given (the one-message reads).

    ``brief`` leaves out what only a detail view needs (the console's list); ``part_columns`` are the part
    attributes shown besides the common ones (the console shows ``data_coding``, ``/v1`` the connector).
    """
    out: dict[str, Any] = {
        "id": m.id,
        "account_id": m.account_id,
        "batch_id": m.batch_id,
        "direction": m.direction.value,
        "dialect": m.dialect,
        "status": m.status.value,
        "from": m.sender,
        "to": m.recipient,
        "text": m.text,
        "encoding": m.encoding,
        "parts_count": m.parts_count,
        "connector": m.connector,
        "network": m.network,
        "country": m.country,
        "price": _amount(m.price),
        "client_ref": m.client_ref,
        "error": _error(m.error_code, m.error_text),
        "meta": m.meta,
        "created_at": m.created_at,
        "updated_at": m.updated_at,
    }
    if brief:
        for key in _DETAIL_ONLY:
            del out[key]
    if parts is not None:
        out["parts"] = [
            {
                "id": p.id,
                "index": p.index,
                "total": p.total,
                "status": p.status.value,
                **{c: getattr(p, c) for c in part_columns},
                "network_message_id": p.network_id,
                "text": p.text,
                "price": _amount(p.price),
                "error": _error(p.error_code, p.error_text),
                "submitted_at": p.submitted_at,
                "done_at": p.done_at,
            }
            for p in parts
        ]
        out["events"] = [{"type": e.type.value, "part_id": e.part_id, "at": e.at, "data": e.data} for e in events or ()]
    return out


# -- response bodies, for the OpenAPI document ---------------------------------------------------------------
class ErrorOut(BaseModel):
    code: int | None
    text: str


MessageStatus = Literal[
    "scheduled", "accepted", "submitted", "delivered", "expired", "failed", "rejected", "canceled", "received"
]
PartStatus = Literal["accepted", "submitted", "delivered", "expired", "failed", "rejected", "canceled", "received"]


class MessageOut(BaseModel):
    id: str
    account_id: str = Field(description="its account: the caller's own or one of its sub-accounts'")
    batch_id: str | None = Field(description="the batch it came in (KPN document_id, /v1/batches id)")
    direction: Literal["outbound", "inbound"]
    dialect: str
    status: MessageStatus = Field(
        description="scheduled (waiting for its send time) → accepted → submitted → delivered, or a final "
        "expired / failed / rejected / canceled; received for an inbound message"
    )
    from_: str = Field(alias="from")
    to: str
    text: str | None
    encoding: str
    parts_count: int
    connector: str | None
    network: str | None
    country: str | None
    price: str
    client_ref: str | None
    error: ErrorOut | None
    meta: dict[str, Any] | None
    created_at: float
    updated_at: float


class PartOut(BaseModel):
    id: str
    index: int
    total: int
    status: PartStatus
    connector: str | None
    network_message_id: str | None
    text: str | None
    price: str
    error: ErrorOut | None
    submitted_at: float | None
    done_at: float | None


class EventOut(BaseModel):
    type: str
    part_id: str | None
    at: float
    data: Any


class MessageDetailOut(MessageOut):
    parts: list[PartOut]
    events: list[EventOut]


class MessagesOut(BaseModel):
    messages: list[MessageOut]
    next_cursor: str | None


class PreviewOut(BaseModel):
    encoding: Literal["gsm7", "ucs2"]
    parts: int
    units: int
    remaining_in_last_part: int
    non_gsm_characters: list[str]
    parts_text: list[str]


class RewriteOut(PreviewOut):
    text: str
    saves_parts: int


class SegmentsOut(PreviewOut):
    rewrite: RewriteOut | None = Field(None, description="only when asked for (rewrite: true)")


@router.get(
    "/v1/messages/{message_id}",
    summary="A message with its parts and events",
    openapi_extra={"security": [{"kpnOAuth2": []}, {"basicAuth": []}]},
    responses={200: {"model": MessageDetailOut}},
)
async def get_message(
    message_id: str, request: Request, account: core_accounts.Account = Depends(auth.any_credentials)
) -> Response:
    found = await auth.gateway(request).message(account, message_id)
    return responses.json(message_json(found.message, found.parts, found.events))


@router.post(
    "/v1/messages/{message_id}/cancel",
    summary="Cancel a message that has not been submitted yet (a scheduled one, or one still waiting)",
    description="The message becomes `canceled`, its price goes back to the balance, and a `message.canceled` "
    "webhook goes to its callback. A message already submitted (or being submitted at this moment) answers 409 "
    "`too_late`; canceling a canceled message again answers it as it is.",
    openapi_extra={"security": [{"kpnOAuth2": []}, {"basicAuth": []}]},
    responses={
        200: {"model": MessageDetailOut, "description": "Canceled"},
        404: {"description": "No such message of this account"},
        409: {
            "description": "Submitted already: too late to cancel",
            "content": {
                "application/json": {
                    "example": {
                        "error": {
                            "code": "too_late",
                            "message": "the message is submitted already and can no longer be canceled",
                        }
                    }
                }
            },
        },
    },
)
async def cancel_message(
    message_id: str, request: Request, account: core_accounts.Account = Depends(auth.any_credentials)
) -> Response:
    found = await auth.gateway(request).cancel(account, message_id)
    return responses.json(message_json(found.message, found.parts, found.events))


@router.get(
    "/v1/messages",
    summary="Messages, newest first, with filters and cursor paging",
    openapi_extra={"security": [{"kpnOAuth2": []}, {"basicAuth": []}]},
    responses={200: {"model": MessagesOut}},
)
async def list_messages(
    request: Request,
    account: core_accounts.Account = Depends(auth.any_credentials),
    direction: Literal["outbound", "inbound"] | None = None,
    status: str | None = None,
    number: str | None = Query(None, description="matches sender or recipient"),
    sender: str | None = None,
    dialect: str | None = None,
    since: float | None = Query(None, description="epoch seconds"),
    until: float | None = Query(None, description="epoch seconds"),
    q: str | None = Query(None, description="text contains"),
    cursor: str | None = None,
    limit: int = Query(50, ge=1, le=500),
) -> Response:
    rows = await auth.gateway(request).reads.list(
        account.id,
        direction=direction,
        status=status,
        number=number,
        sender=sender,
        dialect=dialect,
        since=since,
        until=until,
        text=q,
        before=responses.after_cursor(cursor),
        limit=limit + 1,
    )
    more = len(rows) > limit
    rows = rows[:limit]
    nxt = responses.cursor(rows[-1].created_at, rows[-1].id) if more and rows else None
    return responses.json({"messages": [message_json(r) for r in rows], "next_cursor": nxt})


class SegmentsIn(BaseModel):
    text: str = Field(..., examples=["Hello ’world’ – this costs a part more than it should…"])
    encoding: Literal["gsm7", "ucs2"] | None = None
    rewrite: bool = Field(False, description="also show a GSM-7 rewrite of look-alike characters")


@router.post(
    "/v1/segments",
    summary="How a text will be encoded and split, before you send it",
    openapi_extra={"security": [{"kpnOAuth2": []}, {"basicAuth": []}], **bodies.doc(SegmentsIn)},
    responses={200: {"model": SegmentsOut}},
)
async def segments_preview(
    request: Request, account: core_accounts.Account = Depends(auth.any_credentials)
) -> Response:
    body = await bodies.parse(request, SegmentsIn)
    forced = encoding.Encoding(body.encoding) if body.encoding else None
    seg = segments.segment_text(body.text, encoding=forced)
    out: dict[str, Any] = _preview(seg)
    if body.rewrite:
        rewritten = encoding.gsm_rewrite(body.text)
        alt = segments.segment_text(rewritten, encoding=forced) if rewritten else None
        out["rewrite"] = (
            {"text": rewritten, **_preview(alt), "saves_parts": seg.count - alt.count} if alt is not None else None
        )
    return responses.json(out)


def _preview(seg: segments.Segmentation) -> dict[str, Any]:
    return {
        "encoding": seg.encoding.value,
        "parts": seg.count,
        "units": seg.units,
        "remaining_in_last_part": seg.remaining_in_last_part,
        "non_gsm_characters": list(seg.non_gsm_characters),
        "parts_text": [p.text for p in seg.parts],
    }
