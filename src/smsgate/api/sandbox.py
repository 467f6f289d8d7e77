"""The sandbox network's handsets: what a virtual phone received, and replies typed on it.

A handset's inbox is read from the store (messages the sandbox connector took for that number), so it is the
same after a restart. Each account sees only its own messages on a handset.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from smsgate import errors
from smsgate.api import auth, bodies, responses
from smsgate.core import accounts as core_accounts
from smsgate.core import numbers
from smsgate.store import console as store_console

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
    found = await store_console.conversation(
        request.app.state.runtime.engine, [sbx.name], number.e164, account.id, delivered_only=True
    )
    out = [
        {
            "id": m.id,
            "direction": "received" if m.direction.value == "outbound" else "sent",
            "from": m.sender,
            "to": m.recipient,
            "text": m.text,
            "encoding": m.encoding,
            "status": m.status.value,
            "parts": [
                {
                    "index": p.index,
                    "total": p.total,
                    "text": p.text,
                    "udh": p.udh.hex(),
                    "network_message_id": p.network_id,
                }
                for p in parts
            ],
            "at": m.created_at,
        }
        for m, parts in found
    ]
    return responses.json({"msisdn": number.e164, "messages": out})


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
    return responses.json({"status": "sent", "from": source.e164, "to": destination, "parts": n}, 202)


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
    request.app.state.runtime.sandbox_switched(body.available)
    return responses.json({"available": sbx.up})
