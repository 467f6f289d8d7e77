"""Our own batches (``/v1/batches``): one text with ``{placeholders}`` to many recipients, in one transaction.

Unlike KPN's batch call, a bad recipient does not sink the batch: it is refused with its index and reason (a
number that is not one, a destination the account may not reach, a placeholder without a value) and the rest are
accepted. A batch is read back with its counts per status and cost, its messages page by page, and what has not
been submitted yet can be cancelled. Errors are our API's ``{"error": {"code", "message"}}``.
"""

from __future__ import annotations

import re
import time
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from smsgate import errors
from smsgate.api import auth, bodies, responses
from smsgate.api.messages import message_json
from smsgate.core import accounts as core_accounts
from smsgate.core import numbers, pricing, schedule
from smsgate.services import batches
from smsgate.services import numbers as services_numbers
from smsgate.store import batches as store_batches

router = APIRouter(tags=["Batches"])
SECURITY: dict[str, Any] = {"security": [{"kpnOAuth2": []}, {"basicAuth": []}]}
PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]{0,63})\}")


class RecipientIn(BaseModel):
    to: str = Field(..., max_length=40, examples=["+31612345678"])
    vars: dict[str, str | int | float] | None = Field(None, description="values for the text's {placeholders}")


class BatchIn(BaseModel):
    from_: str | None = Field(None, alias="from", max_length=20, description="sender; default: the account's")
    text: str = Field(..., min_length=1, max_length=1600, examples=["Hi {name}, your code is {code}"])
    recipients: list[RecipientIn] = Field(..., min_length=1, description="at most SMSGATE_BATCH_MAX")
    send_at: str | None = Field(None, description="ISO-8601 time or +<seconds>s (scheduling, issue 19)")
    validity_seconds: int | None = Field(None, description="how long the network may keep trying")
    priority: str | None = Field(None, description="lane: " + ", ".join(p.value for p in schedule.Priority))
    callback_url: str | None = Field(None, max_length=2000, description="our message.<status> events per recipient")
    account: str | None = Field(None, description="send as this sub-account of the caller (its name)")


class RefusalOut(BaseModel):
    index: int
    to: str
    reason: str


class BatchCreatedOut(BaseModel):
    id: str
    accepted: int
    refused: list[RefusalOut]
    parts: int
    price: str
    remaining_balance: str | None = Field(None, description="absent in a replayed answer")


class BatchOut(BaseModel):
    id: str
    account_id: str
    kind: str
    created_at: float
    messages: int
    parts: int
    refused: int
    price: str
    statuses: dict[str, int] = Field(description="messages per status, now")


def render(text: str, values: dict[str, Any] | None) -> str:
    """``text`` with each ``{name}`` replaced by its value; KeyError naming the first one without a value."""
    given = values or {}

    def one(m: re.Match[str]) -> str:
        return str(given[m.group(1)])

    return PLACEHOLDER.sub(one, text)


def summary_json(b: store_batches.Summary) -> dict[str, Any]:
    return {"id": b.id, "account_id": b.account_id, "kind": b.kind, "created_at": b.created_at,
            "messages": b.messages, "parts": b.parts, "refused": b.refused,
            "price": pricing.format_amount(pricing.from_units(b.price)), "statuses": b.statuses}  # fmt: skip


