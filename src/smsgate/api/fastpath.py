"""A direct route to the send endpoints, past FastAPI's routing, middleware and dependency machinery; and a
cap on every request body.

A send is the one request that arrives thousands of times a second. Its endpoint takes the bare ``Request``
and answers a ``Response``, so FastAPI adds nothing to it but routing (a regex per route), middleware layers and
dependency resolution: ~400 µs of CPU for a bare GET on the 2-core bench machine. ``FastPath`` wraps the app: a
request whose method and exact path belong to an endpoint marked with ``@hot`` is handed to that endpoint
directly, with the app's own error handler; every other request goes to FastAPI unchanged. The route stays
registered with FastAPI, which documents it in the OpenAPI schema and serves it when the app runs unwrapped.
Under ``smsgate serve`` the server's protocol (``http_limits``) takes a hot request past ASGI altogether: it asks
``answer`` for the response and writes it itself.

Every request's body is capped on the way in (``max_body``): endpoints read bodies whole before their own,
smaller limits apply, so a huge body must not get that far. The batch endpoints take a larger cap of their own
(``larger``: 5,000 recipients with their texts do not fit in 1 MiB).

Every request also gets its access line here (``logs.access``), when the ``smsgate.access`` logger is on: one
closure around ``send`` to see the status, one record, no per-request dict; the handler writes in batches.
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

from fastapi import FastAPI, Request
from fastapi.responses import Response
from fastapi.routing import APIRoute
from starlette.datastructures import Headers
from starlette.requests import ClientDisconnect

from smsgate import errors, logs
from smsgate.api import peers

Endpoint = Callable[[Request], Awaitable[Response]]
ErrorHandler = Callable[[Request, Exception], Awaitable[Response]]
F = TypeVar("F", bound=Endpoint)
_HOT = "__smsgate_hot__"


def hot(endpoint: F) -> F:
    """Mark a FastAPI endpoint ``async def f(request: Request) -> Response`` for the direct route. Its answer is a
    ``Response`` with the body whole (not a stream or a file): the server writes it in one piece (``http_limits``)."""
    params = list(inspect.signature(endpoint).parameters)
    if len(params) != 1:
        raise TypeError(f"{endpoint.__name__}: a hot endpoint takes the request only")
    setattr(endpoint, _HOT, True)
    return endpoint


class FastPath:
    """The ASGI app to serve: hot endpoints directly, the rest through ``app``."""

    def __init__(
        self, app: FastAPI, on_error: ErrorHandler, *, max_body: int = 1 << 20, larger: Mapping[str, int] | None = None
    ) -> None:
        self.app = app
        self._on_error = on_error
        self.max_body = max_body  # for every route: endpoints read bodies whole, so cap them before they do
        self.larger = dict(larger or {})  # exact paths with a cap of their own
        self.routes: dict[tuple[str, str], Endpoint] = {}
        self._collect(app.routes, "")

    def _collect(self, routes: Any, prefix: str) -> None:
        for route in routes:
            included = getattr(route, "original_router", None)  # FastAPI >= 0.16x keeps included routers whole
            if included is not None:
                context = route.include_context
                if context.dependencies:
                    raise ValueError("a router with dependencies cannot hold hot routes")
                self._collect(included.routes, prefix + context.prefix)
            elif isinstance(route, APIRoute) and getattr(route.endpoint, _HOT, False):
                if route.param_convertors or route.dependencies:
                    raise ValueError(f"{route.path}: a hot route must be a fixed path without dependencies")
                for method in route.methods or ():
                    self.routes[(method, prefix + route.path)] = route.endpoint

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if not logs.access_log.isEnabledFor(logging.INFO):
            await self._serve(scope, receive, send)
            return
        started = time.perf_counter()
        logs.current_account.set(None)
        status = 0

        async def seen(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self._serve(scope, receive, seen)
        finally:
            self._access(scope, status, started)

    async def answer(self, scope: dict[str, Any], receive: Any, endpoint: Endpoint) -> Response:
        """The hot ``endpoint``'s answer to a request, with its access line: for a server that writes the response
        itself (``http_limits``: a send's whole response in one write, past the ASGI ``send`` messages)."""
        if not logs.access_log.isEnabledFor(logging.INFO):
            return await self._respond(scope, receive, endpoint)
        started = time.perf_counter()
        logs.current_account.set(None)
        status = 500  # what the server answers when neither the endpoint nor the error handler does
        try:
            response = await self._respond(scope, receive, endpoint)
            status = response.status_code
            return response
        finally:
            self._access(scope, status, started)

    def _access(self, scope: dict[str, Any], status: int, started: float) -> None:
        peer = scope.get("client")
        proxies = self.app.state.proxies
        # the address a trusted reverse proxy names (SMSGATE_TRUSTED_PROXIES), as the login throttle sees it
        client = peers.client(peer[0], Headers(scope=scope), proxies) if peer and proxies else peer[0] if peer else "-"
        logs.access(client, scope["method"], scope["path"], status, started)

    async def _serve(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        endpoint = self.routes.get((scope["method"], scope["path"]))
        if endpoint is not None:
            response = await self._respond(scope, receive, endpoint)
        else:
            scope["app"] = self.app  # what Request.app and the endpoints' app.state lookups read
            cap = self.larger.get(scope["path"], self.max_body)
            if _declared_length(scope) <= cap:
                await self.app(scope, _capped(receive, cap), send)
                return
            response = await self._on_error(Request(scope, receive), _too_large(cap))
        await response(scope, receive, send)

    async def _respond(self, scope: dict[str, Any], receive: Any, endpoint: Endpoint) -> Response:
        """A hot endpoint's answer, or the app's error handler's (its exception, or a body over the cap)."""
        scope["app"] = self.app
        cap = self.larger.get(scope["path"], self.max_body)
        if _declared_length(scope) > cap:
            return await self._on_error(Request(scope, receive), _too_large(cap))
        request = Request(scope, _capped(receive, cap))
        try:
            return await endpoint(request)
        except Exception as exc:  # the app's handlers answer in the dialect's format, as through FastAPI
            return await self._on_error(request, exc)


def _declared_length(scope: Mapping[str, Any]) -> int:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return 0  # the server refuses a malformed length itself
    return 0


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused (the dialect's 400) as soon as it passes ``limit`` bytes, before the rest is read:
    the dialects' own 64 KiB limits, held while reading instead of after the whole (1 MiB-capped) body is in."""
    if _declared_length(request.scope) > limit:
        raise _too_large(limit)
    # straight from ``receive`` rather than through ``request.stream()`` (an async generator per request); a
    # send's body comes in one message. Kept as ``request.body()`` would keep it, for whoever reads it again.
    chunks: list[bytes] = []
    size = 0
    receive = request.receive
    while True:
        message = await receive()
        if message["type"] != "http.request":  # http.disconnect: the client went away mid-body
            raise ClientDisconnect()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
    request._body = body
    return body


def _too_large(limit: int) -> errors.ValidationError:
    return errors.ValidationError(f"Request body too large (limit {limit} bytes)")


def _capped(receive: Any, limit: int) -> Any:
    """``receive`` that raises (the dialect's 400, through the error handler) once a body passes ``limit``."""
    seen = 0

    async def wrapped() -> Any:
        nonlocal seen
        message = await receive()
        if message.get("type") == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                raise _too_large(limit)
        return message

    return wrapped
