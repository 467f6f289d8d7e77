"""Vonage (Nexmo) wire logic shared by the native dialect (``vonage``) and the KPN-proxied one (``nexmo``).

Not a dialect: it turns Vonage parameters into a ``SendRequest``, results into Vonage bodies (every SMS value a
JSON string, one ``messages[]`` entry per part), errors into Vonage status codes, and runs the Phone Numbers
and balance operations both dialects expose, including the Phone Numbers routes themselves
(``add_number_routes``). Each dialect keeps its own authentication and error rendering.

SMS status codes (``messages[].status``, always HTTP 200):

    ======  ====================================================  ======================================
    status  smsgate error                                         why this code
    ======  ====================================================  ======================================
    1       RateLimited, QuotaExceeded                            "Throttled" (account TPS / quota)
    2       MissingParam, EmptyText                               a required parameter is absent/empty
    3       ValidationError (other), InvalidEncoding, NotFound,   "Invalid Parameters" (bad ttl, hex, …)
            InvalidNumber(reason not_a_number/empty)              a ``to`` that is not digits
    4       AuthError                                             "Bad Credentials"
    5       StoreUnavailable, RouteUnavailable, anything else     "Internal Error"
    6       InvalidNumber (any other reason)                      "Invalid Message" (unrecognised prefix)
    7       DestinationNotAllowed (country off / blocked prefix)  "Number Barred"
    8       AccountBarred (disabled account)                      "Partner Account Barred"
    9       InsufficientBalance                                   "Partner Quota Violation" (no credit)
    12      TextTooLong (> 3200 characters or > 255 parts)        "Message Too Long"
    14      InvalidSignature                                      bad ``sig`` / timestamp out of window
    15      InvalidSender, SenderNotAllowed (also SenderTaken)    "Invalid Sender Address" (not the account's)
    19      FeatureNotAllowed                                     "Facility Not Allowed" (silent, SIM data
                                                                  download, class-2 binary without permission)
    23      InvalidUrl (``callback``)                             "Invalid Callback Url"
    29      DestinationNotAllowed("Non-Whitelisted Destination")  demo allow-list
    32      SignatureAndSecret                                    ``sig`` together with ``api_secret``
    ======  ====================================================  ======================================

Codes 7 and 29 both come from ``DestinationNotAllowed``; the demo allow-list refusal is told apart by its
message ("Non-Whitelisted Destination", raised in ``sending.Gateway.check_destination``). ``type=text`` with
characters outside GSM-7 is sent as UCS-2 rather than mangled. Phone Numbers / Account errors: 401
authentication failed, 420 (Vonage's "method failed") for bad parameters or a number the account does not own
or cannot buy, 429 throttled, 404/405 unknown path or method, 5xx store trouble.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl
from xml.etree import ElementTree

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response

from smsgate import errors
from smsgate.api import auth, fastpath
from smsgate.core import accounts as core_accounts
from smsgate.core import encoding, numbers, pricing
from smsgate.services import sending
from smsgate.webhooks import targets

MAX_BODY = 64 * 1024
MAX_CHARS = 3200  # Vonage accepts up to 3200 characters (concatenation guide)
TTL_RANGE = (20_000, 604_800_000)
_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}
_DIGITS_RE = re.compile(r"\+?[0-9]+")
_HEX_RE = re.compile(r"(?:[0-9a-fA-F]{2})*")


class MissingParam(errors.ValidationError):
    """A required parameter is missing."""


class AccountBarred(errors.AuthError):
    """The account is disabled."""


class InvalidSignature(errors.AuthError):
    """Invalid Signature"""


class SignatureAndSecret(errors.ValidationError):
    """Signature And API Secret Disallowed"""


_STATUS: list[tuple[type[BaseException], str, str]] = [
    (errors.RateLimited, "1", "Throttled"),
    (errors.QuotaExceeded, "1", "Throttled"),
    (MissingParam, "2", "Missing Parameters"),
    (errors.EmptyText, "2", "Missing Parameters"),
    (SignatureAndSecret, "32", "Signature And API Secret Disallowed"),
    (errors.TextTooLong, "12", "Message Too Long"),
    (errors.InvalidSender, "15", "Invalid Sender Address"),
    (errors.SenderNotAllowed, "15", "Invalid Sender Address"),
    (errors.InvalidUrl, "23", "Invalid Callback Url"),
    (errors.ValidationError, "3", "Invalid Parameters"),
    (InvalidSignature, "14", "Invalid Signature"),
    (AccountBarred, "8", "Partner Account Barred"),
    (errors.AuthError, "4", "Bad Credentials"),
    (errors.InsufficientBalance, "9", "Partner Quota Violation"),
    (errors.NotFound, "3", "Invalid Parameters"),
    (errors.FeatureNotAllowed, "19", "Facility Not Allowed"),
    (errors.PolicyError, "7", "Number Barred"),
]


def status_for(exc: BaseException) -> tuple[str, str]:
    """(status, error-text) for any error; the text keeps our specific reason after Vonage's label."""
    if isinstance(exc, errors.InvalidNumber):
        code, label = (
            ("3", "Invalid Parameters") if exc.reason in ("not_a_number", "empty") else ("6", "Invalid Message")
        )
        return code, f"{label}: {exc.message}"
    if isinstance(exc, errors.DestinationNotAllowed) and "whitelist" in exc.message.lower():
        return "29", "Non-Whitelisted Destination"
    for cls, code, label in _STATUS:
        if isinstance(exc, cls):
            detail = exc.message if isinstance(exc, errors.SmsgateError) else ""
            generic = detail == (type(exc).__doc__ or "").strip()  # no specific reason was given
            if isinstance(exc, errors.AuthError) or generic or not detail or detail == label:
                return code, label  # never say which part of the credentials was wrong
            if isinstance(exc, MissingParam):
                return code, detail  # Vonage's own wording: "Missing to param"
            return code, f"{label}: {detail}"
    return "5", "Internal Error"


