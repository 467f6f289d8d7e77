"""Vonage (Nexmo) SMS and Phone Numbers through KPN's API Store (``/communication/nexmo/...``).

Same Vonage wire format as the native dialect (``api.vonage_wire``), but authenticated with the KPN OAuth2
Bearer token (``/oauth/client_credential/accesstoken``) instead of api_key/api_secret. Gateway-level failures come
out as KPN's Apigee bodies: a bad or expired token is ``401 {"fault": …}`` and a used-up quota (the KPN product
quota, enforced before the request reaches Vonage) is ``429 {"fault": …QuotaViolation}``; everything else on
``/sms/send`` is HTTP 200 with a Vonage status (an account TPS limit is status 1, Throttled).

KPN demo extras (reference notes §2.5): ``/sms/register`` stores a callback for the account's own test number,
and the ``inbound: yes`` header on ``/sms/send`` marks the message so replies to its ``from`` number go to that
callback (``SendRequest.meta["inbound"]``; the store routes replies by the ``callbacks`` table).
"""

from __future__ import annotations

import uuid
from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response

from smsgate import errors
from smsgate.api import auth, vonage_wire
from smsgate.core import accounts as core_accounts

BASE = "/communication/nexmo"
PREFIXES = (BASE + "/",)
SMS = BASE + "/sms"
NUMBERS = BASE + "/phone-numbers"

router = APIRouter(tags=["Vonage SMS and Phone Numbers via KPN"])

_FAULT_INVALID = {
    "fault": {"faultstring": "Invalid access token", "detail": {"errorcode": "oauth.v2.InvalidAccessToken"}}
}
_FAULT_EXPIRED = {
    "fault": {
        "faultstring": "Access Token expired",
        "detail": {"errorcode": "keymanagement.service.access_token_expired"},
    }
}
_FORM = "application/x-www-form-urlencoded"
_SECURITY: list[dict[str, list[str]]] = [{"kpnOAuth2": []}]


def _json(body: Any, status: int = 200, **headers: str) -> Response:
    # KPN clients parse JSON only for exactly "application/json" (reference notes §0.1)
    return Response(orjson.dumps(body), status_code=status, media_type="application/json", headers=headers or None)


def _kpn_error(status: int, name: str, message: str, info: str = "") -> Response:
    """KPN's SMS-Vonage ``ErrorResponse`` (flat), for errors outside the Vonage bodies."""
    body = {"transactionId": str(uuid.uuid4()), "status": str(status), "name": name, "message": message, "info": info}
    return _json(body, status)


def render_error(request: Request, exc: Exception, status_hint: int | None = None) -> Response:
    path = request.url.path
    if isinstance(exc, errors.TokenError):
        return _json(_FAULT_EXPIRED if exc.expired else _FAULT_INVALID, 401)
    if isinstance(exc, errors.AuthError):
        return _json(_FAULT_INVALID, 401)
    if isinstance(exc, errors.QuotaExceeded):
        fault = {"fault": {"faultstring": exc.message, "detail": {"errorcode": "policies.ratelimit.QuotaViolation"}}}
        return _json(fault, 429, **{"retry-after": str(max(1, int(exc.retry_after + 0.999)))})
    if status_hint == 404:
        return _kpn_error(404, "Not Found", f"No resource at {path}")
    if status_hint == 405:
        return _kpn_error(405, "Method Not Allowed", f"{request.method} is not allowed here")
    if path == SMS + "/send":
        return _json(vonage_wire.error_body(exc))
    if path == SMS + "/register":
        if isinstance(exc, errors.InvalidUrl):
            return _kpn_error(400, "Invalid Callback Url", "Invalid Callback Url (status 23)", exc.message)
        if isinstance(exc, errors.ValidationError | errors.PolicyError):
            return _kpn_error(400, "Bad Request", exc.message)
        return _kpn_error(500, "Internal Server Error", "Unexpected error")
    status, body = vonage_wire.numbers_error(exc, status_hint)
    return _json(body, status)


async def _account(request: Request) -> core_accounts.Account:
    token = auth.bearer_token(request)
    if token is None:
        raise errors.TokenError("Invalid access token")
    return await auth.gateway(request).account_for_token(token)


async def _params(request: Request) -> dict[str, str]:
    return vonage_wire.parse_params(await request.body(), request.query_params)


# -- SMS ------------------------------------------------------------------------------------------------------
_SEND_DOC: dict[str, Any] = {
    "parameters": [
        {
            "name": "inbound",
            "in": "header",
            "required": False,
            "schema": {"type": "string", "enum": ["yes", "no"]},
            "description": "yes: replies to `from` go to the callback registered for it with /register",
        }
    ],
    "requestBody": {
        "required": True,
        "content": {
            _FORM: {
                "schema": {
                    "type": "object",
                    "required": ["from", "to"],
                    "properties": {
                        "from": {"type": "string", "example": "31612345678"},
                        "to": {"type": "string", "example": "31687654321"},
                        "text": {"type": "string", "example": "Hello"},
                        "type": {"type": "string", "enum": ["text", "unicode", "binary"]},
                        "body": {"type": "string"},
                        "udh": {"type": "string"},
                        "ttl": {"type": "integer"},
                        "status-report-req": {"type": "boolean"},
                        "callback": {"type": "string"},
                        "message-class": {"type": "integer"},
                        "protocol-id": {"type": "integer"},
                        "client-ref": {"type": "string"},
                        "account-ref": {"type": "string"},
                    },
                }
            }
        },
    },
    "security": _SECURITY,
}


