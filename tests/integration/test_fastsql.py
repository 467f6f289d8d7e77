"""``fastsql.insert_tuples`` on a real SQLite file, over the group committer's connection: SQLite gets many rows per
INSERT statement (the last few by ``executemany``); every row must arrive, in order, whatever the count."""

from __future__ import annotations

import asyncio
import pathlib

import pytest
import sqlalchemy as sa

from smsgate.store import committer, fastsql

_T = sa.Table(
    "t",
    sa.MetaData(),
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("a", sa.String),
    sa.Column("b", sa.Float),
    sa.Column("c", sa.LargeBinary),
)
COLUMNS = ("a", "b", "c")
PER = 999 // len(COLUMNS)  # rows per multi-row statement


@pytest.mark.parametrize("n", [1, PER - 1, PER, PER + 1, 2 * PER + 7, 5000])
def test_every_row_arrives_in_order(tmp_path: pathlib.Path, n: int) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'f.db'}")
    _T.metadata.create_all(engine)
    rows = [(f"r{i}", i / 3, bytes([i % 256]) if i % 5 else None) for i in range(n)]
    with engine.begin() as conn:
        asyncio.run(fastsql.insert_tuples(committer.ImmediateConnection(conn), _T, COLUMNS, rows))
    with engine.connect() as conn:
        stored = [tuple(r) for r in conn.execute(sa.select(_T.c.a, _T.c.b, _T.c.c).order_by(_T.c.id))]
    engine.dispose()
    assert stored == rows
