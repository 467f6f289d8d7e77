"""Bounds on what an unauthenticated client can hold: request heads, slow or idle connections, connection count.

uvicorn's httptools protocol, as it comes, reads a request head of any size into memory (llhttp and httptools
set no limit: 8 connections x 64 MB of headers took the process from 115 to 634 MB), never times out a
connection that sends nothing or half a head, arms its keep-alive timer only after a response (a client that
dribbles a byte now and then is never closed), and ``limit_concurrency`` answers 503 only after reading a head,
so it does not bound the sockets held. ``LimitedHttpTools`` adds, per connection and per process:

* the request line and headers capped at ``max_head_bytes`` (16 KiB) in all: counted on the raw bytes before
  the parser buffers them, and answered ``431`` with the connection closed;
* a whole head within ``head_timeout`` (10 s) of the connection opening, or of the first byte of the next
  request on a kept-alive one (``408`` and closed);
* idle keep-alive closed after ``keepalive_timeout`` (30 s, uvicorn's own timer);
* at most ``max_connections`` connections per process: beyond it a new connection is answered ``503`` and closed
  at once, never queued; and the soft ``RLIMIT_NOFILE`` raised to the hard limit at start, so the cap (not the
  file-descriptor limit) is what a flood meets.

The send hot path pays two attribute checks per read and a counter per request head.

It also writes each small response in one ``send(2)`` instead of two (``_OneWrite``): uvicorn writes the status
line and headers, then the body, each straight to the socket; on loopback each write runs the receiver's TCP
input in the sender's time, so the second one cost ~9 % of the gateway's CPU per KPN send (profiled, 2026-12-03).

A request for a hot route (``api.fastpath``: the sends) skips the ASGI conversation: its task asks ``FastPath`` for
the endpoint's ``Response`` and writes status line, headers and body itself in one ``transport.write``, where the
ASGI way passes two message dicts through the access log's ``send`` closure, Starlette's ``Response.__call__`` and
uvicorn's ``send`` (header checks per header, a held head in ``_OneWrite``). uvicorn's request cycle stays the
connection's state: parsing, the body and ``receive`` (``Expect: 100-continue``, reading paused and resumed),
pipelining, keep-alive, disconnects and shutdown are uvicorn's own; ``_write_direct`` does what its ``send`` does
for a whole response.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
import resource
from typing import Any, ClassVar

from starlette.responses import Response
from uvicorn.protocols.http.httptools_impl import (
    HEADER_RE,
    HEADER_VALUE_RE,
    STATUS_LINE,
    HttpToolsProtocol,
    RequestResponseCycle,
)

from smsgate.api.fastpath import Endpoint, FastPath
from smsgate.settings import Settings

log = logging.getLogger(__name__)
_RESERVED_FDS = 256  # for the database, SMPP sessions, webhook clients, log files
_LINGER = 0.5  # seconds a refused connection stays half-open so the client reads the answer, not a reset


@dataclasses.dataclass(frozen=True, slots=True)
class HttpLimits:
    max_head_bytes: int = 16 * 1024
    head_timeout: float = 10.0
    keepalive_timeout: float = 30.0
    max_connections: int = 4096


def _answer(status: str, text: str) -> bytes:
    body = text.encode()
    head = f"HTTP/1.1 {status}\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: {len(body)}\r\n"
    return head.encode() + b"connection: close\r\n\r\n" + body


TOO_LARGE = _answer("431 Request Header Fields Too Large", "Request line and headers too large")
TOO_SLOW = _answer("408 Request Timeout", "No complete request head in time")
TOO_MANY = _answer("503 Service Unavailable", "Too many connections; try again")


class LimitedHttpTools(HttpToolsProtocol):
    """uvicorn's httptools protocol with the bounds above (``limits`` is set by ``protocol_class``)."""

    limits: ClassVar[HttpLimits] = HttpLimits()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._accepted = False  # counted in the server's connections (connection_made ran its course)
        self._refused = False  # answered and closing: nothing more is read
        self._in_head = True  # between requests or inside a head: its bytes count against the cap
        self._head_bytes = 0
        self._tail = b""  # the last bytes of the head so far, to find a "\r\n\r\n" split across reads
        self._head_timer: asyncio.TimerHandle | None = None
        self._one_write: _OneWrite | None = None  # the cycles' transport: a response head waits for its body
        self._fast = self.app if isinstance(self.app, FastPath) else None  # whose hot routes are served directly
        self._defaults: tuple[object, _Head] = (None, (b"", -1, False, False))  # default_headers, their lines

    # -- connection ----------------------------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        if len(self.server_state.connections) >= self.limits.max_connections:
            self._refused = True
            self.transport = transport
            transport.write(TOO_MANY)
            transport.close()
            return
        super().connection_made(transport)
        self._accepted = True
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        if self._accepted:
            super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        if self._in_head:
            if self._head_timer is None:
                self._arm_head_timer()
            total = self._head_bytes + len(data)
            if total > self.limits.max_head_bytes and not self._head_ends_in_time(data):
                self._close_with(TOO_LARGE)
                return
            self._head_bytes = total
            self._tail = (self._tail + data[-3:])[-3:]
        super().data_received(data)

    def _head_ends_in_time(self, data: bytes) -> bool:
        """Whether the head ends (blank line) in ``data`` within the cap: the rest is the body."""
        end = (self._tail + data).find(b"\r\n\r\n")
        return end >= 0 and self._head_bytes - len(self._tail) + end + 4 <= self.limits.max_head_bytes

    # -- parser callbacks ----------------------------------------------------------------------------------------
    def on_headers_complete(self) -> None:
        self._in_head = False
        self._head_bytes = 0
        self._tail = b""
        self._cancel_head_timer()
        super().on_headers_complete()
        if self.cycle is not None and self.cycle.transport is self.transport:
            if self._one_write is None:
                self._one_write = _OneWrite(self.transport, self.loop)
            self.cycle.transport = self._one_write

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._in_head = True  # what comes next on this connection is the next request's head

    # -- hot routes -----------------------------------------------------------------------------------------------
    def _start_asgi_task(self, cycle: RequestResponseCycle, app: Any) -> None:
        """uvicorn starts every request's task here, at once or when the pipeline reaches it: a hot route's runs
        ``_direct`` instead of the ASGI app (``app`` is uvicorn's 503 app when ``limit_concurrency`` is hit)."""
        fast = self._fast
        if fast is not None and app is fast:
            scope = cycle.scope
            endpoint = fast.routes.get((scope["method"], scope["path"]))
            if endpoint is not None:
                task = self.loop.create_task(self._direct(cycle, fast, endpoint))
                task.add_done_callback(self.tasks.discard)
                self.tasks.add(task)
                return
        super()._start_asgi_task(cycle, app)

    async def _direct(self, cycle: RequestResponseCycle, fast: FastPath, endpoint: Endpoint) -> None:
        """``cycle.run_asgi`` for a hot route: the endpoint's response written whole, or uvicorn's 500."""
        try:
            response = await fast.answer(cycle.scope, cycle.receive, endpoint)  # type: ignore[arg-type]
            if self.flow.write_paused and not cycle.disconnected:
                await self.flow.drain()
            if not cycle.disconnected:
                self._write_direct(cycle, response)
                if response.background is not None:
                    await response.background()
        except BaseException as exc:  # as run_asgi: logged, and a 500 unless a response has begun
            self.logger.error("Exception in ASGI application\n", exc_info=exc)
            if not cycle.response_started:
                await cycle.send_500_response()
            else:
                self.transport.close()

    def _write_direct(self, cycle: RequestResponseCycle, response: Response) -> None:
        """What uvicorn's ``send`` writes for ``http.response.start`` and one whole ``http.response.body``, in one
        write: the same header checks and connection handling, ``connection: close`` when the connection ends."""
        if type(response).__call__ is not Response.__call__:
            raise TypeError(f"a hot endpoint answers a Response with its body whole, not {type(response).__name__}")
        cycle.response_started = True
        cycle.waiting_for_100_continue = False
        defaults = self.server_state.default_headers  # uvicorn's date and server lines: a new list every second
        if defaults is not self._defaults[0]:
            self._defaults = (defaults, _head_lines(defaults))
        block, length, chunked, close = self._defaults[1]
        if length < 0 and not chunked and not close:  # as they always are: nothing in them to merge
            lines, length, chunked, close = _head_lines(response.raw_headers)
            block += lines
        else:
            block, length, chunked, close = _head_lines(defaults + response.raw_headers)
        status = response.status_code
        body = bytes(response.body)  # the same object when it is bytes, as it is for a Response built whole
        keep_alive = cycle.keep_alive and not close
        head = STATUS_LINE[status] + block + (b"" if keep_alive or close else b"connection: close\r\n")
        if cycle.scope["method"] == "HEAD":
            body = b""
        elif chunked or (length < 0 and status not in (204, 304)):
            if not chunked:
                head += b"transfer-encoding: chunked\r\n"
            body = (b"%x\r\n%b\r\n0\r\n\r\n" % (len(body), body)) if body else b"0\r\n\r\n"
        elif len(body) != max(length, 0):
            raise RuntimeError("Response content length differs from Content-Length")
        self.transport.write(head + b"\r\n" + body)
        cycle.keep_alive = keep_alive
        cycle.response_complete = True
        cycle.message_event.set()
        if not keep_alive:
            self.transport.close()
        cycle.on_response()

    # -- timers --------------------------------------------------------------------------------------------------
    def _arm_head_timer(self) -> None:
        self._head_timer = self.loop.call_later(self.limits.head_timeout, self._head_timed_out)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.cycle is not None and not self.cycle.response_complete:
            self.cycle.keep_alive = False  # a response is still being written: close after it
            return
        self._close_with(TOO_SLOW)

    def _close_with(self, answer: bytes) -> None:
        """Answer and close, lingering a moment (reads discarded) so a client still sending gets the answer
        rather than a reset."""
        self._cancel_head_timer()
        self._refused = True  # nothing more is parsed
        if not self.transport.is_closing():
            self.transport.write(answer)
            if self.transport.can_write_eof():
                self.transport.write_eof()
                self.loop.call_later(_LINGER, self.transport.close)
            else:
                self.transport.close()


