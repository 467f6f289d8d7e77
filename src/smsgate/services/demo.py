"""The demo account of a sandbox-only gateway: made on its first start, and named in a warning on every start.

It exists so that a new user's first ``curl`` works, and only where nothing can reach a real phone: with any real
connector configured there is none, since well-known credentials must never reach a real network. The account is
``sandbox_only`` (``services.sending.Gateway`` keeps it off real connectors should one be configured later).
"""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import Any

from smsgate.core import pricing
from smsgate.store import accounts as store_accounts

log = logging.getLogger("smsgate.runtime")  # the name operators have seen these lines under

BALANCE = Decimal("1000")
KEY, SECRET = "sandbox1", "sandbox-secret"
LOOPBACK = ("127.0.0.1", "localhost", "::1")


async def ensure_account(accounts: store_accounts.AccountStore, host: str) -> dict[str, Any] | None:
    """On the first start (no account yet): one ready account, returned once with its secret (not kept). On
    loopback it has the well-known credentials, so the README's curl lines work as pasted."""
    if await accounts.count():
        return None
    loopback = host in LOOPBACK
    acc, secret = await accounts.create(
        "demo",
        api_key=KEY if loopback else None,
        secret=SECRET if loopback else None,
        level="demo",
        default_sender="smsgate",
        balance=pricing.to_units(BALANCE),
        sandbox_only=True,
    )
    return {"account_id": acc.id, "api_key": acc.api_key, "api_secret": secret}


async def warn(accounts: store_accounts.AccountStore) -> None:
    """Say that sandbox-only (demo) accounts exist, and loudly if the well-known one still opens with its
    published secret."""
    for key in await accounts.sandbox_only_keys():
        known = key == KEY and await accounts.verify(KEY, SECRET) is not None
        log.warning(
            "demo account %s exists (sandbox only: its messages go to the sandbox network, never to a real one)%s",
            key,
            f"; its secret is the published {SECRET!r}: anyone who can reach this gateway can use it "
            f"(smsgate accounts disable {key}, or rotate-secret)"
            if known
            else "",
        )
