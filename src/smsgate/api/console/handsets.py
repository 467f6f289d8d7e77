"""The console's view of the sandbox network: every virtual handset and its conversation.

A handset is any number the sandbox connector sent to, or that sent through it (a reply); both come from the
store, so the list survives restarts. An account sees its own conversations, the operator all of them.
Replies are typed through the existing ``POST /sandbox/handsets/{msisdn}/reply``.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from smsgate import errors
from smsgate.api.console import routes
from smsgate.api.messages import json_response
from smsgate.core import numbers
from smsgate.store import reads as store_reads
from smsgate.store import tables

router = APIRouter(include_in_schema=False)


def _sandbox_names(request: Request) -> list[str]:
    sbx = request.app.state.runtime.sandbox
    return [sbx.name] if sbx is not None else []


@router.get("/console/api/handsets")
async def handsets(
    request: Request, who: routes.Viewer = Depends(routes.viewer), limit: int = Query(100, ge=1, le=500)
) -> Response:
    """Numbers with their last activity, most recent first."""
    m = tables.messages
    names = _sandbox_names(request)
    if not names:
        return json_response({"handsets": [], "sandbox": False})
    mine: list[sa.ColumnElement[bool]] = [m.c.connector.in_(names)]
    if who.account_id is not None:
        mine.append(m.c.account_id == who.account_id)
    number = sa.case((m.c.direction == "outbound", m.c.recipient), else_=m.c.sender).label("number")
    q = (
        sa.select(number, sa.func.count().label("n"), sa.func.max(m.c.created_at).label("last_at"))
        .where(*mine)
        .group_by(number)
        .order_by(sa.desc("last_at"))
        .limit(limit)
    )
    async with routes.engine_of(request).connect() as conn:
        rows = (await conn.execute(q)).all()
    out = [{"msisdn": r.number, "messages": int(r.n), "last_at": r.last_at} for r in rows]
    return json_response({"handsets": out, "sandbox": True})


def _number(raw: str) -> str:
    try:
        return numbers.parse_international(raw).e164
    except errors.InvalidNumber:
        return numbers.parse_dutch_mobile(raw).e164


@router.get("/console/api/handsets/{msisdn}")
async def conversation(msisdn: str, request: Request, who: routes.Viewer = Depends(routes.viewer)) -> Response:
    """Both sides of one handset's conversation, oldest first, as a phone shows it."""
    m = tables.messages
    e164 = _number(msisdn)
    names = _sandbox_names(request)
    if not names:
        raise errors.NotFound("the sandbox network is not configured on this gateway")
    received = sa.and_(m.c.direction == "outbound", m.c.recipient == e164)
    sent = sa.and_(m.c.direction == "inbound", m.c.sender == e164)
    q = sa.select(m).where(m.c.connector.in_(names), sa.or_(received, sent))
    if who.account_id is not None:
        q = q.where(m.c.account_id == who.account_id)
    async with routes.engine_of(request).connect() as conn:
        rows = (await conn.execute(q.order_by(m.c.created_at.desc(), m.c.id.desc()).limit(200))).all()
    items: list[dict[str, Any]] = [routes.summary(store_reads.as_dict(r)) for r in reversed(rows)]
    # the handset answers whoever wrote to it last: that is where the routing sends a reply back
    reply_to = next((i["from"] for i in reversed(items) if i["direction"] == "outbound"), None)
    return json_response({"msisdn": e164, "messages": items, "reply_to": reply_to})
