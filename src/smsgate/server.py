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

from smsgate import http_limits, logs, split, startup, tls, version
from smsgate import runtime as runtime_mod
from smsgate.api import app as api_app
from smsgate.connectors import sandbox
from smsgate.runtime import Runtime
from smsgate.settings import Settings


def banner_lines(runtime: Runtime, tls_files: tls.TlsFiles | None) -> list[str]:
    """What ``serve`` prints once it listens: where, which database and connectors, and whether SMS really
    leave the machine. Never a password (the database URL is masked) nor a connector's credentials."""
    settings = runtime.settings
    demo = runtime.demo
    base = public_url(settings, tls_files)
    lines = [
        f"smsgate {version.VERSION} listening on {base}  (docs: {base}/docs)",
        f"  database    {settings.masked_database_url}",
        f"  connectors  {', '.join(_connector_line(runtime, name) for name in runtime.connectors)}",
        f"  sender      {settings.default_sender}  (SMSGATE_DEFAULT_SENDER: for accounts without a default sender)",
    ]
    if tls_files is not None and tls_files.self_signed:
        lines.append(f"  tls         self-signed certificate {tls_files.cert}")
        lines.append(f"              (clients trust it with REQUESTS_CA_BUNDLE={tls_files.cert})")
    elif tls_files is not None:
        lines.append(f"  tls         certificate {tls_files.cert}")
    sandboxes = [n for n, c in runtime.connectors.items() if isinstance(c, sandbox.SandboxNetwork)]
    if len(sandboxes) == len(runtime.connectors):
        lines += [
            "",
            "SANDBOX: no real SMS leaves this machine. Every message is 'delivered' to virtual handsets only;",
            "configure [[connectors]] in a config file (--config) to reach a real network.",
        ]
    elif sandboxes:
        lines += [
            "",
            f"SANDBOX: messages routed to {', '.join(sandboxes)} never leave this machine (virtual handsets).",
        ]
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


def public_url(settings: Settings, tls_files: tls.TlsFiles | None) -> str:
    if settings.public_url:
        return settings.public_url
    host = f"[{settings.host}]" if ":" in settings.host else settings.host
    return f"{'https' if tls_files else 'http'}://{host}:{settings.port}"


def _connector_line(runtime: Runtime, name: str) -> str:
    kind = next((str(t.get("type", "smpp")) for t in runtime.settings.connectors if t.get("name") == name), "sandbox")
    return f"{name} ({kind}, {runtime.connector_state(name)[0].state.value})"


def tls_files(settings: Settings) -> tls.TlsFiles | None:
    """The certificate to serve with, checked now (a missing or mismatched file stops the start)."""
    if settings.tls_self_signed:
        if settings.tls_cert or settings.tls_key:
            raise startup.StartupError("--tls-self-signed and --tls-cert/--tls-key exclude each other")
        files = tls.self_signed(settings.data_dir)
    elif settings.tls_cert or settings.tls_key:
        if not (settings.tls_cert and settings.tls_key):
            raise startup.StartupError("--tls-cert and --tls-key go together: give both files")
        files = tls.TlsFiles(settings.tls_cert, settings.tls_key)
    else:
        return None
    tls.load_checked(files)
    return files


log = logging.getLogger(__name__)


