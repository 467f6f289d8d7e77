"""KPN's successor SMS API with bulk: ``POST /communication/kpn/sms/send`` (reference notes §2.2, swagger "SMS - KPN").

The same OAuth2 token, KPN headers and ``errorResponse`` bodies as v1 (``api.dialects.kpn``, whose helpers this
module shares: one dialect in two modules). A call carries up to ``SMSGATE_KPN_BATCH_MAX`` (5,000) ``messages``
items and as many recipients in all (an item's ``mobile_number`` may list several, comma-separated).

Decisions (docs/decisions.md): numbers follow v1's Dutch mobile rules (06, +316, 00316, 316 and 097 M2M; the
successor's docs call the API "global" in one place and list only Dutch formats in another, and a gateway
that bills one Dutch price table must not guess); ``expirein`` is the validity in seconds, 20 to 604800 (7 days,
the longest validity SMSCs take), sent as a string or a number; ``sender`` defaults to ``KPN``. Validation is all
or nothing: one bad item refuses the call (400 naming ``messages[i]`` and the number) and nothing is stored.

An ``Idempotency-Key`` works as on every send (``api.idempotent``): the key is claimed in the batch's own accept
transaction (no lookup first), a retry gets the first answer byte for byte, and the same key with another body,
``SubAccount`` or send header is refused with KPN's 400. Keys belong to the caller (the token's account), so a
sub-account named in the header cannot turn a reused key into a second batch.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from smsgate import errors
from smsgate.api import apigee, fastpath, idempotent, send_options
from smsgate.api.dialects import kpn
from smsgate.core import accounts as core_accounts
from smsgate.core import idempotency as core_idempotency
from smsgate.core import numbers
from smsgate.services import batches, sending
from smsgate.services import numbers as services_numbers

PATH = "/communication/kpn/sms/send"
DEFAULT_SENDER = "KPN"
MIN_EXPIRE, MAX_EXPIRE = 20, 604_800

router = APIRouter(tags=["KPN SMS API (batch)"])

SEND_EXAMPLE = {
    "sender": "KPN",
    "webhook_url": "https://example.com/kpn-receipts",
    "expirein": "3600",
    "messages": [
        {"mobile_number": "0612345678,+31687654321", "content": "Your order has shipped"},
        {"mobile_number": "0611111111", "content": "Hi from KPN!"},
    ],
}
SEND_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["messages"],
    "properties": {
        "sender": {"type": "string", "minLength": 1, "maxLength": 11, "default": DEFAULT_SENDER},
        "webhook_url": {
            "type": "string",
            "description": "Receipts per recipient, POSTed as JSON (docs/webhooks.md); tried at once and again "
            "after 60, 120 and 240 s (SMSGATE_KPN_WEBHOOK_RETRY_DELAYS)",
        },
        "expirein": {"type": "string", "pattern": "^[0-9]+$", "description": "validity in seconds, 20-604800"},
        "messages": {
            "type": "array",
            "minItems": 1,
            "maxItems": 5000,
            "items": {
                "type": "object",
                "required": ["mobile_number", "content"],
                "properties": {
                    "mobile_number": {
                        "type": "string",
                        "description": "Dutch mobile number(s), comma-separated: 06…, +316…, 00316…, 097…",
                    },
                    "content": {"type": "string", "minLength": 1, "maxLength": 1000},
                },
            },
        },
    },
    "example": SEND_EXAMPLE,
}


@router.options(PATH, include_in_schema=False)
async def preflight(request: Request) -> Response:
    return Response(status_code=200, headers=kpn.standard_headers(request, None), media_type="application/json")


@router.post(
    PATH,
    summary="Send SMS to up to 5,000 Dutch mobile numbers in one call (one transaction)",
    openapi_extra={
        "parameters": [kpn.SUBACCOUNT_HEADER, idempotent.HEADER_DOC, *send_options.openapi_parameters()],
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": SEND_SCHEMA, "example": SEND_EXAMPLE}},
        },
        "security": [{"kpnOAuth2": []}],
    },
    responses={
        200: {
            "description": "Every message stored, in one transaction; document_id names the batch (a replayed "
            "Idempotency-Key: the first answer, byte for byte, with Idempotent-Replayed: true)",
            "content": {
                "application/json": {"example": {"document_id": "b4e905d4-774c-4c83-8360-01427e17a33a", "status": "OK"}}
            },
        },
        400: {
            "description": "Bad request: nothing was stored (also an Idempotency-Key used before with another "
            "request: another body, SubAccount, X-Send-At, X-Priority or X-Validity-Seconds)",
            "content": kpn.error_content(
                "400", "Bad Request", 'messages[3]: "0601234567": 06-0 numbers are not valid Dutch mobile numbers.'
            ),
        },
        401: {
            "description": "Invalid or expired token",
            "content": {"application/json": {"example": apigee.INVALID_TOKEN}},
        },
        403: {
            "description": "Insufficient balance, a destination not allowed, or SubAccount not the caller's",
            "content": kpn.error_content("403", "Forbidden", "Insufficient balance"),
        },
        429: {"description": "Quota used up (counted in parts, all recipients)"},
        503: {
            "description": "Store unavailable; nothing was stored",
            "content": kpn.error_content("503", "Service Unavailable", "the store is unavailable"),
        },
    },
)
@fastpath.hot
async def send(request: Request) -> Response:
    gw, caller, account = await kpn.callers(request)
    return await kpn.with_quota(request, gw, account, lambda: _send(request, gw, caller, account))


async def _send(
    request: Request, gw: sending.Gateway, caller: core_accounts.Account, account: core_accounts.Account
) -> Response:
    settings = request.app.state.settings
    body, data = await kpn.json_body(request, settings.batch_max_request_bytes)
    req = _parse(data, settings, account)
    given = send_options.Given(ttl_seconds=req.ttl_seconds)  # expirein wins over X-Validity-Seconds
    send_options.apply(request, given)
    req = dataclasses.replace(req, send_at=given.send_at, ttl_seconds=given.ttl_seconds, priority=given.priority)

    def answer(result: batches.BatchResult) -> Response:
        request.state.quota = result.quota
        return kpn.kpn_json(request, 200, {"document_id": result.batch_id, "status": "OK"}, result.quota)

    raw = request.headers.get(core_idempotency.HEADER)
    if raw is None:
        return answer(await batches.send_batch(gw, req))

    async def perform(key: str, fingerprint: str) -> core_idempotency.StoredResponse:
        reply = batches.Reply(caller.id, key, fingerprint, lambda result: idempotent.stored(answer(result)))
        await batches.send_batch(gw, dataclasses.replace(req, reply=reply))
        assert reply.response is not None  # rendered in the accept transaction
        return reply.response

    # keys are the caller's: the same key with another SubAccount is another request, refused, not a new batch
    return await idempotent.once(request, caller.id, raw, perform, body, request.headers.get("subaccount", ""))


def _parse(data: Any, settings: Any, account: Any) -> batches.BatchRequest:
    if not isinstance(data, dict):
        raise errors.ValidationError("The body must be a JSON object")
    unknown = set(data) - {"sender", "webhook_url", "expirein", "messages"}
    if unknown:
        raise errors.ValidationError(f"Unknown field(s): {', '.join(sorted(unknown))}")
    sender = data.get("sender", DEFAULT_SENDER)
    if not isinstance(sender, str) or not 1 <= len(sender) <= 11:
        raise errors.InvalidSender("sender must be a string of 1 to 11 characters")
    webhook_url = data.get("webhook_url")
    if webhook_url is not None:
        if not isinstance(webhook_url, str):
            raise errors.InvalidUrl("webhook_url must be a string")
        webhook_url = (
            services_numbers.check_url(webhook_url, allow_private=settings.webhooks_allow_private)
            if webhook_url
            else None
        )
    limit = settings.kpn_batch_max
    msgs = data.get("messages")
    if not isinstance(msgs, list) or not msgs:
        raise errors.ValidationError(f"messages is required: a list of 1 to {limit} messages")
    if len(msgs) > limit:
        raise errors.ValidationError(f"At most {limit} messages per call, got {len(msgs)}")
    recipients: list[batches.Recipient] = []
    for i, msg in enumerate(msgs):
        recipients += _item(i, msg, settings.kpn_max_chars)
        if len(recipients) > limit:
            raise errors.ValidationError(f"At most {limit} recipients per call (messages × mobile numbers)")
    return batches.BatchRequest(account=account, dialect="kpn", kind="kpn", recipients=recipients, sender=sender,
                                max_chars=settings.kpn_max_chars, callback_url=webhook_url,
                                ttl_seconds=_expirein(data.get("expirein")))  # fmt: skip


def _item(i: int, msg: Any, max_chars: int) -> list[batches.Recipient]:
    where = f"messages[{i}]"
    if not isinstance(msg, dict):
        raise errors.ValidationError(f"{where} must be an object with mobile_number and content")
    extra = set(msg) - {"mobile_number", "content"}
    if extra:
        raise errors.ValidationError(f"{where}: unknown field(s): {', '.join(sorted(extra))}")
    content = msg.get("content")
    if not isinstance(content, str):
        raise errors.ValidationError(f"{where}: content is required and must be a string")
    if content == "":
        raise errors.EmptyText(f"{where}: content must not be empty")
    if len(content) > max_chars:
        raise errors.TextTooLong(f"{where}: content is longer than {max_chars} characters")
    raw = msg.get("mobile_number")
    if not isinstance(raw, str) or not raw.strip():
        raise errors.InvalidNumber(f"{where}: mobile_number is required", reason="empty")
    out = []
    for piece in raw.split(","):
        number = piece.strip()
        try:
            parsed = numbers.parse_dutch_mobile(number)
        except errors.InvalidNumber as exc:
            raise errors.InvalidNumber(f'{where}: "{number}": {exc.message}', reason=exc.reason) from None
        out.append(batches.Recipient(parsed, content, f'{where} "{number}"'))
    return out


def _expirein(value: Any) -> float | None:
    if value is None:
        return None
    text = str(value).strip() if isinstance(value, str | int) and not isinstance(value, bool) else ""
    if not text.isdigit() or not MIN_EXPIRE <= int(text) <= MAX_EXPIRE:
        raise errors.ValidationError(f"expirein must be a number of seconds from {MIN_EXPIRE} to {MAX_EXPIRE}")
    return float(text)
