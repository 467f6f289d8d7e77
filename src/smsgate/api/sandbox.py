"""The sandbox network's handsets: what a virtual phone received, and replies typed on it.

A handset's inbox is read from the store (messages the sandbox connector took for that number), so it is the
same after a restart. Each account sees only its own messages on a handset.
"""

from __future__ import annotations

from typing import Any, Literal

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from smsgate import errors
from smsgate.api import auth, bodies
from smsgate.api.messages import json_response
from smsgate.core import accounts as core_accounts
from smsgate.core import numbers
from smsgate.store import tables

router = APIRouter(tags=["Sandbox network"])
_SECURITY: dict[str, Any] = {"security": [{"kpnOAuth2": []}, {"basicAuth": []}]}
HANDSET = Path(description="the handset's number, international or Dutch mobile", examples=["31612345678"])


# -- response bodies, for the OpenAPI document ---------------------------------------------------------------
class HandsetPartOut(BaseModel):
    index: int
    total: int
    text: str | None
    udh: str = Field(description="hex")
    network_message_id: str | None


class HandsetMessageOut(BaseModel):
    id: str
    direction: Literal["received", "sent"]
    from_: str = Field(alias="from")
    to: str
    text: str | None
    encoding: str
    status: str
    parts: list[HandsetPartOut]
    at: float


class HandsetOut(BaseModel):
    msisdn: str
    messages: list[HandsetMessageOut]


class ReplyOut(BaseModel):
    status: Literal["sent"]
    from_: str = Field(alias="from")
    to: str
    parts: int


class NetworkOut(BaseModel):
    available: bool


def handset_number(raw: str) -> numbers.Number:
    try:
        return numbers.parse_international(raw)
    except errors.InvalidNumber:
        return numbers.parse_dutch_mobile(raw)


def _sandbox(request: Request) -> Any:
    sbx = request.app.state.runtime.sandbox
    if sbx is None:
        raise errors.NotFound("the sandbox network is not configured on this gateway")
    return sbx


@router.get(
    "/sandbox/handsets/{msisdn}/messages",
    summary="What a virtual handset received, and what it sent",
    openapi_extra=_SECURITY,
    responses={200: {"model": HandsetOut}},
)
async def handset_messages(
    request: Request,
    msisdn: str = HANDSET,
    account: core_accounts.Account = Depends(auth.any_credentials),
) -> Response:
    sbx = _sandbox(request)
    number = handset_number(msisdn)
    m, p = tables.messages, tables.parts
    engine = request.app.state.runtime.engine
    received = sa.and_(
        m.c.recipient == number.e164,
        m.c.direction == "outbound",
        m.c.connector == sbx.name,
        m.c.status.in_(["submitted", "delivered"]),
    )
    sent = sa.and_(m.c.sender == number.e164, m.c.direction == "inbound", m.c.connector == sbx.name)
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                sa.select(m)
                .where(m.c.account_id == account.id, sa.or_(received, sent))
                .order_by(m.c.created_at.desc())
                .limit(200)
            )
        ).all()
        ids = [r.id for r in rows]
        part_rows = (
            (await conn.execute(sa.select(p).where(p.c.message_id.in_(ids)).order_by(p.c.idx))).all() if ids else []
        )
    parts: dict[str, list[dict[str, Any]]] = {}
    for pr in part_rows:
        parts.setdefault(pr.message_id, []).append(
            {
                "index": pr.idx,
                "total": pr.total,
                "text": pr.text,
                "udh": pr.udh.hex(),
                "network_message_id": pr.network_id,
            }
        )
    out = [
        {
            "id": r.id,
            "direction": "received" if r.direction == "outbound" else "sent",
            "from": r.sender,
            "to": r.recipient,
            "text": r.text,
            "encoding": r.encoding,
            "status": r.status,
            "parts": parts.get(r.id, []),
            "at": r.created_at,
        }
        for r in rows
    ]
    return json_response({"msisdn": number.e164, "messages": out})


class ReplyIn(BaseModel):
    to: str = Field(
        ...,
        description="the number the handset replies to: one your account owns (or a sender name reserved for it)",
        examples=["3197010240300"],
    )
    text: str = Field(..., min_length=1, examples=["STOP"])


@router.post(
    "/sandbox/handsets/{msisdn}/reply",
    status_code=202,
    summary="Make a virtual handset send an SMS to a number (or reserved sender) your account owns",
    openapi_extra={**_SECURITY, **bodies.doc(ReplyIn)},
    responses={202: {"model": ReplyOut}},
)
async def handset_reply(
    request: Request,
    msisdn: str = HANDSET,
    account: core_accounts.Account = Depends(auth.any_credentials),
) -> Response:
    body = await bodies.parse(request, ReplyIn)
    sbx = _sandbox(request)
    source = handset_number(msisdn)
    to = body.to.strip()
    destination = to if not to.lstrip("+").isdigit() else handset_number(to).e164
    if await auth.gateway(request).owners.of_address(destination) != account.id:
        # else any account could put words in another's inbox (and fire its inbound webhook)
        raise errors.DestinationNotAllowed(
            f"a handset can only reply to a number (or reserved sender) your account owns, not {destination}"
        )
    n = await sbx.reply(source.e164, destination, body.text)
    return json_response({"status": "sent", "from": source.e164, "to": destination, "parts": n}, 202)


class NetworkIn(BaseModel):
    available: bool


@router.post(
    "/sandbox/network",
    summary="Operator: take the sandbox network down or bring it back",
    openapi_extra={"security": [{"operatorToken": []}], **bodies.doc(NetworkIn)},
    responses={200: {"model": NetworkOut}},
    dependencies=[Depends(auth.operator)],
)
async def network_state(request: Request) -> Response:
    body = await bodies.parse(request, NetworkIn)
    sbx = _sandbox(request)
    sbx.up = body.available
    if body.available:
        request.app.state.runtime.dispatcher.wake()
    return json_response({"available": sbx.up})
