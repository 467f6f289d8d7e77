"""Test helpers: a real gateway process on loopback, real SQLite files, accounts made through the real store."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import http.server
import itertools
import json
import os
import pathlib
import secrets
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from typing import Any

import httpx

from smsgate.store import accounts as store_accounts
from smsgate.store import engine as store_engine
from smsgate.store import migrate

SMSGATE = [sys.executable, "-m", "smsgate"]
PG_ADMIN_URL = os.environ.get("SMSGATE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("SMSGATE_TEST_REDIS", "redis://127.0.0.1:6379/0")


@functools.cache
def system_cas() -> ssl.SSLContext:
    """The system's CAs, loaded once per test process: httpx loads them for every client made with
    ``verify=True`` (~25 ms of CPU each), and the suite makes thousands of clients for plain-HTTP gateways."""
    return httpx.create_ssl_context()


def handset() -> str:
    """A fresh Dutch sandbox handset that answers normally: its number ends in 5, never in the 0001-0004 endings
    the sandbox makes absent, rejected, expiring or slow (a random draw would hit one in 2,500 times)."""
    return "3161" + "".join(secrets.choice("0123456789") for _ in range(6)) + "5"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class GatewayProcess:
    """``smsgate serve`` as a subprocess (so tests can SIGKILL it), on a free loopback port."""

    def __init__(
        self,
        data_dir: pathlib.Path,
        *,
        env: dict[str, str] | None = None,
        config: pathlib.Path | None = None,
        args: tuple[str, ...] = (),
        log_level: str = "warning",
        tls: bool = False,
        preexec_fn: Any = None,
    ) -> None:
        """``tls``: serve HTTPS with ``--tls-self-signed``; ``ca_file`` is then the certificate to trust."""
        self.data_dir = data_dir
        self.log_level = log_level
        self.preexec_fn = preexec_fn  # runs in the child before exec (e.g. a lower RLIMIT_NOFILE)
        self.port = free_port()
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        self.args = (*args, "--tls-self-signed") if tls else args
        self.ca_file: pathlib.Path | None = data_dir / "tls" / "selfsigned-cert.pem" if tls else None
        self.operator_token = "op-" + os.urandom(8).hex()
        self.env = {
            **os.environ,
            "SMSGATE_DATA_DIR": str(data_dir),
            "SMSGATE_OPERATOR_TOKEN": self.operator_token,
            "SMSGATE_SANDBOX_RECEIPT_DELAY": "0.05",
            "SMSGATE_SANDBOX_SLOW_RECEIPT_DELAY": "3",
            "SMSGATE_NODE_DEAD_AFTER": "2",
            "SMSGATE_NODE_HEARTBEAT_INTERVAL": "0.5",
            # the dispatcher and webhook sender wake on their own work; the poll finds the rest (retries, claims
            # given back). 0.1 s kept each idle gateway at ~8% of a core, 0.25 s at ~3.4% (the default 0.5: 2%)
            "SMSGATE_POLL_INTERVAL": "0.25",
            "SMSGATE_WEBHOOKS_ALLOW_PRIVATE": "true",
            **(env or {}),
        }
        self.config = config
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = data_dir / f"gateway-{self.port}.log"

    @property
    def verify(self) -> ssl.SSLContext:
        """What httpx should verify the gateway's certificate with (the system's CAs for plain HTTP)."""
        return ssl.create_default_context(cafile=self.ca_file) if self.ca_file else system_cas()

    @property
    def database_url(self) -> str:
        return self.env.get("SMSGATE_DATABASE_URL") or f"sqlite+aiosqlite:///{(self.data_dir / 'smsgate.db').resolve()}"

    def start(self, timeout: float = 60.0) -> GatewayProcess:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        args = [*SMSGATE, "serve", "--port", str(self.port), "--log-level", self.log_level, *self.args]
        if self.config is not None:
            args += ["--config", str(self.config)]
        fh = open(self.log, "ab")  # noqa: SIM115 - kept open for the child's lifetime
        self.proc = subprocess.Popen(
            args, env=self.env, stdout=fh, stderr=subprocess.STDOUT, preexec_fn=self.preexec_fn
        )
        deadline = time.monotonic() + timeout
        # one client for the whole wait: a new one per probe costs ~25 ms of CPU (it loads the CA bundle), which
        # at 10 probes a second cost as much CPU as the starting gateway itself on a loaded machine
        probe: httpx.Client | None = None
        try:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"gateway exited: {self.log.read_text()[-3000:]}")
                # Generous bounds: a start takes ~2 s alone, but several times that while the suite loads both cores
                try:
                    probe = probe or httpx.Client(timeout=2.0, verify=self.verify)
                    if probe.get(self.url + "/healthz").status_code == 200:
                        return self
                except (httpx.HTTPError, OSError):  # OSError: the certificate is not (completely) written yet
                    if self.ca_file is not None and probe is not None:  # trust the certificate it ends up with
                        probe.close()
                        probe = None
                time.sleep(0.1)
            raise RuntimeError(f"gateway did not start: {self.log.read_text()[-3000:]}")
        except BaseException:
            self.kill()  # never leave a half-started gateway behind the failing test
            raise
        finally:
            if probe is not None:
                probe.close()

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()

    def create_account(self, name: str = "test", **settings: Any) -> dict[str, str]:
        """A new account straight through the store (same SQLite file / database as the gateway)."""
        return create_account(self.database_url, name, **settings)

    def token(self, account: dict[str, str]) -> str:
        r = httpx.post(
            self.url + "/oauth/client_credential/accesstoken?grant_type=client_credentials",
            data={"client_id": account["api_key"], "client_secret": account["api_secret"]},
            verify=self.verify,
        )
        r.raise_for_status()
        return str(r.json()["access_token"])

    def client(self, **kw: Any) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=10.0, verify=self.verify, **kw)


def create_account(database_url: str, name: str = "test", **settings: Any) -> dict[str, str]:
    settings.setdefault("balance", 10**8 * 1000)  # 1000.00
    settings.setdefault("default_sender", "smsgate")

    async def run() -> dict[str, str]:
        engine = store_engine.create(database_url)
        try:
            await migrate.upgrade(engine)
            acc, secret = await store_accounts.AccountStore(engine).create(name, **settings)
            return {"account_id": acc.id, "api_key": acc.api_key, "api_secret": secret}
        finally:
            await engine.dispose()

    return asyncio.run(run())


def add_numbers(database_url: str, owned: dict[str, str | None], country: str = "NL") -> None:
    """Numbers straight into the pool, ``msisdn -> account_id`` (None: available), as ``smsgate numbers add`` does."""
    from smsgate.store import numbers as store_numbers

    async def run() -> None:
        engine = store_engine.create(database_url)
        try:
            await migrate.upgrade(engine)
            store = store_numbers.NumberStore(engine)
            for msisdn, account_id in owned.items():
                await store.add(msisdn, country)
                if account_id is not None:
                    await store.assign(msisdn, account_id)
        finally:
            await engine.dispose()

    asyncio.run(run())


def wait_for(predicate: Any, timeout: float = 10.0, interval: float = 0.05) -> Any:
    """Poll until ``predicate()`` is truthy; return its value or raise AssertionError."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s (last: {last!r})")


