"""Run one gateway node: the runtime (store, dispatcher, connectors) and uvicorn serving the app.

``serve_workers`` runs N such nodes as processes on one machine, sharing the port with SO_REUSEPORT (the
kernel spreads connections over them). Each is a full node with its own node id, so it needs what several
nodes need: PostgreSQL (one writer is SQLite's limit, and claims rely on ``FOR UPDATE SKIP LOCKED``) and
Redis (quotas and rate limits counted once for all workers).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import multiprocessing
import signal
import socket
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import uvicorn

from smsgate import http_limits
from smsgate.api import app as api_app
from smsgate.runtime import Runtime
from smsgate.settings import Settings


def banner_lines(settings: Settings, demo: dict[str, Any] | None) -> list[str]:
    base = settings.public_url or f"http://{settings.host}:{settings.port}"
    lines = [f"smsgate listening on {base}  (docs: {base}/docs, database: {settings.effective_database_url})"]
    if demo is None:
        return lines
    lines += [
        "",
        "Sandbox mode: a demo account was created. Its secret is shown only now:",
        f"  api_key    {demo['api_key']}",
        f"  api_secret {demo['api_secret']}",
        "",
        "Try it:",
        f"  TOKEN=$(curl -s -X POST '{base}/oauth/client_credential/accesstoken?grant_type=client_credentials' \\",
        f"      -d 'client_id={demo['api_key']}&client_secret={demo['api_secret']}' | python3 -c 'import json,sys;print(json.load(sys.stdin)[\"access_token\"])')",
        f'  curl -s -X POST {base}/messaging/sms-kpn/v1/send -H "Authorization: Bearer $TOKEN" \\',
        "      -H 'Content-Type: application/json' \\",
        '      -d \'{"sender":"KPN API","messages":[{"mobile_number":"+31612345678","content":"Hi from KPN!"}]}\'',
        f'  curl -s {base}/sandbox/handsets/31612345678/messages -H "Authorization: Bearer $TOKEN"',
    ]
    return lines


log = logging.getLogger(__name__)


class _Server(uvicorn.Server):
    """uvicorn re-raises SIGTERM/SIGINT once it has shut down gracefully, which would kill the process before
    the runtime stops (outbox claims handed back, the node row removed); here the runtime's end is the exit."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        with super().capture_signals():
            yield
            self._captured_signals.clear()


def workers_problem(settings: Settings, workers: int) -> str | None:
    """Why ``--workers`` cannot run with these settings, or None."""
    if workers < 1:
        return "--workers must be at least 1"
    if workers == 1:
        return None
    if not settings.effective_database_url.startswith(("postgresql", "postgres")):
        return (
            "--workers needs PostgreSQL (set SMSGATE_DATABASE_URL=postgresql://...): with SQLite one process "
            "writes at a time; run one node, or several nodes on PostgreSQL"
        )
    if not settings.redis_url:
        return "--workers needs Redis (set SMSGATE_REDIS_URL=redis://...) so quotas and rate limits hold across workers"
    return None


def bind_socket(host: str, port: int, *, reuse_port: bool) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.setblocking(False)
    return sock


async def serve(
    settings: Settings,
    *,
    banner: Callable[[str], None] = print,
    reuse_port: bool = False,
    ready: Callable[[], None] | None = None,
) -> None:
    # Background threads (aiosqlite's, for reads and claims) hand the GIL back within half a millisecond instead
    # of the default 5 ms: measured 1,100-1,300 vs 850-925 sends/s, as the loop's socket writes stop stalling.
    sys.setswitchinterval(settings.gil_switch_interval)
    async with Runtime(settings) as runtime:
        app = api_app.create_asgi(runtime)
        config = uvicorn.Config(
            app,
            host=settings.host,
            port=settings.port,
            log_level="warning",
            access_log=False,
            lifespan="off",
            loop="none",
            **http_limits.uvicorn_options(http_limits.from_settings(settings)),  # httptools, bounded
            timeout_graceful_shutdown=5,
        )
        server = _Server(config)
        for line in banner_lines(settings, runtime.demo):
            banner(line)
        # Everything loaded so far lives as long as the process: keep it out of the collector's way, and let the
        # youngest generation grow before a collection (a send allocates a few hundred objects, few of them cyclic)
        gc.collect()
        gc.freeze()
        gc.set_threshold(settings.gc_threshold, 20, 20)
        if ready is not None:
            ready()
        if reuse_port:
            await server.serve(sockets=[bind_socket(settings.host, settings.port, reuse_port=True)])
        else:
            await server.serve()


def run(settings: Settings, *, banner: Callable[[str], None] = print, **kwargs: Any) -> None:
    """Serve until stopped, on uvloop when it is installed (uvicorn[standard] brings it): its socket and
    callback handling cost a fraction of the pure-Python loop's per request and per SMPP read."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency, but not on every platform
        asyncio.run(serve(settings, banner=banner, **kwargs))
        return
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(serve(settings, banner=banner, **kwargs))


def _worker(settings: Settings, index: int, ready: Any, log_level: str) -> None:
    logging.basicConfig(level=log_level, format=f"%(asctime)s %(levelname)s [worker {index}] %(name)s: %(message)s")
    echo = print if index == 0 else (lambda _line: None)  # one banner, not N
    run(settings, banner=echo, reuse_port=True, ready=ready.set)


def serve_workers(settings: Settings, workers: int, *, log_level: str = "INFO") -> int:
    """Run ``workers`` nodes as processes on one port; returns the exit status.

    The first worker starts alone (it applies the migrations and creates the demo account), the others
    once it is ready. If any worker dies, all are stopped: a silently shrinking pool would hide the failure.
    """
    ctx = multiprocessing.get_context("spawn")
    procs: list[Any] = []
    stopping = False

    def stop_all(_signum: int = signal.SIGTERM, _frame: Any = None) -> None:
        nonlocal stopping
        stopping = True
        for p in procs:
            if p.is_alive() and p.pid is not None:
                p.terminate()

    signal.signal(signal.SIGTERM, stop_all)
    signal.signal(signal.SIGINT, stop_all)
    status = 0
    for i in range(workers):
        if stopping:
            break
        ready = ctx.Event()
        p = ctx.Process(target=_worker, args=(settings, i, ready, log_level), name=f"smsgate-worker-{i}")
        p.start()
        procs.append(p)
        while not ready.wait(0.2):
            if not p.is_alive():
                print(f"smsgate: {p.name} failed to start (exit {p.exitcode})", file=sys.stderr)
                status = 1
            if status or stopping:
                stop_all()
                break
    while any(p.is_alive() for p in procs):
        for p in procs:
            if not p.is_alive() and not stopping:
                print(f"smsgate: {p.name} exited with {p.exitcode}; stopping the others", file=sys.stderr)
                status = 1
                stop_all()
        time.sleep(0.2)
    deadline = time.monotonic() + 15
    for p in procs:
        p.join(max(0.1, deadline - time.monotonic()))
        if p.is_alive():
            p.kill()
    return status