_Head = tuple[bytes, int, bool, bool]  # header lines; the content-length (-1: none), chunked, connection: close


def _head_lines(headers: list[tuple[bytes, bytes]]) -> _Head:
    """``headers`` as uvicorn's ``send`` writes them (names lower-cased), refused as it refuses them, with what
    it reads from them. uvicorn's checks look for one forbidden byte in a name or in a value: searched for in all
    the names at once and all the values at once, they find what they find one by one, for half the calls."""
    if HEADER_RE.search(b"".join([name for name, _ in headers])) or HEADER_VALUE_RE.search(
        b"".join([value for _, value in headers])
    ):
        raise RuntimeError("Invalid HTTP header name or value.")
    lines: list[bytes] = []
    length = -1
    chunked = close = False
    for name, value in headers:
        name = name.lower()
        if name == b"content-length":
            if length < 0 and not chunked:
                length = int(value)
        elif name == b"transfer-encoding":
            chunked = chunked or value.lower() == b"chunked"
        elif name == b"connection" and b"close" in [token.lower().strip() for token in value.split(b",")]:
            close = True
        lines += (name, b": ", value, b"\r\n")
    return b"".join(lines), length, chunked, close


class _OneWrite(asyncio.Transport):
    """The connection's transport as a response cycle sees it: the head of a response (the first write once a
    response has begun, ending in a blank line) is held until the body's first write and sent with it, in one
    ``send(2)``. A body that is slow to come (a stream, a long poll) does not hold the head back: it goes at the
    loop's next turn, as does a head before ``close`` or ``write_eof``. Everything else is the transport's own."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self._transport = transport
        self._loop = loop
        self._head = b""
        self._flush: asyncio.Handle | None = None

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._flush is not None:  # a head is waiting: this is the body's first write
            self._flush.cancel()
            self._flush = None
            data, self._head = self._head + data, b""
        elif data[-4:] == b"\r\n\r\n" and data[:5] == b"HTTP/":
            self._head = bytes(data)
            self._flush = self._loop.call_soon(self._send_head)
            return
        self._transport.write(data)

    def _send_head(self) -> None:
        self._flush = None
        head, self._head = self._head, b""
        if head and not self._transport.is_closing():
            self._transport.write(head)

    def close(self) -> None:
        self._send_now()
        self._transport.close()

    def write_eof(self) -> None:
        self._send_now()
        self._transport.write_eof()

    def _send_now(self) -> None:
        if self._flush is not None:
            self._flush.cancel()
            self._send_head()

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def can_write_eof(self) -> bool:
        return self._transport.can_write_eof()

    def abort(self) -> None:
        self._transport.abort()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._transport.get_extra_info(name, default)

    def pause_reading(self) -> None:
        self._transport.pause_reading()

    def resume_reading(self) -> None:
        self._transport.resume_reading()

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size()


def protocol_class(limits: HttpLimits) -> type[LimitedHttpTools]:
    """``LimitedHttpTools`` bound to ``limits`` (uvicorn builds one protocol per connection from a class)."""
    return type("LimitedHttpTools", (LimitedHttpTools,), {"limits": limits})


def raise_nofile_limit() -> int:
    """Raise the soft ``RLIMIT_NOFILE`` to the hard limit; returns the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    ceiling = hard if hard != resource.RLIM_INFINITY else 1 << 20
    if soft == resource.RLIM_INFINITY:
        return ceiling
    if soft < ceiling:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (ceiling, hard))
            soft = ceiling
        except (ValueError, OSError) as exc:
            log.warning("could not raise the open-files limit from %d to %d: %s", soft, ceiling, exc)
    return soft