@router.post(
    SMS + "/send",
    summary="Send an SMS (Vonage format)",
    openapi_extra=_SEND_DOC,
    responses={
        200: {"description": "One entry per part, or a Vonage error status"},
        401: {"description": "Invalid or expired token", "content": {"application/json": {"example": _FAULT_INVALID}}},
    },
)
async def send(request: Request) -> Response:
    account = await _account(request)
    params = await _params(request)
    allow_private = bool(request.app.state.settings.webhooks_allow_private)
    req = vonage_wire.send_request(account, params, dialect="nexmo", allow_private=allow_private)
    if request.headers.get("inbound", "").strip().lower() in ("yes", "true", "1"):
        req.meta["inbound"] = True
    result = await auth.gateway(request).send(req)
    return _json(vonage_wire.sent_body(req, result))


@router.post(
    SMS + "/register",
    summary="Register a callback URL for inbound SMS to your test number (demo)",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                _FORM: {
                    "schema": {
                        "type": "object",
                        "required": ["to", "callback_url"],
                        "properties": {"to": {"type": "string"}, "callback_url": {"type": "string"}},
                    }
                }
            },
        },
        "security": _SECURITY,
    },
    responses={200: {"content": {"application/json": {"example": {"message": "Your callback url is registered."}}}}},
)
async def register(request: Request) -> Response:
    account = await _account(request)
    params = await _params(request)
    gw = auth.gateway(request)
    raw_to = params.get("to", "").strip()
    if not raw_to:
        raise vonage_wire.MissingParam("Missing to param")
    number = vonage_wire.parse_recipient(raw_to)
    if not params.get("callback_url", "").strip():
        raise errors.InvalidUrl("Missing callback_url param")
    url = vonage_wire.check_url(
        params["callback_url"], allow_private=bool(request.app.state.settings.webhooks_allow_private)
    )
    store = gw.numbers
    if store is None:
        raise errors.StoreUnavailable()
    pooled = await store.get(number.digits)
    if pooled is not None and pooled["account_id"] != account.id:
        raise errors.NotFound("This number is a virtual number you do not own")
    await store.register_callback(account.id, number.digits, url)
    return _json({"message": "Your callback url is registered."})


# -- Phone Numbers --------------------------------------------------------------------------------------------
_NUMBER_DOC: dict[str, Any] = {
    "requestBody": {
        "content": {
            _FORM: {
                "schema": {
                    "type": "object",
                    "required": ["country", "msisdn"],
                    "properties": {
                        "country": {"type": "string", "example": "NL"},
                        "msisdn": {"type": "string"},
                        "moHttpUrl": {"type": "string"},
                        "moSmppSysType": {"type": "string"},
                        "voiceCallbackType": {"type": "string", "enum": ["sip", "tel", "app"]},
                        "voiceCallbackValue": {"type": "string"},
                        "voiceStatusCallback": {"type": "string"},
                    },
                }
            }
        }
    },
    "security": _SECURITY,
}
_OK: dict[int | str, dict[str, Any]] = {200: {"content": {"application/json": {"example": vonage_wire.NUMBERS_OK}}}}


@router.post(
    NUMBERS + "/number/update", summary="Update a number (moHttpUrl)", openapi_extra=_NUMBER_DOC, responses=_OK
)
async def number_update(request: Request) -> Response:
    account = await _account(request)
    allow_private = bool(request.app.state.settings.webhooks_allow_private)
    body = await vonage_wire.update(auth.gateway(request), account, await _params(request), allow_private=allow_private)
    return _json(body)


@router.post(NUMBERS + "/number/buy", summary="Buy a number", openapi_extra=_NUMBER_DOC, responses=_OK)
async def number_buy(request: Request) -> Response:
    account = await _account(request)
    return _json(await vonage_wire.buy(auth.gateway(request), account, await _params(request)))


@router.post(NUMBERS + "/number/cancel", summary="Cancel a number", openapi_extra=_NUMBER_DOC, responses=_OK)
async def number_cancel(request: Request) -> Response:
    account = await _account(request)
    return _json(await vonage_wire.cancel(auth.gateway(request), account, await _params(request)))


@router.get(NUMBERS + "/number/search", summary="Search available numbers", openapi_extra={"security": _SECURITY})
async def number_search(request: Request) -> Response:
    await _account(request)
    return _json(await vonage_wire.search_available(auth.gateway(request), await _params(request)))


@router.get(NUMBERS + "/account/numbers", summary="Your numbers", openapi_extra={"security": _SECURITY})
async def account_numbers(request: Request) -> Response:
    account = await _account(request)
    return _json(await vonage_wire.list_owned(auth.gateway(request), account, await _params(request)))