# -- parameters -----------------------------------------------------------------------------------------------
def _flatten(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else str(value)


def parse_params(body: bytes, query: Any = ()) -> dict[str, str]:
    """Query string, then the body on top; the body is JSON if it parses as an object, else a form.

    Whatever the Content-Type says: the official SDK may label a form body ``application/json`` (notes §0.5).
    """
    if len(body) > MAX_BODY:
        raise errors.ValidationError(f"request body too large (limit {MAX_BODY} bytes)")
    params = {str(k): str(v) for k, v in (query.items() if hasattr(query, "items") else query)}
    if not body.strip():
        return params
    if body.lstrip()[:1] == b"{":  # a form body never starts with "{": this is JSON, or a broken JSON body
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise errors.ValidationError(errors.json_problem(body, exc.pos, exc.msg)) from None
        if isinstance(data, dict):
            params.update({str(k): _flatten(v) for k, v in data.items() if v is not None})
            return params
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise errors.ValidationError("the body is neither a JSON object nor UTF-8 form data") from None
    params.update(parse_qsl(text, keep_blank_values=True))
    return params


def _required(params: dict[str, str], key: str) -> str:
    value = params.get(key, "")
    if not value.strip():
        raise MissingParam(f"Missing {key} param")
    return value


def _int(params: dict[str, str], key: str, low: int, high: int) -> int | None:
    raw = params.get(key, "").strip()
    if not raw:
        return None
    try:
        value = int(raw)
    except ValueError:
        raise errors.ValidationError(f"Invalid {key} param: not a whole number") from None
    if not low <= value <= high:
        raise errors.ValidationError(f"Invalid {key} param: must be between {low} and {high}")
    return value


def _bool(params: dict[str, str], key: str, default: bool) -> bool:
    raw = params.get(key, "").strip().lower()
    if not raw:
        return default
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise errors.ValidationError(f"Invalid {key} param: use true or false")


def _hex(params: dict[str, str], key: str) -> bytes | None:
    raw = params.get(key, "").strip()
    if not raw:
        return None
    if not _HEX_RE.fullmatch(raw):
        raise errors.ValidationError(f"Invalid {key} param: not hex octets")
    return bytes.fromhex(raw)


def _printable(params: dict[str, str], key: str) -> str | None:
    """A reference we echo back (in JSON, XML, receipts and webhooks): control characters are refused, since they
    cannot travel in XML at all and would reach every receiver of the echo."""
    value = params.get(key) or None
    if value is not None and not value.isprintable():
        raise errors.ValidationError(f"Invalid {key} param: control characters are not allowed")
    return value


def parse_recipient(raw: str) -> numbers.Number:
    """Vonage ``to``: E.164 digits without "+" (a "+" or spaces are tolerated); not digits → status 3."""
    compact = re.sub(r"[\s\-.()]+", "", raw)
    if not _DIGITS_RE.fullmatch(compact):
        raise errors.InvalidNumber(f"Invalid to param: {raw.strip()!r} is not a number", reason="not_a_number")
    return numbers.parse_international(compact)


def check_url(url: str, *, allow_private: bool) -> str:
    """A webhook URL we are willing to call: the gateway's one target policy (``webhooks.targets``)."""
    if len(url) > 2000:
        raise errors.InvalidUrl("the URL is longer than 2000 characters")
    return targets.check_url(url, allow_private)


def send_request(
    account: core_accounts.Account, params: dict[str, str], *, dialect: str, allow_private: bool
) -> sending.SendRequest:
    """Vonage SMS parameters (``from``, ``to``, ``text`` and the advanced keys) as a SendRequest."""
    sender = _required(params, "from")
    recipient = parse_recipient(_required(params, "to"))
    kind = params.get("type", "").strip().lower() or "text"
    if kind not in ("text", "unicode", "binary"):
        raise errors.ValidationError(f"Invalid type param: {kind!r} is not supported (use text, unicode or binary)")
    req = sending.SendRequest(account=account, dialect=dialect, recipient=recipient, sender=sender, max_chars=MAX_CHARS)
    if kind == "binary":
        body = _hex(params, "body")
        if body is None:
            raise MissingParam("Missing body param")
        req.body, req.udh = body, _hex(params, "udh")
    else:
        if params.get("body") or params.get("udh"):
            raise errors.ValidationError("Invalid Parameters: body and udh need type=binary")
        req.text = _required(params, "text")
        req.encoding = encoding.Encoding.UCS2 if kind == "unicode" else None
    ttl = _int(params, "ttl", *TTL_RANGE)
    req.ttl_seconds = ttl / 1000 if ttl is not None else None
    req.status_report = _bool(params, "status-report-req", True)
    req.message_class = _int(params, "message-class", 0, 3)
    req.protocol_id = _int(params, "protocol-id", 0, 255) or 0
    client_ref = params.get("client-ref") or None
    if client_ref is not None and len(client_ref) > 100:
        raise errors.ValidationError("Invalid client-ref param: at most 100 characters")
    req.client_ref = _printable(params, "client-ref")
    if params.get("callback"):
        req.callback_url = check_url(params["callback"], allow_private=allow_private)
    refs = {key: (_printable(params, key) or "")[:100] for key in ("account-ref", "entity-id", "content-id")}
    req.account_ref = refs["account-ref"] or None
    req.entity_id = refs["entity-id"] or None
    req.content_id = refs["content-id"] or None
    if "trusted-number" in params:
        req.trusted_number = _bool(params, "trusted-number", False)
    return req


# -- SMS responses --------------------------------------------------------------------------------------------
def sent_body(req: sending.SendRequest, result: sending.SendResult) -> dict[str, Any]:
    """``message-count`` = parts; one entry per part, each with its own id and price; all values strings."""
    entries = []
    for part in result.parts:
        entry = {
            "to": req.recipient.digits,
            "message-id": part.id,
            "status": "0",
            "remaining-balance": pricing.format_amount(result.remaining_balance),
            "message-price": pricing.format_amount(part.price),
        }
        if result.network:
            entry["network"] = result.network
        if req.client_ref is not None:
            entry["client-ref"] = req.client_ref
        if req.account_ref:
            entry["account-ref"] = req.account_ref
        entries.append(entry)
    return {"message-count": str(len(entries)), "messages": entries}


def error_body(exc: BaseException) -> dict[str, Any]:
    code, text = status_for(exc)
    return {"message-count": "1", "messages": [{"status": code, "error-text": text}]}


# characters XML 1.0 cannot carry at all (ElementTree writes them raw, making the document malformed)
_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_XML_NAMES = {
    "message-id": "messageId",
    "remaining-balance": "remainingBalance",
    "message-price": "messagePrice",
    "client-ref": "clientRef",
    "account-ref": "accountRef",
    "error-text": "errorText",
}


def to_xml(body: dict[str, Any]) -> bytes:
    """The ``/sms/xml`` form of an SMS body: ``<mt-submission-response><messages count=…>``."""
    root = ElementTree.Element("mt-submission-response")
    msgs = ElementTree.SubElement(root, "messages", count=str(body["message-count"]))
    for entry in body["messages"]:
        el = ElementTree.SubElement(msgs, "message")
        for key, value in entry.items():
            ElementTree.SubElement(el, _XML_NAMES.get(key, key)).text = _XML_ILLEGAL.sub("\ufffd", str(value))
    xml: bytes = ElementTree.tostring(root, encoding="utf-8", xml_declaration=False)
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + xml


# -- Phone Numbers and Account --------------------------------------------------------------------------------
def numbers_status(code: str, label: str) -> dict[str, str]:
    return {"error-code": code, "error-code-label": label}


NUMBERS_OK = numbers_status("200", "success")

# -- bodies, for the OpenAPI document
SMS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["message-count", "messages"],
    "properties": {
        "message-count": {"type": "string"},
        "messages": {
            "type": "array",
            "items": {"type": "object", "required": ["status"], "additionalProperties": {"type": "string"}},
        },
    },
}
NUMBERS_STATUS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error-code", "error-code-label"],
    "properties": {"error-code": {"type": "string"}, "error-code-label": {"type": "string"}},
}
_NUMBER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["country", "msisdn", "type", "features"],
    "properties": {
        "country": {"type": "string"},
        "msisdn": {"type": "string"},
        "type": {"type": "string"},
        "features": {"type": "array", "items": {"type": "string"}},
        "cost": {"type": "string"},
        "moHttpUrl": {"type": "string"},
    },
}
NUMBERS_LIST_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["count", "numbers"],
    "properties": {"count": {"type": "integer"}, "numbers": {"type": "array", "items": _NUMBER_SCHEMA}},
}
BALANCE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["value", "autoReload"],
    "properties": {"value": {"type": "number"}, "autoReload": {"type": "boolean"}},
}


