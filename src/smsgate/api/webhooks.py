"""Our own API for webhooks: the delivery log with every attempt, replay, and an account's webhook settings.

An account sees only its own deliveries. Errors come out as ``{"error": {"code", "message"}}`` (the default
renderer of ``api.messages``). Payload formats and signatures are described in docs/webhooks.md.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from smsgate.api import auth, bodies, responses
from smsgate.core import accounts as core_accounts
from smsgate.services import webhooks as services_webhooks

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


def service(request: Request) -> services_webhooks.Webhooks:
    found: services_webhooks.Webhooks = request.app.state.webhooks
    return found


def _out(r: dict[str, Any]) -> dict[str, Any]:
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
        "attempts": r["tries"],
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
    filters = {"status": status, "target": target, "message": message, "event": event}
    found = await service(request).page(account, before=responses.after_cursor(cursor), limit=limit + 1, **filters)
    return responses.page("deliveries", found, limit, _out, lambda r: responses.cursor(r["created_at"], r["id"]))


@router.get(
    "/v1/webhooks/deliveries/{delivery_id}",
    summary="One webhook delivery",
    openapi_extra=SECURITY,
    responses={200: {"model": DeliveryOut}},
)
async def get_delivery(
    delivery_id: str, request: Request, account: core_accounts.Account = Depends(auth.any_credentials)
) -> Response:
    return responses.json(_out(await service(request).one(account, delivery_id)))


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
    return responses.json(_out(await service(request).replay(account, delivery_id)), 202)


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
    return responses.json(_settings_out(account))


@router.put(
    "/v1/account/webhooks",
    summary="Change the account's webhook settings (api_secret or operator token; a token may only read them)",
    openapi_extra={**CHANGE_SECURITY, **bodies.doc(WebhookSettingsIn)},
    responses={200: {"model": WebhookSettingsOut}},
)
async def put_settings(request: Request, account: core_accounts.Account = Depends(auth.secret_or_operator)) -> Response:
    body = await bodies.parse(request, WebhookSettingsIn)
    given = body.model_fields_set
    updated = await service(request).change_settings(
        account,
        urls={f: getattr(body, f) for f in ("receipt_url", "inbound_url") if f in given},
        method=body.method if "method" in given else None,
        fmt=body.format if "format" in given else None,
        sign=body.sign_webhooks if "sign_webhooks" in given else None,
    )
    return responses.json(_settings_out(updated))
