"""Vonage (Nexmo) SMS on the wire, shared by the native dialect (``vonage``) and the KPN-proxied one (``nexmo``):
parameters into a ``SendRequest``, results into Vonage bodies (every SMS value a JSON string, one ``messages[]``
entry per part), errors into Vonage status codes, and the ``/sms/xml`` form. Each dialect keeps its own
authentication and error rendering; the Phone Numbers API is ``api.vonage_numbers``.

SMS status codes (``messages[].status``, always HTTP 200), chosen by the error's class:

    ======  ====================================================  ======================================
    status  smsgate error                                         why this code
    ======  ====================================================  ======================================
    1       RateLimited, QuotaExceeded                            "Throttled" (account TPS / quota)
    2       MissingParameter, EmptyText                           a required parameter is absent/empty
    3       ValidationError (other), InvalidEncoding, NotFound,   "Invalid Parameters" (bad ttl, hex, …)
            InvalidNumber(reason not_a_number/empty)              a ``to`` that is not digits
    4       AuthError                                             "Bad Credentials"
    5       StoreUnavailable, RouteUnavailable, anything else     "Internal Error"
    6       InvalidNumber (any other reason)                      "Invalid Message" (unrecognised prefix)
    7       DestinationNotAllowed (country off / blocked prefix,  "Number Barred"
            Suppressed: the recipient opted out)
    8       AccountDisabled                                       "Partner Account Barred"
    9       InsufficientBalance                                   "Partner Quota Violation" (no credit)
    12      TextTooLong (> 3200 characters or > 255 parts)        "Message Too Long"
    14      InvalidSignature                                      bad ``sig`` / timestamp out of window
    15      InvalidSender, SenderNotAllowed (also SenderTaken)    "Invalid Sender Address" (not the account's)
    19      FeatureNotAllowed                                     "Facility Not Allowed" (silent, SIM data
                                                                  download, class-2 binary without permission)
    23      InvalidUrl (``callback``)                             "Invalid Callback Url"
    29      NotWhitelisted                                        demo allow-list
    32      SignatureAndSecret                                    ``sig`` together with ``api_secret``
    ======  ====================================================  ======================================


``type=text`` with characters outside GSM-7 is sent as UCS-2 rather than mangled.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl
from xml.etree import ElementTree

import orjson
from fastapi import Request
from fastapi.responses import Response

from smsgate import errors
from smsgate.api import fastpath, idempotent, send_options
from smsgate.core import accounts as core_accounts
from smsgate.core import encoding, numbers, pricing
from smsgate.services import numbers as services_numbers
from smsgate.services import sending

MAX_BODY = 64 * 1024
MAX_CHARS = 3200  # Vonage accepts up to 3200 characters (concatenation guide)
TTL_RANGE = (20_000, 604_800_000)
_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}
_DIGITS_RE = re.compile(r"\+?[0-9]+")
_HEX_RE = re.compile(r"(?:[0-9a-fA-F]{2})*")


_STATUS: list[tuple[type[BaseException], str, str]] = [
    (errors.RateLimited, "1", "Throttled"),
    (errors.QuotaExceeded, "1", "Throttled"),
    (errors.MissingParameter, "2", "Missing Parameters"),
    (errors.EmptyText, "2", "Missing Parameters"),
    (errors.SignatureAndSecret, "32", "Signature And API Secret Disallowed"),
    (errors.TextTooLong, "12", "Message Too Long"),
    (errors.InvalidSender, "15", "Invalid Sender Address"),
    (errors.SenderNotAllowed, "15", "Invalid Sender Address"),
    (errors.InvalidUrl, "23", "Invalid Callback Url"),
    (errors.ValidationError, "3", "Invalid Parameters"),
    (errors.InvalidSignature, "14", "Invalid Signature"),
    (errors.AccountDisabled, "8", "Partner Account Barred"),
    (errors.AuthError, "4", "Bad Credentials"),
    (errors.InsufficientBalance, "9", "Partner Quota Violation"),
    (errors.NotFound, "3", "Invalid Parameters"),
    (errors.FeatureNotAllowed, "19", "Facility Not Allowed"),
    (errors.NotWhitelisted, "29", "Non-Whitelisted Destination"),
    (errors.PolicyError, "7", "Number Barred"),
]


def status_for(exc: BaseException) -> tuple[str, str]:
    """(status, error-text) for any error; the text keeps our specific reason after Vonage's label."""
    if isinstance(exc, errors.InvalidNumber):
        code, label = (
            ("3", "Invalid Parameters") if exc.reason in ("not_a_number", "empty") else ("6", "Invalid Message")
        )
        return code, f"{label}: {exc.message}"
    for cls, code, label in _STATUS:
        if isinstance(exc, cls):
            detail = exc.message if isinstance(exc, errors.SmsgateError) else ""
            generic = detail == (type(exc).__doc__ or "").strip()  # no specific reason was given
            if isinstance(exc, errors.AuthError) or generic or not detail or detail == label:
                return code, label  # never say which part of the credentials was wrong
            if isinstance(exc, errors.MissingParameter):
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


