"""Our own API for webhooks: the delivery log with every attempt, replay, and an account's webhook settings.

An account sees only its own deliveries. Errors come out as ``{"error": {"code", "message"}}`` (the default
renderer of ``api.messages``). Payload formats and signatures are described in docs/webhooks.md.
"""

from __future__ import annotations

import base64
import time
from typing import Any, Literal

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from smsgate import errors
from smsgate.api import auth, bodies
from smsgate.api.messages import json_response
from smsgate.core import accounts as core_accounts
from smsgate.store import tables
from smsgate.webhooks import targets

router = APIRouter(tags=["Webhooks"])
SECURITY: dict[str, Any] = {"security": [{"kpnOAuth2": []}, {"basicAuth": []}]}
# changing credentials or webhook targets: the account's secret, or the operator naming the account (?account=)
CHANGE_SECURITY: dict[str, Any] = {
    "security": [{"basicAuth": []}, {"operatorToken": []}],
    "parameters": [
        {
            "name": "account",
            "in": "query",
            "required": False,
            "schema": {"type": "string"},
            "description": "with the operator token: the account (id or api_key) to change",
        }
    ],
}
DeliveryStatus = Literal["pending", "retrying", "delivered", "dead"]


# -- response bodies, for the OpenAPI document ---------------------------------------------------------------
class AttemptOut(BaseModel):
    at: float
    status_code: int | None
    latency_ms: float | None
    error: str | None


class DeliveryOut(BaseModel):
    id: str
    event: str
    message_id: str | None
    url: str
    method: str
    content_type: str
    body: str
    status: DeliveryStatus
    attempt_count: int
    last_status_code: int | None
    last_error: str | None
    next_attempt_at: float | None
    created_at: float
    updated_at: float
    attempts: list[AttemptOut]


class DeliveriesOut(BaseModel):
    deliveries: list[DeliveryOut]
    next_cursor: str | None


class WebhookSettingsOut(BaseModel):
    receipt_url: str | None
    inbound_url: str | None
    method: str
    format: str
    sign_webhooks: bool
    signature_method: str
    has_signature_secret: bool


def _engine(request: Request) -> Any:
    return request.app.state.runtime.engine


def _cursor(raw: str | None) -> tuple[float, str] | None:
    if not raw:
        return None
    try:
        t, sep, did = base64.urlsafe_b64decode(raw.encode() + b"==").decode().partition("|")
        if not sep:
            raise ValueError(raw)
        return float(t), did
    except (ValueError, UnicodeDecodeError):
        raise errors.ValidationError("bad cursor") from None


async def _deliveries(engine: Any, where: list[Any], limit: int) -> list[dict[str, Any]]:
    w, o, at = tables.webhook_deliveries, tables.outbox, tables.webhook_attempts
    q = (
        sa.select(w, o.c.run_at)
        .outerjoin(o, sa.and_(o.c.kind == "webhook", o.c.ref == w.c.id))
        .where(*where)
        .order_by(w.c.created_at.desc(), w.c.id.desc())
        .limit(limit)
    )
    async with engine.connect() as conn:
        rows = [dict(r._mapping) for r in (await conn.execute(q)).all()]
        ids = [r["id"] for r in rows]
        tries: dict[str, list[dict[str, Any]]] = {}
        if ids:
            aq = sa.select(at).where(at.c.delivery_id.in_(ids)).order_by(at.c.id)
            for a in (await conn.execute(aq)).all():
                tries.setdefault(a.delivery_id, []).append(
                    {"at": a.at, "status_code": a.status_code, "latency_ms": a.latency_ms, "error": a.error}
                )
    return [_out(r, tries.get(r["id"], [])) for r in rows]


def _out(r: dict[str, Any], tries: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "id": r["id"],
        "event": r["event"],
        "message_id": r["message_id"],
        "url": r["url"],
        "method": r["method"],
        "content_type": r["content_type"],
        "body": r["body"],
        "status": r["status"],
        "attempt_count": r["attempts"],
        "last_status_code": r["last_status_code"],
        "last_error": r["last_error"],
        "next_attempt_at": r["run_at"] if r["status"] in ("pending", "retrying") else None,
        "created_at": r["created_at"],
        "updated_at": r["updated_at"],
        "attempts": tries,
    }


@router.get(
    "/v1/webhooks/deliveries",
    summary="Webhook deliveries, newest first, with their attempts",
    openapi_extra=SECURITY,
    responses={200: {"model": DeliveriesOut}},
)
async def list_deliveries(
    request: Request,
    account: core_accounts.Account = Depends(auth.any_credentials),
    status: DeliveryStatus | None = None,
    target: str | None = Query(None, description="the URL contains this text (e.g. a host name)"),
    message: str | None = Query(None, description="deliveries about this message id"),
    event: str | None = Query(None, description="e.g. message.delivered, receipt.failed, message.received"),
    cursor: str | None = None,
    limit: int = Query(50, ge=1, le=200),
) -> Response:
    w = tables.webhook_deliveries
    where: list[Any] = [w.c.account_id == account.id]
    if status:
        where.append(w.c.status == status)
    if target:
        where.append(w.c.url.contains(target, autoescape=True))
    if message:
        where.append(w.c.message_id == message)
    if event:
        where.append(w.c.event == event)
    before = _cursor(cursor)
    if before is not None:
        t, did = before
        where.append(sa.or_(w.c.created_at < t, sa.and_(w.c.created_at == t, w.c.id < did)))
    rows = await _deliveries(_engine(request), where, limit + 1)
    nxt = None
    if len(rows) > limit:
        rows = rows[:limit]
        last = rows[-1]
        nxt = base64.urlsafe_b64encode(f"{last['created_at']!r}|{last['id']}".encode()).decode().rstrip("=")
    return json_response({"deliveries": rows, "next_cursor": nxt})