def run_cli(
    *args: str, env: dict[str, str] | None = None, check: bool = True, cwd: pathlib.Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*SMSGATE, *args],
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        check=check,
        timeout=60,
        cwd=cwd,
    )


def cli_json(*args: str, env: dict[str, str] | None = None) -> Any:
    return json.loads(run_cli(*args, env=env).stdout)


@contextlib.contextmanager
def gateway_process(data_dir: pathlib.Path, **kw: Any) -> Iterator[GatewayProcess]:
    gw = GatewayProcess(data_dir, **kw).start()
    try:
        yield gw
    finally:
        gw.stop()


@contextlib.contextmanager
def gateway_nodes(
    make_dir: Callable[[str], pathlib.Path], env: dict[str, str], count: int = 2
) -> Iterator[list[GatewayProcess]]:
    """``count`` gateway processes sharing ``env`` (one PostgreSQL, one Redis), each with its own data dir."""
    started: list[GatewayProcess] = []
    try:
        for i in range(count):
            started.append(GatewayProcess(make_dir(f"node-{chr(ord('a') + i)}"), env=env).start())
        yield started
    finally:
        for n in started:
            n.stop()


@contextlib.contextmanager
def postgres_database() -> Iterator[str]:
    """A throwaway PostgreSQL database (``smsgate_test_<random>``), dropped afterwards; fails loudly without a server."""
    import asyncpg  # a test dependency only where PostgreSQL tests run

    admin = PG_ADMIN_URL.replace("postgresql+asyncpg://", "postgresql://")
    name = "smsgate_test_" + os.urandom(5).hex()

    async def admin_exec(sql: str) -> None:
        conn = await asyncpg.connect(admin, timeout=5)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    try:
        asyncio.run(admin_exec(f'CREATE DATABASE "{name}"'))
    except (OSError, asyncpg.PostgresError) as exc:
        import pytest

        pytest.fail(f"PostgreSQL is needed at {admin} (start it, or set SMSGATE_TEST_POSTGRES): {exc}", pytrace=False)
    try:
        yield admin.rsplit("/", 1)[0] + "/" + name
    finally:
        asyncio.run(admin_exec(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


BACKENDS = ("sqlite", "postgresql")  # what a test parametrized over the store runs on


@contextlib.contextmanager
def backend_env(backend: str) -> Iterator[dict[str, str]]:
    """The environment that points a gateway and the CLI at ``backend``: the data dir's SQLite file (nothing to
    add), or a throwaway PostgreSQL database (``postgres_database``)."""
    if backend == "sqlite":
        yield {}
        return
    with postgres_database() as db:
        yield {"SMSGATE_DATABASE_URL": db}


def require_redis() -> str:
    """The Redis URL for tests, after checking the server answers; fails loudly (never skips) when it does not."""
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_timeout=2, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        import pytest

        pytest.fail(f"Redis is needed at {REDIS_URL} (start it, or set SMSGATE_TEST_REDIS): {exc}", pytrace=False)
    finally:
        client.close()
    return REDIS_URL


# -- SMPP route, webhook receiver and a stream of sends: shared by the crash and fault tests ----------------------


class SmscThread:
    """The SMSC simulator (with its HTTP control port) on its own event loop in a thread of the test process.

    In-process so a test can read the decoded submit records (texts, ids) directly; on its own loop so the
    gateway's SMPP traffic never waits for the test's blocking calls. The simulator outlives gateway restarts.
    """

    def __init__(self, **options: Any) -> None:
        from smsgate.sim import smsc

        options.setdefault("record_cap", 100_000)
        self.sim = smsc.SmscSimulator(**options)
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="smsc-sim", daemon=True)
        self._control: asyncio.Server | None = None
        self.control_url = ""

    def start(self) -> SmscThread:
        from smsgate.sim import control

        self._thread.start()

        async def up() -> asyncio.Server:
            await self.sim.start()
            return await control.start_control(self.sim)

        self._control = asyncio.run_coroutine_threadsafe(up(), self.loop).result(10)
        self.control_url = f"http://127.0.0.1:{self._control.sockets[0].getsockname()[1]}"
        return self

    def stop(self) -> None:
        async def down() -> None:
            if self._control is not None:
                self._control.close()
            await self.sim.stop()

        asyncio.run_coroutine_threadsafe(down(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)

    def call(self, fn: Any, *args: Any) -> Any:
        """Run ``fn(*args)`` on the simulator's loop (its state is not shared across threads) and return the result."""

        async def run() -> Any:
            return fn(*args)

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(10)

    def records(self) -> list[Any]:
        """A copy of every decoded submit_sm (``SubmitRecord``: message_id, short_message...), in arrival order."""
        return list(self.call(lambda: list(self.sim.records)))

    def stats(self) -> dict[str, Any]:
        """``GET /stats`` on the control port."""
        r = httpx.get(self.control_url + "/stats", timeout=5, verify=system_cas())  # polled: no CA bundle per call
        r.raise_for_status()
        return dict(r.json())

    def set_mode(self, spec: str) -> None:
        """``POST /mode`` on the control port (``""`` = a happy SMSC)."""
        r = httpx.post(self.control_url + "/mode", json={"mode": spec}, timeout=5, verify=system_cas())
        assert r.status_code == 200, r.text

    def copies_by_text(self) -> dict[str, list[Any]]:
        """Submit records grouped by their text (tests send unique ASCII texts, GSM-7 unpacked = ASCII)."""
        out: dict[str, list[Any]] = {}
        for rec in self.records():
            out.setdefault(rec.short_message.decode("latin-1"), []).append(rec)
        return out


def smpp_config(path: pathlib.Path, port: int, name: str = "smsc", **connector: str | int | float) -> pathlib.Path:
    """A gateway config with one SMPP connector (short timers, so a test sees recovery in seconds) as the route."""
    table: dict[str, str | int | float] = {
        "name": name, "type": "smpp", "host": "127.0.0.1", "port": port, "system_id": "smsgate", "password": "secret",
        "window": 20, "reconnect_delay_min": 0.1, "reconnect_delay_max": 0.5, "response_timeout": 2.0,
        "bind_timeout": 2.0, "connect_timeout": 1.0, "throttle_backoff": 0.2, "enquire_link_interval": 5.0,
        "close_timeout": 1.0, **connector,
    }  # fmt: skip
    lines = ["[[connectors]]", *(f"{k} = {json.dumps(v)}" for k, v in table.items()), "", "[routing]"]
    path.write_text("\n".join([*lines, f"default = {json.dumps(name)}", ""]))
    return path


class QuietHTTPServer(http.server.ThreadingHTTPServer):
    """A receiver on loopback for the gateway's outbound calls: threads per request, no error noise."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128  # the gateway opens many connections at once

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass


def serve_http(port: int, handler: type[http.server.BaseHTTPRequestHandler], name: str) -> QuietHTTPServer:
    server = QuietHTTPServer(("127.0.0.1", port), handler)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True, name=name).start()  # quick to stop
    return server


def stop_http(server: QuietHTTPServer) -> None:
    server.shutdown()
    server.server_close()


class WebhookSink:
    """A webhook receiver on a fixed loopback port that can be taken down and brought back.

    Deliveries are at least once, so events are kept once by their id and repeats are counted.
    ``delay`` makes each answer slow, so deliveries pile up (a receiver under load).
    """

    def __init__(self, *, delay: float = 0.0) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/hooks"
        self.delay = delay
        self.events: dict[str, dict[str, Any]] = {}
        self.repeats = 0
        self.lock = threading.Lock()
        self._server: QuietHTTPServer | None = None

    def start(self) -> WebhookSink:
        sink = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                event = json.loads(body)
                with sink.lock:
                    if event["id"] in sink.events:
                        sink.repeats += 1
                    sink.events[event["id"]] = event
                if sink.delay:
                    time.sleep(sink.delay)
                with contextlib.suppress(OSError):
                    self.send_response(200)
                    self.send_header("content-length", "0")
                    self.end_headers()

        self._server = serve_http(self.port, Handler, f"webhooks-{self.port}")
        return self

    def stop(self) -> None:
        """Down: connections to the port are refused until ``start``."""
        if self._server is not None:
            stop_http(self._server)
            self._server = None

    def types_by_message(self) -> dict[str, set[str]]:
        with self.lock:
            events = list(self.events.values())
        out: dict[str, set[str]] = {}
        for e in events:
            out.setdefault(e["data"]["id"], set()).add(e["type"])
        return out


class KpnStream:
    """Threads sending KPN messages with unique texts until stopped; remembers which texts got a 200.

    A request whose connection broke (the gateway was killed under it) has an unknown outcome and promises
    nothing; any other answer than 200 is counted by status, so a test can check no 5xx but the retryable one.
    """

    def __init__(self, gw: GatewayProcess, account: dict[str, str], tag: str, *, number: str = "0612345678") -> None:
        self.gw, self.account, self.tag, self.number = gw, account, tag, number
        self.accepted: dict[str, str] = {}  # text -> message id
        self.refused: collections.Counter[int] = collections.Counter()
        self.refusals: list[tuple[int, str, dict[str, str]]] = []  # (status, body, headers), the first few
        self.broken = 0
        self.lock = threading.Lock()
        self._count = itertools.count()
        self._limit: int | None = None
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self, threads: int = 2, *, limit: int | None = None) -> KpnStream:
        """Start sending; ``limit`` stops after that many requests in all (bounded in count as well as time)."""
        self._stop.clear()
        self._limit = limit
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]
        for t in self._threads:
            t.start()
        return self

    def stop(self, timeout: float = 15.0) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout)
        assert not any(t.is_alive() for t in self._threads), "a sender did not stop"

    def join(self, timeout: float = 30.0) -> None:
        """Wait for a ``limit``-bounded stream to finish."""
        for t in self._threads:
            t.join(timeout)
        self.stop()

    def _run(self) -> None:
        with httpx.Client(base_url=self.gw.url, timeout=15) as c:
            try:
                token = c.post(
                    "/oauth/client_credential/accesstoken?grant_type=client_credentials",
                    data={"client_id": self.account["api_key"], "client_secret": self.account["api_secret"]},
                ).json()["access_token"]
            except httpx.HTTPError:
                with self.lock:
                    self.broken += 1
                return
            headers = {"Authorization": f"Bearer {token}"}
            while not self._stop.is_set():
                i = next(self._count)
                if self._limit is not None and i >= self._limit:
                    return
                text = f"{self.tag} {i}"
                body = {"sender": "Shop", "messages": [{"mobile_number": self.number, "content": text}]}
                try:
                    r = c.post("/messaging/sms-kpn/v1/send", json=body, headers=headers)
                except httpx.HTTPError:
                    with self.lock:
                        self.broken += 1
                    return  # the server died under us: that request's outcome is unknown
                with self.lock:
                    if r.status_code == 200:
                        self.accepted[text] = r.json()["document_id"]
                    else:
                        self.refused[r.status_code] += 1
                        if len(self.refusals) < 20:
                            self.refusals.append((r.status_code, r.text, dict(r.headers)))


def message_statuses(gw: GatewayProcess, account: dict[str, str]) -> dict[str, str]:
    """Every outbound message of the account and its status, through ``GET /v1/messages`` (paged, bounded)."""
    out: dict[str, str] = {}
    cursor: str | None = None
    with gw.client(auth=(account["api_key"], account["api_secret"])) as c:
        for _ in range(1000):
            params: dict[str, str | int] = {"direction": "outbound", "limit": 500}
            if cursor:
                params["cursor"] = cursor
            r = c.get("/v1/messages", params=params)
            assert r.status_code == 200, r.text
            page = r.json()
            out.update({m["id"]: m["status"] for m in page["messages"]})
            cursor = page["next_cursor"]
            if not cursor:
                return out
    raise AssertionError("more than 500,000 messages?")


def diagnosis(gw: GatewayProcess, smsc: SmscThread) -> str:
    """What the simulator did with receipts, and the gateway's distinct warnings and errors, for a failure message."""
    stats = smsc.stats()
    receipts = {k: v for k, v in stats.items() if k.startswith(("receipts_", "redeliveries", "deliver_resp"))}
    receipts["waiting_for_a_receiver"] = smsc.call(lambda: len(smsc.sim.pending_out))
    lines: collections.Counter[str] = collections.Counter()
    for log in gw.data_dir.glob("gateway-*.log"):
        for line in log.read_text(errors="replace").splitlines():
            if " WARNING " in line or " ERROR " in line or " CRITICAL " in line:
                lines[line.split(" ", 2)[-1][:160]] += 1
    return f"SMSC receipts: {receipts}\ngateway log: {lines.most_common(8)}"


def assert_all_completed(
    gw: GatewayProcess,
    account: dict[str, str],
    smsc: SmscThread,
    accepted: dict[str, str],
    *,
    sink: WebhookSink | None = None,
    timeout: float = 30.0,
    check_ids: int = 200,
) -> dict[str, list[Any]]:
    """Nothing accepted was lost: every ``accepted`` (text -> id) message is delivered per ``GET /v1/messages``,
    its text reached the SMSC, and with ``sink`` both its status webhooks arrived and the account's delivery log
    has nothing left to send. For the first ``check_ids`` messages the part's network id must also be one the
    SMSC gave that text (the gateway recorded a real submit, not a guess). Returns the SMSC's copies by text.
    """
    ids = set(accepted.values())
    auth = (account["api_key"], account["api_secret"])

    def unsent_webhooks() -> dict[str, Any]:
        with gw.client(auth=auth) as c:
            out = {}
            for status in ("pending", "retrying", "dead"):
                r = c.get("/v1/webhooks/deliveries", params={"status": status, "limit": 5})
                assert r.status_code == 200, r.text
                out[status] = [(d["event"], d["last_error"]) for d in r.json()["deliveries"]]
            return {k: v for k, v in out.items() if v}

    deadline = time.monotonic() + timeout
    while True:
        statuses = message_statuses(gw, account)
        left = {i: statuses.get(i) for i in ids if statuses.get(i) != "delivered"}
        hooks_left: dict[str, Any] = {}
        if sink is not None and not left:
            got = sink.types_by_message()
            want = {"message.submitted", "message.delivered"}
            hooks_left = {i: got.get(i, set()) for i in ids if not want <= got.get(i, set())}
            hooks_left = hooks_left or unsent_webhooks()
        if not left and not hooks_left:
            break
        assert time.monotonic() < deadline, (
            f"{len(left)} of {len(ids)} accepted messages not delivered after {timeout}s, e.g. "
            f"{sorted(left.items())[:5]}; webhooks not done: {list(hooks_left.items())[:5]}\n{diagnosis(gw, smsc)}"
        )
        time.sleep(0.25)
    copies = smsc.copies_by_text()
    missing = sorted(t for t in accepted if t not in copies)
    assert not missing, f"{len(missing)} accepted messages never reached the SMSC, e.g. {missing[:5]}"
    with gw.client(auth=auth) as c:
        for text, mid in sorted(accepted.items())[:check_ids]:
            [part] = c.get(f"/v1/messages/{mid}").json()["parts"]
            assert part["network_message_id"] in {r.message_id for r in copies[text]}, (text, part)
    return copies


class TcpProxy:
    """A loopback TCP proxy (to PostgreSQL, an upstream gateway...) that the test can cut (every connection reset, new
    ones refused) and start again on the same port."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.port = free_port()
        self.lock = threading.Lock()
        self.conns: set[socket.socket] = set()
        self.listener: socket.socket | None = None

    def start(self) -> TcpProxy:
        ls = socket.socket()
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind(("127.0.0.1", self.port))
        ls.listen(64)
        with self.lock:
            self.listener = ls
        threading.Thread(target=self._accept, args=(ls,), daemon=True).start()
        return self

    def _accept(self, ls: socket.socket) -> None:
        while True:
            try:
                client, _ = ls.accept()
            except OSError:
                return  # cut
            try:
                server = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            with self.lock:
                if self.listener is not ls:  # cut while this connection was being set up: it must not survive
                    client.close()
                    server.close()
                    return
                self.conns |= {client, server}
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        with self.lock:
            listener, self.listener = self.listener, None
            conns, self.conns = self.conns, set()
        if listener is not None:
            listener.close()
        for s in conns:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    def stop(self) -> None:
        self.cut()


# -- a relaying gateway: HTTP connectors to an upstream (tests/e2e/test_relay.py, test_http_template.py) -------------


def list_messages(gw: GatewayProcess, account: dict[str, str], direction: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    params: dict[str, Any] = {"direction": direction, "limit": 500}
    with gw.client(auth=(account["api_key"], account["api_secret"])) as c:
        for _ in range(100):
            r = c.get("/v1/messages", params=params)
            assert r.status_code == 200, r.text
            out += r.json()["messages"]
            if not r.json()["next_cursor"]:
                return out
            params["cursor"] = r.json()["next_cursor"]
    raise AssertionError("more than 50,000 messages?")


def toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "{ " + ", ".join(f'"{k}" = {toml(v)}' for k, v in value.items()) + " }"
    if isinstance(value, list):
        return "[" + ", ".join(toml(v) for v in value) + "]"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return repr(value)


def relay_config(path: pathlib.Path, connectors: list[dict[str, Any]], rules: list[dict[str, Any]]) -> pathlib.Path:
    lines = []
    for table in connectors:
        lines += ["[[connectors]]", *(f"{k} = {toml(v)}" for k, v in table.items()), ""]
    lines += ["[routing]", f"default = {toml(connectors[0]['name'])}", f"rules = {toml(rules)}", ""]
    path.write_text("\n".join(lines))
    return path


@contextlib.contextmanager
def relay_gateway(
    tmp: pathlib.Path, connectors: list[dict[str, Any]], rules: list[dict[str, Any]], **env: str
) -> Iterator[GatewayProcess]:
    """Gateway A with these connectors and rules; its public URL is its own loopback address."""
    a = GatewayProcess(tmp, env={"SMSGATE_SANDBOX": "false", **env})
    a.env["SMSGATE_PUBLIC_URL"] = a.url
    a.log_level = "info"  # so a credential logged at INFO would be seen by the tests that look for one
    a.config = relay_config(tmp / "relay.toml", connectors, rules)
    a.start()
    try:
        yield a
    finally:
        a.stop()


class Sender:
    """Sends through A's KPN dialect (any dialect would do: the route is A's config) with one token."""

    def __init__(self, a: GatewayProcess, account: dict[str, str]) -> None:
        self.client = a.client(headers={"authorization": "Bearer " + a.token(account)})

    def send(self, number: str, text: str) -> str:
        body = {"sender": "Shop", "messages": [{"mobile_number": "+" + number, "content": text}]}
        r = self.client.post("/messaging/sms-kpn/v1/send", json=body)
        assert r.status_code == 200, r.text
        return str(r.json()["document_id"])

    def message(self, mid: str) -> dict[str, Any]:
        r = self.client.get(f"/v1/messages/{mid}")
        assert r.status_code == 200, r.text
        return dict(r.json())


def connectors_view(a: GatewayProcess) -> dict[str, dict[str, Any]]:
    headers = {"authorization": "Bearer " + a.operator_token}
    r = httpx.get(a.url + "/v1/connectors", headers=headers, timeout=10, verify=system_cas())  # polled
    assert r.status_code == 200, r.text
    return {c["name"]: c for c in r.json()["connectors"]}


Reply = tuple[int, dict[str, str], Any]  # status, headers, JSON body
Script = Callable[[dict[str, Any]], Reply]


class ScriptedUpstream:
    """An HTTP SMS API on loopback whose answer to each POST is ``script(request)`` (after ``delay`` seconds); it
    records each request (path, lower-case headers, JSON or form body, arrival time) and how many ran at once."""

    def __init__(self, script: Script, delay: float = 0.0, port: int | None = None) -> None:
        self.script, self.delay = script, delay
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.requests: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.active = self.most_active = 0
        me = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("content-length") or 0))
                ctype = self.headers.get("content-type", "")
                body = json.loads(raw) if "json" in ctype else dict(urllib.parse.parse_qsl(raw.decode()))
                req = {"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()}, "body": body,
                       "at": time.monotonic()}  # fmt: skip
                with me.lock:
                    me.requests.append(req)
                    me.active += 1
                    me.most_active = max(me.most_active, me.active)
                time.sleep(me.delay)
                status, headers, out = me.script(req)
                data = json.dumps(out).encode()
                with me.lock:
                    me.active -= 1
                try:
                    self.send_response(status)
                    for k, v in {
                        "content-type": "application/json",
                        "content-length": str(len(data)),
                        **headers,
                    }.items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:
                    pass  # the client gave up (a timeout test)

        self.server = serve_http(self.port, Handler, f"upstream-{self.port}")

    def stop(self) -> None:
        stop_http(self.server)

    def requests_where(self, key: str, value: Any) -> list[dict[str, Any]]:
        with self.lock:
            return [r for r in self.requests if r["body"].get(key) == value]