def required(params: dict[str, str], key: str) -> str:
    value = params.get(key, "")
    if not value.strip():
        raise errors.MissingParameter(f"Missing {key} param")
    return value


def whole(params: dict[str, str], key: str, low: int, high: int) -> int | None:
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


def send_request(
    account: core_accounts.Account,
    params: dict[str, str],
    *,
    dialect: str,
    allow_private: bool,
    status_report: bool = True,
) -> sending.SendRequest:
    """Vonage SMS parameters (``from``, ``to``, ``text`` and the advanced keys) as a SendRequest; ``status_report``
    is ``status-report-req``'s default (Vonage's own: true; KPN's proxy documents false)."""
    sender = required(params, "from")
    recipient = parse_recipient(required(params, "to"))
    kind = params.get("type", "").strip().lower() or "text"
    if kind not in ("text", "unicode", "binary"):
        raise errors.ValidationError(f"Invalid type param: {kind!r} is not supported (use text, unicode or binary)")
    req = sending.SendRequest(account=account, dialect=dialect, recipient=recipient, sender=sender, max_chars=MAX_CHARS)
    if kind == "binary":
        body = _hex(params, "body")
        if body is None:
            raise errors.MissingParameter("Missing body param")
        req.body, req.udh = body, _hex(params, "udh")
    else:
        if params.get("body") or params.get("udh"):
            raise errors.ValidationError("Invalid Parameters: body and udh need type=binary")
        req.text = required(params, "text")
        req.encoding = encoding.Encoding.UCS2 if kind == "unicode" else None
    ttl = whole(params, "ttl", *TTL_RANGE)
    req.ttl_seconds = ttl / 1000 if ttl is not None else None
    req.status_report = _bool(params, "status-report-req", status_report)
    req.message_class = whole(params, "message-class", 0, 3)
    req.protocol_id = whole(params, "protocol-id", 0, 255) or 0
    client_ref = params.get("client-ref") or None
    if client_ref is not None and len(client_ref) > 100:
        raise errors.ValidationError("Invalid client-ref param: at most 100 characters")
    req.client_ref = _printable(params, "client-ref")
    if params.get("callback"):
        req.callback_url = services_numbers.check_url(params["callback"], allow_private=allow_private)
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


# -- HTTP -------------------------------------------------------------------------------------------------------
async def request_params(request: Request) -> dict[str, str]:
    body = await fastpath.read_body(request, MAX_BODY)
    # no query string (a POST's usual case): Starlette's QueryParams would still be built, ~1.5 % of a send's CPU
    return parse_params(body, request.query_params if request.scope.get("query_string") else ())


def allow_private(request: Request) -> bool:
    """Whether webhook URLs may point at private addresses (``settings.webhooks_allow_private``)."""
    return bool(request.app.state.settings.webhooks_allow_private)


async def send(
    request: Request,
    account: core_accounts.Account,
    params: dict[str, str],
    *,
    dialect: str,
    answer: Callable[[dict[str, Any]], Response],
    reply_routing: bool = False,
    status_report: bool = True,
) -> Response:
    """Send an SMS from Vonage parameters; ``answer`` makes the response of the Vonage SMS body (JSON or XML).
    An Idempotency-Key identifies the request by its parameters without the credentials and signature (a signed
    retry is signed anew), and by the ``inbound`` flag."""
    req = send_request(
        account, params, dialect=dialect, allow_private=allow_private(request), status_report=status_report
    )
    req.reply_routing = reply_routing
    send_options.apply(request, req)
    identity = orjson.dumps(
        sorted((k, v) for k, v in params.items() if k not in _CREDENTIALS), option=orjson.OPT_NON_STR_KEYS
    )
    return await idempotent.send(
        request, req, lambda result: answer(sent_body(req, result)), identity, str(reply_routing)
    )


_CREDENTIALS = frozenset({"api_key", "api_secret", "sig", "timestamp"})


# -- the body, for the OpenAPI document
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
