"""Our own API for suppression lists: ``/v1/suppressions`` (the numbers an account must not message).

Any of the account's credentials (Bearer token or Basic api_key:api_secret); an account sees and changes only
its own list. Numbers are given in international form (``31612345678``, ``+31612345678``) and shown as E.164
digits. Errors come out as ``{"error": {"code", "message"}}`` (``api.messages.render_error``).
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from smsgate import errors
from smsgate.api import auth, bodies, fastpath, responses
from smsgate.core import accounts as core_accounts
from smsgate.core import optout
from smsgate.services import suppressions as services_suppressions

router = APIRouter(tags=["Suppressions"])
SECURITY: dict[str, Any] = {"security": [{"kpnOAuth2": []}, {"basicAuth": []}]}
Source = Literal["api", "keyword", "import"]


class SuppressionOut(BaseModel):
    msisdn: str = Field(examples=["31612345678"])
    source: Source = Field(description="api: put here through this API; keyword: the number replied STOP; import: CLI")
    reason: str | None
    created_at: float


class SuppressionsOut(BaseModel):
    suppressions: list[SuppressionOut]
    next_cursor: str | None


class SuppressionIn(BaseModel):
    reason: str | None = Field(None, max_length=services_suppressions.MAX_REASON, examples=["asked by phone"])


def _service(request: Request) -> services_suppressions.Suppressions:
    return auth.gateway(request).suppressions


def _json(s: optout.Suppression) -> dict[str, Any]:
    return {"msisdn": s.msisdn, "source": s.source, "reason": s.reason, "created_at": s.created_at}


@router.get(
    "/v1/suppressions",
    summary="The account's suppression list, in number order, with cursor paging",
    openapi_extra=SECURITY,
    responses={200: {"model": SuppressionsOut}},
)
async def list_suppressions(
    request: Request,
    account: core_accounts.Account = Depends(auth.any_credentials),
    source: Source | None = None,
    cursor: str | None = Query(None, description="next_cursor of the previous page"),
    limit: int = Query(100, ge=1, le=1000),
) -> Response:
    if cursor is not None and not cursor.isdigit():
        raise errors.ValidationError("bad cursor")
    rows = await _service(request).store.page(account.id, source=source, after=cursor, limit=limit + 1)
    return responses.page("suppressions", rows, limit, _json, lambda r: r.msisdn)


@router.get(
    "/v1/suppressions/{msisdn}",
    summary="Whether a number is suppressed (404 when it is not)",
    openapi_extra=SECURITY,
    responses={200: {"model": SuppressionOut}, 404: {"description": "not on the list"}},
)
async def get_suppression(
    msisdn: str, request: Request, account: core_accounts.Account = Depends(auth.any_credentials)
) -> Response:
    found = await _service(request).get(account.id, services_suppressions.digits_of(msisdn))
    return responses.json(_json(found))


@router.put(
    "/v1/suppressions/{msisdn}",
    summary="Suppress a number: no dialect sends to it again until it is removed (201 new, 200 already there)",
    openapi_extra={
        **SECURITY,
        "requestBody": {
            "required": False,
            "content": {"application/json": {"schema": SuppressionIn.model_json_schema()}},
        },
    },
    responses={200: {"model": SuppressionOut}, 201: {"model": SuppressionOut}},
)
async def put_suppression(
    msisdn: str, request: Request, account: core_accounts.Account = Depends(auth.any_credentials)
) -> Response:
    digits = services_suppressions.digits_of(msisdn)
    raw = await fastpath.read_body(request, bodies.MAX_BODY)
    body = bodies.validate(raw, SuppressionIn) if raw.strip() else SuppressionIn()
    entry, created = await _service(request).put(account.id, digits, "api", body.reason)
    return responses.json(_json(entry), 201 if created else 200)


@router.delete(
    "/v1/suppressions/{msisdn}",
    status_code=204,
    summary="Remove a number from the list: it can be messaged again",
    openapi_extra=SECURITY,
    responses={204: {"description": "removed"}, 404: {"description": "not on the list"}},
)
async def delete_suppression(
    msisdn: str, request: Request, account: core_accounts.Account = Depends(auth.any_credentials)
) -> Response:
    await _service(request).delete(account.id, services_suppressions.digits_of(msisdn))
    return Response(status_code=204)
