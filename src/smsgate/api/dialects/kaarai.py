"""Kaarai "Send Single SMS": ``POST /v1/send-sms`` with HTTP Basic auth and a JSON ``{to, from?, text}`` body.

Every answer, success or error, is one JSON shape ``{"code", "message", "message_id"?}`` with the status of the
spec's table (specs/kaarai-send-single-sms.txt). The spec has no 401, 429 or 500, so every condition is mapped
onto the ten codes of its table; the choices the spec leaves open are:

    condition                                   status  code  why
    body not UTF-8 JSON object / wrong header   400     4000  the content is not ``application/json``
    ``to`` absent, null or ""                   400     4001
    ``text`` absent, null, "" or not a string   400     4002  (too long: same code, own wording)
    ``to`` not a string or not a valid number   400     4003
    unknown user, wrong secret, disabled        403     4030  same body whether the user exists or not
    destination blocked / country / allow-list  403     4031  (also a recipient on the suppression list)
    no route, no balance, no default sender     403     4031  retrying the same request cannot help
    ``from`` not allowed or malformed           202     -     the default sender is used, as the spec says
    ``from`` another account's number or name   403     4031  refused: never sent under someone else's name
    quota used up, rate limited                 503     5030  with Retry-After: it does work later
    too many failed logins (address and user)   503     5030  with Retry-After; says nothing about the user
    store unavailable, anything unexpected      503     5030  nothing was written
    any other path or method under /v1/         404     4040  (except our own /v1/messages, /v1/segments, /v1/suppressions)
    Idempotency-Key malformed, or reused with   400     4000  the request content is wrong; 4000 is the
    another request                                           spec's one code for that

Credentials are checked before the body, so an unauthenticated caller learns nothing about its input.
A rate-limited send is refused rather than queued (2021) because the token bucket runs before the commit and
the dispatcher has no per-account pacing to delay it with; 2021 means the message is stored and its route is
down, so it goes out when the route is back.
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response

from smsgate import errors
from smsgate.api import auth, fastpath, idempotent, responses, send_options
from smsgate.core import accounts as core_accounts
from smsgate.core import numbers
from smsgate.services import sending

SEND_PATH = "/v1/send-sms"
PREFIXES = ("/v1/",)
MAX_BODY = 64 * 1024
_MAX_ECHO = 100  # longest user name / content type echoed back in a message

router = APIRouter(tags=["Kaarai Send Single SMS"])

MESSAGES: dict[int, str] = {
    2020: "Accepted for delivery",
    2021: "Queued for later delivery",
    4001: "Missing receiver number, rejected",
    4002: "Missing text message, rejected",
    4003: "Invalid receiver number, rejected",
    4031: "Not routable. Do not try again",
    4040: "Unknown request",
    5030: "Temporal failure, try again later",
}
TEXT_TOO_LONG = "Text message too long, rejected"


def _refuse(code: int, message: str | None = None) -> errors.DialectRefusal:
    """A refusal this dialect's parser decided, with the spec's code (and its wording unless told)."""
    return errors.DialectRefusal(code, message or MESSAGES[code])


def _status(code: int) -> int:
    return code // 10


def kaarai_json(code: int, message: str, message_id: str | None = None, **headers: str) -> Response:
    body: dict[str, Any] = {"code": code, "message": message}
    if message_id is not None:
        body["message_id"] = message_id
    return responses.json(body, _status(code), headers)


def _auth_failed(request: Request) -> Response:
    user = getattr(request.state, "kaarai_user", "")
    return kaarai_json(4030, f"Authorization failed for user: {user[:_MAX_ECHO]}")


def render_error(request: Request, exc: Exception, status_hint: int | None = None) -> Response:
    """Every error under ``/v1/`` that no more specific prefix claims, in Kaarai's one body shape."""
    if isinstance(exc, errors.DialectRefusal):
        return kaarai_json(exc.code, exc.message)
    if isinstance(exc, errors.AuthError):
        return _auth_failed(request)
    if isinstance(exc, errors.QuotaExceeded | errors.RateLimited):
        return kaarai_json(5030, MESSAGES[5030], **responses.retry_after(exc.retry_after))
    if isinstance(exc, errors.PolicyError | errors.RouteUnavailable | errors.InvalidSender):
        # InvalidSender only reaches here when the account has no default sender to fall back to
        return kaarai_json(4031, MESSAGES[4031])
    if isinstance(exc, errors.InvalidNumber):
        return kaarai_json(4003, MESSAGES[4003])
    if isinstance(exc, errors.TextTooLong):
        return kaarai_json(4002, TEXT_TOO_LONG)
    if isinstance(exc, errors.EmptyText | errors.InvalidEncoding):
        return kaarai_json(4002, MESSAGES[4002])
    if isinstance(exc, errors.ValidationError):  # the body cap and FastAPI's parsing: their own words, no prefix
        return kaarai_json(4000, exc.message)
    if status_hint in (404, 405):
        return kaarai_json(4040, MESSAGES[4040])
    if isinstance(exc, errors.StoreUnavailable):
        return kaarai_json(5030, MESSAGES[5030], **responses.retry_after(1))
    return kaarai_json(5030, MESSAGES[5030])


