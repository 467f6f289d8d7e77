"""The sandbox as a test double, per account: reset, delete a handset's conversation, wait for a handset's newest
message (with its one-time code read out), script a handset's answers, and make the network misbehave.

Everything here acts on the calling account's own sandbox data and traffic only, with the credentials that send and
read (a token or Basic): none of it reaches a real network, changes credentials or redirects webhooks.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from smsgate import errors
from smsgate.api import auth, bodies, responses, sandbox
from smsgate.core import accounts as core_accounts
from smsgate.core import handsets
from smsgate.services.sandbox import MAX_WAIT, SandboxControl
from smsgate.store import sandbox as store_sandbox

router = APIRouter(tags=["Sandbox network"])
_SECURITY: dict[str, Any] = {"security": [{"kpnOAuth2": []}, {"basicAuth": []}]}
_EPOCH = re.compile(r"\d{1,12}(\.\d{1,9})?")


def _control(request: Request) -> SandboxControl:
    control: SandboxControl = request.app.state.runtime.sandbox_control
    return control


# -- bodies ---------------------------------------------------------------------------------------------------------
class LatestOut(sandbox.HandsetMessageOut):
    otp: str | None = Field(description="the one-time code in the text (the pattern's first group, or its match)")
    received_at: float | None = Field(description="when the network took the message's last part (epoch seconds)")


class DeletedOut(BaseModel):
    msisdn: str
    deleted: int = Field(description="messages deleted (both directions); messages still in flight stay")


class ResetCounts(BaseModel):
    messages: int
    scripts: int
    behaviour: bool = Field(description="whether a network behaviour was switched off")


class ResetOut(BaseModel):
    deleted: ResetCounts


class RuleIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    match: str = Field(
        min_length=1,
        max_length=handsets.MAX_PATTERN,
        description="RE2 pattern searched in the received text (anchor with ^; (?i) ignores case)",
        examples=[r"(?i)reply YES to confirm order (\d+)"],
    )
    reply: str = Field(
        min_length=1,
        max_length=handsets.MAX_REPLY,
        description="the answer; \\1 or \\g<name> insert the match's groups",
        examples=[r"YES \1"],
    )
    delay_ms: int = Field(0, ge=0, le=handsets.MAX_DELAY_MS, description="how long the handset takes to answer")


class ScriptIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rules: list[RuleIn] = Field(max_length=handsets.MAX_RULES, description="tried in order; the first match answers")


class RunOut(BaseModel):
    at: float
    message_id: str
    rule: int
    to: str
    reply: str
    status: Literal["sent", "refused"]
    parts: int | None = None
    reason: str | None = None


class ScriptOut(BaseModel):
    msisdn: str
    rules: list[RuleIn]
    last_run: RunOut | None = Field(description="what the last matching message led to")
    updated_at: float


class ReceiptsBehaviour(BaseModel):
    model_config = ConfigDict(extra="forbid")

    duplicate: float = Field(0.0, ge=0, le=1, description="fraction of receipts sent twice")
    missing: float = Field(0.0, ge=0, le=1, description="fraction of receipts never sent")
    out_of_order: bool = Field(False, description="receipts held up to 0.5 s and handed over newest first")
    late_by: float = Field(0.0, ge=0, le=handsets.MAX_LATE_SECONDS, description="seconds every receipt is late")


class BehaviourIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    receipts: ReceiptsBehaviour = Field(default_factory=ReceiptsBehaviour)
    throttle: float = Field(0.0, ge=0, le=1, description="fraction of submits answered throttled (then retried)")


def _script_json(s: store_sandbox.Script) -> dict[str, Any]:
    return {"msisdn": s.msisdn, "rules": s.rules, "last_run": s.last_run, "updated_at": s.updated_at}


def _message_json(control: SandboxControl, msg: store_sandbox.HandsetMessage, pattern: handsets.Pattern | None) -> Any:
    return {
        "id": msg.id,
        "direction": "received",
        "from": msg.sender,
        "to": msg.recipient,
        "text": msg.text,
        "encoding": msg.encoding,
        "status": msg.status,
        "parts": [
            {"index": p.index, "total": p.total, "text": p.text, "udh": p.udh.hex(), "network_message_id": p.network_id}
            for p in msg.parts
        ],
        "at": msg.created_at,
        "received_at": msg.received_at,
        "otp": control.otp(msg, pattern),
    }


async def _since(control: SandboxControl, account_id: str, raw: str | None) -> store_sandbox.Cursor | None:
    """``since``: epoch seconds, an ISO-8601 time (UTC unless it says), or the id of one of the account's messages."""
    if raw is None or raw == "":
        return None
    if _EPOCH.fullmatch(raw):
        return store_sandbox.Cursor(float(raw))
    try:
        when = dt.datetime.fromisoformat(raw)
    except ValueError:
        cursor = await control.cursor_of(account_id, raw)
        if cursor is None:
            raise errors.ValidationError(
                "since: epoch seconds, an ISO-8601 time or the id of one of your messages"
            ) from None
        return cursor
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return store_sandbox.Cursor(when.timestamp())


