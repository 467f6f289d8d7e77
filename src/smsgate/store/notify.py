"""Wake-ups across nodes on PostgreSQL: ``NOTIFY smsgate_outbox`` when a job becomes claimable, one LISTEN.

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
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

log = logging.getLogger(__name__)

CHANNEL = "smsgate_outbox"


async def notify_outbox(conn: AsyncConnection) -> None:
    """Inside a write transaction: tell every listening node that the outbox has work (PostgreSQL only)."""
    if conn.dialect.name == "postgresql":
        await conn.execute(sa.text(f"NOTIFY {CHANNEL}"))


def asyncpg_dsn(url: str) -> str:
    """The plain ``postgresql://`` DSN asyncpg accepts, from a SQLAlchemy URL."""
    for prefix in ("postgresql+asyncpg://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql://" + url.removeprefix(prefix)
    return url


class OutboxListener:
    """One LISTEN connection; calls ``on_notify`` for each notification, reconnects when the link drops."""

    def __init__(
        self,
        url: str,
        on_notify: Callable[[], None],
        *,
        reconnect_delay: float = 1.0,
        connect_timeout: float = 5.0,
    ) -> None:
        self._dsn = asyncpg_dsn(url)
        self._on_notify = on_notify
        self._reconnect_delay = reconnect_delay
        self._connect_timeout = connect_timeout
        self.connected = asyncio.Event()
        self.received = 0

    def _callback(self, _conn: Any, _pid: int, _channel: str, _payload: str) -> None:
        self.received += 1
        self._on_notify()

    async def run(self) -> None:
        """Listen until cancelled; a failure only delays wake-ups to the next poll, so it is logged, not fatal."""
        import asyncpg

        while True:
            conn: Any = None
            lost = asyncio.Event()
            try:
                conn = await asyncpg.connect(self._dsn, timeout=self._connect_timeout)
                conn.add_termination_listener(lambda _c, ev=lost: ev.set())
                await conn.add_listener(CHANNEL, self._callback)
                self.connected.set()
                self._on_notify()  # whatever was notified while we were not listening
                await lost.wait()
                log.warning("LISTEN %s: connection lost; reconnecting", CHANNEL)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("LISTEN %s failed (%s); polling until it is back", CHANNEL, exc)
            finally:
                self.connected.clear()
                if conn is not None:
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(conn.close(), 2.0)
            await asyncio.sleep(self._reconnect_delay)
