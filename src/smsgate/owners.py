"""Which senders an account may use, decided on the send path without a query per message.

The rule (``store.ownership`` holds who owns what):

* the account's default sender (set by the operator) and, when the operator gave the account an
  ``allowed_senders`` list, exactly the senders on it;
* otherwise any name not reserved for another account, and only the numbers (long numbers and short codes) the
  account owns: from the pool, bought, or claimed with KPN's ``/register``.

Owners are cached for ``cache_seconds`` (numbers one by one, the few reserved names as one map read at most
that often), and dropped at once when a change is announced (``changes``: NOTIFY, Redis, or this process).
"""

from __future__ import annotations

import time

from smsgate import caches, changes, errors
from smsgate.core import accounts as core_accounts
from smsgate.core import senders
from smsgate.store import ownership

_NOBODY = ""


class Owners:
    def __init__(self, store: ownership.Ownership, *, cache_seconds: float = 5.0) -> None:
        self._store = store
        self._ttl = cache_seconds
        self._numbers: caches.Expiring[str, str] = caches.Expiring(100_000)  # digits -> owner ("" for nobody)
        self._names: dict[str, str] = {}
        self._names_until = 0.0

    def watch(self, bus: changes.Changes) -> None:
        bus.subscribe(changes.NUMBER, self.forget_number)
        bus.subscribe(changes.SENDERS, lambda _key: self.forget_names())

    def forget_number(self, digits: str | None) -> None:
        if digits is None:
            self._numbers.clear()
            self.forget_names()
        else:
            self._numbers.pop(digits)

    def forget_names(self) -> None:
        self._names_until = 0.0

    async def owner(self, sender: senders.Sender) -> str | None:
        """The account owning ``sender`` (a number, or a reserved name), or None."""
        now = time.monotonic()
        if sender.type is senders.SenderType.ALPHANUMERIC:
            if now >= self._names_until:
                self._names_until = now + self._ttl  # one reader; the others use the map they have meanwhile
                try:
                    self._names = await self._store.reservations()
                except BaseException:
                    self._names_until = 0.0
                    raise
            return self._names.get(ownership.name_key(sender.value))
        hit = self._numbers.get(sender.value)
        if hit is None:
            found = await self._store.owner(sender.value)
            hit = found.account_id if found is not None else _NOBODY
            self._numbers.put(sender.value, hit, self._ttl)
        return hit or None

    async def of_address(self, address: str) -> str | None:
        """The owner of an address as typed (a number in any form, or a name), read fresh."""
        found = await self._store.owner(address)
        return found.account_id if found is not None else None

    async def check(self, account: core_accounts.Account, sender: senders.Sender) -> None:
        """SenderNotAllowed (SenderTaken when it is another account's) unless ``account`` may send as ``sender``."""
        if account.allowed_senders is not None:
            senders.check_allowed(sender, account.allowed_senders)  # the operator's list is the whole rule
            return
        owner = await self.owner(sender)
        if owner is not None and owner != account.id:
            raise errors.SenderTaken(f"The sender {sender.value!r} belongs to another account.")
        if owner is None and sender.type is not senders.SenderType.ALPHANUMERIC:
            raise errors.SenderNotAllowed(
                f"The sender {sender.value!r} is not a number this account owns: use a number from the pool "
                "(Vonage number/buy, or the operator's smsgate numbers assign) or ask the operator to allow it."
            )
