"""KPN API Store: the OAuth2 client-credentials token and the KPN SMS API v1 (``/messaging/sms-kpn/v1``).

Wire facts that break real clients if missed (reference notes §0, §2): ``Content-Type`` is exactly
``application/json`` (no charset); every token-response value is a string; ``Bearer`` and Apigee's legacy
``BearerToken`` are both accepted; every response carries the standard KPN headers.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response

from smsgate import errors, limits
from smsgate.api import apigee, auth, fastpath, idempotent, responses, send_options
from smsgate.core import accounts as core_accounts
from smsgate.core import numbers
from smsgate.services import sending

PREFIXES = ("/messaging/sms-kpn/", "/oauth/", "/communication/kpn/")  # the last: the batch API (kpn_batch)
TOKEN_PATH = "/oauth/client_credential/accesstoken"
MAX_BODY = 64 * 1024
API_VERSION = "v1"

router = APIRouter(tags=["KPN SMS API v1"])

SEND_EXAMPLE = {"sender": "KPN API", "messages": [{"mobile_number": "+31612345678", "content": "Hi from KPN!"}]}
SEND_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["messages"],
    "properties": {
        "sender": {"type": "string", "minLength": 1, "maxLength": 11, "description": "Sender ID, 1-11 characters"},
        "messages": {
            "type": "array",
            "minItems": 1,
            "maxItems": 1,
            "items": {
                "type": "object",
                "required": ["mobile_number", "content"],
                "properties": {
                    "mobile_number": {"type": "string", "description": "Dutch mobile: 06…, +316…, 00316… or 097 M2M"},
                    "content": {"type": "string", "minLength": 1, "description": "Long messages are split into parts"},
                },
            },
        },
    },
    "example": SEND_EXAMPLE,
}
ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "errorResponse": {
            "type": "object",
            "properties": {"code": {"type": "string"}, "message": {"type": "string"}, "info": {"type": "string"}},
        }
    },
}


_TOKEN_STRINGS = (
    "refresh_token_expires_in",
    "api_product_list",
    "organization_name",
    "developer_email",
    "token_type",
    "issued_at",
    "client_id",
    "access_token",
    "application_name",
    "scope",
    "expires_in",
    "refresh_token",
    "refresh_count",
    "status",
    "level",
)
TOKEN_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": [*_TOKEN_STRINGS, "api_product_list_json"],
    "properties": {
        **{name: {"type": "string"} for name in _TOKEN_STRINGS},
        "api_product_list_json": {"type": "array", "items": {"type": "string"}},
    },
}


SUBACCOUNT_HEADER: dict[str, Any] = {
    "name": "SubAccount",
    "in": "header",
    "required": False,
    "schema": {"type": "string"},
    "description": "Send as this sub-account of the caller (its name); it is billed to the caller. Blank: none. "
    "Any name that is not the caller's active sub-account: 403.",
}


def error_content(code: str, message: str, info: str) -> dict[str, Any]:
    return {
        "application/json": {
            "schema": ERROR_SCHEMA,
            "example": {"errorResponse": {"code": code, "message": message, "info": info}},
        }
    }


# -- responses ------------------------------------------------------------------------------------------------
# the part of KPN's headers that never changes, copied into each answer
_FIXED_HEADERS = {
    "sunset": "n/a",
    "api-version": API_VERSION,
    "strict-transport-security": "max-age=31536000; includeSubDomains; preload",
    "access-control-allow-headers": "Authorization, BearerToken, Content-Type, Accept, Origin",
    "access-control-allow-methods": "POST, OPTIONS",
    "access-control-max-age": "3600",
}


def standard_headers(request: Request, quota: limits.QuotaState | None) -> dict[str, str]:
    """KPN's headers on every answer. CORS: an origin on the operator's list (``SMSGATE_CORS_ORIGINS``) is named,
    with credentials allowed; any other gets ``*`` without, so a page elsewhere cannot ride a browser's login."""
    origin = request.headers.get("origin")
    listed = origin is not None and origin in request.app.state.cors_origins
    h = dict(_FIXED_HEADERS)
    h["access-control-allow-origin"] = origin if listed and origin else "*"
    h["access-control-allow-credentials"] = "true" if listed else "false"
    if origin:
        h["vary"] = "Origin"
    h.update(_quota_headers(quota))
    return h


def _quota_headers(quota: limits.QuotaState | None) -> dict[str, str]:
    if quota is None:
        return {k: "n/a" for k in ("quota-interval", "quota-limit", "quota-reset-UTC", "quota-time-unit", "quota-used")}
    return {
        "quota-interval": str(quota.interval),
        "quota-limit": str(quota.limit) if quota.limit is not None else "unlimited",
        "quota-reset-UTC": core_accounts.format_reset(quota.reset_at),
        "quota-time-unit": quota.unit,
        "quota-used": str(quota.used),  # last: the one that changes with every send (``_head``)
    }


