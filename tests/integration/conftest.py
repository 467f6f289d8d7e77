"""The store on both backends, for integration tests that take ``engine`` (or ``backend_url`` / ``pg_url``): a
real SQLite file per test, and a throwaway PostgreSQL database per module, emptied before each test."""

from __future__ import annotations

import pathlib
from collections.abc import AsyncIterator, Iterator

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from smsgate.store import engine as store_engine
from smsgate.store import migrate, tables
from tests import support


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    with support.postgres_database() as url:
        yield url


@pytest.fixture(params=[pytest.param("sqlite"), pytest.param("postgresql", marks=pytest.mark.postgres)])
def backend_url(request: pytest.FixtureRequest, tmp_path: pathlib.Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'store.db'}"
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
async def engine(backend_url: str) -> AsyncIterator[AsyncEngine]:
    eng = store_engine.create(backend_url)
    await migrate.upgrade(eng)
    async with eng.begin() as conn:  # the PostgreSQL database is shared by the module's tests
        for t in reversed(tables.metadata.sorted_tables):
            await conn.execute(t.delete())
    try:
        yield eng
    finally:
        await eng.dispose()