def numbers_error(exc: BaseException, status_hint: int | None = None) -> tuple[int, dict[str, str]]:
    """(HTTP status, body) of a Phone Numbers / Account API error, as Vonage's ``error-code`` shape."""
    if isinstance(exc, errors.AuthError):
        return 401, numbers_status("401", "authentication failed")
    if isinstance(exc, errors.RateLimited | errors.QuotaExceeded):
        return 429, numbers_status("429", "too many requests")
    if isinstance(exc, errors.SmsgateError) and isinstance(exc, errors.ValidationError | errors.PolicyError):
        return 420, numbers_status("420", exc.message)
    if status_hint in (404, 405):
        label = "not found" if status_hint == 404 else "method not allowed"
        return status_hint, numbers_status(str(status_hint), label)
    if isinstance(exc, errors.StoreUnavailable):
        return 503, numbers_status("503", "service unavailable")
    return 500, numbers_status("500", "internal error")


def _store(gw: sending.Gateway) -> Any:
    if gw.numbers is None:
        raise errors.StoreUnavailable("the numbers store is not configured")
    return gw.numbers


def _country(params: dict[str, str], required: bool = True) -> str | None:
    raw = params.get("country", "").strip().upper()
    if not raw:
        if required:
            raise MissingParam("Missing country param")
        return None
    if not re.fullmatch(r"[A-Z]{2}", raw):
        raise errors.ValidationError("Invalid country param: use an ISO 3166-1 alpha-2 code")
    return raw


