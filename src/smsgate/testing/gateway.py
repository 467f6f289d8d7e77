"""A private gateway for a test session: ``smsgate serve`` on a free loopback port with a temporary data dir, and the
operator's work the plugin does for the tests (accounts, numbers, reserved names) straight through the store.

The gateway is a process of its own, not a thread in the test process: the tests' warning filters, logging setup and
event loops never reach it, and stopping it is a signal. It starts with nothing inherited from ``SMSGATE_*``
variables in the environment (a developer's own database must never be the test gateway's), sandbox-only (no demo
account, no connector but the sandbox network), with webhooks to loopback allowed (the application under test
listens there), and with ``SMSGATE_CACHE_SECONDS=0``: the plugin changes accounts and owners through the store, and
without Redis to announce it the gateway must read them afresh at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import pathlib
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Coroutine, Mapping
from decimal import Decimal
from typing import Any, TypeVar

import httpx

T = TypeVar("T")
BALANCE = Decimal("1000")
START_TIMEOUT = 30.0
# virtual numbers the plugin gives its accounts: Dutch 097 (M2M) numbers, the range Dutch two-way SMS uses
_NUMBERS = itertools.count(1)
NUMBER_PREFIX = "319709"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Store:
    """The gateway's store, used from the test process on an event loop of its own (in a thread), so the plugin
    works the same from plain tests and from tests that run inside an event loop."""

    def __init__(self, database_url: str) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="smsgate-testing-store", daemon=True)
        self._thread.start()
        from smsgate.store import engine as store_engine

        self.engine = store_engine.create(database_url)

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=30)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.run(self.engine.dispose())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()


class Gateway:
    """One running test gateway: its ``url``, the ``ca_file`` to trust when it serves HTTPS, its ``operator_token``,
    and ``create_account()`` for an account besides the test's own."""

    def __init__(self, *, tls: bool = False, env: Mapping[str, str] | None = None) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="smsgate-test-")
        self.data_dir = pathlib.Path(self._tmp.name)
        self.tls = tls
        self.operator_token = "op-" + os.urandom(12).hex()
        self.database_url = f"sqlite+aiosqlite:///{(self.data_dir / 'smsgate.db').resolve()}"
        self.ca_file: pathlib.Path | None = self.data_dir / "tls" / "selfsigned-cert.pem" if tls else None
        self.log = self.data_dir / "gateway.log"
        self.port = 0
        self.url = ""
        self.pid: int | None = None
        self.started_in = 0.0
        self.logged_errors: list[str] = []  # what the gateway logged at ERROR or CRITICAL, read when it stopped
        self._proc: subprocess.Popen[bytes] | None = None
        self._store: _Store | None = None
        self._ssl: ssl.SSLContext | None = None
        self._env = {k: v for k, v in os.environ.items() if not k.upper().startswith("SMSGATE_")}
        self._env.update(
            {
                "SMSGATE_DATA_DIR": str(self.data_dir),
                "SMSGATE_HOST": "127.0.0.1",
                "SMSGATE_OPERATOR_TOKEN": self.operator_token,
                "SMSGATE_SANDBOX": "false",  # no demo account: every test gets its own
                "SMSGATE_WEBHOOKS_ALLOW_PRIVATE": "true",
                "SMSGATE_CACHE_SECONDS": "0",
                "SMSGATE_SANDBOX_RECEIPT_DELAY": "0.05",
                "SMSGATE_SANDBOX_SLOW_RECEIPT_DELAY": "2",
                "SMSGATE_POLL_INTERVAL": "0.1",
                "SMSGATE_ACCESS_LOG": "false",
                "SMSGATE_WEBHOOK_RETRY_BASE": "1",
                **(env or {}),
            }
        )

    @property
    def verify(self) -> ssl.SSLContext | bool:
        """What httpx should verify this gateway's certificate with (``requests`` takes ``ca_file``)."""
        if self.ca_file is None:
            return True
        if self._ssl is None:
            self._ssl = ssl.create_default_context(cafile=self.ca_file)
        return self._ssl

    def start(self) -> Gateway:
        started = time.monotonic()
        for attempt in range(3):  # the free port may be taken before the gateway binds it
            self.port = _free_port()
            self.url = f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"
            if self._spawn():
                break
            if attempt == 2 or "already in use" not in self.log_tail():
                raise RuntimeError(f"the smsgate test gateway did not start:\n{self.log_tail()}")
        self._store = _Store(self.database_url)
        self.started_in = time.monotonic() - started
        return self

    def _spawn(self) -> bool:
        args = [sys.executable, "-m", "smsgate", "serve", "--port", str(self.port), "--log-level", "warning"]
        if self.tls:
            args.append("--tls-self-signed")
        with open(self.log, "ab") as log:
            self._proc = subprocess.Popen(args, env=self._env, stdout=log, stderr=subprocess.STDOUT)
        self.pid = self._proc.pid
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                return False
            with contextlib.suppress(httpx.HTTPError, OSError):  # OSError: the certificate is not written yet
                if httpx.get(self.url + "/healthz", timeout=1.0, verify=self.verify).status_code == 200:
                    return True
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"the smsgate test gateway did not answer within {START_TIMEOUT:g} s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def errors_logged(self) -> list[str]:
        """Lines the gateway logged at ERROR or CRITICAL (tracebacks included), for the session's summary."""
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return []
        return [line for line in text.splitlines() if " ERROR " in line or " CRITICAL " in line]

    def stop(self) -> None:
        """Stop the gateway (SIGTERM, then SIGKILL after 10 s) and remove its data dir."""
        if self._store is not None:
            self._store.close()
            self._store = None
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(5)
        self._proc = None

    def remove_data(self) -> None:
        self.logged_errors = self.errors_logged()
        self._tmp.cleanup()
        shutil.rmtree(self.data_dir, ignore_errors=True)

    # -- the operator's side -------------------------------------------------------------------------------------
    def store(self) -> _Store:
        if self._store is None:
            raise RuntimeError("the smsgate test gateway is not running")
        return self._store

    def create_account(self, name: str = "test") -> Any:
        """A new account (sandbox only) owning a new virtual number, which is also its default sender."""
        from smsgate.core import pricing
        from smsgate.store import accounts as store_accounts
        from smsgate.testing import account as testing_account

        number = f"{NUMBER_PREFIX}{next(_NUMBERS):07d}"

        async def create() -> tuple[Any, str]:
            acc, secret = await store_accounts.AccountStore(self.store().engine).create(
                name, balance=pricing.to_units(BALANCE), default_sender=number, sandbox_only=True
            )
            await self._claim(acc.id, number)
            return acc, secret

        acc, secret = self.store().run(create())
        return testing_account.Account(self, acc.id, acc.api_key, secret, number)

    def claim(self, account_id: str, address: str) -> bool:
        """Make ``address`` (a number, or a sender name) the account's, taking it from any other account of this
        session; True when it was not the account's before."""
        return self.store().run(self._claim(account_id, address))

    async def _claim(self, account_id: str, address: str) -> bool:
        from smsgate import errors
        from smsgate.store import numbers as store_numbers
        from smsgate.store import ownership

        engine = self.store().engine
        found = await ownership.Ownership(engine).owner(address)
        if found is not None and found.account_id == account_id:
            return False
        digits = ownership.numeric(address)
        if digits is None:
            names = ownership.Ownership(engine)
            if found is not None:
                await names.release(address)
            await names.reserve(address, account_id)
            return True
        pool = store_numbers.NumberStore(engine)
        with contextlib.suppress(errors.ValidationError):  # already in the pool
            await pool.add(digits, _country(digits))
        await pool.assign(digits, account_id)
        return True

    def release(self, address: str) -> None:
        """Give a claimed number back to the pool, or free a reserved name."""
        from smsgate import errors
        from smsgate.store import numbers as store_numbers
        from smsgate.store import ownership

        engine = self.store().engine
        digits = ownership.numeric(address)
        with contextlib.suppress(errors.NotFound):
            if digits is None:
                self.store().run(ownership.Ownership(engine).release(address))
            else:
                self.store().run(store_numbers.NumberStore(engine).assign(digits, None))


def _country(digits: str) -> str:
    """The ISO country of an E.164 number (NL when it cannot tell: the pool needs one, nothing here depends on it)."""
    import phonenumbers

    with contextlib.suppress(phonenumbers.NumberParseException):
        region = phonenumbers.region_code_for_number(phonenumbers.parse("+" + digits))
        if region and region != "ZZ":
            return str(region)
    return "NL"
