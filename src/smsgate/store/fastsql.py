"""Hot-path ``executemany`` without SQLAlchemy's per-statement and per-row overhead.

A Core statement is compiled once per dialect and cached; rows go to the driver as tuples. On the accept and
receipt paths SQLAlchemy's compile, cache-key and bind processing cost ~0.5 ms per statement, more than the
database work itself. JSON values are serialised here since the driver's type processing is skipped.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import orjson
import sqlalchemy as sa

_CACHE: dict[tuple[str, str], tuple[str, tuple[str, ...], frozenset[str]]] = {}


def _json_keys(stmt: Any) -> frozenset[str]:
    table = getattr(stmt, "table", None)
    if table is None:
        return frozenset()
    return frozenset(c.key for c in table.columns if isinstance(c.type, sa.JSON))


def _compiled(dialect: Any, key: str, build: Callable[[], Any]) -> tuple[str, tuple[str, ...], frozenset[str]]:
    hit = _CACHE.get((dialect.name, key))
    if hit is None:
        stmt = build()
        compiled = stmt.compile(dialect=dialect)
        names = tuple(compiled.positiontup or ())
        hit = (str(compiled), names, _json_keys(stmt))
        _CACHE[(dialect.name, key)] = hit
    return hit


async def executemany(conn: Any, key: str, build: Callable[[], Any], rows: Sequence[Mapping[str, Any]]) -> None:
    """Run the statement ``build()`` (compiled once under ``key``) for every row mapping in ``rows``."""
    if not rows:
        return
    sql, names, json_keys = _compiled(conn.dialect, key, build)
    params = [
        tuple((orjson.dumps(r[n]).decode() if r[n] is not None else None) if n in json_keys else r[n] for n in names)
        for r in rows
    ]
    await conn.exec_driver_sql(sql, params)


async def insert_many(conn: Any, table: sa.Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert rows that all have the same keys (the first row's)."""
    if not rows:
        return
    keys = tuple(rows[0])
    await executemany(
        conn, f"insert:{table.name}:{','.join(keys)}", lambda: table.insert().values({k: sa.bindparam(k) for k in keys}), rows
    )
