"""Telling every process that something it may have cached changed: an account's credentials or settings, a
number's owner, the reserved senders.

Each process caches those for at most 5 s (``credentials``, ``ownership``), so a change made anywhere holds
everywhere within 5 s even if no signal arrives. The signal makes it immediate:

* on PostgreSQL the store writes ``NOTIFY smsgate_changes, '<topic>:<key>'`` in the transaction that makes the
  change (``store.notify.notify_change``), and every node's LISTEN connection hands it to ``deliver``;
* with Redis configured, ``publish`` also sends it on ``<prefix>changes`` and every process subscribes (this is
  what reaches a server on SQLite + Redis when the CLI changes an account);
* a process always applies its own changes to itself directly.

A payload is ``<topic>:<key>``; ``""`` (a listener that just connected, and may have missed some) means "anything".
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from smsgate.store import notify

log = logging.getLogger(__name__)

ACCOUNT, NUMBER, SENDERS, SANDBOX = notify.ACCOUNT, notify.NUMBER, notify.SENDERS, notify.SANDBOX
SUPPRESSION = notify.SUPPRESSION
Handler = Callable[[str | None], None]  # the key that changed, or None: anything may have


class Changes:
    def __init__(self, redis: Any = None, *, prefix: str = "smsgate:") -> None:
        self._redis = redis
        self.channel = f"{prefix}changes"
        self._handlers: dict[str, list[Handler]] = {}
        self.received = 0
        # the other process of a split node on SQLite (``link``): told of every change, as Redis would
        self.peer: Callable[[str], None] | None = None

    def subscribe(self, topic: str, handler: Handler) -> None:
        self._handlers.setdefault(topic, []).append(handler)

    def deliver(self, payload: str) -> None:
        """A change announced by any process (or ``""``: anything may have changed)."""
        self.received += 1
        topic, sep, key = payload.partition(":")
        if not sep:
            for handlers in self._handlers.values():
                for handler in handlers:
                    handler(None)
            return
        for handler in self._handlers.get(topic, ()):
            handler(key)

    async def announce(self, topic: str, key: str) -> None:
        """Apply a change here at once, and tell the other processes through Redis when there is one (on
        PostgreSQL the store's NOTIFY has told them already)."""
        self.deliver(f"{topic}:{key}")
        await self.tell_others(topic, key)

    async def tell_others(self, topic: str, key: str) -> None:
        """Only the Redis half of ``announce``: for a change this process has applied to itself already."""
        if self.peer is not None:
            self.peer(f"{topic}:{key}")
        await publish(self._redis, self.channel, f"{topic}:{key}")

    async def run(self) -> None:
        """Subscribe to the Redis channel until cancelled (nothing to do without Redis); reconnects."""
        if self._redis is None:
            return
        while True:
            pubsub = self._redis.pubsub()
            try:
                await pubsub.subscribe(self.channel)
                self.deliver("")  # whatever was published while we were not subscribed
                while True:  # short reads: the client's socket timeout must not end a quiet subscription
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                    if message is not None and message.get("type") == "message":
                        data = message.get("data")
                        self.deliver(data.decode() if isinstance(data, bytes) else str(data))
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("Redis %s subscription failed (%s); caches expire within 5 s meanwhile", self.channel, exc)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
            await asyncio.sleep(1.0)


async def publish(redis: Any, channel: str, payload: str) -> None:
    """Best effort: a lost signal costs at most the 5 s a cache lives, so a Redis failure is logged, not raised."""
    if redis is None:
        return
    try:
        await redis.publish(channel, payload)
    except Exception as exc:
        log.warning("could not publish %s on %s: %s", payload, channel, exc)
