"""Which connectors the operator paused: one row per paused connector, read by every node."""

from __future__ import annotations

import time

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from smsgate.store import tables


class PauseStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def paused(self) -> dict[str, str | None]:
        """Paused connector names and the reason given."""
        t = tables.connector_pauses
        async with self._engine.connect() as conn:
            rows = (await conn.execute(sa.select(t.c.name, t.c.reason))).all()
        return {r.name: r.reason for r in rows}

    async def pause(self, name: str, reason: str | None) -> None:
        t = tables.connector_pauses
        async with self._engine.begin() as conn:
            await conn.execute(t.delete().where(t.c.name == name))
            await conn.execute(t.insert().values(name=name, reason=reason, paused_at=time.time()))

    async def resume(self, name: str) -> None:
        t = tables.connector_pauses
        async with self._engine.begin() as conn:
            await conn.execute(t.delete().where(t.c.name == name))
