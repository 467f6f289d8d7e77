"""Apply the Alembic migrations to the configured database (used by ``serve`` and ``smsgate migrate``)."""

from __future__ import annotations

import pathlib
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy.ext.asyncio import AsyncEngine

_HERE = pathlib.Path(__file__).parent


def alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(_HERE / "alembic"))
    return cfg


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    cfg = alembic_config()

    def run(sync_conn: object) -> None:
        cfg.attributes["connection"] = sync_conn
        command.upgrade(cfg, revision)

    async with engine.begin() as conn:
        await conn.run_sync(run)


async def revision(engine: AsyncEngine) -> str | None:
    """The schema revision the database is at; None when it has no smsgate tables yet."""
    from alembic.runtime.migration import MigrationContext

    def current(sync_conn: Any) -> str | None:
        rev: str | None = MigrationContext.configure(sync_conn).get_current_revision()
        return rev

    async with engine.connect() as conn:
        return await conn.run_sync(current)
