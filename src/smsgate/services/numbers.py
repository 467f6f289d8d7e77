"""Use cases of the virtual numbers (Vonage Phone Numbers API, both Vonage dialects) and of KPN's ``/register``.

Each change of owner is announced to every process (``sending.Gateway.number_changed``), so who may send from a
number and who gets its inbound messages change everywhere at once; a purchase also changes the balance
(``account_changed``). The Vonage wire shapes stay in ``api.vonage_numbers``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from smsgate import errors
from smsgate.core import accounts as core_accounts
from smsgate.core import pricing
from smsgate.services import sending
from smsgate.store import numbers as store_numbers
from smsgate.webhooks import targets

MAX_URL = 2000


def check_url(url: str, *, allow_private: bool) -> str:
    """A webhook URL we are willing to call: the gateway's one target policy (``webhooks.targets``)."""
    if len(url) > MAX_URL:
        raise errors.InvalidUrl(f"the URL is longer than {MAX_URL} characters")
    return targets.check_url(url, allow_private)


class Numbers:
    def __init__(self, store: store_numbers.NumberStore, gateway: sending.Gateway, *, allow_private: bool) -> None:
        self._store = store
        self._gateway = gateway
        self._allow_private = allow_private

    async def owned(
        self, account: core_accounts.Account, *, country: str | None, **paging: Any
    ) -> tuple[int, list[dict[str, Any]]]:
        return await self._store.owned(account.id, country=country, **paging)

    async def available(
        self, *, country: str, type: str | None, features: Sequence[str], **paging: Any
    ) -> tuple[int, list[dict[str, Any]]]:
        return await self._store.available(country=country, type=type, features=features, **paging)

    async def buy(self, account: core_accounts.Account, country: str, msisdn: str) -> None:
        """Take an available number and pay its cost (NotFound: not for sale; InsufficientBalance)."""
        await self._store.buy(account.id, country, msisdn)
        await self._gateway.account_changed(account.id)  # the balance changed
        await self._gateway.number_changed(msisdn)

    async def cancel(self, account: core_accounts.Account, country: str, msisdn: str) -> None:
        await self._store.cancel(account.id, country, msisdn)
        await self._gateway.number_changed(msisdn)

    async def update(
        self,
        account: core_accounts.Account,
        country: str,
        msisdn: str,
        *,
        mo_http_url: str | None,
        settings: Mapping[str, str],
    ) -> None:
        """Where inbound SMS to the number go (None: leave it; "": clear it), and other settings (merged)."""
        if mo_http_url:
            mo_http_url = check_url(mo_http_url, allow_private=self._allow_private)
        await self._store.update(account.id, country, msisdn, mo_http_url=mo_http_url, settings=settings)

    async def register_callback(self, account: core_accounts.Account, msisdn: str, url: str) -> None:
        """KPN's demo ``/register``: claim ``msisdn`` with a callback, unless it is another account's (NotFound)."""
        checked = check_url(url, allow_private=self._allow_private)
        await self._store.register_callback(account.id, msisdn, checked)
        await self._gateway.number_changed(msisdn)

    async def balance(self, account: core_accounts.Account) -> Decimal:
        """Read fresh, not from the credential cache: it moves with every send."""
        fresh = await self._gateway.accounts.get(account.id) or account
        return pricing.from_units(fresh.balance)