async def _one(request: Request, account: core_accounts.Account, delivery_id: str) -> dict[str, Any]:
    w = tables.webhook_deliveries
    rows = await _deliveries(_engine(request), [w.c.account_id == account.id, w.c.id == delivery_id], 1)
    if not rows:
        raise errors.NotFound("no such webhook delivery")
    return rows[0]


@router.get(
    "/v1/webhooks/deliveries/{delivery_id}",
    summary="One webhook delivery",
    openapi_extra=SECURITY,
    responses={200: {"model": DeliveryOut}},
)
async def get_delivery(
    delivery_id: str, request: Request, account: core_accounts.Account = Depends(auth.any_credentials)
) -> Response:
    return json_response(await _one(request, account, delivery_id))


@router.post(
    "/v1/webhooks/deliveries/{delivery_id}/replay",
    status_code=202,
    summary="Send a delivered or dead webhook again (a waiting one is tried now)",
    openapi_extra=SECURITY,
    responses={202: {"model": DeliveryOut}},
)
async def replay(
    delivery_id: str, request: Request, account: core_accounts.Account = Depends(auth.any_credentials)
) -> Response:
    await _one(request, account, delivery_id)
    w, o = tables.webhook_deliveries, tables.outbox
    now = time.time()
    async with _engine(request).begin() as conn:
        # the outbox job is the queue entry; a finished delivery has none, so it gets a new one with a fresh window
        moved = await conn.execute(o.update().where(o.c.kind == "webhook", o.c.ref == delivery_id).values(run_at=now))
        if moved.rowcount == 0:
            await conn.execute(
                o.insert().values(
                    kind="webhook", ref=delivery_id, run_at=now, attempts=0, created_at=now, account_id=account.id
                )
            )
            await conn.execute(w.update().where(w.c.id == delivery_id).values(status="pending", updated_at=now))
    request.app.state.runtime.webhooks.wake()
    return json_response(await _one(request, account, delivery_id), 202)


# -- the account's webhook settings -------------------------------------------------------------------------------
def _settings_out(acc: core_accounts.Account) -> dict[str, Any]:
    return {
        "receipt_url": acc.receipt_url,
        "inbound_url": acc.inbound_url,
        "method": acc.webhook_method,
        "format": acc.webhook_format,
        "sign_webhooks": acc.sign_webhooks,
        "signature_method": acc.signature_method,
        "has_signature_secret": bool(acc.signature_secret),
    }


class WebhookSettingsIn(BaseModel):
    receipt_url: str | None = Field(
        None,
        description="delivery receipts / status events; empty or null clears it",
        examples=["https://example.com/receipts"],
    )
    inbound_url: str | None = Field(
        None, description="inbound messages without a number-specific URL", examples=["https://example.com/inbound"]
    )
    method: Literal["GET", "POST"] | None = Field(None, description="for Vonage-format webhooks")
    format: Literal["json", "form"] | None = Field(None, description="body of Vonage-format POST webhooks")
    sign_webhooks: bool | None = Field(None, description="add sig/timestamp/nonce (needs a signature secret)")


@router.get(
    "/v1/account/webhooks",
    summary="The account's webhook settings",
    openapi_extra=SECURITY,
    responses={200: {"model": WebhookSettingsOut}},
)
async def get_settings(account: core_accounts.Account = Depends(auth.any_credentials)) -> Response:
    return json_response(_settings_out(account))


@router.put(
    "/v1/account/webhooks",
    summary="Change the account's webhook settings (api_secret or operator token; a token may only read them)",
    openapi_extra={**CHANGE_SECURITY, **bodies.doc(WebhookSettingsIn)},
    responses={200: {"model": WebhookSettingsOut}},
)
async def put_settings(request: Request, account: core_accounts.Account = Depends(auth.secret_or_operator)) -> Response:
    body = await bodies.parse(request, WebhookSettingsIn)
    allow_private = bool(request.app.state.settings.webhooks_allow_private)
    given = body.model_fields_set
    changes: dict[str, Any] = {}
    for field in ("receipt_url", "inbound_url"):
        if field in given:
            raw = getattr(body, field)
            changes[field] = targets.check_url(raw, allow_private) if raw else None
    if "method" in given and body.method:
        changes["webhook_method"] = body.method
    if "format" in given and body.format:
        changes["webhook_format"] = body.format
    if "sign_webhooks" in given and body.sign_webhooks is not None:
        if body.sign_webhooks and not account.signature_secret:
            raise errors.ValidationError("this account has no signature secret; ask the operator to set one")
        changes["sign_webhooks"] = body.sign_webhooks
    gw = auth.gateway(request)
    updated = await gw.accounts.update(account.id, **changes) if changes else account
    await gw.account_changed(account.id)
    return json_response(_settings_out(updated))
