"""Webhook payloads: Vonage delivery receipts and inbound messages, and our own signed JSON events.

Vonage payloads carry only string values (receivers written for Vonage compare strings) and, when the account
signs webhooks, ``timestamp`` + ``nonce`` + ``sig`` over all the other fields (``core.signing.vonage_sign``;
the official SDK's ``Auth.check_signature`` accepts them). Our own events are
``{"id", "type", "created_at", "data"}``; the ``X-Smsgate-Signature`` header is added at send time so its
timestamp is fresh on every try (docs/webhooks.md).
"""

from __future__ import annotations

import datetime as dt
import urllib.parse
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from smsgate.core import accounts as core_accounts
from smsgate.core import message as core_message
from smsgate.core import pricing, signing

JSON = "application/json"
FORM = "application/x-www-form-urlencoded"

# Vonage ``status`` of a DLR for each part status we record.
VONAGE_STATUS = {
    "submitted": "accepted",
    "delivered": "delivered",
    "expired": "expired",
    "failed": "failed",
    "rejected": "rejected",
}
# Vonage documents these ``err-code`` values; anything else a network says becomes 99 (general error).
VONAGE_ERR_CODES = frozenset(range(16)) | {99}


def kpn_receipt(msg: core_message.Message, at: float) -> str:
    """A KPN batch receipt, one per recipient at its final status (docs/webhooks.md): the batch's ``document_id``,
    the message id, the number, ``status`` upper-case (DELIVERED, FAILED, EXPIRED, REJECTED) and
    ``StatusDateTime`` in epoch seconds."""
    body = {
        "document_id": msg.batch_id,
        "message_id": msg.id,
        "mobile_number": msg.recipient,
        "status": msg.status.value.upper(),
        "StatusDateTime": int(at),
    }
    return orjson.dumps(body).decode()


def _utc(ts: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(ts, dt.UTC)


def vonage_time(ts: float) -> str:
    """``message-timestamp``: UTC ``YYYY-MM-DD HH:MM:SS``."""
    return _utc(ts).strftime("%Y-%m-%d %H:%M:%S")


def scts(ts: float) -> str:
    """``scts``: the network's completion time as ``YYMMDDHHMM`` (UTC)."""
    return _utc(ts).strftime("%y%m%d%H%M")


def iso_time(ts: float) -> str:
    return _utc(ts).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _digits(address: str) -> str:
    return address[1:] if address.startswith("+") and address[1:].isdigit() else address


def vonage_receipt(
    message: core_message.Message, part: core_message.Part, account: core_accounts.Account, status: str, at: float
) -> dict[str, str]:
    """One part's delivery receipt as Vonage posts it (reference notes §1.6)."""
    code = int(part.error_code or 0)
    err = code if code in VONAGE_ERR_CODES else 99
    if status in ("delivered", "submitted"):
        err = 0
    elif err == 0:
        err = 99  # a failure without a code: Vonage's "general error"
    params = {
        "msisdn": _digits(message.recipient),
        "to": _digits(message.sender),
        "network-code": message.network or "",
        "messageId": part.id,
        "price": pricing.format_amount(pricing.from_units(part.price or 0)),
        "status": VONAGE_STATUS.get(status, status),
        "scts": scts(part.done_at or part.submitted_at or at),
        "err-code": str(err),
        "api-key": account.api_key,
        "message-timestamp": vonage_time(at),
    }
    if message.client_ref:
        params["client-ref"] = message.client_ref
    return params


def _keyword(text: str | None) -> str:
    words = (text or "").split()
    return words[0].upper() if words else ""


def _vonage_type(encoding: str) -> str:
    return {"gsm7": "text", "ucs2": "unicode"}.get(encoding, "binary")


def vonage_inbound(
    message: core_message.Message, parts: Sequence[core_message.Part], account: core_accounts.Account
) -> list[dict[str, str]]:
    """An inbound SMS as Vonage posts it (§1.7): one webhook with the whole text when every part arrived.

    A message whose parts did not all arrive in time goes out part by part with ``concat``/``concat-ref``/
    ``concat-total``/``concat-part``, as Vonage sends parts it could not join.
    """
    at = message.created_at
    base = {
        "msisdn": _digits(message.sender),
        "to": _digits(message.recipient),
        "type": _vonage_type(message.encoding),
        "message-timestamp": vonage_time(at),
        "timestamp": str(int(at)),
        "nonce": str(uuid.uuid4()),
        "api-key": account.api_key,
    }
    if not message.incomplete or len(parts) < 1:
        params = {**base, "messageId": parts[0].id if parts else message.id}
        if base["type"] == "binary":
            params["data"] = message.data or b"".join(p.payload for p in parts).hex()
            params["udh"] = ""
        else:
            params["text"] = message.text or ""
            params["keyword"] = _keyword(message.text)
        return [params]
    ref = str(int(uuid.UUID(message.id).int & 0xFFFF))
    out = []
    for p in parts:
        params = {
            **base,
            "messageId": p.id,
            "concat": "true",
            "concat-ref": ref,
            "concat-total": str(p.total),
            "concat-part": str(p.index),
        }
        if base["type"] == "binary":
            params["data"] = p.payload.hex()
            params["udh"] = ""
        else:
            params["text"] = p.text or ""
            params["keyword"] = _keyword(p.text)
        out.append(params)
    return out


def sign_vonage(params: dict[str, str], secret: str, method: str, now: float) -> dict[str, str]:
    """Add ``timestamp`` (if absent), ``nonce`` and ``sig`` as Vonage does for signed webhooks."""
    signed = dict(params)
    signed.setdefault("timestamp", str(int(now)))
    signed.setdefault("nonce", str(uuid.uuid4()))
    signed["sig"] = signing.vonage_sign(signed, secret, method)
    return signed


def encode_vonage(params: Mapping[str, str], method: str, fmt: str) -> tuple[str, str]:
    """(content_type, body) for a Vonage payload; a GET carries the body as the query string."""
    if method == "GET" or fmt == "form":
        return FORM, urllib.parse.urlencode(params)
    return JSON, orjson.dumps(dict(params)).decode()


def message_data(message: core_message.Message, parts: Sequence[core_message.Part] | None = None) -> dict[str, Any]:
    """The ``data`` of our own events: the message as ``GET /v1/messages/{id}`` shows it, without history."""
    out: dict[str, Any] = {
        "id": message.id,
        "direction": message.direction.value,
        "dialect": message.dialect,
        "status": message.status.value,
        "from": message.sender,
        "to": message.recipient,
        "text": message.text,
        "encoding": message.encoding,
        "parts_count": message.parts_count,
        "network": message.network,
        "country": message.country,
        "price": pricing.format_amount(pricing.from_units(message.price or 0)),
        "client_ref": message.client_ref,
        "error": {"code": message.error_code, "text": message.error_text} if message.error_text else None,
        "created_at": iso_time(message.created_at),
        "updated_at": iso_time(message.updated_at),
    }
    if message.direction is core_message.Direction.INBOUND:
        out["incomplete"] = message.incomplete
        if message.data:
            out["data"] = message.data
    if parts is not None:
        out["parts"] = [
            {
                "id": p.id,
                "index": p.index,
                "status": p.status.value,
                "error_code": p.error_code,
                "network_message_id": p.network_id,
            }
            for p in parts
        ]
    return out


def event(event_id: str, type_: str, at: float, data: Mapping[str, Any]) -> str:
    return orjson.dumps({"id": event_id, "type": type_, "created_at": iso_time(at), "data": dict(data)}).decode()
