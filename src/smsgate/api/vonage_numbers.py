"""The Vonage Phone Numbers and Account API on the wire, for both Vonage dialects (``vonage`` on Vonage's paths,
``nexmo`` under KPN's ``/communication/nexmo/phone-numbers``): the routes (``add_number_routes``), their
parameters, the ``error-code`` bodies and the OpenAPI schemas. The use cases are ``services.numbers``.

Errors: 401 authentication failed, 420 (Vonage's "method failed") for bad parameters or a number the account does
not own or cannot buy, 429 throttled, 404/405 unknown path or method, 5xx store trouble.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from smsgate import errors
from smsgate.api import responses, vonage_sms
from smsgate.core import accounts as core_accounts
from smsgate.core import pricing
from smsgate.services import numbers as services_numbers

FORM = "application/x-www-form-urlencoded"
# (account, parameters) of a request, authenticated the dialect's way
Caller = Callable[[Request], Awaitable[tuple[core_accounts.Account, dict[str, str]]]]
Handler = Callable[[Request], Awaitable[Response]]


def service(request: Request) -> services_numbers.Numbers:
    found: services_numbers.Numbers = request.app.state.numbers
    return found


def numbers_status(code: str, label: str) -> dict[str, str]:
    return {"error-code": code, "error-code-label": label}


NUMBERS_OK = numbers_status("200", "success")

# -- bodies, for the OpenAPI document
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


def _country(params: dict[str, str], required: bool = True) -> str | None:
    raw = params.get("country", "").strip().upper()
    if not raw:
        if required:
            raise errors.MissingParameter("Missing country param")
        return None
    if not re.fullmatch(r"[A-Z]{2}", raw):
        raise errors.ValidationError("Invalid country param: use an ISO 3166-1 alpha-2 code")
    return raw


def _msisdn(params: dict[str, str], key: str = "msisdn") -> str:
    raw = re.sub(r"[\s+]", "", vonage_sms.required(params, key))
    if not raw.isdigit() or not 5 <= len(raw) <= 15:
        raise errors.ValidationError(f"Invalid {key} param: E.164 digits without '+'")
    return raw


def _paging(params: dict[str, str]) -> dict[str, Any]:
    return {
        "pattern": params.get("pattern") or None,
        "search_pattern": vonage_sms.whole(params, "search_pattern", 0, 2) or 0,
        "index": vonage_sms.whole(params, "index", 1, 1_000_000) or 1,
        "size": vonage_sms.whole(params, "size", 1, 100) or 10,
    }


def owned_body(count: int, rows: list[dict[str, Any]]) -> dict[str, Any]:
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


def available_body(count: int, rows: list[dict[str, Any]]) -> dict[str, Any]:
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


_UPDATE_SETTINGS = ("app_id", "moSmppSysType", "voiceCallbackType", "voiceCallbackValue", "voiceStatusCallback")


def _country_required(params: dict[str, str]) -> str:
    country = _country(params)
    assert country is not None
    return country


async def balance_body(request: Request, account: core_accounts.Account) -> dict[str, Any]:
    """``value`` is a JSON number (unlike the SMS API's strings)."""
    value = (await service(request).balance(account)).quantize(Decimal("0.00000001"))
    return {"value": float(value), "autoReload": False}


def form_body(required: list[str], properties: dict[str, Any]) -> dict[str, Any]:
    """The OpenAPI ``requestBody`` content of a form with these fields."""
    return {"content": {FORM: {"schema": {"type": "object", "required": required, "properties": properties}}}}


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
        mo = params.get("moHttpUrl")
        settings = {k: params[k] for k in _UPDATE_SETTINGS if params.get(k)}
        await service(request).update(
            account, _country_required(params), _msisdn(params), mo_http_url=mo, settings=settings
        )
        return responses.json(NUMBERS_OK)

    @router.post(prefix + "/number/buy", summary="Buy an available number", openapi_extra=doc, responses=ok)
    async def number_buy(request: Request) -> Response:
        account, params = await caller(request)
        await service(request).buy(account, _country_required(params), _msisdn(params))
        return responses.json(NUMBERS_OK)

    @router.post(prefix + "/number/cancel", summary="Give a number back", openapi_extra=doc, responses=ok)
    async def number_cancel(request: Request) -> Response:
        account, params = await caller(request)
        await service(request).cancel(account, _country_required(params), _msisdn(params))
        return responses.json(NUMBERS_OK)

    def listing(path: str, summary: str, *, search: bool) -> Callable[[Handler], Handler]:
        """A GET listing numbers: search (a country required, type and features) or the account's own."""
        extra = {"security": security, "parameters": _query(country_required=search, search=search)}
        return router.get(prefix + path, summary=summary, openapi_extra=extra, responses=listed)

    @listing("/number/search", "Available numbers in a country", search=True)
    async def number_search(request: Request) -> Response:
        _, params = await caller(request)
        features = [f for f in params.get("features", "").replace(" ", "").split(",") if f]
        count, rows = await service(request).available(
            country=_country_required(params), type=params.get("type") or None, features=features, **_paging(params)
        )
        return responses.json(available_body(count, rows))

    @listing("/account/numbers", "Numbers this account owns", search=False)
    async def account_numbers(request: Request) -> Response:
        account, params = await caller(request)
        count, rows = await service(request).owned(account, country=_country(params, False), **_paging(params))
        return responses.json(owned_body(count, rows))


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
