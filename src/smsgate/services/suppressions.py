"""Suppression lists as a use case: checked at accept for every dialect without a query per message, and
changed through the API, the CLI or a STOP keyword.

Each node keeps an account's whole list in memory (a frozenset of digits), read once when the account first
sends and again after a change: a change is announced (NOTIFY on PostgreSQL, Redis, or this process) and drops
the account's copy, so the next send reads the list once. A signal that never arrives (a CLI on SQLite without
Redis) costs at most ``max_age`` seconds. An account with no entries costs a set lookup per recipient.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable

from smsgate import changes, errors
from smsgate.core import accounts as core_accounts
from smsgate.core import numbers, optout
from smsgate.store import suppressions as store_suppressions

MAX_AGE = 60.0  # seconds an account's list is trusted without a change signal
REASON = "suppressed"
MAX_REASON = 200


class Suppressions:
    def __init__(
        self, store: store_suppressions.SuppressionStore, *, max_age: float = MAX_AGE, accounts: int = 10_000
    ) -> None:
        self.store = store
        self._max_age = max_age
        self._size = accounts
        self._lists: dict[str, tuple[frozenset[str], float]] = {}  # account -> (digits, read at)
        self._loading: dict[str, asyncio.Future[frozenset[str]]] = {}
        self._bus: changes.Changes | None = None
        self._generation = 0  # raised by every change: a read that began before it is not kept

    def watch(self, bus: changes.Changes) -> None:
        bus.subscribe(changes.SUPPRESSION, self.forget)
        self._bus = bus

    def forget(self, account_id: str | None) -> None:
        self._generation += 1
        if account_id is None:
            self._lists.clear()
            self._loading.clear()
        else:
            self._lists.pop(account_id, None)
            self._loading.pop(account_id, None)  # a read in flight may predate the change

    async def _numbers(self, account_id: str) -> frozenset[str]:
        hit = self._lists.get(account_id)
        if hit is not None and time.monotonic() - hit[1] < self._max_age:
            return hit[0]
        loading = self._loading.get(account_id)
        if loading is None:  # one read per account however many sends wait for it
            loading = asyncio.ensure_future(self._load(account_id))
            self._loading[account_id] = loading
        return await asyncio.shield(loading)

    async def _load(self, account_id: str) -> frozenset[str]:
        started, generation = time.monotonic(), self._generation
        me = self._loading.get(account_id)
        try:
            found = await self.store.numbers(account_id)
        finally:
            if self._loading.get(account_id) is me:
                self._loading.pop(account_id, None)
        if generation == self._generation:  # no change announced meanwhile: this copy is current
            if len(self._lists) >= self._size:
                self._lists.pop(next(iter(self._lists)))
            self._lists[account_id] = (found, started)
        return found

    # -- the send path ----------------------------------------------------------------------------------------
    async def check(self, account: core_accounts.Account, number: numbers.Number) -> None:
        """Suppressed when ``number`` is on the account's list."""
        if number.digits in await self._numbers(account.id):
            raise errors.Suppressed("the recipient has opted out of messages from this account (suppressed)")

    async def refusals(self, account: core_accounts.Account, recipients: Iterable[str]) -> dict[str, str]:
        """For a batch: the recipients (as given, "+" or not) on the account's list, each with the reason."""
        listed = await self._numbers(account.id)
        return {r: REASON for r in recipients if r.lstrip("+") in listed}

    # -- changes ----------------------------------------------------------------------------------------------
    async def put(
        self, account_id: str, msisdn: str, source: str = "api", reason: str | None = None
    ) -> tuple[optout.Suppression, bool]:
        entry, created = await self.store.put(account_id, msisdn, source, _reason(reason))
        await self._announce(account_id)
        return entry, created

    async def delete(self, account_id: str, msisdn: str) -> None:
        if not await self.store.delete(account_id, msisdn):
            raise errors.NotFound("this number is not on the suppression list")
        await self._announce(account_id)

    async def get(self, account_id: str, msisdn: str) -> optout.Suppression:
        found = await self.store.get(account_id, msisdn)
        if found is None:
            raise errors.NotFound("this number is not on the suppression list")
        return found

    async def _announce(self, account_id: str) -> None:
        if self._bus is not None:
            await self._bus.announce(changes.SUPPRESSION, account_id)
        else:
            self.forget(account_id)


def _reason(reason: str | None) -> str | None:
    if reason is not None and len(reason) > MAX_REASON:
        raise errors.ValidationError(f"reason has at most {MAX_REASON} characters")
    return reason or None


def digits_of(raw: str) -> str:
    """A number as the list keeps it: E.164 digits. ValidationError (InvalidNumber) when it is not one."""
    return numbers.parse_international(raw).digits
