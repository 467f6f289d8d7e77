"""The web console: its HTML shell and static files, and the operator-aware JSON it reads (``/console/api``).

Auth: the browser keeps the credentials in ``sessionStorage`` and sends them on every call, as HTTP Basic
``api_key:api_secret`` or ``Bearer <operator token>`` (``settings.operator_token``), which sees every account.
The live list is a ``text/event-stream`` read with ``fetch`` (not ``EventSource``), so it sends the same
``Authorization`` header and no credential ever lands in a URL or a server log.

The stream follows the ``events`` table by its primary key: every status change writes an event in the same
transaction, ids are durable, and the client resumes from the last id it saw (``?after=`` or
``Last-Event-ID``), so it is right across gateway restarts and costs the send path nothing. A small lookback
over recent ids catches rows that committed out of id order (PostgreSQL sequences).
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import pathlib
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, Literal

import orjson
import sqlalchemy as sa
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response, StreamingResponse
from sqlalchemy.ext.asyncio import AsyncEngine

from smsgate import errors
from smsgate.api import auth
from smsgate.api.messages import json_response, message_json
from smsgate.core import accounts as core_accounts
from smsgate.store import reads as store_reads
from smsgate.store import tables

router = APIRouter(include_in_schema=False)

STATIC = pathlib.Path(__file__).parent / "static"
_TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}
# Everything comes from this origin: the console works offline and a stray CDN link would fail loudly.
_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
POLL_SECONDS = 0.5
PING_SECONDS = 15.0
STREAM_SECONDS = 300.0  # then the client reconnects from its cursor; bounds what a forgotten tab holds
_LOOKBACK = 256


@dataclasses.dataclass(frozen=True, slots=True)
class Viewer:
    """Who is looking: an account, or the operator (``account`` None) who sees all accounts."""

    account: core_accounts.Account | None

    @property
    def account_id(self) -> str | None:
        return self.account.id if self.account else None


async def viewer(request: Request) -> Viewer:
    if auth.is_operator(request):
        return Viewer(None)
    return Viewer(await auth.any_credentials(request))


def engine_of(request: Request) -> AsyncEngine:
    engine: AsyncEngine = request.app.state.runtime.engine
    return engine


# -- shell and static files -----------------------------------------------------------------------------------
def _file(name: str) -> Response:
    path = STATIC / name
    if "/" in name or name.startswith(".") or not path.is_file():
        raise errors.NotFound("no such file")
    headers = {"cache-control": "no-cache", "x-content-type-options": "nosniff", "content-security-policy": _CSP}
    media = _TYPES.get(path.suffix, "application/octet-stream")
    return Response(path.read_bytes(), media_type=media, headers=headers)


@router.get("/console")
@router.get("/console/")
async def shell() -> Response:
    return _file("index.html")


@router.get("/console/static/{name}")
async def static(name: str) -> Response:
    return _file(name)


# -- messages -------------------------------------------------------------------------------------------------
def summary(m: dict[str, Any]) -> dict[str, Any]:
    """A row of the live list: the short form of ``/v1/messages``, with the owner (the operator sees all)."""
    return {"account_id": m["account_id"], **message_json(m, brief=True)}


async def last_event_id(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int(await conn.scalar(sa.select(sa.func.max(tables.events.c.id))) or 0)


@router.get("/console/api/whoami")
async def whoami(request: Request, who: Viewer = Depends(viewer)) -> Response:
    acc = who.account
    account = None if acc is None else {"id": acc.id, "name": acc.name, "api_key": acc.api_key, "level": acc.level}
    return json_response({"operator": acc is None, "account": account})


@router.get("/console/api/messages")
async def list_messages(
    request: Request,
    who: Viewer = Depends(viewer),
    direction: Literal["outbound", "inbound"] | None = None,
    status: str | None = Query(None, max_length=16),
    number: str | None = Query(None, max_length=40),
    sender: str | None = Query(None, max_length=40),
    dialect: str | None = Query(None, max_length=16),
    since: float | None = None,
    until: float | None = None,
    q: str | None = Query(None, max_length=200),
    before: str | None = Query(None, max_length=200, description="created_at|id of the last row seen"),
    limit: int = Query(50, ge=1, le=200),
) -> Response:
    """Newest first; ``stream_after`` is the event id to start the live stream from (read before the list)."""
    cursor = await last_event_id(engine_of(request))
    rows = await auth.gateway(request).reads.list(
        who.account_id,
        direction=direction,
        status=status or None,
        number=_e164ish(number),
        sender=sender or None,
        dialect=dialect or None,
        since=since,
        until=until,
        text=q or None,
        before=_before(before),
        limit=limit + 1,
    )
    more = len(rows) > limit
    rows = rows[:limit]
    nxt = f"{rows[-1]['created_at']!r}|{rows[-1]['id']}" if more and rows else None
    return json_response({"messages": [summary(r) for r in rows], "next": nxt, "stream_after": cursor})


def _e164ish(number: str | None) -> str | None:
    """Numbers are stored as E.164; let people type ``31612345678`` or ``+31 6 1234 5678``."""
    if not number:
        return None
    compact = number.replace(" ", "")
    return "+" + compact.lstrip("+") if compact.lstrip("+").isdigit() else compact


def _before(raw: str | None) -> tuple[float, str] | None:
    if not raw:
        return None
    t, sep, mid = raw.partition("|")
    try:
        if not sep:
            raise ValueError(raw)
        return float(t), mid
    except ValueError:
        raise errors.ValidationError("bad 'before' cursor") from None


@router.get("/console/api/messages/{message_id}")
async def message_detail(message_id: str, request: Request, who: Viewer = Depends(viewer)) -> Response:
    m = await auth.gateway(request).message(who.account, message_id)
    out = {"account_id": m["account_id"], **message_json(m, part_columns=("data_coding",))}
    out["webhooks"] = await _webhooks_of(engine_of(request), message_id)
    return json_response(out)


async def _webhooks_of(engine: AsyncEngine, message_id: str) -> list[dict[str, Any]]:
    """Deliveries planned for this message, each with its attempts (read straight from the webhook tables)."""
    d, a = tables.webhook_deliveries, tables.webhook_attempts
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                sa.select(
                    d.c.id,
                    d.c.event,
                    d.c.url,
                    d.c.method,
                    d.c.status,
                    d.c.attempts,
                    d.c.last_status_code,
                    d.c.last_error,
                    d.c.created_at,
                    d.c.updated_at,
                )
                .where(d.c.message_id == message_id)
                .order_by(d.c.created_at)
            )
        ).all()
        ids = [r.id for r in rows]
        tries = (await conn.execute(sa.select(a).where(a.c.delivery_id.in_(ids)).order_by(a.c.id))).all() if ids else []
    by_delivery: dict[str, list[dict[str, Any]]] = {}
    for t in tries:
        by_delivery.setdefault(t.delivery_id, []).append(
            {"at": t.at, "status_code": t.status_code, "latency_ms": t.latency_ms, "error": t.error}
        )
    return [{**store_reads.as_dict(r), "attempt_log": by_delivery.get(r.id, [])} for r in rows]


# -- the live stream ------------------------------------------------------------------------------------------
async def changes(
    engine: AsyncEngine, account_id: str | None, cursor: int, seen: set[int]
) -> tuple[list[dict[str, Any]], int]:
    """Messages touched by events after ``cursor`` (plus unseen ones in the lookback), and the new cursor."""
    e, m = tables.events, tables.messages
    q = sa.select(e.c.id, e.c.message_id).where(e.c.id > max(0, cursor - _LOOKBACK))
    if account_id is not None:
        q = q.where(e.c.account_id == account_id)
    async with engine.connect() as conn:
        rows = [r for r in (await conn.execute(q.order_by(e.c.id).limit(2000))).all() if r.id not in seen]
        if not rows:
            return [], cursor
        ids = sorted({r.message_id for r in rows})
        msgs = (await conn.execute(sa.select(m).where(m.c.id.in_(ids)))).all()
    seen.update(r.id for r in rows)
    top = max(cursor, max(r.id for r in rows))
    for old in [i for i in seen if i <= top - _LOOKBACK]:
        seen.discard(old)
    found = sorted((store_reads.as_dict(r) for r in msgs), key=lambda x: (x["created_at"], x["id"]))
    return [summary(x) for x in found], top


def _frame(event: str, data: Any, event_id: int | None = None) -> bytes:
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\ndata: ".encode() + orjson.dumps(data) + b"\n\n"


@router.get("/console/api/stream")
async def stream(request: Request, who: Viewer = Depends(viewer), after: int | None = Query(None, ge=0)) -> Response:
    """``text/event-stream`` of ``messages`` events: ``{"messages": [...]}`` with the event id as SSE ``id``."""
    engine = engine_of(request)
    header = request.headers.get("last-event-id", "").strip()
    if header and not (header.isascii() and header.isdigit() and len(header) <= 18):
        raise errors.ValidationError("Last-Event-ID must be an event id (digits)")
    start = int(header) if header else after
    if start is None:
        start = await last_event_id(engine)
    streams: StreamCounter = request.app.state.console_streams
    holder = who.account_id or "operator"
    streams.open(holder)

    async def frames() -> AsyncIterator[bytes]:
        cursor = start
        seen: set[int] = set()
        if cursor > 0:  # what is already below the cursor was seen by the caller's list
            async with engine.connect() as conn:
                e = tables.events
                q = sa.select(e.c.id).where(e.c.id > max(0, cursor - _LOOKBACK), e.c.id <= cursor)
                seen.update(int(i) for i in (await conn.scalars(q)).all())
        yield b"retry: 1000\n" + _frame("hello", {"after": cursor}, cursor)
        ends = time.monotonic() + STREAM_SECONDS
        quiet_since = time.monotonic()
        while time.monotonic() < ends and not await request.is_disconnected():
            found, cursor = await changes(engine, who.account_id, cursor, seen)
            if found:
                yield _frame("messages", {"messages": found}, cursor)
                quiet_since = time.monotonic()
            elif time.monotonic() - quiet_since > PING_SECONDS:
                yield b": ping\n\n"
                quiet_since = time.monotonic()
            await asyncio.sleep(POLL_SECONDS)

    headers = {"cache-control": "no-store", "x-accel-buffering": "no"}
    return _HeldStream(frames(), lambda: streams.close(holder), media_type="text/event-stream", headers=headers)


class StreamCounter:
    """Open live streams per account (the operator counts as one), at most ``limit`` each in this process: every
    stream holds a connection and polls the store, so a forgotten script cannot open them without end."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._open: collections.Counter[str] = collections.Counter()

    def open(self, holder: str) -> None:
        if self._open[holder] >= self.limit:
            raise errors.RateLimited(f"at most {self.limit} open streams per account; close one first", retry_after=5)
        self._open[holder] += 1

    def close(self, holder: str) -> None:
        self._open[holder] -= 1
        if self._open[holder] <= 0:
            del self._open[holder]


class _HeldStream(StreamingResponse):
    """A StreamingResponse that gives its stream slot back however it ends (finished, client gone, error)."""

    def __init__(self, content: AsyncIterator[bytes], release: Callable[[], None], **kw: Any) -> None:
        super().__init__(content, **kw)
        self._release = release

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._release()
