"""An account's messages for export, oldest first, a chunk per query (keyset paging on ``created_at, id``), so an
export of years streams in constant memory and never holds a long transaction."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from smsgate.store import tables

CHUNK = 1000
_M = tables.messages
COLUMNS = ("id", "direction", "sender", "recipient", "status", "parts_count", "price", "created_at", "updated_at")


class Exports:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def messages(
        self, account_id: str, since: float | None, until: float | None, *, text: bool
    ) -> AsyncIterator[Sequence[Any]]:
        """Rows of ``COLUMNS`` (and ``text`` last when asked), created in [since, until), a chunk at a time."""
        cols = [_M.c[c] for c in COLUMNS] + ([_M.c.text] if text else [])
        q = sa.select(*cols).where(_M.c.account_id == account_id)
        if since is not None:
            q = q.where(_M.c.created_at >= since)
        if until is not None:
            q = q.where(_M.c.created_at < until)
        after: tuple[float, str] | None = None
        while True:
            page = q
            if after is not None:
                page = q.where(
                    sa.or_(_M.c.created_at > after[0], sa.and_(_M.c.created_at == after[0], _M.c.id > after[1]))
                )
            async with self._engine.connect() as conn:
                rows = (await conn.execute(page.order_by(_M.c.created_at, _M.c.id).limit(CHUNK))).all()
            if not rows:
                return
            yield rows
            if len(rows) < CHUNK:
                return
            after = (rows[-1].created_at, rows[-1].id)
