"""The protocol's direct path for hot routes (``http_limits._direct``), on a real uvicorn server on loopback, spoken
to over raw sockets: the bytes a hot route writes are the ASGI path's, and keep-alive, pipelining, ``Connection:
close``, HTTP/1.0, ``Expect: 100-continue``, body caps, slow bodies, disconnects and failures behave as through
uvicorn's request cycle."""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator

import pytest
import uvicorn
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from smsgate import errors, http_limits, logs
from smsgate.api import fastpath
from tests import support

router = APIRouter()
seen: list[str] = []  # what the endpoints saw, in order


async def _reply(request: Request) -> Response:
    body = await fastpath.read_body(request, 200_000)
    seen.append(f"{request.url.path} {len(body)}")
    if body == b"fail":
        raise errors.InvalidNumber("bad number")
    if body == b"crash":
        raise errors.ValidationError("the error handler fails on this one")
    if body == b"bad-header":
        return Response(b"x", headers={"x-echo": "a\r\nset-cookie: injected"})
    if body.startswith(b"slow"):
        await asyncio.sleep(0.2)
    return JSONResponse({"got": len(body)}, headers={"x-route": request.url.path})


@router.post("/hot")
@fastpath.hot
async def hot(request: Request) -> Response:
    return await _reply(request)


@router.post("/hot-stream")
@fastpath.hot
async def hot_stream(request: Request) -> Response:
    async def chunks() -> AsyncIterator[bytes]:
        yield b"never"

    return StreamingResponse(chunks())


@router.post("/cold")
async def cold(request: Request) -> Response:
    return await _reply(request)


def _app() -> fastpath.FastPath:
    app = FastAPI()
    app.include_router(router)
    app.state.proxies = ()

    async def on_error(request: Request, exc: Exception) -> Response:
        if isinstance(exc, errors.ValidationError) and "fails" in str(exc):
            raise RuntimeError("the error handler itself failed")
        return JSONResponse({"error": str(exc), "path": request.url.path}, status_code=400)

    app.add_exception_handler(Exception, on_error)
    return fastpath.FastPath(app, on_error, max_body=100_000)


@pytest.fixture(scope="module")
def port() -> Iterator[int]:
    port = support.free_port()
    limits = http_limits.HttpLimits(head_timeout=2.0, keepalive_timeout=2.0)
    config = uvicorn.Config(
        _app(), host="127.0.0.1", port=port, loop="uvloop", lifespan="off", log_config=None,
        access_log=False, **http_limits.uvicorn_options(limits),
    )  # fmt: skip
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    support.wait_for(lambda: server.started, timeout=10)
    yield port
    server.should_exit = True
    thread.join(10)


def _request(path: str, body: bytes = b"", *, version: str = "1.1", extra: str = "") -> bytes:
    head = f"POST {path} HTTP/{version}\r\nhost: t\r\ncontent-length: {len(body)}\r\n{extra}\r\n"
    return head.encode() + body


