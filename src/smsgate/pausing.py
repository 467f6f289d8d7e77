"""Operator pauses of connectors: a paused connector is out of routing on every node.

The pause is recorded in the store (``store.connectors.PauseStore``), so other nodes pick it up with their
heartbeat (``sync``), and applied here at once: the connector is marked paused and the dispatcher hands its queued
jobs on (``Dispatcher.drain``). On a split node the accept process tells the delivery process (``pauses`` notice)
and waits, a second at most, for its next status report, so the operator's answer shows the connector as it is.
Kept apart from ``runtime`` (which wires it) because none of this is start-up or shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable, Mapping

from smsgate import link
from smsgate.connectors import base
from smsgate.dispatch import dispatcher as dispatch
from smsgate.store import connectors as store_connectors

log = logging.getLogger("smsgate.runtime")  # the operator's log lines keep the name they always had


class Pauses:
    def __init__(
        self,
        store: store_connectors.PauseStore,
        connectors: Mapping[str, base.Connector],
        dispatcher: dispatch.Dispatcher,
        tell: Callable[[str, str], None],
        remote: link.Status | None,
    ) -> None:
        self._store = store
        self._connectors = connectors
        self._dispatcher = dispatcher
        self._tell = tell  # late-bound: a split node wires its line after the runtime is built
        self._remote = remote
        self.reasons: dict[str, str | None] = {}  # paused connector -> the operator's reason

    async def pause(self, name: str, reason: str | None = None) -> None:
        """Take a connector out of routing on every node (recorded in the store), and empty its queue here."""
        await self._store.pause(name, reason)
        self.apply({**self.reasons, name: reason})
        self._tell("pauses", json.dumps(self.reasons))  # applied there before the next job handed over
        await self._remote_settled()

    async def resume(self, name: str) -> None:
        await self._store.resume(name)
        self.apply({k: v for k, v in self.reasons.items() if k != name})
        self._tell("pauses", json.dumps(self.reasons))  # applied there before the next job handed over
        await self._remote_settled()

    async def sync(self) -> None:
        """The pauses the store holds (another node's operator API may have recorded some)."""
        self.apply(await self._store.paused())

    def apply(self, paused: Mapping[str, str | None]) -> None:
        self.reasons = {k: v for k, v in paused.items() if k in self._connectors}
        for name, c in self._connectors.items():
            want = name in self.reasons
            if c.paused == want:
                continue
            c.paused = want
            if want:
                held = self._dispatcher.drain(name)
                log.warning("connector %s paused by the operator; %d queued messages handed on", name, held)
            else:
                log.warning("connector %s resumed by the operator", name)
                self._dispatcher.wake()

    async def _remote_settled(self) -> None:
        """A split node's accept process: wait (a second at most) for the delivery process's report made after
        what was just told, so an operator's answer shows the connector as it is now."""
        if self._remote is None:
            return
        fresh = self._remote.next_update()
        self._tell("status?", "")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(fresh, 1.0)