def _msisdn(params: dict[str, str], key: str = "msisdn") -> str:
    raw = re.sub(r"[\s+]", "", _required(params, key))
    if not raw.isdigit() or not 5 <= len(raw) <= 15:
        raise errors.ValidationError(f"Invalid {key} param: E.164 digits without '+'")
    return raw


def _paging(params: dict[str, str]) -> dict[str, Any]:
    return {
        "pattern": params.get("pattern") or None,
        "search_pattern": _int(params, "search_pattern", 0, 2) or 0,
        "index": _int(params, "index", 1, 1_000_000) or 1,
        "size": _int(params, "size", 1, 100) or 10,
    }


async def list_owned(gw: sending.Gateway, account: core_accounts.Account, params: dict[str, str]) -> dict[str, Any]:
    count, rows = await _store(gw).owned(account.id, country=_country(params, False), **_paging(params))
    out = []
    for r in rows:
        item: dict[str, Any] = {"country": r["country"], "msisdn": r["msisdn"], "type": r["type"]}
        item["features"] = list(r["features"] or [])
        if r["mo_http_url"]:
            item["moHttpUrl"] = r["mo_http_url"]
        for key, value in (r["settings"] or {}).items():
            item.setdefault(key, value)
        out.append(item)
    return {"count": count, "numbers": out}