def _encoded(headers: dict[str, str]) -> tuple[tuple[bytes, bytes], ...]:
    """``headers`` as Starlette writes them: names lower-cased, latin-1."""
    return tuple((k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items())


_NO_ORIGIN = {"access-control-allow-origin": "*", "access-control-allow-credentials": "false"}
_NO_QUOTA_HEAD = _encoded({**_FIXED_HEADERS, **_NO_ORIGIN, **_quota_headers(None)})


@functools.lru_cache(maxsize=1024)
def _head_before_used(limit: int | None, interval: int, unit: str, reset_at: float) -> tuple[tuple[bytes, bytes], ...]:
    """The encoded headers of an answer to a request without ``Origin``, up to ``quota-used``: the same for every
    answer of an account's quota window, so encoded once per window, not once per send."""
    return _encoded(
        {**_FIXED_HEADERS, **_NO_ORIGIN, **_quota_headers(limits.QuotaState(limit, 0, interval, unit, reset_at))}
    )[:-1]


def _head(quota: limits.QuotaState | None) -> list[tuple[bytes, bytes]]:
    """``standard_headers`` encoded, for a request without ``Origin`` (every server-to-server client's)."""
    if quota is None:
        return list(_NO_QUOTA_HEAD)
    head = list(_head_before_used(quota.limit, quota.interval, quota.unit, quota.reset_at))
    head.append((b"quota-used", str(quota.used).encode()))
    return head


def kpn_json(
    request: Request,
    status: int,
    body: Any,
    quota: limits.QuotaState | None = None,
    *,
    extra: dict[str, str] | None = None,
) -> Response:
    if extra is None and "origin" not in request.headers:
        return responses.json_raw(body, status, _head(quota))
    headers = standard_headers(request, quota)
    headers.update(extra or {})
    return responses.json(body, status, headers)


def error_body(status: int, message: str, info: str) -> dict[str, Any]:
    return {"errorResponse": {"code": str(status), "message": message, "info": info}}


def render_error(request: Request, exc: Exception, status_hint: int | None = None) -> Response:
    """Every error of this dialect, in KPN's shapes (Apigee's for gateway-level failures)."""
    quota = getattr(request.state, "quota", None)
    if isinstance(exc, errors.AuthError):
        if request.url.path == TOKEN_PATH and not isinstance(exc, errors.TokenError):
            return kpn_json(request, 401, {"ErrorCode": "invalid_client", "Error": "ClientId is Invalid"})
        return kpn_json(request, 401, apigee.token_fault(exc), quota)
    if isinstance(exc, errors.QuotaExceeded):
        return kpn_json(request, 429, apigee.quota_fault(exc), quota, extra=responses.retry_after(exc.retry_after))
    if isinstance(exc, errors.RateLimited):
        body = apigee.fault(exc.message, "policies.ratelimit.SpikeArrestViolation")
        return kpn_json(request, 429, body, quota, extra=responses.retry_after(exc.retry_after))
    if isinstance(exc, errors.InsufficientBalance):
        return kpn_json(request, 403, error_body(403, "Forbidden", "Insufficient balance"), quota)
    if isinstance(exc, errors.PolicyError):
        return kpn_json(request, 403, error_body(403, "Forbidden", exc.message), quota)
    if isinstance(exc, errors.ValidationError):
        return kpn_json(request, 400, error_body(400, "Bad Request", exc.message), quota)
    if isinstance(exc, errors.StoreUnavailable | errors.RouteUnavailable):
        return kpn_json(
            request, 503, error_body(503, "Service Unavailable", exc.message), quota, extra={"retry-after": "1"}
        )
    if status_hint == 404:
        return kpn_json(request, 404, error_body(404, "Not Found", f"No resource at {request.url.path}"), quota)
    if status_hint == 405:
        return kpn_json(
            request,
            405,
            error_body(405, "Method Not Allowed", f"{request.method} is not allowed here"),
            quota,
            extra={"allow": "POST, OPTIONS"},
        )
    return kpn_json(request, 500, error_body(500, "Internal Server Error", "Unexpected error"), quota)


# -- OAuth2 ---------------------------------------------------------------------------------------------------
@router.post(
    TOKEN_PATH,
    summary="Get an access token (OAuth2 client credentials)",
    openapi_extra={
        "parameters": [
            {
                "name": "grant_type",
                "in": "query",
                "required": True,
                "schema": {"type": "string", "enum": ["client_credentials"]},
            }
        ],
        "requestBody": {
            "required": True,
            "content": {
                "application/x-www-form-urlencoded": {
                    "schema": {
                        "type": "object",
                        "required": ["client_id", "client_secret"],
                        "properties": {"client_id": {"type": "string"}, "client_secret": {"type": "string"}},
                    }
                }
            },
        },
    },
    responses={
        200: {
            "description": "Token (every value a string)",
            "content": {
                "application/json": {
                    "schema": TOKEN_SCHEMA,
                    "example": {
                        "refresh_token_expires_in": "0",
                        "api_product_list": "[sms-kpn]",
                        "api_product_list_json": ["sms-kpn"],
                        "organization_name": "smsgate",
                        "developer_email": "",
                        "token_type": "Bearer",
                        "issued_at": "1587458037687",
                        "client_id": "1a2b3c4d",
                        "access_token": "staG765sBUuai4OMeZiTful6PTRt",
                        "application_name": "demo",
                        "scope": "",
                        "expires_in": "3599",
                        "refresh_token": "",
                        "refresh_count": "0",
                        "status": "approved",
                        "level": "demo",
                    },
                }
            },
        },
        401: {
            "description": "Bad client",
            "content": {
                "application/json": {"example": {"ErrorCode": "invalid_client", "Error": "ClientId is Invalid"}}
            },
        },
    },
)
async def access_token(request: Request) -> Response:
    """Client credentials for a token: the client's live token is handed out again (while half its lifetime is
    left), and a client gets at most ``SMSGATE_TOKEN_REQUESTS_PER_MINUTE`` answers a minute."""
    gw = auth.gateway(request)
    body = await fastpath.read_body(request, MAX_BODY)
    form: dict[str, str] = {}
    if body:
        try:
            form = dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
        except UnicodeDecodeError:
            form = {}
    grant = request.query_params.get("grant_type") or form.get("grant_type")
    if grant != "client_credentials":
        return kpn_json(
            request, 400, {"ErrorCode": "invalid_request", "Error": f"Unsupported grant type : {grant or ''}"}
        )
    client_id, client_secret = form.get("client_id"), form.get("client_secret")
    basic = auth.basic_credentials(request)
    if (not client_id or not client_secret) and basic:
        client_id, client_secret = basic
    if not client_id or not client_secret:
        raise errors.AuthError()
    account = await auth.login(request, client_id, client_secret)
    per_minute = request.app.state.settings.token_requests_per_minute
    # a minute's worth at once, then one every 60/per_minute seconds
    await gw.buckets.take_all([limits.Rate("token:" + account.id, per_minute / 60, max(1.0, per_minute))])
    token, issued, ttl = await gw.issue_token(account)
    payload = {
        "refresh_token_expires_in": "0",
        "api_product_list": "[sms-kpn, sms-nexmo, phone-numbers-nexmo]",
        "api_product_list_json": ["sms-kpn", "sms-nexmo", "phone-numbers-nexmo"],
        "organization_name": "smsgate",
        "developer_email": "",
        "token_type": "Bearer",
        "issued_at": str(int(issued * 1000)),
        "client_id": account.api_key,
        "access_token": token,
        "application_name": account.name,
        "scope": "",
        "expires_in": str(int(ttl) - 1),
        "refresh_token": "",
        "refresh_count": "0",
        "status": "approved",
        "level": account.level,
    }
    return kpn_json(request, 200, payload, extra={"cache-control": "no-store"})


# -- SMS ------------------------------------------------------------------------------------------------------
@router.options("/messaging/sms-kpn/v1/send", include_in_schema=False)
async def preflight(request: Request) -> Response:
    headers = standard_headers(request, None)
    return Response(status_code=200, headers=headers, media_type="application/json")


@router.post(
    "/messaging/sms-kpn/v1/send",
    summary="Send an SMS to a Dutch mobile number",
    openapi_extra={
        "parameters": [SUBACCOUNT_HEADER, idempotent.HEADER_DOC, *send_options.openapi_parameters()],
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": SEND_SCHEMA, "example": SEND_EXAMPLE}},
        },
        "security": [{"kpnOAuth2": []}],
    },
    responses={
        200: {
            "description": "Accepted and stored (a replayed Idempotency-Key: the first answer, "
            "with Idempotent-Replayed: true)",
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "required": ["document_id", "status"],
                        "properties": {"document_id": {"type": "string"}, "status": {"type": "string"}},
                    },
                    "example": {"document_id": "b4e905d4-774c-4c83-8360-01427e17a33a", "status": "OK"},
                }
            },
        },
        400: {
            "description": "Bad request (also an Idempotency-Key used before with another request)",
            "content": error_content("400", "Bad Request", "060 numbers are not valid mobile numbers"),
        },
        401: {
            "description": "Invalid or expired token",
            "content": {"application/json": {"example": apigee.INVALID_TOKEN}},
        },
        403: {
            "description": "Not allowed for this account",
            "content": error_content("403", "Forbidden", "Insufficient balance"),
        },
        429: {"description": "Quota used up (see quota-* and Retry-After headers)"},
        503: {
            "description": "Store unavailable; nothing was stored",
            "content": error_content("503", "Service Unavailable", "the store is unavailable"),
        },
    },
)
@fastpath.hot
async def send(request: Request) -> Response:
    gw, _caller, account = await callers(request)
    return await with_quota(request, gw, account, lambda: _send(request, gw, account))


