"""Test helpers: a real gateway process on loopback, real SQLite files, accounts made through the real store."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx

from smsgate.store import accounts as store_accounts
from smsgate.store import engine as store_engine
from smsgate.store import migrate

SMSGATE = [sys.executable, "-m", "smsgate"]
PG_ADMIN_URL = os.environ.get("SMSGATE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("SMSGATE_TEST_REDIS", "redis://127.0.0.1:6379/0")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class GatewayProcess:
    """``smsgate serve`` as a subprocess (so tests can SIGKILL it), on a free loopback port."""

    def __init__(
        self, data_dir: pathlib.Path, *, env: dict[str, str] | None = None, config: pathlib.Path | None = None
    ) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.operator_token = "op-" + os.urandom(8).hex()
        self.env = {
            **os.environ,
            "SMSGATE_DATA_DIR": str(data_dir),
            "SMSGATE_OPERATOR_TOKEN": self.operator_token,
            "SMSGATE_SANDBOX_RECEIPT_DELAY": "0.05",
            "SMSGATE_SANDBOX_SLOW_RECEIPT_DELAY": "3",
            "SMSGATE_NODE_DEAD_AFTER": "2",
            "SMSGATE_NODE_HEARTBEAT_INTERVAL": "0.5",
            "SMSGATE_POLL_INTERVAL": "0.1",
            "SMSGATE_WEBHOOKS_ALLOW_PRIVATE": "true",
            **(env or {}),
        }
        self.config = config
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = data_dir / f"gateway-{self.port}.log"

    @property
    def database_url(self) -> str:
        return self.env.get("SMSGATE_DATABASE_URL") or f"sqlite+aiosqlite:///{(self.data_dir / 'smsgate.db').resolve()}"

    def start(self, timeout: float = 20.0) -> GatewayProcess:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        args = [*SMSGATE, "serve", "--port", str(self.port), "--log-level", "warning"]
        if self.config is not None:
            args += ["--config", str(self.config)]
        fh = open(self.log, "ab")  # noqa: SIM115 - kept open for the child's lifetime
        self.proc = subprocess.Popen(args, env=self.env, stdout=fh, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gateway exited: {self.log.read_text()[-3000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.url + "/healthz", timeout=0.5).status_code == 200:
                    return self
            time.sleep(0.1)
        raise RuntimeError(f"gateway did not start: {self.log.read_text()[-3000:]}")

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
        )
        r.raise_for_status()
        return str(r.json()["access_token"])

    def client(self, **kw: Any) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=10.0, **kw)


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


def run_cli(*args: str, env: dict[str, str] | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*SMSGATE, *args], env={**os.environ, **(env or {})}, capture_output=True, text=True, check=check, timeout=60
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