async def search_available(gw: sending.Gateway, params: dict[str, str]) -> dict[str, Any]:
    country = _country(params)
    assert country is not None
    features = [f for f in params.get("features", "").replace(" ", "").split(",") if f]
    count, rows = await _store(gw).available(
        country=country, type=params.get("type") or None, features=features, **_paging(params)
    )
    out = [
        {
            "country": r["country"],
            "msisdn": r["msisdn"],
            "type": r["type"],
            "cost": f"{pricing.from_units(r['cost']).quantize(Decimal('0.01')):f}",  # Vonage shows "0.50"
            "features": list(r["features"] or []),
        }
        for r in rows
    ]
    return {"count": count, "numbers": out}


async def buy(gw: sending.Gateway, account: core_accounts.Account, params: dict[str, str]) -> dict[str, str]:
    country = _country(params)
    assert country is not None
    msisdn = _msisdn(params)
    await _store(gw).buy(account.id, country, msisdn)
    await gw.account_changed(account.id)  # the balance changed
    await gw.number_changed(msisdn)
    return NUMBERS_OK


async def cancel(gw: sending.Gateway, account: core_accounts.Account, params: dict[str, str]) -> dict[str, str]:
    country = _country(params)
    assert country is not None
    msisdn = _msisdn(params)
    await _store(gw).cancel(account.id, country, msisdn)
    await gw.number_changed(msisdn)
    return NUMBERS_OK


_UPDATE_SETTINGS = ("app_id", "moSmppSysType", "voiceCallbackType", "voiceCallbackValue", "voiceStatusCallback")


async def update(
    gw: sending.Gateway, account: core_accounts.Account, params: dict[str, str], *, allow_private: bool
) -> dict[str, str]:
    """``moHttpUrl`` sets where inbound SMS to the number go (empty string clears it)."""
    country = _country(params)
    assert country is not None
    msisdn = _msisdn(params)
    mo = params.get("moHttpUrl")
    if mo:
        mo = check_url(mo, allow_private=allow_private)
    settings = {k: params[k] for k in _UPDATE_SETTINGS if params.get(k)}
    await _store(gw).update(account.id, country, msisdn, mo_http_url=mo, settings=settings)
    return NUMBERS_OK


async def balance(gw: sending.Gateway, account: core_accounts.Account) -> dict[str, Any]:
    """``value`` is a JSON number (unlike the SMS API's strings); read fresh, not from the credential cache."""
    fresh = await gw.accounts.get(account.id) or account
    value = pricing.from_units(fresh.balance).quantize(Decimal("0.00000001"))
    return {"value": float(value), "autoReload": False}


# -- HTTP: what both dialects' routes share -------------------------------------------------------------------
FORM = "application/x-www-form-urlencoded"
# (account, parameters) of a request, authenticated the dialect's way
Caller = Callable[[Request], Awaitable[tuple[core_accounts.Account, dict[str, str]]]]


def json_response(body: Any, status: int = 200, **headers: str) -> Response:
    # KPN clients parse JSON only for exactly "application/json" (reference notes §0.1)
    return Response(orjson.dumps(body), status_code=status, media_type="application/json", headers=headers or None)


def form_body(required: list[str], properties: dict[str, Any]) -> dict[str, Any]:
    """The OpenAPI ``requestBody`` content of a form with these fields."""
    return {"content": {FORM: {"schema": {"type": "object", "required": required, "properties": properties}}}}


async def request_params(request: Request) -> dict[str, str]:
    return parse_params(await fastpath.read_body(request, MAX_BODY), request.query_params)


