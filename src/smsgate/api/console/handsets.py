"""The console's view of the sandbox network: every virtual handset and its conversation.

A handset is any number the sandbox connector sent to, or that sent through it (a reply); both come from the
store, so the list survives restarts. An account sees its own conversations, the operator all of them.
Replies are typed through the existing ``POST /sandbox/handsets/{msisdn}/reply``.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from smsgate import errors
from smsgate.api import responses
from smsgate.api.console import routes
from smsgate.core import numbers
from smsgate.store import console as store_console

router = APIRouter(include_in_schema=False)


def _sandbox_names(request: Request) -> list[str]:
    sbx = request.app.state.runtime.sandbox
    return [sbx.name] if sbx is not None else []


@router.get("/console/api/handsets")
async def handsets(
    request: Request, who: routes.Viewer = Depends(routes.viewer), limit: int = Query(100, ge=1, le=500)
) -> Response:
    """Numbers with their last activity, most recent first."""
    names = _sandbox_names(request)
    if not names:
        return responses.json({"handsets": [], "sandbox": False})
    found = await store_console.handsets(request.app.state.runtime.engine, names, who.account_id, limit)
    out = [{"msisdn": h.msisdn, "messages": h.messages, "last_at": h.last_at} for h in found]
    return responses.json({"handsets": out, "sandbox": True})


def _number(raw: str) -> str:
    try:
        return numbers.parse_international(raw).e164
    except errors.InvalidNumber:
        return numbers.parse_dutch_mobile(raw).e164


@router.get("/console/api/handsets/{msisdn}")
async def conversation(msisdn: str, request: Request, who: routes.Viewer = Depends(routes.viewer)) -> Response:
    """Both sides of one handset's conversation, oldest first, as a phone shows it."""
    e164 = _number(msisdn)
    names = _sandbox_names(request)
    if not names:
        raise errors.NotFound("the sandbox network is not configured on this gateway")
    found = await store_console.conversation(request.app.state.runtime.engine, names, e164, who.account_id)
    items: list[dict[str, Any]] = [routes.summary(m) for m, _parts in reversed(found)]
    # the handset answers whoever wrote to it last: that is where the routing sends a reply back
    reply_to = next((i["from"] for i in reversed(items) if i["direction"] == "outbound"), None)
    return responses.json({"msisdn": e164, "messages": items, "reply_to": reply_to})