@router.post(
    "/v1/batches",
    summary="Send one text (with {placeholders}) to many recipients: one transaction, bad recipients refused",
    status_code=201,
    openapi_extra={
        **SECURITY,
        **bodies.doc(BatchIn),
        "parameters": [
            {
                "name": "Idempotency-Key",
                "in": "header",
                "required": False,
                "schema": {"type": "string", "maxLength": 100},
                "description": "stored with the batch in its transaction: a repeat answers the first call's 201 "
                "again (header Idempotent-Replayed: true, without remaining_balance) and sends nothing",
            }
        ],
    },
    responses={201: {"model": BatchCreatedOut}, 400: {"description": "Bad body, or every recipient refused"}},
)
async def create(request: Request, caller: core_accounts.Account = Depends(auth.any_credentials)) -> Response:
    settings = request.app.state.settings
    key = request.headers.get("idempotency-key")
    if key is not None and not 1 <= len(key) <= 100:
        raise errors.ValidationError("Idempotency-Key must be 1 to 100 characters")
    body = await bodies.parse(request, BatchIn, limit=settings.batch_max_request_bytes)
    gw = auth.gateway(request)
    account = await gw.acting_as(caller, body.account)
    if key is not None:
        seen = await _reads(request).answer(account.id, key)
        if seen is not None:  # this batch was stored already: its answer again, nothing sent twice
            return responses.json(seen, 201, {"idempotent-replayed": "true"})
    if len(body.recipients) > settings.batch_max:
        raise errors.ValidationError(f"at most {settings.batch_max} recipients per batch, got {len(body.recipients)}")
    now = time.time()
    recipients: list[batches.Recipient] = []
    refused: list[batches.Refusal] = []
    for i, r in enumerate(body.recipients):
        try:
            number = numbers.parse_international(r.to)
            text = render(body.text, r.vars)
        except errors.InvalidNumber as exc:
            refused.append(batches.Refusal(i, r.to, exc.message))
            continue
        except KeyError as exc:
            refused.append(batches.Refusal(i, r.to, f"no value for the placeholder {{{exc.args[0]}}}"))
            continue
        recipients.append(batches.Recipient(number, text, f"recipients[{i}]", i))
    callback = body.callback_url
    if callback:
        callback = services_numbers.check_url(callback, allow_private=settings.webhooks_allow_private)
    req = batches.BatchRequest(
        account=account,
        dialect="api",
        kind="api",
        recipients=recipients,
        sender=body.from_,
        callback_url=callback or None,
        ttl_seconds=schedule.parse_validity(body.validity_seconds) if body.validity_seconds is not None else None,
        refused=refused,
        partial=True,
        send_at=schedule.parse_send_at(body.send_at, now=now) if body.send_at else None,
        priority=schedule.parse_priority(body.priority) if body.priority else None,
        idempotency_key=key,
    )
    result = await batches.send_batch(gw, req)
    out = {
        "id": result.batch_id,
        "accepted": len(result.message_ids),
        "refused": [{"index": f.index, "to": f.to, "reason": f.reason} for f in result.refused],
        "parts": result.parts,
        "price": pricing.format_amount(result.price),
        "remaining_balance": pricing.format_amount(result.remaining_balance),
    }
    return responses.json(out, 201)


def _reads(request: Request) -> store_batches.BatchReads:
    return request.app.state.batches  # type: ignore[no-any-return]


async def _batch(request: Request, account: core_accounts.Account, batch_id: str) -> store_batches.Summary:
    found = await _reads(request).get(account.id, batch_id)
    if found is None:
        raise errors.NotFound("no such batch")
    return found


@router.get(
    "/v1/batches",
    summary="Batches, newest first (the caller's and its sub-accounts')",
    openapi_extra=SECURITY,
)
async def list_batches(
    request: Request,
    account: core_accounts.Account = Depends(auth.any_credentials),
    cursor: str | None = None,
    limit: int = Query(50, ge=1, le=200),
) -> Response:
    found = await _reads(request).list(account.id, before=responses.after_cursor(cursor), limit=limit + 1)
    return responses.page("batches", found, limit, summary_json, lambda b: responses.cursor(b.created_at, b.id))


@router.get(
    "/v1/batches/{batch_id}",
    summary="A batch: its messages per status and its cost",
    openapi_extra=SECURITY,
    responses={200: {"model": BatchOut}},
)
async def get_batch(
    batch_id: str, request: Request, account: core_accounts.Account = Depends(auth.any_credentials)
) -> Response:
    return responses.json(summary_json(await _batch(request, account, batch_id)))


@router.get(
    "/v1/batches/{batch_id}/messages",
    summary="A batch's messages, page by page (cursor: next_cursor of the previous page)",
    openapi_extra=SECURITY,
)
async def batch_messages(
    batch_id: str,
    request: Request,
    account: core_accounts.Account = Depends(auth.any_credentials),
    status: str | None = None,
    cursor: str | None = Query(None, max_length=64),
    limit: int = Query(100, ge=1, le=1000),
) -> Response:
    await _batch(request, account, batch_id)
    found = await _reads(request).messages(batch_id, status=status, after=cursor, limit=limit + 1)
    return responses.page("messages", found, limit, message_json, lambda m: m.id)


@router.post(
    "/v1/batches/{batch_id}/cancel",
    summary="Cancel what of a batch is not yet submitted",
    description="Each message still `scheduled` or `accepted` becomes `canceled` as `POST /v1/messages/{id}/cancel` "
    "does (refunded, quota given back, a `message.canceled` event); messages already submitted go on. Answers how "
    "many were canceled now and how many were too late, with the batch as it is after.",
    openapi_extra=SECURITY,
)
async def cancel_batch(
    batch_id: str, request: Request, account: core_accounts.Account = Depends(auth.any_credentials)
) -> Response:
    found = await _batch(request, account, batch_id)
    gw = auth.gateway(request)
    owner = account if found.account_id == account.id else await gw.account(found.account_id)
    if owner is None:
        raise errors.NotFound("no such batch")
    canceled, too_late = await gw.cancel_many(owner, _reads(request).unsent(batch_id))
    after = await _batch(request, account, batch_id)
    return responses.json({"canceled": canceled, "too_late": too_late, "batch": summary_json(after)})