def allow_private(request: Request) -> bool:
    """Whether webhook URLs may point at private addresses (``settings.webhooks_allow_private``)."""
    return bool(request.app.state.settings.webhooks_allow_private)


async def send(
    request: Request,
    account: core_accounts.Account,
    params: dict[str, str],
    *,
    dialect: str,
    reply_routing: bool = False,
) -> dict[str, Any]:
    """Send an SMS from Vonage parameters; the Vonage SMS body."""
    req = send_request(account, params, dialect=dialect, allow_private=allow_private(request))
    req.reply_routing = reply_routing
    return sent_body(req, await auth.gateway(request).send(req))


def add_number_routes(router: APIRouter, prefix: str, caller: Caller, security: list[dict[str, list[str]]]) -> None:
    """The Phone Numbers routes (``prefix`` + ``/number/...``, ``/account/numbers``) on a dialect's router."""
    doc: dict[str, Any] = {
        "requestBody": form_body(
            ["country", "msisdn"],
            {
                "country": {"type": "string", "example": "NL"},
                "msisdn": {"type": "string", "example": "3197010240299"},
                "moHttpUrl": {"type": "string", "description": "inbound SMS webhook; empty clears it"},
                "moSmppSysType": {"type": "string"},
                "voiceCallbackType": {"type": "string", "enum": ["sip", "tel", "app"]},
                "voiceCallbackValue": {"type": "string"},
                "voiceStatusCallback": {"type": "string"},
            },
        ),
        "security": security,
    }
    ok: dict[int | str, dict[str, Any]] = {
        200: {
            "description": "Done",
            "content": {"application/json": {"schema": NUMBERS_STATUS_SCHEMA, "example": NUMBERS_OK}},
        }
    }
    listed: dict[int | str, dict[str, Any]] = {
        200: {"description": "Numbers", "content": {"application/json": {"schema": NUMBERS_LIST_SCHEMA}}}
    }

    @router.post(
        prefix + "/number/update", summary="Set a number's inbound webhook (moHttpUrl)", openapi_extra=doc, responses=ok
    )
    async def number_update(request: Request) -> Response:
        account, params = await caller(request)
        body = await update(auth.gateway(request), account, params, allow_private=allow_private(request))
        return json_response(body)

    @router.post(prefix + "/number/buy", summary="Buy an available number", openapi_extra=doc, responses=ok)
    async def number_buy(request: Request) -> Response:
        account, params = await caller(request)
        return json_response(await buy(auth.gateway(request), account, params))

    @router.post(prefix + "/number/cancel", summary="Give a number back", openapi_extra=doc, responses=ok)
    async def number_cancel(request: Request) -> Response:
        account, params = await caller(request)
        return json_response(await cancel(auth.gateway(request), account, params))

    @router.get(
        prefix + "/number/search",
        summary="Available numbers in a country",
        openapi_extra={"security": security, "parameters": _query(country_required=True, search=True)},
        responses=listed,
    )
    async def number_search(request: Request) -> Response:
        _, params = await caller(request)
        return json_response(await search_available(auth.gateway(request), params))

    @router.get(
        prefix + "/account/numbers",
        summary="Numbers this account owns",
        openapi_extra={"security": security, "parameters": _query(country_required=False, search=False)},
        responses=listed,
    )
    async def account_numbers(request: Request) -> Response:
        account, params = await caller(request)
        return json_response(await list_owned(auth.gateway(request), account, params))


def _query(*, country_required: bool, search: bool) -> list[dict[str, Any]]:
    """The query parameters of the two number listings (``_paging``, ``_country``; ``type``/``features``: search)."""
    params: list[dict[str, Any]] = [
        {"name": "country", "in": "query", "required": country_required, "schema": {"type": "string", "example": "NL"}},
        {"name": "pattern", "in": "query", "schema": {"type": "string"}},
        {"name": "search_pattern", "in": "query", "schema": {"type": "integer", "minimum": 0, "maximum": 2}},
        {"name": "size", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 100}},
        {"name": "index", "in": "query", "schema": {"type": "integer", "minimum": 1}},
    ]
    if search:
        params.append({"name": "type", "in": "query", "schema": {"type": "string", "example": "mobile-lvn"}})
        params.append({"name": "features", "in": "query", "schema": {"type": "string", "example": "SMS"}})
    return params
