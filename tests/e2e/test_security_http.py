"""Issue #14 item 4: an unauthenticated client cannot exhaust memory or sockets.

Real gateways on SQLite, driven over raw sockets on loopback (the bounds are below HTTP clients' view): request
heads are capped (431), a connection must send a whole head in time (408, closed), idle keep-alive is closed,
connections beyond the per-process cap are refused at once, the open-files limit is raised at start, and
credentials in headers are checked before a body is read.
"""

from __future__ import annotations

import base64
import pathlib
import resource
import socket
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.support import GatewayProcess, gateway_process

HEAD_TIMEOUT, KEEPALIVE = 1.0, 2.0


def lower_nofile() -> None:  # in the gateway's process, before exec: what a small container gives it
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    env = {"SMSGATE_HTTP_HEAD_TIMEOUT": str(HEAD_TIMEOUT), "SMSGATE_HTTP_KEEPALIVE_TIMEOUT": str(KEEPALIVE)}
    g = GatewayProcess(tmp_path_factory.mktemp("http"), env=env, preexec_fn=lower_nofile).start()
    try:
        yield g
    finally:
        g.stop()


def connect(gw: GatewayProcess) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", gw.port), timeout=10)
    return s


def read_all(s: socket.socket, timeout: float = 10.0) -> bytes:
    """Everything until the server closes (or ``timeout``)."""
    s.settimeout(timeout)
    out = b""
    try:
        while chunk := s.recv(65536):
            out += chunk
    except TimeoutError:
        out += b"<still open>"
    except ConnectionResetError:
        out += b"<reset>"
    return out


def closed_after(s: socket.socket, timeout: float) -> tuple[bytes, float]:
    start = time.monotonic()
    data = read_all(s, timeout)
    return data, time.monotonic() - start


def test_request_head_is_capped_at_16_kib(gw: GatewayProcess) -> None:
    with connect(gw) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 20_000 + b"\r\n\r\n")
        answer = read_all(s)
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]
    with connect(gw) as s:  # a head that never ends is cut off at the cap, not read on
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        try:
            for _ in range(64):
                s.sendall(b"X-More: " + b"b" * 1000 + b"\r\n")
        except OSError:
            pass  # closed under us: what we wanted
        assert read_all(s).startswith(b"HTTP/1.1 431 ")
    just_under = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 16_000 + b"\r\nConnection: close\r\n\r\n"
    assert len(just_under) < 16 * 1024
    with connect(gw) as s:
        s.sendall(just_under)
        assert read_all(s).startswith(b"HTTP/1.1 200 ")


def test_a_big_body_behind_a_small_head_is_not_a_big_head(gw: GatewayProcess) -> None:
    acc = gw.create_account("body")
    body = b'{"text": "' + b"x" * 35_000 + b'"}'
    auth = base64.b64encode(f"{acc['api_key']}:{acc['api_secret']}".encode())
    head = (
        b"POST /v1/segments HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nConnection: close\r\n"
        b"Authorization: Basic " + auth + b"\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n"
    )
    with connect(gw) as s:
        s.sendall(head + body)  # one write: the first read holds the head and 35 KB of body
        assert read_all(s).startswith(b"HTTP/1.1 200 ")


@pytest.mark.parametrize(
    "sent",
    [b"", b"GET /healthz HTTP/1.1\r\nHost: x\r\n", b"\r\n"],
    ids=["nothing", "half-a-head", "blank-line"],
)
def test_no_complete_head_in_time_is_closed(gw: GatewayProcess, sent: bytes) -> None:
    with connect(gw) as s:
        s.sendall(sent)
        answer, took = closed_after(s, HEAD_TIMEOUT + 5)
    assert b"<still open>" not in answer and took < HEAD_TIMEOUT + 2, (answer, took)
    assert answer.startswith(b"HTTP/1.1 408 "), answer


def test_a_dribbling_client_is_closed(gw: GatewayProcess) -> None:
    with connect(gw) as s:
        start = time.monotonic()
        for byte in b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"z" * 40:
            try:
                s.sendall(bytes((byte,)))
            except OSError:
                break
            time.sleep(0.1)
            if time.monotonic() - start > HEAD_TIMEOUT + 3:
                break
        answer = read_all(s, 3)
    assert answer.startswith(b"HTTP/1.1 408 ") and time.monotonic() - start < HEAD_TIMEOUT + 3, answer


