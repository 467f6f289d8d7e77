"""Vonage (Nexmo) SMS and Phone Numbers through KPN's API Store (``/communication/nexmo/...``).

Same Vonage wire format as the native dialect (``api.vonage_sms``, ``api.vonage_numbers``), but authenticated with the KPN OAuth2
Bearer token (``/oauth/client_credential/accesstoken``) instead of api_key/api_secret. Gateway-level failures come
out as KPN's Apigee bodies: a bad or expired token is ``401 {"fault": …}`` and a used-up quota (the KPN product
quota, enforced before the request reaches Vonage) is ``429 {"fault": …QuotaViolation}``; everything else on
``/sms/send`` is HTTP 200 with a Vonage status (an account TPS limit is status 1, Throttled).

Account levels, as KPN splits them: ``/sms/register`` is for demo-level accounts and ``phone-numbers/number/update``
for production ones; the other level gets KPN's 403 saying which to use. ``status-report-req`` defaults to false
here (KPN's swagger), true on the native Vonage API.

KPN demo extras (reference notes §2.5): ``/sms/register`` claims a number for the account (first come, one account
per number; never a number another account owns, holds in the pool or sends from) with a callback,
and the ``inbound: yes`` header on ``/sms/send`` marks the message so replies to its ``from`` number go to that
callback (``SendRequest.reply_routing``; the planner routes replies by the ``callbacks`` table).
"""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from smsgate import errors
from smsgate.api import apigee, auth, fastpath, idempotent, responses, send_options, vonage_numbers, vonage_sms
from smsgate.core import accounts as core_accounts

BASE = "/communication/nexmo"
PREFIXES = (BASE + "/",)
SMS = BASE + "/sms"
NUMBERS = BASE + "/phone-numbers"
UPDATE = NUMBERS + "/number/update"
DEMO = "demo"  # the account level of KPN's test applications (``level`` in the token answer); any other: production

router = APIRouter(tags=["Vonage SMS and Phone Numbers via KPN"])

_SECURITY: list[dict[str, list[str]]] = [{"kpnOAuth2": []}]


def _kpn_error(status: int, name: str, message: str, info: str = "") -> Response:
    """KPN's SMS-Vonage ``ErrorResponse`` (flat), for errors outside the Vonage bodies."""
    body = {"transactionId": str(uuid.uuid4()), "status": str(status), "name": name, "message": message, "info": info}
    return responses.json(body, status)


def render_error(request: Request, exc: Exception, status_hint: int | None = None) -> Response:
    path = request.url.path
    if isinstance(exc, errors.AuthError):
        return responses.json(apigee.token_fault(exc), 401)
    if isinstance(exc, errors.QuotaExceeded):
        return responses.json(apigee.quota_fault(exc), 429, responses.retry_after(exc.retry_after))
    if isinstance(exc, errors.FeatureNotAllowed) and path in (SMS + "/register", UPDATE):
        return _kpn_error(403, "Forbidden", exc.message)  # the other account level's endpoint
    if status_hint == 404:
        return _kpn_error(404, "Not Found", f"No resource at {path}")
    if status_hint == 405:
        return _kpn_error(405, "Method Not Allowed", f"{request.method} is not allowed here")
    if path == SMS + "/send":
        return responses.json(vonage_sms.error_body(exc))
    if path == SMS + "/register":
        if isinstance(exc, errors.InvalidUrl):
            return _kpn_error(400, "Invalid Callback Url", "Invalid Callback Url (status 23)", exc.message)
        if isinstance(exc, errors.ValidationError | errors.PolicyError):
            return _kpn_error(400, "Bad Request", exc.message)
        if isinstance(exc, errors.StoreUnavailable):
            return _kpn_error(503, "Service Unavailable", "The store is unavailable; try again")
        return _kpn_error(500, "Internal Server Error", "Unexpected error")
    status, body = vonage_numbers.numbers_error(exc, status_hint)
    return responses.json(body, status)


async def _account(request: Request) -> core_accounts.Account:
    token = auth.bearer_token(request)
    if token is None:
        raise errors.TokenError("Invalid access token")
    return await auth.gateway(request).account_for_token(token)


async def _caller(request: Request) -> tuple[core_accounts.Account, dict[str, str]]:
    account = await _account(request)  # the token first: a bad one is a 401 whatever the body
    return account, await vonage_sms.request_params(request)


