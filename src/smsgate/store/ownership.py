"""Who owns an address: the one rule behind sending from a numeric sender, routing an inbound message, and what
a sandbox handset may reply to.

    address              owner                                               how (``Owner.via``)
    a number (digits)    the account holding it in the pool (assigned by     number    (its URL: moHttpUrl)
                         the operator, or bought)
                         else the account that claimed it with KPN's         callback  (its URL: callback_url)
                         ``/register`` (first come, one account per number)
    a name (letters)     the account the operator reserved it for            reserved
                         (``smsgate senders reserve``)
    anything else        nobody: inbound to it is kept for the operator, and a numeric sender nobody owns may
                         not be used (unless the operator lists it in the account's ``allowed_senders``)

Never "whoever sent last from this address": that let any account take another's replies.
"""

from __future__ import annotations

import dataclasses
import re
import time
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from smsgate import errors
from smsgate.store import notify, tables

_SEPARATORS = re.compile(r"[\s\-.()]+")


@dataclasses.dataclass(frozen=True, slots=True)
class Owner:
    account_id: str
    via: str  # number | callback | reserved
    url: str | None = None  # where the owner wants inbound messages to this address (moHttpUrl / callback_url)


def numeric(address: str) -> str | None:
    """The digits of a numeric address (``+31 6 1234``, ``0031…`` and ``31…`` alike), or None for a name."""
    compact = _SEPARATORS.sub("", address)
    if compact.startswith("+"):
        compact = compact[1:]
    elif compact.startswith("00"):
        compact = compact[2:]
    return compact if compact.isascii() and compact.isdigit() else None


def name_key(name: str) -> str:
    """How a reserved name is compared: networks and handsets show names without regard to case."""
    return name.strip().casefold()


async def owner(conn: AsyncConnection | Any, address: str) -> Owner | None:
    """The owner of ``address`` (a number, or a name) by the rule above, or None."""
    digits = numeric(address)
    if digits is None:
        r = tables.sender_reservations.c
        acc = await conn.scalar(sa.select(r.account_id).where(r.sender == name_key(address)))
        return Owner(acc, "reserved") if acc else None
    n, cb = tables.numbers.c, tables.callbacks.c
    row = (await conn.execute(sa.select(n.account_id, n.mo_http_url).where(n.msisdn == digits))).first()
    if row is not None and row.account_id:
        return Owner(row.account_id, "number", row.mo_http_url or None)
    if row is None:  # a pool number nobody holds cannot be claimed by /register either
        found = (await conn.execute(sa.select(cb.account_id, cb.callback_url).where(cb.msisdn == digits))).first()
        if found is not None:
            return Owner(found.account_id, "callback", found.callback_url or None)
    return None


class Ownership:
    """Owner look-ups outside a write transaction, and the operator's reserved names."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def owner(self, address: str) -> Owner | None:
        async with self._engine.connect() as conn:
            return await owner(conn, address)

    async def reservations(self) -> dict[str, str]:
        """Every reserved name (casefolded) and its account."""
        r = tables.sender_reservations.c
        async with self._engine.connect() as conn:
            return {row.sender: row.account_id for row in (await conn.execute(sa.select(r.sender, r.account_id)))}

    async def reserved(self) -> list[dict[str, Any]]:
        r = tables.sender_reservations
        async with self._engine.connect() as conn:
            rows = (await conn.execute(sa.select(r).order_by(r.c.sender))).all()
        return [dict(row._mapping) for row in rows]

    async def reserve(self, name: str, account_id: str) -> None:
        """Operator: ``name`` may be sent with by ``account_id`` only (ValidationError when another holds it)."""
        r = tables.sender_reservations
        key = name_key(name)
        if not key or numeric(name) is not None:
            raise errors.ValidationError("reserve names; numbers are owned through the pool (smsgate numbers)")
        async with self._engine.begin() as conn:
            held = await conn.scalar(sa.select(r.c.account_id).where(r.c.sender == key))
            if held is not None and held != account_id:
                raise errors.ValidationError(f"the name {name!r} is reserved for another account ({held})")
            if held is None:
                await conn.execute(
                    r.insert().values(sender=key, display=name.strip(), account_id=account_id, created_at=time.time())
                )
            await notify.notify_change(conn, notify.SENDERS, key)

    async def release(self, name: str) -> None:
        r = tables.sender_reservations
        async with self._engine.begin() as conn:
            res = await conn.execute(r.delete().where(r.c.sender == name_key(name)))
            if res.rowcount == 0:
                raise errors.NotFound(f"the name {name!r} is not reserved")
            await notify.notify_change(conn, notify.SENDERS, name_key(name))
