"""Suppression lists in the store: who an account must not message, with where the entry came from.

Every change is announced to the other nodes in its transaction (``notify``), so each node's in-memory copy
(``services.suppressions``) follows at once: one entry's change names the number, an import only the account.
``add`` and ``remove`` also run inside the inbound transaction (a STOP keyword), so the entry commits with the
message that asked for it.
"""

from __future__ import annotations

import builtins
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from smsgate.core import optout
from smsgate.store import notify, tables

IMPORT_CHUNK = 1000  # rows per INSERT of a CSV import
EXPORT_CHUNK = 1000
LOAD_CHUNK = 5000  # numbers per read when a node builds its copy of a list

_S = tables.suppressions


def _entry(row: Any) -> optout.Suppression:
    return optout.Suppression(row.account_id, row.msisdn, row.source, row.reason, row.created_at)


def _insert_new(conn: AsyncConnection, rows: Sequence[dict[str, Any]]) -> Any:
    """INSERT that leaves an existing (account, msisdn) as it is, on either backend."""
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    return conn.execute(insert(_S).values(list(rows)).on_conflict_do_nothing(index_elements=["account_id", "msisdn"]))


def change_key(account_id: str, msisdn: str, *, added: bool) -> str:
    """The key announcing one entry's change: ``<account> +<msisdn>`` or ``<account> -<msisdn>``, which a node
    applies to its copy of the list; a bare ``<account>`` (an import) makes it read the list again."""
    return f"{account_id} {'+' if added else '-'}{msisdn}"


async def add(conn: AsyncConnection, account_id: str, msisdn: str, source: str, reason: str | None, now: float) -> bool:
    """Inside a write transaction: suppress ``msisdn`` unless it already is (True when this added it)."""
    row = {"account_id": account_id, "msisdn": msisdn, "source": source, "reason": reason, "created_at": now}
    added = bool((await _insert_new(conn, [row])).rowcount > 0)
    if added:
        await notify.notify_change(conn, notify.SUPPRESSION, change_key(account_id, msisdn, added=True))
    return added


async def remove(conn: AsyncConnection, account_id: str, msisdn: str) -> bool:
    """Inside a write transaction: lift the suppression (True when there was one)."""
    res = await conn.execute(_S.delete().where(_S.c.account_id == account_id, _S.c.msisdn == msisdn))
    if res.rowcount:
        await notify.notify_change(conn, notify.SUPPRESSION, change_key(account_id, msisdn, added=False))
    return bool(res.rowcount)


class SuppressionStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def numbers(self, account_id: str, *, chunk: int = LOAD_CHUNK) -> AsyncIterator[builtins.list[str]]:
        """Every suppressed number of the account, a chunk at a time in number order (what a node's copy of the
        list is built from: a large list is never one result set in memory)."""
        after = ""
        while True:
            q = sa.select(_S.c.msisdn).where(_S.c.account_id == account_id, _S.c.msisdn > after)
            async with self._engine.connect() as conn:
                found = (await conn.scalars(q.order_by(_S.c.msisdn).limit(chunk))).all()
            if not found:
                return
            yield builtins.list(found)
            after = found[-1]

    async def fingerprint(self, account_id: str) -> tuple[int, float]:
        """How many entries the list has and when the newest was made: unchanged when nothing was added or lifted
        (an added entry is newer than every other), so a node can keep its copy without reading the list again."""
        q = sa.select(sa.func.count(), sa.func.max(_S.c.created_at)).where(_S.c.account_id == account_id)
        async with self._engine.connect() as conn:
            count, newest = (await conn.execute(q)).one()
        return int(count), float(newest or 0.0)

    async def listed(self, account_id: str, msisdns: Sequence[str]) -> set[str]:
        """Which of ``msisdns`` are on the list (the check behind a large list's filter)."""
        found: set[str] = set()
        unique = sorted(set(msisdns))
        async with self._engine.connect() as conn:
            for i in range(0, len(unique), LOAD_CHUNK):
                q = sa.select(_S.c.msisdn).where(
                    _S.c.account_id == account_id, _S.c.msisdn.in_(unique[i : i + LOAD_CHUNK])
                )
                found.update((await conn.scalars(q)).all())
        return found

    async def get(self, account_id: str, msisdn: str) -> optout.Suppression | None:
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(sa.select(_S).where(_S.c.account_id == account_id, _S.c.msisdn == msisdn))
            ).first()
        return _entry(row) if row is not None else None

    async def put(
        self, account_id: str, msisdn: str, source: str, reason: str | None
    ) -> tuple[optout.Suppression, bool]:
        """Suppress ``msisdn`` (an existing entry gets the new reason, and keeps its source and date); the entry and
        whether it is new."""
        async with self._engine.begin() as conn:
            created = await add(conn, account_id, msisdn, source, reason, time.time())
            if not created:
                where = (_S.c.account_id == account_id, _S.c.msisdn == msisdn)
                await conn.execute(_S.update().where(*where).values(reason=reason))
        found = await self.get(account_id, msisdn)
        assert found is not None
        return found, created

    async def delete(self, account_id: str, msisdn: str) -> bool:
        async with self._engine.begin() as conn:
            return await remove(conn, account_id, msisdn)

    async def page(
        self, account_id: str, *, source: str | None, after: str | None, limit: int
    ) -> builtins.list[optout.Suppression]:
        """Entries in number order, after the number ``after`` (cursor paging)."""
        q = sa.select(_S).where(_S.c.account_id == account_id)
        if source is not None:
            q = q.where(_S.c.source == source)
        if after is not None:
            q = q.where(_S.c.msisdn > after)
        async with self._engine.connect() as conn:
            rows = (await conn.execute(q.order_by(_S.c.msisdn).limit(limit))).all()
        return [_entry(r) for r in rows]

    async def every(self, account_id: str) -> AsyncIterator[builtins.list[optout.Suppression]]:
        """The whole list, a chunk at a time (export)."""
        after: str | None = None
        while True:
            chunk = await self.page(account_id, source=None, after=after, limit=EXPORT_CHUNK)
            if not chunk:
                return
            yield chunk
            after = chunk[-1].msisdn

    async def add_many(self, account_id: str, entries: Sequence[tuple[str, str | None]], source: str) -> int:
        """Suppress many numbers (a CSV import) in chunks; those already suppressed stay as they are. How many
        were new."""
        now = time.time()
        added = 0
        for i in range(0, len(entries), IMPORT_CHUNK):
            rows = [
                {"account_id": account_id, "msisdn": m, "source": source, "reason": r, "created_at": now}
                for m, r in entries[i : i + IMPORT_CHUNK]
            ]
            async with self._engine.begin() as conn:
                added += max((await _insert_new(conn, rows)).rowcount, 0)
                await notify.notify_change(conn, notify.SUPPRESSION, account_id)
        return added