def test_idle_keep_alive_is_closed(gw: GatewayProcess) -> None:
    with connect(gw) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        s.settimeout(5)
        first = b""
        while b'"status":"ok"' not in first:  # the whole response: head and body may come in two reads
            first += s.recv(65536)
        assert first.startswith(b"HTTP/1.1 200 ")
        rest, took = closed_after(s, KEEPALIVE + 5)
    assert rest == b"" and KEEPALIVE - 0.5 <= took < KEEPALIVE + 2, (rest, took)


def test_open_files_limit_is_raised_at_start(gw: GatewayProcess) -> None:
    assert gw.proc is not None
    limits = pathlib.Path(f"/proc/{gw.proc.pid}/limits").read_text()
    [line] = [ln for ln in limits.splitlines() if ln.startswith("Max open files")]
    soft, hard = line.split()[3:5]
    assert soft == hard and int(soft) > 256, line  # started at 256


def test_connections_beyond_the_cap_are_refused_at_once(tmp_path: pathlib.Path) -> None:
    cap = 30
    env = {"SMSGATE_HTTP_MAX_CONNECTIONS": str(cap), "SMSGATE_HTTP_HEAD_TIMEOUT": "30"}
    with gateway_process(tmp_path, env=env, preexec_fn=lower_nofile) as gw:
        held = [connect(gw) for _ in range(cap)]
        try:
            time.sleep(0.3)
            with connect(gw) as extra:
                answer, took = closed_after(extra, 5)
            assert answer.startswith(b"HTTP/1.1 503 ") and took < 1.0, (answer, took)
            for s in held[:5]:
                s.close()
            time.sleep(0.3)
            assert httpx.get(gw.url + "/healthz", timeout=5).status_code == 200
        finally:
            for s in held:
                s.close()


def test_three_hundred_idle_sockets_do_not_exhaust_the_process(gw: GatewayProcess) -> None:
    """Started with 256 open files: 300 idle connections neither exhaust it nor stay for long."""
    many = []
    try:
        for _ in range(300):
            many.append(connect(gw))
        assert httpx.get(gw.url + "/healthz", timeout=5).status_code == 200
        assert all(read_all(s, HEAD_TIMEOUT + 3).startswith(b"HTTP/1.1 408 ") for s in many[:10])
    finally:
        for s in many:
            s.close()


BAD_BASIC = "Basic " + base64.b64encode(b"nobody:wrong").decode()


@pytest.mark.parametrize(
    ("method", "path", "authorization", "expect"),
    [
        ("POST", "/v1/segments", BAD_BASIC, b"HTTP/1.1 401 "),
        ("PUT", "/v1/account/webhooks", BAD_BASIC, b"HTTP/1.1 401 "),
        ("POST", "/sandbox/handsets/31612345678/reply", BAD_BASIC, b"HTTP/1.1 401 "),
        ("POST", "/sandbox/network", "Bearer not-the-operator", b"HTTP/1.1 401 "),
        ("POST", "/sms/json", BAD_BASIC, b'"status":"4"'),
        ("POST", "/v1/send-sms", BAD_BASIC, b"HTTP/1.1 403 "),
        ("POST", "/messaging/sms-kpn/v1/send", "Bearer nonsense", b"HTTP/1.1 401 "),
    ],
)
def test_header_credentials_are_checked_before_the_body_is_read(
    gw: GatewayProcess, method: str, path: str, authorization: str, expect: bytes
) -> None:
    """The head announces a 900 KB body that never comes: the refusal must not wait for it."""
    head = (
        f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nAuthorization: {authorization}\r\n"
        "Content-Length: 900000\r\n\r\n"
    ).encode()
    answer = b""
    with connect(gw) as s:
        s.sendall(head + b'{"text": "')
        s.settimeout(3)
        try:
            while expect not in answer and (chunk := s.recv(65536)):
                answer += chunk
        except TimeoutError:
            answer += b"<no more while the body is missing>"
    assert expect in answer, answer[:300]
