"""Hot-path SQL without SQLAlchemy's per-statement and per-row overhead.

A Core statement is compiled once per dialect and cached; parameters go to the driver as tuples and rows come
back as plain tuples (or dicts, where a caller wants names). On the accept, submit and receipt paths
SQLAlchemy's compile, cache-key, bind and result processing cost ~0.3-0.8 ms per statement, more than the
database work itself. JSON values are (de)serialised here since the driver's type processing is skipped.

On a ``pgraw.PgConnection`` (PostgreSQL's group commit and lease renewal) the statements go to asyncpg directly,
without SQLAlchemy's greenlet bridge; elsewhere through the connection's ``exec_driver_sql``.

``IN`` lists are compiled for the powers of two up to 512 and padded with NULL (which matches nothing), so a
list of any length reuses one of ten cached statements. Each NULL still costs SQLite ~0.5-1 µs: padding 20 ids to
64 measured 55 µs a select against 40 µs for 32, and one id in a list of 8 three times the cost of a list of 1.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import orjson
import sqlalchemy as sa

from smsgate.store import pgraw

_IN_SIZES = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
_IN_NAMES = {size: [f"in_{i}" for i in range(size)] for size in _IN_SIZES}


@dataclasses.dataclass(frozen=True, slots=True)
class Compiled:
    sql: str
    names: tuple[str, ...]  # positional parameter names, in order
    defaults: Mapping[str, Any]  # values of literals the statement binds itself (``col == "submit"``)
    json_params: frozenset[str]  # parameters bound to JSON columns: serialised here
    columns: tuple[str, ...]  # result column names (selects and RETURNING)
    json_columns: frozenset[str]  # result columns to deserialise


_CACHE: dict[tuple[str, str], Compiled] = {}


def _compile(dialect: Any, key: str, build: Callable[[], Any]) -> Compiled:
    hit = _CACHE.get((dialect.name, key))
    if hit is None:
        stmt = build()
        compiled = stmt.compile(dialect=dialect)
        table = getattr(stmt, "table", None)
        json_params = (
            frozenset(c.key for c in table.columns if isinstance(c.type, sa.JSON)) if table is not None else frozenset()
        )
        selected = list(getattr(stmt, "selected_columns", None) or getattr(stmt, "_returning", None) or ())
        hit = Compiled(
            sql=str(compiled),
            names=tuple(compiled.positiontup or ()),
            defaults=dict(compiled.params),
            json_params=json_params,
            columns=tuple(c.key for c in selected),
            json_columns=frozenset(c.key for c in selected if isinstance(getattr(c, "type", None), sa.JSON)),
        )
        _CACHE[(dialect.name, key)] = hit
    return hit


async def _run(conn: Any, c: Compiled, params: Any) -> Any:
    """``c`` with ``params`` (a tuple, or a list of tuples for many executions) on ``conn``."""
    if isinstance(conn, pgraw.PgConnection):
        return await pgraw.run(conn.pg, c.sql, params, returns_rows=bool(c.columns))
    return await conn.exec_driver_sql(c.sql, params)


def _params(c: Compiled, values: Mapping[str, Any]) -> tuple[Any, ...]:
    out = []
    for n in c.names:
        v = values[n] if n in values else c.defaults[n]
        if n in c.json_params and v is not None:
            v = orjson.dumps(v).decode()
        out.append(v)
    return tuple(out)


async def executemany(conn: Any, key: str, build: Callable[[], Any], rows: Sequence[Mapping[str, Any]]) -> None:
    """Run the statement ``build()`` (compiled once under ``key``) for every parameter mapping in ``rows``."""
    if not rows:
        return
    c = _compile(conn.dialect, key, build)
    await _run(conn, c, [_params(c, r) for r in rows])


async def execute(conn: Any, key: str, build: Callable[[], Any], params: Mapping[str, Any] | None = None) -> Any:
    """Run one statement; returns the driver's cursor/result (``rowcount``, ``fetchall()`` of tuples)."""
    c = _compile(conn.dialect, key, build)
    return await _run(conn, c, _params(c, params or {}))


async def fetch(
    conn: Any, key: str, build: Callable[[], Any], params: Mapping[str, Any] | None = None
) -> list[dict[str, Any]]:
    """Rows of a select (or RETURNING) as dicts, JSON columns decoded."""
    c = _compile(conn.dialect, key, build)
    res = await _run(conn, c, _params(c, params or {}))
    return [_as_dict(c, r) for r in res.fetchall()]