class _Server(uvicorn.Server):
    """uvicorn re-raises SIGTERM/SIGINT once it has shut down gracefully, which would kill the process before
    the runtime stops (outbox claims handed back, the node row removed); here the runtime's end is the exit.
    The first signal also marks the node not ready (``/readyz`` answers 503 while it drains)."""

    def __init__(self, config: uvicorn.Config, runtime: Runtime) -> None:
        super().__init__(config)
        self.runtime = runtime

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        with super().capture_signals():
            yield
            self._captured_signals.clear()

    def handle_exit(self, sig: int, frame: Any) -> None:
        if not self.should_exit:
            logs.flush()  # access lines so far come before the shutdown lines
            log.info("shutting down (%s): finishing requests in flight, then stopping", signal.Signals(sig).name)
            self.runtime.stopping = True
        super().handle_exit(sig, frame)


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
    """The listening socket, bound before anything else starts: a port in use is a one-line error before the
    database is touched and before any "listening" line (startup.StartupError)."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise startup.bind_error(host, port, exc) from None
    sock.setblocking(False)
    return sock


async def serve(
    settings: Settings,
    *,
    banner: Callable[[str], None] = print,
    reuse_port: bool = False,
    ready: Callable[[], None] | None = None,
    log_level: str = "INFO",
) -> None:
    # Background threads (aiosqlite's, for reads and claims) hand the GIL back within half a millisecond instead
    # of the default 5 ms: measured 1,100-1,300 vs 850-925 sends/s, as the loop's socket writes stop stalling.
    sys.setswitchinterval(settings.gil_switch_interval)
    sock = bind_socket(settings.host, settings.port, reuse_port=reuse_port)
    try:
        startup.check_data_dir(settings)
        files = tls_files(settings)
        split_node = settings.processes == 2
        async with Runtime(settings, role=runtime_mod.ACCEPT if split_node else runtime_mod.ALL) as runtime:
            delivery = split.Delivery(runtime, log_level) if split_node else None
            if delivery is not None:
                await delivery.start()
            app = api_app.create_asgi(runtime)
            config = uvicorn.Config(
                app,
                host=settings.host,
                port=settings.port,
                log_level="warning",
                log_config=None,  # uvicorn's own lines go through our handlers and format (logs.configure)
                access_log=False,  # ours (api.fastpath) is cheaper and carries the account
                lifespan="off",
                loop="none",
                **http_limits.uvicorn_options(http_limits.from_settings(settings)),  # httptools, bounded
                timeout_graceful_shutdown=5,
                ssl_certfile=str(files.cert) if files else None,
                ssl_keyfile=str(files.key) if files else None,
            )
            server = _Server(config, runtime)
            for line in banner_lines(runtime, files):
                banner(line)
            # Everything loaded so far lives as long as the process: keep it out of the collector's way, and let
            # the youngest generation grow before a collection (a send allocates a few hundred objects, few cyclic)
            gc.collect()
            gc.freeze()
            gc.set_threshold(settings.gc_threshold, 20, 20)
            if ready is not None:
                ready()
            watch = asyncio.create_task(_supervise(delivery, server)) if delivery is not None else None
            try:
                await server.serve(sockets=[sock])
            finally:
                if watch is not None:
                    watch.cancel()
                if delivery is not None:
                    await delivery.close()
        logs.flush()
        if delivery is not None and delivery.failed.is_set():
            raise SystemExit(1)
        log.info("stopped")
    finally:
        sock.close()
        logs.flush()


async def _supervise(delivery: split.Delivery, server: _Server) -> None:
    """Keep the delivery process running; when it cannot be, stop serving (no silent half-gateway)."""
    watching = asyncio.create_task(delivery.watch())
    try:
        await delivery.failed.wait()
        server.runtime.stopping = True
        server.should_exit = True
    finally:
        watching.cancel()


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
    logs.configure(log_level, settings.log_format, access=settings.access_log, prefix=f"[worker {index}] ")
    echo = print if index == 0 else (lambda _line: None)  # one banner, not N
    try:
        run(settings, banner=echo, reuse_port=True, ready=ready.set)
    except Exception as exc:  # one line, as for a single node (cli.startup_errors); the parent stops the rest
        line, hint = startup.explain(exc)
        print(f"smsgate: error: [worker {index}] {line}" + (f"\n  {hint}" if hint else ""), file=sys.stderr)
        sys.exit(2)


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
            if not p.is_alive():  # it said why in one line; a failed start is status 2, as for one node
                status = 2
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
