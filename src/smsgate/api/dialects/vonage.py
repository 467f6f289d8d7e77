"""Native Vonage (Nexmo) REST: ``/sms/json``, ``/sms/xml``, Phone Numbers and the account balance, on the paths
Vonage uses, so the official SDKs work by pointing their ``rest_host`` here.

Credentials come from wherever real clients put them (reference notes §0.4): a Basic header (Python SDK v4),
the form body (legacy SDK), a JSON body (Node SDK) or the query string. A ``sig`` + ``timestamp`` pair is checked
against the account's ``signature_secret``/``signature_method`` within ±5 minutes; ``sig`` with ``api_secret``
is status 32. SMS errors are HTTP 200 with a Vonage status (table in ``api.vonage_sms``); Numbers and Account
errors use Vonage's ``error-code`` shape with a 4xx status.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from smsgate import errors, logs
from smsgate.api import auth, fastpath, idempotent, responses, send_options, vonage_numbers, vonage_sms
from smsgate.core import accounts as core_accounts
from smsgate.core import idempotency as core_idempotency
from smsgate.core import signing

PREFIXES = ("/sms/", "/number/", "/account/")
SIGNATURE_WINDOW = 300.0

router = APIRouter(tags=["Vonage SMS, Numbers and Account API"])

_SECURITY: list[dict[str, list[str]]] = [{"basicAuth": []}]
_SMS_FIELDS: dict[str, Any] = {
    "api_key": {"type": "string"},
    "api_secret": {"type": "string"},
    "sig": {"type": "string", "description": "request signature (with timestamp), instead of api_secret"},
    "timestamp": {"type": "string"},
    "from": {"type": "string", "example": "smsgate"},
    "to": {"type": "string", "example": "31612345678"},
    "text": {"type": "string", "example": "Hello from smsgate"},
    "type": {"type": "string", "enum": ["text", "unicode", "binary"]},
    "body": {"type": "string", "description": "hex, type=binary"},
    "udh": {"type": "string", "description": "hex, type=binary"},
    "ttl": {"type": "integer", "minimum": 20000, "maximum": 604800000},
    "status-report-req": {"type": "boolean"},
    "callback": {"type": "string", "description": "delivery receipt URL for this message"},
    "message-class": {"type": "integer", "minimum": 0, "maximum": 3},
    "protocol-id": {"type": "integer", "minimum": 0, "maximum": 255},
    "client-ref": {"type": "string", "maxLength": 100},
    "account-ref": {"type": "string"},
}
_SMS_DOC: dict[str, Any] = {
    "requestBody": {
        "content": {
            vonage_numbers.FORM: {"schema": {"type": "object", "required": ["from", "to"], "properties": _SMS_FIELDS}},
            "application/json": {"schema": {"type": "object", "properties": _SMS_FIELDS}},
        }
    },
    "security": _SECURITY,
    "parameters": [idempotent.HEADER_DOC, *send_options.openapi_parameters()],
}
_SMS_EXAMPLE = {
    "message-count": "1",
    "messages": [
        {
            "to": "31612345678",
            "message-id": "0A0000000123ABCD",
            "status": "0",
            "remaining-balance": "999.93000000",
            "message-price": "0.07000000",
            "network": "20408",
        }
    ],
}


def _is_sms(request: Request) -> bool:
    return request.url.path.startswith("/sms/")


def render_error(request: Request, exc: Exception, status_hint: int | None = None) -> Response:
    """SMS: HTTP 200 with a Vonage status (XML under /sms/xml); Numbers/Account: ``error-code`` with a 4xx."""
    if _is_sms(request) and status_hint not in (404, 405):
        body = vonage_sms.error_body(exc)
        if request.url.path.startswith("/sms/xml"):
            return Response(vonage_sms.to_xml(body), media_type="application/xml")
        return responses.json(body)
    status, body = vonage_numbers.numbers_error(exc, status_hint)
    return responses.json(body, status)


# -- credentials ----------------------------------------------------------------------------------------------
async def _signed(request: Request, params: dict[str, str]) -> core_accounts.Account:
    """The account of a signed request: ``sig`` over every parameter with the account's signature secret, within
    the 5-minute window, and never seen before: a (api_key, sig) is remembered for as long as its timestamp is in
    the window, so a captured request cannot be sent again (each replay would be billed)."""
    gw = auth.gateway(request)
    if params.get("api_secret"):
        raise errors.SignatureAndSecret()
    api_key = params.get("api_key", "")
    if not api_key:
        raise errors.MissingParameter("Missing api_key param")
    await auth.login_blocked(request, api_key)
    acc = await gw.accounts.find(api_key)
    try:
        ts = float(params.get("timestamp", ""))
    except ValueError:
        ts = float("nan")
    method = acc.signature_method if acc is not None and acc.signature_method in signing.METHODS else "md5hash"
    if (
        acc is None
        or acc.api_key != api_key
        or not acc.signature_secret
        or not abs(time.time() - ts) <= SIGNATURE_WINDOW  # written so that a NaN timestamp fails too
        or not signing.vonage_verify(params, acc.signature_secret, method)
    ):
        await auth.failed_login(request, api_key, "bad signature")
        raise errors.InvalidSignature()
    if not acc.active:
        raise errors.AccountDisabled()
    ttl = ts + SIGNATURE_WINDOW - time.time() + 1.0
    if not await request.app.state.signatures.first(f"{api_key}:{params['sig'].strip().lower()}", ttl):
        seen = errors.InvalidSignature("this signed request was already received (replay)")
        if core_idempotency.HEADER not in request.headers:
            raise seen
        # a client's retry of the very same signed request: it may get the kept answer, never a new message (the
        # key is not signed, so a captured request with a new key must not send again)
        request.state.replay_only = seen
    logs.current_account.set(acc.id)
    return acc


async def credentials(
    request: Request, params: dict[str, str], creds: tuple[str, str] | None = None
) -> core_accounts.Account:
    """The Basic header's ``creds`` (checked before the body is read), or a signature, or api_key/api_secret in the
    body or query; failures count per (client address, api_key)."""
    if creds is None:
        if params.get("sig"):
            return await _signed(request, params)
        key, secret = params.get("api_key", ""), params.get("api_secret", "")
        if not key:
            raise errors.MissingParameter("Missing api_key param")
        if not secret:
            raise errors.MissingParameter("Missing api_secret param")
        creds = (key, secret)
    return await auth.login(request, *creds)  # AccountDisabled: status 8, Partner Account Barred


async def _caller(request: Request) -> tuple[core_accounts.Account, dict[str, str]]:
    """Credentials in a header are checked before the body is read; in the body or query, nothing is done with
    the parameters before they are checked."""
    basic = auth.basic_credentials(request)
    if basic is not None:
        account = await credentials(request, {}, basic)
        return account, await vonage_sms.request_params(request)
    params = await vonage_sms.request_params(request)
    return await credentials(request, params), params


# -- SMS ------------------------------------------------------------------------------------------------------
async def _send(request: Request, answer: Callable[[dict[str, Any]], Response]) -> Response:
    account, params = await _caller(request)
    return await vonage_sms.send(request, account, params, dialect="vonage", answer=answer)


def _xml(body: dict[str, Any]) -> Response:
    return Response(vonage_sms.to_xml(body), media_type="application/xml")


@router.get("/sms/json", include_in_schema=False)  # Vonage also takes the parameters as a query string
@router.post(
    "/sms/json",
    summary="Send an SMS (Vonage SMS API, JSON response)",
    openapi_extra=_SMS_DOC,
    responses={
        200: {
            "description": "Per-part result, or an error status",
            "content": {"application/json": {"schema": vonage_sms.SMS_SCHEMA, "example": _SMS_EXAMPLE}},
        }
    },
)
@fastpath.hot
async def sms_json(request: Request) -> Response:
    return await _send(request, responses.json)


@router.get("/sms/xml", include_in_schema=False)  # Vonage also takes the parameters as a query string
@router.post(
    "/sms/xml",
    summary="Send an SMS (Vonage SMS API, XML response)",
    openapi_extra=_SMS_DOC,
    responses={200: {"description": "<mt-submission-response>", "content": {"application/xml": {}}}},
)
@fastpath.hot
async def sms_xml(request: Request) -> Response:
    return await _send(request, _xml)


# -- Numbers and Account --------------------------------------------------------------------------------------
vonage_numbers.add_number_routes(router, "", _caller, _SECURITY)


@router.get(
    "/account/get-balance",
    summary="Account balance",
    openapi_extra={"security": _SECURITY},
    responses={
        200: {
            "description": "Balance",
            "content": {
                "application/json": {
                    "schema": vonage_numbers.BALANCE_SCHEMA,
                    "example": {"value": 10.17127500, "autoReload": False},
                }
            },
        }
    },
)
async def get_balance(request: Request) -> Response:
    account, _ = await _caller(request)
    return responses.json(await vonage_numbers.balance_body(request, account))
