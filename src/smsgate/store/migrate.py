"""Apply the Alembic migrations to the configured database (used by ``serve`` and ``smsgate migrate``)."""

from __future__ import annotations

import pathlib

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