def from_settings(settings: Settings) -> HttpLimits:
    return HttpLimits(
        max_head_bytes=settings.http_max_head_bytes,
        head_timeout=settings.http_head_timeout,
        keepalive_timeout=settings.http_keepalive_timeout,
        max_connections=settings.http_max_connections,
    )


def uvicorn_options(limits: HttpLimits) -> dict[str, Any]:
    """What ``uvicorn.Config`` needs for these limits; also raises the open-files limit so the connection cap, with
    room for everything else the process opens, fits under it (the cap is lowered, loudly, when it does not)."""
    files = raise_nofile_limit()
    cap = limits.max_connections
    if cap > files - _RESERVED_FDS:
        cap = max(16, files - _RESERVED_FDS)
        log.warning("open-files limit %d: at most %d HTTP connections (SMSGATE_HTTP_MAX_CONNECTIONS is %d)",
                    files, cap, limits.max_connections)  # fmt: skip
        limits = dataclasses.replace(limits, max_connections=cap)
    return {
        "http": protocol_class(limits),
        "timeout_keep_alive": math.ceil(limits.keepalive_timeout),
        # the client address is decided by api.peers (SMSGATE_TRUSTED_PROXIES), never by uvicorn's default of
        # believing X-Forwarded-For from 127.0.0.1
        "proxy_headers": False,
    }