async def callers(request: Request) -> tuple[sending.Gateway, core_accounts.Account, core_accounts.Account]:
    """The gateway, the token's account and the account acting (its sub-account when ``SubAccount`` names one)."""
    gw = auth.gateway(request)
    token = auth.bearer_token(request)
    if token is None:
        raise errors.TokenError("Invalid access token")
    caller = await gw.account_for_token(token)
    return gw, caller, await acting_account(request, caller)


async def with_quota(
    request: Request, gw: sending.Gateway, account: core_accounts.Account, handle: Callable[[], Awaitable[Response]]
) -> Response:
    """``handle()``'s answer. An error answer carries the quota headers too: a send that succeeds has them from its
    own take, so the state is read only for an error (on PostgreSQL + Redis it is a round trip per call otherwise)."""
    try:
        return await handle()
    except Exception:
        if getattr(request.state, "quota", None) is None:
            with contextlib.suppress(Exception):
                request.state.quota = await gw.quotas.state(account)
        raise


async def json_body(request: Request, limit: int) -> tuple[bytes, Any]:
    """The body as sent and parsed, refused (400) unless it is JSON of at most ``limit`` bytes."""
    ctype = request.headers.get("content-type", "")
    if ctype.split(";")[0].strip().lower() != "application/json":
        raise errors.ValidationError(f"Content-Type must be application/json, got {ctype or 'nothing'}")
    body = await fastpath.read_body(request, limit)
    try:
        return body, orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise errors.ValidationError(errors.json_problem(body, exc.pos, exc.msg)) from None


