"""The Alembic migrations build exactly ``store.tables``, on SQLite and PostgreSQL, and keep existing data sane."""

from __future__ import annotations

import pathlib
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from smsgate.store import engine as store_engine
from smsgate.store import migrate, tables
from tests import support


@pytest.fixture(params=[pytest.param("sqlite"), pytest.param("postgresql", marks=pytest.mark.postgres)])
def url(request: pytest.FixtureRequest, tmp_path: pathlib.Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'm.db'}"
        return
    with support.postgres_database() as pg:
        yield pg


async def test_head_matches_the_tables(url: str) -> None:
    engine = store_engine.create(url)
    try:
        await migrate.upgrade(engine)

        def diff(conn: Any) -> list[Any]:
            return list(compare_metadata(MigrationContext.configure(conn), tables.metadata))

        async with engine.connect() as conn:
            assert await conn.run_sync(diff) == []
    finally:
        await engine.dispose()


def test_each_migration_is_numbered_after_its_file_so_the_head_is_the_highest_number() -> None:
    """``migrate.head`` (the fast check that skips Alembic) relies on this naming."""
    scripts = ScriptDirectory.from_config(migrate.alembic_config())
    for script in scripts.walk_revisions():
        assert script.path is not None
        number = pathlib.Path(script.path).name[:4]
        assert script.revision == number
        assert script.down_revision == (None if number == "0001" else f"{int(number) - 1:04d}")
    assert scripts.get_current_head() == migrate.head()


async def test_a_database_at_the_head_is_seen_without_alembic_and_an_empty_one_is_migrated(url: str) -> None:
    engine = store_engine.create(url)
    try:
        assert await migrate.current(engine) is None
        await migrate.upgrade(engine, "0001")
        assert await migrate.current(engine) == "0001"
        await migrate.upgrade(engine)
        assert await migrate.current(engine) == migrate.head()
        await migrate.upgrade(engine)
        assert await migrate.current(engine) == migrate.head()
    finally:
        await engine.dispose()


async def test_0002_keeps_the_first_registration_of_a_number(url: str) -> None:
    engine = store_engine.create(url)
    cb = tables.callbacks
    try:
        await migrate.upgrade(engine, "0001")
        async with engine.begin() as conn:
            await conn.execute(
                cb.insert(),
                [
                    {"account_id": "acc_b", "msisdn": "31600000001", "callback_url": "http://b", "created_at": 2.0},
                    {"account_id": "acc_a", "msisdn": "31600000001", "callback_url": "http://a", "created_at": 1.0},
                    {"account_id": "acc_b", "msisdn": "31600000002", "callback_url": "http://b2", "created_at": 3.0},
                ],
            )
        await migrate.upgrade(engine)
        async with engine.connect() as conn:
            rows = (await conn.execute(sa.select(cb.c.msisdn, cb.c.account_id).order_by(cb.c.msisdn))).all()
        assert [tuple(r) for r in rows] == [("31600000001", "acc_a"), ("31600000002", "acc_b")]
        async with engine.begin() as conn:
            with pytest.raises(sa.exc.IntegrityError):
                await conn.execute(
                    cb.insert().values(
                        account_id="acc_c", msisdn="31600000002", callback_url="http://c", created_at=4.0
                    )
                )
    finally:
        await engine.dispose()