# -- OpenAPI --------------------------------------------------------------------------------------------------
RESPONSE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["code", "message"],
    "properties": {
        "code": {"type": "integer", "description": "Kaarai result code"},
        "message": {"type": "string"},
        "message_id": {"type": "string", "description": "only on 202; look it up at GET /v1/messages/{id}"},
    },
}
SEND_EXAMPLE = {"to": "573001234567", "from": "87349", "text": "Your OTP code is 1234"}
_EXAMPLE_ID = "0f5b0d5e-3c6a-4d0e-9d8e-6f1f2b7f6a11"
_EXAMPLES: dict[int, dict[int, dict[str, Any]]] = {
    202: {
        2020: {"code": 2020, "message": MESSAGES[2020], "message_id": _EXAMPLE_ID},
        2021: {"code": 2021, "message": MESSAGES[2021], "message_id": _EXAMPLE_ID},
    },
    400: {
        4000: {"code": 4000, "message": "Invalid content-type: application/x-www-form-urlencoded"},
        4001: {"code": 4001, "message": MESSAGES[4001]},
        4002: {"code": 4002, "message": MESSAGES[4002]},
        4003: {"code": 4003, "message": MESSAGES[4003]},
    },
    403: {
        4030: {"code": 4030, "message": "Authorization failed for user: 1a2b3c4d"},
        4031: {"code": 4031, "message": MESSAGES[4031]},
    },
    404: {4040: {"code": 4040, "message": MESSAGES[4040]}},
    503: {5030: {"code": 5030, "message": MESSAGES[5030]}},
}
_DESCRIPTIONS = {
    202: "Accepted: 2020 on its way, 2021 scheduled (X-Send-At) or stored while its route is down (sent when it "
    "is back)",
    400: "Missing input parameters or invalid values",
    403: "4030 bad user/password (same answer whether the user exists); 4031 destination blocked or not routable",
    404: "Unknown request (any other path or method under /v1/)",
    503: "Temporal failure: store unavailable, quota or rate limit (see Retry-After); nothing was stored",
}


def _responses() -> dict[int | str, dict[str, Any]]:
    return {
        status: {
            "description": _DESCRIPTIONS[status],
            "content": {
                "application/json": {
                    "schema": RESPONSE_SCHEMA,
                    "examples": {str(code): {"summary": f"Code {code}", "value": ex} for code, ex in by_code.items()},
                }
            },
        }
        for status, by_code in _EXAMPLES.items()
    }


SEND_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["to", "text"],
    "properties": {
        "to": {
            "type": "string",
            "description": "receiver with country code, with or without +",
            "example": "573001234567",
        },
        "from": {"type": "string", "description": "sender ID; the account's default when absent or not allowed"},
        "text": {"type": "string", "minLength": 1, "description": "UTF-8 text; long texts are split into parts"},
    },
    "example": SEND_EXAMPLE,
}


