"""A direct route to the send endpoints, past FastAPI's routing, middleware and dependency machinery.

A send is the one request that arrives thousands of times a second. Its endpoint takes the bare ``Request``
and answers a ``Response``, so FastAPI adds nothing to it but ~150 µs of routing (a regex per route), middleware
layers and dependency resolution. ``FastPath`` wraps the app: a request whose method and exact path belong to
an endpoint marked with ``@hot`` is handed to that endpoint directly, with the app's own error handlers; every
other request goes to FastAPI unchanged. The route stays registered with FastAPI, which documents it in the
OpenAPI schema and serves it when the app runs without this wrapper.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from fastapi import FastAPI, Request
from fastapi.responses import Response
from fastapi.routing import APIRoute

Endpoint = Callable[[Request], Awaitable[Response]]
ErrorHandler = Callable[[Request, Exception], Awaitable[Response]]
F = TypeVar("F", bound=Endpoint)
_HOT = "__smsgate_hot__"


def hot(endpoint: F) -> F:
    """Mark a FastAPI endpoint ``async def f(request: Request) -> Response`` for the direct route."""
    params = list(inspect.signature(endpoint).parameters)
    if len(params) != 1:
        raise TypeError(f"{endpoint.__name__}: a hot endpoint takes the request only")
    setattr(endpoint, _HOT, True)
    return endpoint


class FastPath:
    """The ASGI app to serve: hot endpoints directly, the rest through ``app``."""

    def __init__(self, app: FastAPI, on_error: ErrorHandler) -> None:
        self.app = app
        self._on_error = on_error
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
        endpoint = (
            self.routes.get((scope.get("method", ""), scope.get("path", ""))) if scope["type"] == "http" else None
        )
        if endpoint is None:
            await self.app(scope, receive, send)
            return
        scope["app"] = self.app  # what Request.app and the endpoints' app.state lookups read
        request = Request(scope, receive)
        try:
            response = await endpoint(request)
        except Exception as exc:  # the app's handlers answer in the dialect's format, as through FastAPI
            response = await self._on_error(request, exc)
        await response(scope, receive, send)
