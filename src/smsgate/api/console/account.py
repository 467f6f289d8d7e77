"""Our own account API (``/v1/account``): who am I, quota and balance, secret rotation, traffic per minute.

Used by the console's Account page, and plain JSON for anyone else. Any of the account's credentials work
(Bearer token or Basic api_key:api_secret); errors use the ``/v1`` shape ``{"error": {"code", "message"}}``.
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel

from smsgate import errors
from smsgate.api import auth, responses, webhooks
from smsgate.core import accounts as core_accounts
from smsgate.core import pricing
from smsgate.store import console as store_console

router = APIRouter(tags=["Account"])
_SECURITY: dict[str, Any] = {"security": [{"kpnOAuth2": []}, {"basicAuth": []}]}


# -- response bodies, for the OpenAPI document ---------------------------------------------------------------
class QuotaOut(BaseModel):
    limit: int | None  # None: unlimited
    used: int
    interval: int
    unit: str
    reset: str
    reset_at: float


class AccountOut(BaseModel):
    id: str
    name: str
    api_key: str
    level: str
    status: str
    default_sender: str | None
    quota: QuotaOut
    balance: str
    receipt_url: str | None
    inbound_url: str | None


class SecretOut(BaseModel):
    api_key: str
    api_secret: str


class MinuteOut(BaseModel):
    at: float
    outbound: int
    inbound: int


class TotalsOut(BaseModel):
    outbound: int
    inbound: int


class StatsOut(BaseModel):
    minutes: int
    start: float
    end: float
    per_minute: list[MinuteOut]
    totals: TotalsOut


async def _fresh(request: Request, account: core_accounts.Account) -> core_accounts.Account:
    """The balance moves with every send: read it from the store, not the 5-second credential cache."""
    acc = await auth.gateway(request).accounts.get(account.id)
    if acc is None:
        raise errors.NotFound("no such account")
    return acc


@router.get(
    "/v1/account",
    summary="The calling account: key, level, quota use and balance",
    openapi_extra=_SECURITY,
    responses={200: {"model": AccountOut}},
)
async def get_account(request: Request, account: core_accounts.Account = Depends(auth.any_credentials)) -> Response:
    gw = auth.gateway(request)
    acc = await _fresh(request, account)
    quota = await gw.quotas.state(acc)
    body: dict[str, Any] = {
        "id": acc.id,
        "name": acc.name,
        "api_key": acc.api_key,
        "level": acc.level,
        "status": acc.status,
        "default_sender": acc.default_sender,
        "quota": {
            "limit": quota.limit,
            "used": quota.used,
            "interval": quota.interval,
            "unit": quota.unit,
            "reset": core_accounts.format_reset(quota.reset_at),
            "reset_at": quota.reset_at,
        },
        "balance": pricing.format_amount(pricing.from_units(acc.balance)),
        "receipt_url": acc.receipt_url,
        "inbound_url": acc.inbound_url,
    }
    return responses.json(body, headers={"cache-control": "no-store"})


@router.post(
    "/v1/account/rotate-secret",
    summary="Replace the api_secret (needs the current one, or the operator token); the new one is shown only here",
    openapi_extra=webhooks.CHANGE_SECURITY,
    responses={200: {"model": SecretOut}},
)
async def rotate_secret(
    request: Request, account: core_accounts.Account = Depends(auth.secret_or_operator)
) -> Response:
    gw = auth.gateway(request)
    secret = await gw.accounts.rotate_secret(account.id)
    await gw.account_changed(account.id)  # the old secret and its tokens stop working now, on every node
    return responses.json({"api_key": account.api_key, "api_secret": secret}, headers={"cache-control": "no-store"})


@router.get(
    "/v1/account/stats",
    summary="Messages per minute (outbound and inbound) over the last N minutes",
    openapi_extra=_SECURITY,
    responses={200: {"model": StatsOut}},
)
async def stats(
    request: Request,
    account: core_accounts.Account = Depends(auth.any_credentials),
    minutes: int = Query(60, ge=1, le=1440),
) -> Response:
    now = time.time()
    end = float(int(now // 60) * 60 + 60)  # the current minute is the last bucket
    start = end - minutes * 60
    counted = await store_console.per_minute(request.app.state.runtime.engine, account.id, start, end)
    series = [{"at": start + i * 60, "outbound": 0, "inbound": 0} for i in range(minutes)]
    for i, direction, n in counted:
        if 0 <= i < minutes and direction in ("outbound", "inbound"):
            series[i][direction] = n
    totals = {d: sum(int(s[d]) for s in series) for d in ("outbound", "inbound")}
    return responses.json({"minutes": minutes, "start": start, "end": end, "per_minute": series, "totals": totals})
