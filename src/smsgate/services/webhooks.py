"""Use cases of an account's webhooks: the delivery log, replaying a delivery, and the webhook settings.

The HTTP edge (``api.webhooks``) parses and renders; what may be changed, and what follows a change (every node
forgets the cached account, the sender wakes for a replay), is decided here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from smsgate import errors
from smsgate.core import accounts as core_accounts
from smsgate.services import sending
from smsgate.store import webhooks as store_webhooks
from smsgate.webhooks import targets


class Webhooks:
    def __init__(
        self,
        deliveries: store_webhooks.Deliveries,
        gateway: sending.Gateway,
        *,
        allow_private: bool,
        wake: Callable[[], None] = lambda: None,
    ) -> None:
        self._deliveries = deliveries
        self._gateway = gateway
        self._allow_private = allow_private
        self._wake = wake  # the webhook sender, wired by runtime: a replayed delivery goes now, not at the next poll

    async def page(
        self, account: core_accounts.Account, *, before: tuple[float, str] | None, limit: int, **filters: str | None
    ) -> list[dict[str, Any]]:
        """Up to ``limit`` of the account's deliveries, newest first, from before ``before`` (created_at, id)."""
        return await self._deliveries.list(account.id, before=before, limit=limit, **filters)

    async def one(self, account: core_accounts.Account, delivery_id: str) -> dict[str, Any]:
        found = await self._deliveries.list(account.id, delivery_id=delivery_id, limit=1)
        if not found:
            raise errors.NotFound("no such webhook delivery")
        return found[0]

    async def of_message(self, message_id: str) -> list[dict[str, Any]]:
        """Every delivery planned for a message (its owner or the operator is checked by the caller's read of it)."""
        return await self._deliveries.of_message(message_id)

    async def replay(self, account: core_accounts.Account, delivery_id: str) -> dict[str, Any]:
        """Send a delivered or dead delivery again (a waiting one is tried now); NotFound for another's."""
        await self.one(account, delivery_id)
        await self._deliveries.replay(account.id, delivery_id)
        self._wake()
        return await self.one(account, delivery_id)

    async def change_settings(
        self,
        account: core_accounts.Account,
        *,
        urls: dict[str, str | None],
        method: str | None = None,
        fmt: str | None = None,
        sign: bool | None = None,
    ) -> core_accounts.Account:
        """Set the account's receipt/inbound URLs (None or "" clears one; each checked by the target policy), the
        Vonage-format method and body format, and signing (which needs a signature secret)."""
        changes: dict[str, Any] = {}
        for field, raw in urls.items():
            changes[field] = targets.check_url(raw, self._allow_private) if raw else None
        if method:
            changes["webhook_method"] = method
        if fmt:
            changes["webhook_format"] = fmt
        if sign is not None:
            if sign and not account.signature_secret:
                raise errors.ValidationError("this account has no signature secret; ask the operator to set one")
            changes["sign_webhooks"] = sign
        gw = self._gateway
        updated = await gw.accounts.update(account.id, **changes) if changes else account
        await gw.account_changed(account.id)
        return updated
