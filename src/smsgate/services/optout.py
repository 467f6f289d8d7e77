"""What follows a STOP or START keyword once its transaction committed: every process forgets the account's
suppression list (this one at once, the others through NOTIFY or Redis), and, when the account asked for it, the
handset gets the account's confirmation text from the number it wrote to.

The confirmation is an ordinary message of the account (priced, debited, visible in ``/v1/messages``), the one
message a suppressed number still gets (``SendRequest.confirms_optout``). It is sent once, by the node that
recorded the keyword; a failure is logged, never retried (the opt-out itself is already durable).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine, Sequence
from typing import Any

from smsgate import changes, errors
from smsgate.core import numbers
from smsgate.services import recording, sending
from smsgate.store import suppressions as store_suppressions

log = logging.getLogger(__name__)


class FollowUp:
    def __init__(self, gateway: sending.Gateway) -> None:
        self._gateway = gateway
        self._tasks: set[asyncio.Task[None]] = set()

    def __call__(self, done: Sequence[recording.OptOut]) -> None:
        """``Recorder.on_optout``: called after the commit, before the writers resume."""
        bus = self._gateway.changes
        for change in done:
            key = store_suppressions.change_key(change.account.id, change.msisdn, added=change.added)
            bus.deliver(f"{changes.SUPPRESSION}:{key}")  # now: the next send here must see it
            self._spawn(bus.tell_others(changes.SUPPRESSION, key))
            if change.added and change.account.optout_reply:
                self._spawn(self._confirm(change))

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _confirm(self, change: recording.OptOut) -> None:
        req = sending.SendRequest(
            account=change.account,
            dialect="optout",
            recipient=numbers.parse_international(change.msisdn),
            sender=change.number.lstrip("+"),
            text=change.account.optout_reply,
            confirms_optout=True,
        )
        try:
            await self._gateway.send(req)
        except (errors.SmsgateError, ValueError) as exc:
            log.warning("opt-out confirmation for account %s not sent: %s", change.account.id, exc)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
