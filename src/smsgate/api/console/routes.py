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
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response, StreamingResponse

from smsgate import errors
from smsgate.api import auth, batches, responses
from smsgate.api import webhooks as api_webhooks
from smsgate.api.messages import message_json
from smsgate.core import accounts as core_accounts
from smsgate.core import message as core_message
from smsgate.core import pricing
from smsgate.store import console as store_console

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


def live_of(request: Request) -> store_console.Live:
    live: store_console.Live = request.app.state.runtime.live
    return live


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
def summary(m: core_message.Message) -> dict[str, Any]:
    """A row of the live list: the short form of ``/v1/messages``, with the owner (the operator sees all)."""
    return {"account_id": m.account_id, **message_json(m, brief=True)}


@router.get("/console/api/whoami")
async def whoami(request: Request, who: Viewer = Depends(viewer)) -> Response:
    acc = who.account
    account = None if acc is None else {"id": acc.id, "name": acc.name, "api_key": acc.api_key, "level": acc.level}
    code = request.app.state.settings.currency
    currency = {"code": code, "decimals": pricing.minor_units(code)}  # prices are shown with these decimals
    return responses.json({"operator": acc is None, "account": account, "currency": currency})


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
    cursor = await live_of(request).last_event_id()
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
        before=responses.after_cursor(before),
        limit=limit + 1,
    )
    more = len(rows) > limit
    rows = rows[:limit]
    nxt = responses.cursor(rows[-1].created_at, rows[-1].id) if more and rows else None
    return responses.json({"messages": [summary(r) for r in rows], "next": nxt, "stream_after": cursor})


@router.get("/console/api/batches")
async def list_batches(
    request: Request,
    who: Viewer = Depends(viewer),
    before: str | None = Query(None, max_length=200, description="created_at|id of the last row seen"),
    limit: int = Query(50, ge=1, le=200),
) -> Response:
    """Batches, newest first, with their messages per status (the progress bars); the operator sees all."""
    rows = await request.app.state.batches.list(who.account_id, before=responses.after_cursor(before), limit=limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    nxt = responses.cursor(rows[-1].created_at, rows[-1].id) if more and rows else None
    return responses.json({"batches": [batches.summary_json(b) for b in rows], "next": nxt})


def _e164ish(number: str | None) -> str | None:
    """Numbers are stored as E.164; let people type ``31612345678`` or ``+31 6 1234 5678``."""
    if not number:
        return None
    compact = number.replace(" ", "")
    return "+" + compact.lstrip("+") if compact.lstrip("+").isdigit() else compact


@router.get("/console/api/messages/{message_id}")
async def message_detail(message_id: str, request: Request, who: Viewer = Depends(viewer)) -> Response:
    found = await auth.gateway(request).message(who.account, message_id)
    out: dict[str, Any] = {"account_id": found.message.account_id}
    out.update(message_json(found.message, found.parts, found.events, part_columns=("data_coding",)))
    out["webhooks"] = await api_webhooks.service(request).of_message(message_id)
    return responses.json(out)


def _frame(event: str, data: Any, event_id: int | None = None) -> bytes:
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\ndata: ".encode() + orjson.dumps(data) + b"\n\n"


@router.get("/console/api/stream")
async def stream(request: Request, who: Viewer = Depends(viewer), after: int | None = Query(None, ge=0)) -> Response:
    """``text/event-stream`` of ``messages`` events: ``{"messages": [...]}`` with the event id as SSE ``id``."""
    live = live_of(request)
    header = request.headers.get("last-event-id", "").strip()
    if header and not (header.isascii() and header.isdigit() and len(header) <= 18):
        raise errors.ValidationError("Last-Event-ID must be an event id (digits)")
    start = int(header) if header else after
    if start is None:
        start = await live.last_event_id()
    streams: StreamCounter = request.app.state.console_streams
    holder = who.account_id or "operator"
    streams.open(holder)

    async def frames() -> AsyncIterator[bytes]:
        cursor = start
        # what is already below the cursor was seen by the caller's list
        seen: set[int] = await live.seen_below(cursor) if cursor > 0 else set()
        yield b"retry: 1000\n" + _frame("hello", {"after": cursor}, cursor)
        ends = time.monotonic() + STREAM_SECONDS
        quiet_since = time.monotonic()
        while time.monotonic() < ends and not await request.is_disconnected():
            found, cursor = await live.changes(who.account_id, cursor, seen)
            if found:
                yield _frame("messages", {"messages": [summary(m) for m in found]}, cursor)
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
