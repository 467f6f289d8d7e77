"""Apply the Alembic migrations to the configured database (used by ``serve`` and ``smsgate migrate``).

Every ``serve`` and every CLI command brings the database up to date first, and nearly always it already is.
Importing Alembic and loading its scripts costs about 0.2 s of CPU per process, so a database already at the
newest revision is recognised with one read of ``alembic_version`` and Alembic is imported only to migrate."""

from __future__ import annotations

import pathlib
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

if TYPE_CHECKING:
    from alembic.config import Config

_HERE = pathlib.Path(__file__).parent
VERSIONS = _HERE / "alembic" / "versions"
_VERSION_TABLE = sa.table("alembic_version", sa.column("version_num", sa.String))


def head() -> str:
    """The newest revision. Migration ``NNNN_name.py`` has revision ``"NNNN"`` and ``down_revision`` the one
    before it (tests/integration/test_migrations.py holds Alembic to that), so the head is the highest number."""
    return max(p.name[:4] for p in VERSIONS.glob("[0-9][0-9][0-9][0-9]_*.py"))


def alembic_config() -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(_HERE / "alembic"))
    return cfg


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    if revision == "head" and await current(engine) == head():
        return
    from alembic import command

    cfg = alembic_config()

    def run(sync_conn: object) -> None:
        cfg.attributes["connection"] = sync_conn
        command.upgrade(cfg, revision)

    async with engine.begin() as conn:
        await conn.run_sync(run)


async def current(engine: AsyncEngine) -> str | None:
    """The schema revision the database is at; None when it has no smsgate tables yet."""

    def read(sync_conn: Any) -> str | None:
        if not sa.inspect(sync_conn).has_table(_VERSION_TABLE.name):
            return None
        rev: str | None = sync_conn.execute(sa.select(_VERSION_TABLE.c.version_num)).scalar_one_or_none()
        return rev

    async with engine.connect() as conn:
        return await conn.run_sync(read)