# -- routes -----------------------------------------------------------------------------------------------------
@router.get(
    "/sandbox/handsets/{msisdn}/messages/latest",
    summary="The newest message a handset received from your account, waiting for one to arrive",
    openapi_extra=_SECURITY,
    responses={200: {"model": LatestOut}},
)
async def latest(
    request: Request,
    msisdn: str = sandbox.HANDSET,
    wait: float = Query(0.0, ge=0, le=MAX_WAIT, description="seconds to wait for a message (404 when none came)"),
    since: str | None = Query(
        None,
        max_length=64,
        description="only a message newer than this: epoch seconds, an ISO-8601 time, or a message id",
        examples=["1767225600"],
    ),
    otp_pattern: str | None = Query(
        None,
        max_length=handsets.MAX_PATTERN,
        description="RE2 pattern for the code (its first group, or the match); default: the first run of 4-8 digits",
    ),
    account: core_accounts.Account = Depends(auth.any_credentials),
) -> Response:
    control = _control(request)
    number = sandbox.handset_number(msisdn)
    pattern = handsets.compile_pattern(otp_pattern, "otp_pattern") if otp_pattern else None
    after = await _since(control, account.id, since)
    found = await control.latest(account.id, number.e164, after, wait)
    if found is None:
        raise errors.NotFound(f"no message to {number.e164}" + (f" within {wait:g} s" if wait else ""))
    return responses.json(_message_json(control, found, pattern))


@router.delete(
    "/sandbox/handsets/{msisdn}/messages",
    summary="Delete your account's conversation with a handset (both directions)",
    openapi_extra=_SECURITY,
    responses={200: {"model": DeletedOut}},
)
async def delete_messages(
    request: Request,
    msisdn: str = sandbox.HANDSET,
    account: core_accounts.Account = Depends(auth.any_credentials),
) -> Response:
    number = sandbox.handset_number(msisdn)
    n = await _control(request).delete_handset(account.id, number.e164)
    return responses.json({"msisdn": number.e164, "deleted": n})


@router.post(
    "/sandbox/reset",
    summary="Start your account's sandbox afresh: conversations, scripts and network behaviour",
    openapi_extra=_SECURITY,
    responses={200: {"model": ResetOut}},
)
async def reset(request: Request, account: core_accounts.Account = Depends(auth.any_credentials)) -> Response:
    done = await _control(request).reset(account.id)
    return responses.json(
        {"deleted": {"messages": done.messages, "scripts": done.scripts, "behaviour": done.behaviour}}
    )


@router.put(
    "/sandbox/handsets/{msisdn}/script",
    summary="Script how a handset answers your account's messages",
    openapi_extra={**_SECURITY, **bodies.doc(ScriptIn)},
    responses={200: {"model": ScriptOut}},
)
async def put_script(
    request: Request,
    msisdn: str = sandbox.HANDSET,
    account: core_accounts.Account = Depends(auth.any_credentials),
) -> Response:
    body = await bodies.parse(request, ScriptIn)
    number = sandbox.handset_number(msisdn)
    rules = handsets.parse_rules([r.model_dump() for r in body.rules])
    script = await _control(request).put_script(account.id, number.e164, rules)
    return responses.json(_script_json(script))


@router.get(
    "/sandbox/handsets/{msisdn}/script",
    summary="A handset's script for your account, and what its last match led to",
    openapi_extra=_SECURITY,
    responses={200: {"model": ScriptOut}},
)
async def get_script(
    request: Request,
    msisdn: str = sandbox.HANDSET,
    account: core_accounts.Account = Depends(auth.any_credentials),
) -> Response:
    number = sandbox.handset_number(msisdn)
    script = await _control(request).script(account.id, number.e164)
    if script is None:
        raise errors.NotFound(f"no script for {number.e164}")
    return responses.json(_script_json(script))


@router.delete(
    "/sandbox/handsets/{msisdn}/script",
    summary="The handset stops answering your account by script",
    openapi_extra=_SECURITY,
    status_code=204,
    responses={204: {"description": "deleted"}},
)
async def delete_script(
    request: Request,
    msisdn: str = sandbox.HANDSET,
    account: core_accounts.Account = Depends(auth.any_credentials),
) -> Response:
    number = sandbox.handset_number(msisdn)
    if not await _control(request).delete_script(account.id, number.e164):
        raise errors.NotFound(f"no script for {number.e164}")
    return Response(status_code=204)


@router.put(
    "/sandbox/behaviour",
    summary="Make the sandbox network misbehave for your account's traffic",
    openapi_extra={**_SECURITY, **bodies.doc(BehaviourIn)},
    responses={200: {"model": BehaviourIn}},
)
async def put_behaviour(request: Request, account: core_accounts.Account = Depends(auth.any_credentials)) -> Response:
    body = await bodies.parse(request, BehaviourIn)
    behaviour = handsets.Behaviour.from_json(body.model_dump())
    await _control(request).set_behaviour(account.id, behaviour)
    return responses.json(behaviour.as_json())


@router.get(
    "/sandbox/behaviour",
    summary="How the sandbox network treats your account's traffic",
    openapi_extra=_SECURITY,
    responses={200: {"model": BehaviourIn}},
)
async def get_behaviour(request: Request, account: core_accounts.Account = Depends(auth.any_credentials)) -> Response:
    return responses.json(_control(request).behaviour(account.id).as_json())


@router.delete(
    "/sandbox/behaviour",
    summary="The normal sandbox network again for your account",
    openapi_extra=_SECURITY,
    responses={200: {"model": BehaviourIn}},
)
async def delete_behaviour(
    request: Request, account: core_accounts.Account = Depends(auth.any_credentials)
) -> Response:
    await _control(request).set_behaviour(account.id, handsets.NORMAL)
    return responses.json(handsets.NORMAL.as_json())
