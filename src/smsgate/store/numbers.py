"""The pool of virtual numbers (Vonage Phone Numbers API) and the KPN demo ``/register`` callbacks.

A number with no ``account_id`` is available: ``search`` shows it and ``buy`` takes it. Ownership changes are
single conditional UPDATEs (``... WHERE account_id IS NULL``), so two accounts buying the same number at once
cannot both win. Who owns a number (for sending from it and for its inbound messages) is decided from these
tables by ``store.ownership``; every change of owner is announced to the other nodes (``notify``).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from smsgate import errors
from smsgate.store import notify, ownership, tables

SEARCH_STARTS, SEARCH_CONTAINS, SEARCH_ENDS = 0, 1, 2


def _pattern_filter(pattern: str | None, how: int) -> list[sa.ColumnElement[bool]]:
    if not pattern:
        return []
    n = tables.numbers.c
    escaped = pattern.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    like = {SEARCH_STARTS: f"{escaped}%", SEARCH_CONTAINS: f"%{escaped}%", SEARCH_ENDS: f"%{escaped}"}[how]
    return [n.msisdn.like(like, escape="\\")]


def _row(m: Any) -> dict[str, Any]:
    return dict(m)


class NumberStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    # -- operator ---------------------------------------------------------------------------------------------
    async def add(
        self, msisdn: str, country: str, *, type: str = "mobile-lvn", features: Sequence[str] = ("SMS",), cost: int = 0
    ) -> dict[str, Any]:
        now = time.time()
        async with self._engine.begin() as conn:
            exists = await conn.scalar(sa.select(tables.numbers.c.msisdn).where(tables.numbers.c.msisdn == msisdn))
            if exists is not None:
                raise errors.ValidationError(f"number {msisdn} is already in the pool")
            await conn.execute(
                tables.numbers.insert().values(
                    msisdn=msisdn,
                    country=country.upper(),
                    type=type,
                    features=list(features),
                    cost=cost,
                    created_at=now,
                    updated_at=now,
                )
            )
        found = await self.get(msisdn)
        assert found is not None
        return found

    async def get(self, msisdn: str) -> dict[str, Any] | None:
        async with self._engine.connect() as conn:
            row = (await conn.execute(sa.select(tables.numbers).where(tables.numbers.c.msisdn == msisdn))).first()
        return _row(row._mapping) if row else None

    async def all(self) -> list[dict[str, Any]]:
        async with self._engine.connect() as conn:
            rows = (await conn.execute(sa.select(tables.numbers).order_by(tables.numbers.c.msisdn))).all()
        return [_row(r._mapping) for r in rows]

    async def assign(self, msisdn: str, account_id: str | None) -> None:
        """Operator: give a number to an account (or, with None, take it back into the pool)."""
        values: dict[str, Any] = {"account_id": account_id, "updated_at": time.time()}
        if account_id is None:
            values.update(mo_http_url=None, settings=None)
        async with self._engine.begin() as conn:
            res = await conn.execute(tables.numbers.update().where(tables.numbers.c.msisdn == msisdn).values(**values))
            await notify.notify_change(conn, notify.NUMBER, msisdn)
        if res.rowcount == 0:
            raise errors.NotFound(f"number {msisdn} is not in the pool")

    # -- account ----------------------------------------------------------------------------------------------
    async def _page(
        self, where: list[sa.ColumnElement[bool]], index: int, size: int
    ) -> tuple[int, list[dict[str, Any]]]:
        n = tables.numbers
        async with self._engine.connect() as conn:
            count = await conn.scalar(sa.select(sa.func.count()).select_from(n).where(*where))
            rows = (
                await conn.execute(
                    sa.select(n).where(*where).order_by(n.c.msisdn).offset((max(index, 1) - 1) * size).limit(size)
                )
            ).all()
        return int(count or 0), [_row(r._mapping) for r in rows]

    async def owned(
        self,
        account_id: str,
        *,
        country: str | None = None,
        pattern: str | None = None,
        search_pattern: int = SEARCH_STARTS,
        index: int = 1,
        size: int = 10,
    ) -> tuple[int, list[dict[str, Any]]]:
        n = tables.numbers.c
        where = [n.account_id == account_id, *_pattern_filter(pattern, search_pattern)]
        if country:
            where.append(n.country == country.upper())
        return await self._page(where, index, size)

    async def available(
        self,
        *,
        country: str,
        pattern: str | None = None,
        search_pattern: int = SEARCH_STARTS,
        type: str | None = None,
        features: Sequence[str] = (),
        index: int = 1,
        size: int = 10,
    ) -> tuple[int, list[dict[str, Any]]]:
        n = tables.numbers.c
        where = [n.account_id.is_(None), n.country == country.upper(), *_pattern_filter(pattern, search_pattern)]
        if type:
            where.append(n.type == type)
        total, rows = await self._page(where, 1, 10_000)
        if features:  # JSON lists: filtered here so SQLite and PostgreSQL agree
            wanted = {f.upper() for f in features}
            rows = [r for r in rows if wanted <= {str(f).upper() for f in r["features"] or ()}]
            total = len(rows)
        start = (max(index, 1) - 1) * size
        return total, rows[start : start + size]

    async def buy(self, account_id: str, country: str, msisdn: str) -> None:
        """Take an available number and pay its cost, in one transaction."""
        n, a = tables.numbers, tables.accounts
        async with self._engine.begin() as conn:
            cost = await conn.scalar(
                sa.select(n.c.cost).where(
                    n.c.msisdn == msisdn, n.c.country == country.upper(), n.c.account_id.is_(None)
                )
            )
            if cost is None:
                raise errors.NotFound("This number is not available to buy")
            if cost:
                paid = await conn.execute(
                    a.update().where(a.c.id == account_id, a.c.balance >= cost).values(balance=a.c.balance - cost)
                )
                if paid.rowcount == 0:
                    raise errors.InsufficientBalance("The account balance does not cover this number")
            res = await conn.execute(
                n.update()
                .where(n.c.msisdn == msisdn, n.c.account_id.is_(None))
                .values(account_id=account_id, updated_at=time.time())
            )
            if res.rowcount == 0:  # bought by someone else meanwhile: the transaction (and payment) rolls back
                raise errors.NotFound("This number is not available to buy")
            await notify.notify_change(conn, notify.NUMBER, msisdn)

    async def cancel(self, account_id: str, country: str, msisdn: str) -> None:
        n = tables.numbers.c
        async with self._engine.begin() as conn:
            res = await conn.execute(
                tables.numbers.update()
                .where(n.msisdn == msisdn, n.country == country.upper(), n.account_id == account_id)
                .values(account_id=None, mo_http_url=None, settings=None, updated_at=time.time())
            )
            await notify.notify_change(conn, notify.NUMBER, msisdn)
        if res.rowcount == 0:
            raise errors.NotFound("You do not own this number")

    async def update(
        self, account_id: str, country: str, msisdn: str, *, mo_http_url: str | None, settings: Mapping[str, str]
    ) -> None:
        """Set a number's inbound URL (None: leave it; "": clear it) and other settings (merged)."""
        n = tables.numbers
        async with self._engine.begin() as conn:
            row = (
                await conn.execute(
                    sa.select(n.c.settings).where(
                        n.c.msisdn == msisdn, n.c.country == country.upper(), n.c.account_id == account_id
                    )
                )
            ).first()
            if row is None:
                raise errors.NotFound("You do not own this number")
            values: dict[str, Any] = {"updated_at": time.time()}
            if mo_http_url is not None:
                values["mo_http_url"] = mo_http_url or None
            if settings:
                values["settings"] = {**(row[0] or {}), **settings}
            await conn.execute(n.update().where(n.c.msisdn == msisdn).values(**values))

    # -- KPN demo callbacks -----------------------------------------------------------------------------------
    async def register_callback(self, account_id: str, msisdn: str, url: str) -> None:
        """Claim ``msisdn`` for ``account_id`` with a callback (first come, one account per number): NotFound when
        it is another account's, in the pool, registered, or on another account's ``allowed_senders`` list (it
        sends from it, so the replies are its own)."""
        cb, n, a = tables.callbacks, tables.numbers, tables.accounts
        async with self._engine.begin() as conn:
            pooled = (await conn.execute(sa.select(n.c.account_id).where(n.c.msisdn == msisdn))).first()
            if pooled is not None and pooled.account_id != account_id:  # also one for sale: buy it instead
                raise errors.NotFound("This number is a virtual number you do not own")
            taken = await conn.scalar(
                sa.select(cb.c.account_id).where(cb.c.msisdn == msisdn, cb.c.account_id != account_id).limit(1)
            )
            if taken is not None:
                raise errors.NotFound("This number is registered by another account")
            lists = await conn.execute(
                sa.select(a.c.id, a.c.allowed_senders).where(a.c.id != account_id, a.c.allowed_senders.is_not(None))
            )
            if any(msisdn in {ownership.numeric(str(x)) for x in row.allowed_senders or ()} for row in lists):
                raise errors.NotFound("This number is another account's sender")
            res = await conn.execute(
                cb.update()
                .where(cb.c.account_id == account_id, cb.c.msisdn == msisdn)
                .values(callback_url=url, created_at=time.time())
            )
            if res.rowcount == 0:
                try:
                    await conn.execute(
                        cb.insert().values(
                            account_id=account_id, msisdn=msisdn, callback_url=url, created_at=time.time()
                        )
                    )
                except sa.exc.IntegrityError:  # another account registered it between the check and the insert
                    raise errors.NotFound("This number is registered by another account") from None
            await notify.notify_change(conn, notify.NUMBER, msisdn)

    async def callbacks(self, account_id: str) -> list[dict[str, Any]]:
        cb = tables.callbacks
        async with self._engine.connect() as conn:
            rows = (await conn.execute(sa.select(cb).where(cb.c.account_id == account_id))).all()
        return [_row(r._mapping) for r in rows]
