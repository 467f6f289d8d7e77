"""What follows a STOP or START keyword once its transaction committed: every process forgets the account's
suppression list (this one at once, the others through NOTIFY or Redis), and, when the account asked for it, the
handset gets the account's confirmation text from the number it wrote to.

The confirmation is an ordinary message of the account (priced, debited, visible in ``/v1/messages``), the one
message a suppressed number still gets (``SendRequest.confirms_optout``). It is built here but stored by the
recorder in the keyword's own transaction (``Recorder.confirmation``), so it is in the outbox the moment the
opt-out is: a crash cannot lose it, and the dispatcher retries it like any other message. It skips the rate and
quota limits of a send (which may wait on Redis; nothing in a write transaction may): it answers the handset once.
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
from smsgate.store import messages as store_messages
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

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def confirmation(self, change: recording.OptOut, now: float) -> store_messages.NewMessage | None:
        """``Recorder.confirmation``: the account's confirmation text to the handset, from the number it wrote to,
        as a message to store in the keyword's transaction (so only pure steps here: nothing awaits). None when the
        account wants none, or cannot send it (disabled, destination not allowed, no route: logged)."""
        account = change.account
        if not account.optout_reply or not account.active:
            return None
        sender = change.number.lstrip("+")
        try:
            req = sending.SendRequest(account=account, dialect="optout", sender=sender, text=account.optout_reply,
                                      recipient=numbers.parse_international(change.msisdn),
                                      confirms_optout=True)  # fmt: skip
            self._gateway.check_destination(account, req.recipient)
            return self._gateway.build(req, sender, self._gateway.segment(req), now, claim=False).item
        except (errors.SmsgateError, ValueError) as exc:
            log.warning("opt-out confirmation for account %s not sent: %s", account.id, exc)
            return None

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
