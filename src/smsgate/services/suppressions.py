"""Suppression lists as a use case: checked at accept for every dialect without a query per message, and
changed through the API, the CLI or a STOP keyword.

Each node keeps a copy of an account's list in memory, read when the account first sends. A list of up to
``EXACT_MAX`` numbers is kept number by number; a larger one as a Bloom filter (``rbloom``: ~1.8 MB per million
numbers instead of ~100 MB as a set), where a number the filter does not hold is certainly not listed and a hit
is confirmed in the store: a refused send, or one send in a thousand to an unlisted number, costs one lookup.
Copies are held within ``budget`` bytes per process, the oldest read dropped first.

A change is announced (NOTIFY on PostgreSQL, Redis, or this process). One entry's change names the number
(``store.suppressions.change_key``) and is applied to the copy in place, so a storm of STOP replies does not make
a node read a large list again; an import names only the account and drops its copy. A signal that never arrives
(a CLI on SQLite without Redis) costs at most ``max_age`` seconds, after which the copy is checked against the
list's size and newest entry and read again only when they moved.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable

import rbloom

from smsgate import changes, errors
from smsgate.core import accounts as core_accounts
from smsgate.core import numbers, optout
from smsgate.store import suppressions as store_suppressions

MAX_AGE = 60.0  # seconds a copy is trusted without a change signal
REASON = "suppressed"
MAX_REASON = 200
EXACT_MAX = 5_000  # numbers a list may have to be kept as a set
FALSE_POSITIVES = 0.001  # of a large list's filter
BUDGET = 64 << 20  # bytes of copies per process
ENTRY_BYTES = 100  # what one number costs in a set, for the budget


class _Copy:
    """One account's list as this node holds it: the numbers themselves, or a filter over them."""

    __slots__ = ("bloom", "cost", "exact", "fingerprint", "read_at")

    def __init__(
        self, exact: set[str] | None, bloom: rbloom.Bloom | None, fingerprint: tuple[int, float], read_at: float
    ) -> None:
        self.exact, self.bloom = exact, bloom
        self.fingerprint, self.read_at = fingerprint, read_at
        self.cost = len(exact) * ENTRY_BYTES if exact is not None else (bloom.size_in_bits // 8 if bloom else 0)

    def has(self, digits: str) -> bool | None:
        """Whether ``digits`` is listed; None when only the store can tell (a filter's hit)."""
        if self.exact is not None:
            return digits in self.exact
        return None if self.bloom is not None and digits in self.bloom else False

    def apply(self, digits: str, added: bool) -> None:
        if self.exact is not None:
            if added:
                self.exact.add(digits)
            else:
                self.exact.discard(digits)
        elif added and self.bloom is not None:
            self.bloom.add(digits)  # a lifted number stays in the filter: its hits are confirmed in the store


class Suppressions:
    def __init__(
        self,
        store: store_suppressions.SuppressionStore,
        *,
        max_age: float = MAX_AGE,
        accounts: int = 10_000,
        budget: int = BUDGET,
        exact_max: int = EXACT_MAX,
    ) -> None:
        self.store = store
        self._max_age = max_age
        self._size = accounts
        self._budget = budget
        self._exact_max = exact_max
        self._lists: dict[str, _Copy] = {}
        self._held = 0  # bytes, the sum of the copies' costs
        self._loading: dict[str, asyncio.Future[_Copy]] = {}
        self._pending: dict[str, list[tuple[str, bool]]] = {}  # entry changes seen while a copy is read
        self._bus: changes.Changes | None = None
        self._generation = 0  # raised by every drop: a read that began before it is not kept

    def watch(self, bus: changes.Changes) -> None:
        bus.subscribe(changes.SUPPRESSION, self.forget)
        self._bus = bus

    def forget(self, key: str | None) -> None:
        """A change announced: ``None`` (anything), an account (drop its copy) or one entry (apply it)."""
        if key is None:
            self._generation += 1
            self._lists.clear()
            self._held = 0
            self._loading.clear()
            self._pending.clear()
            return
        account_id, _, entry = key.partition(" ")
        if entry[:1] in ("+", "-"):
            digits, added = entry[1:], entry[0] == "+"
            copy = self._lists.get(account_id)
            if copy is not None:
                self._held -= copy.cost
                copy.apply(digits, added)
                copy.cost = len(copy.exact) * ENTRY_BYTES if copy.exact is not None else copy.cost
                self._held += copy.cost
            if account_id in self._loading:
                self._pending.setdefault(account_id, []).append((digits, added))
            return
        self._generation += 1
        self._drop(account_id)
        self._loading.pop(account_id, None)  # a read in flight may predate the change
        self._pending.pop(account_id, None)

    def _drop(self, account_id: str) -> None:
        copy = self._lists.pop(account_id, None)
        if copy is not None:
            self._held -= copy.cost

    async def _copy(self, account_id: str) -> _Copy:
        hit = self._lists.get(account_id)
        if hit is not None and time.monotonic() - hit.read_at < self._max_age:
            return hit
        loading = self._loading.get(account_id)
        if loading is None:  # one read per account however many sends wait for it
            loading = asyncio.ensure_future(self._load(account_id, hit))
            self._loading[account_id] = loading
        return await asyncio.shield(loading)

    async def _load(self, account_id: str, old: _Copy | None) -> _Copy:
        started, generation = time.monotonic(), self._generation
        me = self._loading.get(account_id)
        try:
            copy = await self._read(account_id, old, started)
            for digits, added in self._pending.get(account_id, ()):
                copy.apply(digits, added)
        finally:
            if self._loading.get(account_id) is me:
                self._loading.pop(account_id, None)
                self._pending.pop(account_id, None)
        if generation == self._generation:  # no drop announced meanwhile: this copy is current
            self._keep(account_id, copy)
        return copy

    async def _read(self, account_id: str, old: _Copy | None, started: float) -> _Copy:
        fingerprint = await self.store.fingerprint(account_id)
        if old is not None and old.fingerprint == fingerprint:
            old.read_at = started  # nothing added or lifted since it was read
            return old
        count = fingerprint[0]
        if count <= self._exact_max:
            exact: set[str] = set()
            async for chunk in self.store.numbers(account_id):
                exact.update(chunk)
            return _Copy(exact, None, fingerprint, started)
        bloom = rbloom.Bloom(2 * count, FALSE_POSITIVES)  # room for the list to double before it is read again
        async for chunk in self.store.numbers(account_id):
            bloom.update(chunk)
        return _Copy(None, bloom, fingerprint, started)

    def _keep(self, account_id: str, copy: _Copy) -> None:
        self._drop(account_id)
        while self._lists and (len(self._lists) >= self._size or self._held + copy.cost > self._budget):
            self._drop(next(iter(self._lists)))  # the oldest read first
        self._lists[account_id] = copy
        self._held += copy.cost

    async def _listed(self, account_id: str, digits: Iterable[str]) -> set[str]:
        copy = await self._copy(account_id)
        listed: set[str] = set()
        ask: list[str] = []
        for d in set(digits):
            known = copy.has(d)
            if known is None:
                ask.append(d)
            elif known:
                listed.add(d)
        if ask:
            listed |= await self.store.listed(account_id, ask)
        return listed

    # -- the send path ----------------------------------------------------------------------------------------
    async def check(self, account: core_accounts.Account, number: numbers.Number) -> None:
        """Suppressed when ``number`` is on the account's list."""
        copy = await self._copy(account.id)  # one send: a lookup, no sets built
        known = copy.has(number.digits)
        if known or (known is None and await self.store.listed(account.id, [number.digits])):
            raise errors.Suppressed("the recipient has opted out of messages from this account (suppressed)")

    async def refusals(self, account: core_accounts.Account, recipients: Iterable[str]) -> dict[str, str]:
        """For a batch: the recipients (as given, "+" or not) on the account's list, each with the reason."""
        given = list(recipients)
        listed = await self._listed(account.id, (r.lstrip("+") for r in given))
        return {r: REASON for r in given if r.lstrip("+") in listed}

    # -- changes ----------------------------------------------------------------------------------------------
    async def put(
        self, account_id: str, msisdn: str, source: str = "api", reason: str | None = None
    ) -> tuple[optout.Suppression, bool]:
        entry, created = await self.store.put(account_id, msisdn, source, _reason(reason))
        if created:
            await self._announce(store_suppressions.change_key(account_id, msisdn, added=True))
        return entry, created

    async def delete(self, account_id: str, msisdn: str) -> None:
        if not await self.store.delete(account_id, msisdn):
            raise errors.NotFound("this number is not on the suppression list")
        await self._announce(store_suppressions.change_key(account_id, msisdn, added=False))

    async def get(self, account_id: str, msisdn: str) -> optout.Suppression:
        found = await self.store.get(account_id, msisdn)
        if found is None:
            raise errors.NotFound("this number is not on the suppression list")
        return found

    async def _announce(self, key: str) -> None:
        if self._bus is not None:
            await self._bus.announce(changes.SUPPRESSION, key)
        else:
            self.forget(key)


def _reason(reason: str | None) -> str | None:
    if reason is not None and len(reason) > MAX_REASON:
        raise errors.ValidationError(f"reason has at most {MAX_REASON} characters")
    return reason or None


def digits_of(raw: str) -> str:
    """A number as the list keeps it: E.164 digits. ValidationError (InvalidNumber) when it is not one."""
    return numbers.parse_international(raw).digits
