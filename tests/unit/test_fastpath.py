"""The direct route for hot endpoints: same endpoint, same error handling, everything else through FastAPI."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, Response

from smsgate import errors
from smsgate.api import fastpath

router = APIRouter()
calls: list[str] = []


@router.post("/hot")
@fastpath.hot
async def hot_endpoint(request: Request) -> Response:
    calls.append(request.app.title)  # request.app is the wrapped FastAPI app
    if (await request.body()) == b"fail":
        raise errors.InvalidNumber("bad number")
    return JSONResponse({"ok": True})


@router.post("/cold")
async def cold_endpoint(request: Request) -> Response:
    await request.body()
    return JSONResponse({"cold": True})


def _app() -> fastpath.FastPath:
    app = FastAPI(title="t")
    app.include_router(router)

    async def on_error(request: Request, exc: Exception) -> Response:
        return JSONResponse({"error": str(exc), "path": request.url.path}, status_code=400)

    app.add_exception_handler(errors.SmsgateError, on_error)  # type: ignore[arg-type]
    return fastpath.FastPath(app, on_error)


async def test_hot_routes_are_collected_and_served_directly() -> None:
    fp = _app()
    assert set(fp.routes) == {("POST", "/hot")}
    calls.clear()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=fp), base_url="http://t") as c:
        assert (await c.post("/hot", content=b"x")).json() == {"ok": True}
        err = await c.post("/hot", content=b"fail")
        assert err.status_code == 400 and err.json()["path"] == "/hot"
        assert (await c.post("/cold")).json() == {"cold": True}
        assert (await c.get("/hot")).status_code == 405  # other methods still go through FastAPI
    assert calls == ["t", "t"]


def test_hot_endpoints_take_only_the_request() -> None:
    async def two(request: Request, other: int) -> Response:
        return Response()

    with pytest.raises(TypeError):
        fastpath.hot(two)  # type: ignore[arg-type]


async def test_bodies_over_the_cap_are_refused_in_the_apps_error_format() -> None:
    fp = _app()
    fp.max_body = 1000
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=fp), base_url="http://t") as c:
        for path in ("/hot", "/cold"):
            declared = await c.post(path, content=b"x" * 1001)  # refused on Content-Length, body unread
            assert declared.status_code == 400 and "too large" in declared.json()["error"], path

            async def chunks() -> Any:
                for _ in range(3):
                    yield b"y" * 400

            streamed = await c.post(path, content=chunks())  # no length: refused once 1,000 bytes went past
            assert streamed.status_code == 400 and "too large" in streamed.json()["error"], path
        assert (await c.post("/hot", content=b"x" * 1000)).json() == {"ok": True}