async def _send(request: Request, gw: sending.Gateway, account: core_accounts.Account) -> Response:
    body, data = await json_body(request, MAX_BODY)
    sender, number, content = _parse(data)
    req = sending.SendRequest(
        account=account,
        dialect="kpn",
        recipient=number,
        sender=sender,
        text=content,
        max_chars=request.app.state.settings.kpn_max_chars,
    )
    send_options.apply(request, req)

    def answer(result: sending.SendResult) -> Response:
        request.state.quota = result.quota
        return kpn_json(request, 200, {"document_id": result.message_id, "status": "OK"}, result.quota)

    return await idempotent.send(request, req, answer, body)


async def acting_account(request: Request, caller: core_accounts.Account) -> core_accounts.Account:
    """The caller, or its sub-account named by the ``SubAccount`` header (blank or absent: none); 403 otherwise.
    The sub-account's own quota applies, its parent pays (``Account.payer``)."""
    name = request.headers.get("subaccount")
    if not name:
        return caller
    return await auth.gateway(request).acting_as(caller, name)


def _parse(data: Any) -> tuple[str | None, numbers.Number, str]:
    if not isinstance(data, dict):
        raise errors.ValidationError("The body must be a JSON object")
    unknown = set(data) - {"sender", "messages"}
    if unknown:
        raise errors.ValidationError(f"Unknown field(s): {', '.join(sorted(unknown))}")
    sender = data.get("sender")
    if sender is not None and (not isinstance(sender, str) or not 1 <= len(sender) <= 11):
        raise errors.InvalidSender("sender must be a string of 1 to 11 characters")
    msgs = data.get("messages")
    if not isinstance(msgs, list) or not msgs:
        raise errors.ValidationError("messages is required: a list with one message")
    if len(msgs) > 1:
        raise errors.ValidationError("Only one message per call is supported in v1 (bulk messaging is not available)")
    msg = msgs[0]
    if not isinstance(msg, dict):
        raise errors.ValidationError("each message must be an object with mobile_number and content")
    extra = set(msg) - {"mobile_number", "content"}
    if extra:
        raise errors.ValidationError(f"Unknown message field(s): {', '.join(sorted(extra))}")
    raw_number = msg.get("mobile_number")
    if not isinstance(raw_number, str) or not raw_number.strip():
        raise errors.InvalidNumber("mobile_number is required", reason="empty")
    content = msg.get("content")
    if not isinstance(content, str):
        raise errors.ValidationError("content is required and must be a string")
    if content == "":
        raise errors.EmptyText("content must not be empty")
    return sender, numbers.parse_dutch_mobile(raw_number), content