# -- the endpoint ---------------------------------------------------------------------------------------------
@router.post(
    SEND_PATH,
    summary="Send a single SMS (Kaarai)",
    status_code=202,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": SEND_SCHEMA, "example": SEND_EXAMPLE}},
        },
        "security": [{"basicAuth": []}],
        "parameters": [idempotent.HEADER_DOC, *send_options.openapi_parameters()],
    },
    responses=_responses(),
)
@fastpath.hot
async def send_sms(request: Request) -> Response:
    gw = auth.gateway(request)
    account = await _authenticate(request)
    raw = await _body(request)
    to, sender, text = _parse(request.headers.get("content-type"), raw)
    recipient = numbers.parse_international(to)
    req = sending.SendRequest(
        account=account,
        dialect="kaarai",
        recipient=recipient,
        sender=await _sender(gw, account, sender),
        text=text,
        requested_from=sender,
    )
    send_options.apply(request, req)

    def answer(result: sending.SendResult) -> Response:
        code = 2021 if result.queued or req.send_at is not None else 2020  # scheduled: "queued for later delivery"
        return kaarai_json(code, MESSAGES[code], result.message_id)

    return await idempotent.send(request, req, answer, raw)


async def _authenticate(request: Request) -> core_accounts.Account:
    """Basic only, before the body is read; an (address, user) pair out of tries is refused before its secret is
    even checked."""
    creds = auth.basic_credentials(request)
    request.state.kaarai_user = creds[0] if creds else ""
    if creds is None:
        raise errors.AuthError("missing Basic credentials")
    return await auth.login(request, *creds)


async def _body(request: Request) -> bytes:
    try:
        return await fastpath.read_body(request, MAX_BODY)
    except errors.ValidationError:
        raise _refuse(4002, TEXT_TOO_LONG) from None


def _parse(content_type: str | None, body: bytes) -> tuple[str, str | None, str]:
    """``(to, from, text)`` from the raw body; each refusal carries the spec's code."""
    ctype = (content_type or "").strip()
    media, _, params = ctype.partition(";")
    charset = params.strip().lower().removeprefix("charset=").strip('"') if params.strip() else "utf-8"
    if media.strip().lower() != "application/json" or charset not in ("utf-8", "utf8"):
        raise _refuse(4000, f"Invalid content-type: {(ctype or 'none')[:_MAX_ECHO]}")
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise _refuse(4000, "Invalid content-type: body is not valid UTF-8 JSON") from None
    if not isinstance(data, dict):
        raise _refuse(4000, f"Invalid content-type: JSON {_kind(data)} body, expected an object")
    to = data.get("to")
    if to is None or to == "":
        raise _refuse(4001)
    if not isinstance(to, str):
        raise _refuse(4003)
    text = data.get("text")
    if not isinstance(text, str) or text == "":
        raise _refuse(4002)
    raw_from = data.get("from")
    if isinstance(raw_from, int) and not isinstance(raw_from, bool):
        raw_from = str(raw_from)  # short codes are often sent as JSON numbers
    sender = raw_from if isinstance(raw_from, str) and raw_from.strip() else None
    return to, sender, text


def _kind(value: Any) -> str:
    return {list: "array", str: "string", bool: "boolean", int: "number", float: "number"}.get(type(value), "null")


async def _sender(gw: sending.Gateway, account: core_accounts.Account, raw: str | None) -> str | None:
    """The requested sender if the account may use it, else None (the default): the spec's fallback. A sender that
    is another account's (its number, or a name reserved for it) is refused (4031), not silently replaced."""
    if raw is None:
        return None
    try:
        await gw.resolve_sender(account, raw)
    except errors.SenderTaken:
        raise
    except (errors.SenderNotAllowed, errors.InvalidSender):
        return None
    return raw