async def fetch_in(
    conn: Any,
    key: str,
    build: Callable[[list[sa.BindParameter[Any]]], Any],
    values: Sequence[Any],
    params: Mapping[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Rows of ``build(binds)``, a select whose ``IN (binds)`` is filled with ``values`` (any number)."""
    out: list[dict[str, Any]] = []
    rest = list(dict.fromkeys(values))
    while rest:
        size = next((s for s in _IN_SIZES if s >= len(rest)), _IN_SIZES[-1])
        chunk, rest = rest[:size], rest[size:]
        names = _IN_NAMES[size]
        c = _compile(conn.dialect, f"{key}:in{size}", lambda: build([sa.bindparam(n) for n in names]))  # noqa: B023
        p = dict(params or {})
        p.update(zip(names, chunk + [None] * (size - len(chunk)), strict=True))
        res = await _run(conn, c, _params(c, p))
        out += [_as_dict(c, r) for r in res.fetchall()]
    return out


def _as_dict(c: Compiled, row: Sequence[Any]) -> dict[str, Any]:
    d = dict(zip(c.columns, row, strict=True))
    for k in c.json_columns:
        v = d[k]
        if isinstance(v, str | bytes):
            d[k] = orjson.loads(v)
    return d


async def update_many(
    conn: Any,
    name: str,
    table: sa.Table,
    values: Callable[[], Mapping[str, Any]],
    rows: Sequence[Mapping[str, Any]],
    *,
    key: str = "id",
) -> None:
    """``UPDATE table SET ... WHERE <key> = :k`` once per row, compiled once under ``name``. ``values()`` maps each
    column to the name of a bind parameter the rows carry, or to a column expression (``attempts + 1``); called
    only to compile. Each row carries ``k`` too. Bind names must not be column names (SQLAlchemy reserves those)."""
    if not rows:
        return

    def build() -> Any:
        sets = {c: sa.bindparam(v) if isinstance(v, str) else v for c, v in values().items()}
        return table.update().where(table.c[key] == sa.bindparam("k")).values(sets)

    await executemany(conn, name, build, rows)


async def insert_tuples(conn: Any, table: sa.Table, columns: tuple[str, ...], rows: Sequence[tuple[Any, ...]]) -> None:
    """Insert rows given as tuples in ``columns`` order, JSON values already serialised: no dict per row and no
    look-up per value (the accept path inserts a message, its parts, its event and its job this way)."""
    if not rows:
        return
    c = _compile(
        conn.dialect,
        f"insert-tuples:{table.name}:{','.join(columns)}",
        lambda: table.insert().values({k: sa.bindparam(k) for k in columns}),
    )
    if c.names != columns:  # the driver takes parameters in the statement's order
        raise RuntimeError(f"{table.name}: compiled parameter order {c.names} is not {columns}")
    if conn.dialect.name != "sqlite" or len(rows) < _rows_per_statement(columns):
        await _run(conn, c, list(rows))
        return
    # SQLite: many rows per INSERT, each statement ``VALUES (?, ...), (?, ...), ...`` bound with one flat tuple; the
    # last few rows by ``executemany``. A step per row in the driver's ``executemany`` cost ~1 µs more per row
    # (a batch message is four rows: docs/performance.md, "Batch accept")
    per = _rows_per_statement(columns)
    multi = _MULTI.get(c.sql)
    if multi is None:
        head, values = c.sql.rsplit(" VALUES ", 1)
        multi = _MULTI[c.sql] = f"{head} VALUES {', '.join([values] * per)}"
    whole = len(rows) - len(rows) % per
    for i in range(0, whole, per):
        await conn.exec_driver_sql(multi, tuple(itertools.chain.from_iterable(rows[i : i + per])))
    if whole < len(rows):
        await conn.exec_driver_sql(c.sql, list(rows[whole:]))


# SQLite binds at most 999 parameters per statement before 3.32 (32,766 since): one multi-row INSERT stays under it
_SQLITE_MAX_PARAMS = 999
_MULTI: dict[str, str] = {}  # single-row INSERT -> the same with ``_rows_per_statement`` rows


def _rows_per_statement(columns: tuple[str, ...]) -> int:
    return _SQLITE_MAX_PARAMS // len(columns)


async def insert_many(conn: Any, table: sa.Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert rows that all have the same keys (the first row's)."""
    if not rows:
        return
    keys = tuple(rows[0])
    await executemany(
        conn,
        f"insert:{table.name}:{','.join(keys)}",
        lambda: table.insert().values({k: sa.bindparam(k) for k in keys}),
        rows,
    )
