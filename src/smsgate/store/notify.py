"""Signals across nodes on PostgreSQL, on one LISTEN connection per node:

* ``NOTIFY smsgate_outbox`` when a job becomes claimable (below);
* ``NOTIFY smsgate_changes, '<topic>:<key>'`` when an account's credentials or settings, a number's owner, the
  reserved senders, an account's sandbox scripts and behaviour or its suppression list change, written in the transaction that makes the change, so every node drops what it cached
  at once (``smsgate.changes``) instead of when the cache expires.

A node claims the jobs it accepts itself in the accept transaction (the dispatcher's fast path), so the
other nodes only need waking for jobs nobody holds: messages accepted while the accepting node's queue was
full, and retries put back in the outbox. The handlers that write those call ``notify_outbox`` inside their
transaction (PostgreSQL delivers the notification on commit, and only then); every node keeps one asyncpg
connection listening and sets the dispatcher's wake event. Polling stays as the fallback: a lost
connection is re-opened, and nothing is lost meanwhile, only delayed by up to the poll interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

log = logging.getLogger(__name__)

CHANNEL = "smsgate_outbox"
CHANGES = "smsgate_changes"
# what a change notification is about: <topic>:<key>
ACCOUNT, NUMBER, SENDERS = "account", "number", "senders"
SANDBOX = "sandbox"  # an account's sandbox scripts or network behaviour (key: the account id)
SUPPRESSION = "suppression"  # an account's suppression list (key: the account id)


async def notify_outbox(conn: AsyncConnection) -> None:
    """Inside a write transaction: tell every listening node that the outbox has work (PostgreSQL only)."""
    if conn.dialect.name == "postgresql":
        await conn.execute(sa.text(f"NOTIFY {CHANNEL}"))


async def notify_change(conn: AsyncConnection, topic: str, key: str) -> None:
    """Inside a write transaction: tell every node that ``topic:key`` changed (PostgreSQL only; delivered on
    commit). On SQLite there is one node: its own code forgets the cached entry directly."""
    if conn.dialect.name == "postgresql":
        await conn.execute(sa.select(sa.func.pg_notify(CHANGES, f"{topic}:{key}")))


def asyncpg_dsn(url: str) -> str:
    """The plain ``postgresql://`` DSN asyncpg accepts, from a SQLAlchemy URL."""
    for prefix in ("postgresql+asyncpg://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql://" + url.removeprefix(prefix)
    return url


Handler = Callable[[str], None]


class Listener:
    """One LISTEN connection for several channels; calls ``handlers[channel](payload)`` for each notification,
    and every handler with ``""`` (anything may have happened) on each (re)connect. Reconnects when it drops."""

    def __init__(
        self,
        url: str,
        handlers: Mapping[str, Handler],
        *,
        reconnect_delay: float = 1.0,
        connect_timeout: float = 5.0,
    ) -> None:
        self._dsn = asyncpg_dsn(url)
        self._handlers = dict(handlers)
        self._reconnect_delay = reconnect_delay
        self._connect_timeout = connect_timeout
        self.connected = asyncio.Event()
        self.received = 0

    def _callback(self, _conn: Any, _pid: int, channel: str, payload: str) -> None:
        self.received += 1
        handler = self._handlers.get(channel)
        if handler is not None:
            handler(payload)

    async def run(self) -> None:
        """Listen until cancelled; a failure only delays wake-ups to the next poll, so it is logged, not fatal."""
        import asyncpg

        while True:
            conn: Any = None
            lost = asyncio.Event()
            try:
                conn = await asyncpg.connect(self._dsn, timeout=self._connect_timeout)
                conn.add_termination_listener(lambda _c, ev=lost: ev.set())
                for channel in self._handlers:
                    await conn.add_listener(channel, self._callback)
                self.connected.set()
                for handler in self._handlers.values():  # whatever was notified while we were not listening
                    handler("")
                await lost.wait()
                log.warning("LISTEN %s: connection lost; reconnecting", ", ".join(self._handlers))
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("LISTEN %s failed (%s); polling until it is back", ", ".join(self._handlers), exc)
            finally:
                self.connected.clear()
                if conn is not None:
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(conn.close(), 2.0)
            await asyncio.sleep(self._reconnect_delay)