def _connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _responses(sock: socket.socket, count: int) -> list[tuple[bytes, bytes]]:
    """``count`` responses (head, body) read off ``sock``, by their content-length."""
    data = b""
    out: list[tuple[bytes, bytes]] = []
    while len(out) < count:
        end = data.find(b"\r\n\r\n")
        if end >= 0:
            head = data[:end]
            length = next(
                (
                    int(line.split(b":", 1)[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                ),
                0,
            )
            if len(data) >= end + 4 + length:
                out.append((head, data[end + 4 : end + 4 + length]))
                data = data[end + 4 + length :]
                continue
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed after {len(out)} responses: {data!r}")
        data += chunk
    return out


def _closed(sock: socket.socket) -> bool:
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


def _without_date(head: bytes) -> list[bytes]:
    return [line for line in head.split(b"\r\n") if not line.startswith(b"date:")]


def test_a_hot_answer_is_the_asgi_paths_bytes(port: int) -> None:
    with _connect(port) as sock:
        sock.sendall(_request("/hot", b"abc") + _request("/cold", b"abc"))
        (hot_head, hot_body), (cold_head, cold_body) = _responses(sock, 2)
    assert hot_body == cold_body == b'{"got":3}'
    assert [line.replace(b"/hot", b"/cold") for line in _without_date(hot_head)] == _without_date(cold_head)
    assert _without_date(hot_head)[0] == b"HTTP/1.1 200 OK"
    assert b"server: uvicorn" in hot_head and b"date: " in hot_head


def test_keep_alive_serves_many_requests_on_one_connection(port: int) -> None:
    with _connect(port) as sock:
        for n in range(5):
            sock.sendall(_request("/hot", b"x" * n))
            [(head, body)] = _responses(sock, 1)
            assert body == b'{"got":%d}' % n and b"connection: close" not in head


def test_pipelined_requests_are_answered_in_order(port: int) -> None:
    seen.clear()
    sizes = [0, 1, 2, 3, 4, 5]
    paths = ["/hot", "/cold", "/hot", "/hot", "/cold", "/hot"]
    # the first is slow: the rest wait behind it, in order, whichever path serves them
    wire = b"".join(_request(p, (b"slow" if n == 0 else b"") + b"." * n) for p, n in zip(paths, sizes, strict=True))
    with _connect(port) as sock:
        sock.sendall(wire)
        answers = _responses(sock, len(paths))
    got = [(head.split(b"x-route: ")[1].split(b"\r\n")[0].decode(), body) for head, body in answers]
    assert got == [(p, b'{"got":%d}' % (n + (4 if n == 0 else 0))) for p, n in zip(paths, sizes, strict=True)]
    assert seen == [f"{p} {n + (4 if n == 0 else 0)}" for p, n in zip(paths, sizes, strict=True)]


def test_connection_close_and_http_1_0_close_after_the_answer(port: int) -> None:
    for wire in (_request("/hot", b"ab", extra="connection: close\r\n"), _request("/hot", b"ab", version="1.0")):
        with _connect(port) as sock:
            sock.sendall(wire)
            [(head, body)] = _responses(sock, 1)
            assert body == b'{"got":2}' and b"connection: close" in head.split(b"\r\n")
            assert _closed(sock)


def test_expect_100_continue_gets_its_interim_answer_before_the_body_is_sent(port: int) -> None:
    with _connect(port) as sock:
        sock.sendall(_request("/hot", extra="expect: 100-continue\r\n").replace(b"length: 0", b"length: 5"))
        interim = sock.recv(100)
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(b"hello")
        [(_head, body)] = _responses(sock, 1)
        assert body == b'{"got":5}'


def test_a_body_over_the_cap_is_refused_in_the_apps_format(port: int) -> None:
    with _connect(port) as sock:
        sock.sendall(_request("/hot").replace(b"length: 0", b"length: 100001"))
        [(head, body)] = _responses(sock, 1)
    assert head.startswith(b"HTTP/1.1 400 ") and b"too large" in body


def test_a_slow_body_and_a_large_one_are_read_whole(port: int) -> None:
    with _connect(port) as sock:
        wire = _request("/hot", b"0123456789")
        for i in range(0, len(wire), 7):
            sock.sendall(wire[i : i + 7])
            time.sleep(0.02)
        [(_head, body)] = _responses(sock, 1)
        assert body == b'{"got":10}'
        sock.sendall(_request("/hot", b"y" * 99_000))  # past uvicorn's 64 KiB: reading pauses until it is read
        [(_head, body)] = _responses(sock, 1)
        assert body == b'{"got":99000}'


def test_a_client_gone_mid_body_leaves_the_server_serving(port: int) -> None:
    seen.clear()
    with _connect(port) as sock:
        sock.sendall(_request("/hot").replace(b"length: 0", b"length: 50") + b"only part")
        time.sleep(0.1)
    time.sleep(0.1)
    with _connect(port) as sock:
        sock.sendall(_request("/hot", b"after"))
        [(_head, body)] = _responses(sock, 1)
        assert body == b'{"got":5}'
    assert seen == ["/hot 5"]  # the cut request never reached the endpoint's answer


def test_errors_are_the_apps_answer_and_the_connection_stays(port: int) -> None:
    with _connect(port) as sock:
        sock.sendall(_request("/hot", b"fail") + _request("/hot", b"ok"))
        (head, body), (_, after) = _responses(sock, 2)
    assert head.startswith(b"HTTP/1.1 400 ") and b"bad number" in body and after == b'{"got":2}'


def test_a_failing_error_handler_is_uvicorns_500_and_a_close(port: int) -> None:
    with _connect(port) as sock:
        sock.sendall(_request("/hot", b"crash"))
        [(head, body)] = _responses(sock, 1)
        assert head.startswith(b"HTTP/1.1 500 ") and body == b"Internal Server Error"
        assert _closed(sock)


def test_a_stream_from_a_hot_endpoint_is_refused_not_half_written(port: int) -> None:
    with _connect(port) as sock:
        sock.sendall(_request("/hot-stream"))
        [(head, body)] = _responses(sock, 1)
        assert head.startswith(b"HTTP/1.1 500 ") and body == b"Internal Server Error"
        assert _closed(sock)


def test_an_unsafe_header_value_is_never_written(port: int) -> None:
    with _connect(port) as sock:
        sock.sendall(_request("/hot", b"bad-header"))
        assert _closed(sock)


def test_the_access_line_names_the_status(port: int, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger=logs.access_log.name), _connect(port) as sock:
        sock.sendall(_request("/hot", b"fail") + _request("/hot", b"ok"))
        _responses(sock, 2)
        support.wait_for(lambda: len(caplog.records) >= 2)
    lines = [r.getMessage() for r in caplog.records if r.name == logs.access_log.name]
    assert any("POST /hot" in line and " 400 " in line for line in lines)
    assert any("POST /hot" in line and " 200 " in line for line in lines)