# -- SMS ------------------------------------------------------------------------------------------------------
_FORBIDDEN_EXAMPLE = {
    "transactionId": "5b8f0d2e-0c1a-4c55-9f77-2d7c0e6a9b10",
    "status": "403",
    "name": "Forbidden",
    "message": "/register is for demo (test) applications; a production account registers its webhook on its "
    "virtual number with the Phone Numbers API: POST /communication/nexmo/phone-numbers/number/update with moHttpUrl",
    "info": "",
}
_SEND_DOC: dict[str, Any] = {
    "parameters": [
        idempotent.HEADER_DOC,
        {
            "name": "inbound",
            "in": "header",
            "required": False,
            "schema": {"type": "string", "enum": ["yes", "no"]},
            "description": "yes: replies to `from` go to the callback registered for it with /register",
        },
        *send_options.openapi_parameters(),
    ],
    "requestBody": {
        "required": True,
        **vonage_numbers.form_body(
            ["from", "to"],
            {
                "from": {"type": "string", "example": "31612345678"},
                "to": {"type": "string", "example": "31687654321"},
                "text": {"type": "string", "example": "Hello"},
                "type": {"type": "string", "enum": ["text", "unicode", "binary"]},
                "body": {"type": "string"},
                "udh": {"type": "string"},
                "ttl": {"type": "integer"},
                "status-report-req": {"type": "boolean", "default": False},
                "callback": {"type": "string"},
                "message-class": {"type": "integer"},
                "protocol-id": {"type": "integer"},
                "client-ref": {"type": "string"},
                "account-ref": {"type": "string"},
            },
        ),
    },
    "security": _SECURITY,
}


@router.post(
    SMS + "/send",
    summary="Send an SMS (Vonage format)",
    openapi_extra=_SEND_DOC,
    responses={
        200: {
            "description": "One entry per part, or a Vonage error status",
            "content": {"application/json": {"schema": vonage_sms.SMS_SCHEMA}},
        },
        401: {
            "description": "Invalid or expired token",
            "content": {"application/json": {"example": apigee.INVALID_TOKEN}},
        },
    },
)
@fastpath.hot
async def send(request: Request) -> Response:
    account, params = await _caller(request)
    reply_routing = request.headers.get("inbound", "").strip().lower() in ("yes", "true", "1")
    return await vonage_sms.send(
        request,
        account,
        params,
        dialect="nexmo",
        answer=responses.json,
        reply_routing=reply_routing,
        status_report=False,  # KPN's swagger: status-report-req defaults to false here
    )


@router.post(
    SMS + "/register",
    summary="Register a callback URL for inbound SMS to your test number (demo)",
    openapi_extra={
        "requestBody": {
            "required": True,
            **vonage_numbers.form_body(
                ["to", "callback_url"],
                {
                    "to": {"type": "string", "example": "31612345678"},
                    "callback_url": {"type": "string", "example": "https://example.com/inbound"},
                },
            ),
        },
        "security": _SECURITY,
    },
    responses={
        200: {
            "description": "Registered",
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "required": ["message"],
                        "properties": {"message": {"type": "string"}},
                    },
                    "example": {"message": "Your callback url is registered."},
                }
            },
        },
        403: {
            "description": "Not a demo-level account: production accounts use phone-numbers/number/update",
            "content": {"application/json": {"example": _FORBIDDEN_EXAMPLE}},
        },
    },
)
async def register(request: Request) -> Response:
    account = await _account(request)
    if account.level != DEMO:
        raise errors.FeatureNotAllowed(
            "/register is for demo (test) applications; a production account registers its webhook on its virtual "
            f"number with the Phone Numbers API: POST {NUMBERS}/number/update with moHttpUrl"
        )
    params = await vonage_sms.request_params(request)
    raw_to = params.get("to", "").strip()
    if not raw_to:
        raise errors.MissingParameter("Missing to param")
    number = vonage_sms.parse_recipient(raw_to)
    if not params.get("callback_url", "").strip():
        raise errors.InvalidUrl("Missing callback_url param")
    # claims it, unless it is another account's
    await vonage_numbers.service(request).register_callback(account, number.digits, params["callback_url"])
    return responses.json({"message": "Your callback url is registered."})


# -- Phone Numbers ------------------------------------------------------------------------------------------------
async def _numbers_caller(request: Request) -> tuple[core_accounts.Account, dict[str, str]]:
    """The Phone Numbers caller; managing a number's webhook (``number/update``) is for production accounts: a
    demo one registers its test number with ``/register`` (KPN's split, vonage-sms-via-kpn)."""
    account = await _account(request)
    if request.url.path == UPDATE and account.level == DEMO:
        raise errors.FeatureNotAllowed(
            f"the Phone Numbers API is for production applications; a demo (test) application registers its "
            f"webhook against its test number with POST {SMS}/register (to, callback_url)"
        )
    return account, await vonage_sms.request_params(request)


vonage_numbers.add_number_routes(router, NUMBERS, _numbers_caller, _SECURITY)
