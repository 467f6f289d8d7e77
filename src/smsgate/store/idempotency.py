"""The ``idempotency_keys`` rows: claimed inside the accept transaction, read for a replay, swept when old.

``claim`` runs in the group-commit transaction that stores the message, so the key, the message and the debit
commit together or not at all. It inserts with ON CONFLICT DO NOTHING: on PostgreSQL a second node's insert of the
same key waits for the first transaction and then inserts nothing, which is how that node learns it lost.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from smsgate.core import idempotency as core_idempotency
from smsgate.store import fastsql, tables

_T = tables.idempotency_keys


@dataclasses.dataclass(slots=True)
class NewKey:
    """A key to claim with a message: ``respond`` renders the answer from the account's remaining balance (units),
    which only the accept transaction knows."""

    account_id: str
    key: str
    fingerprint: str
    message_id: str  # the message it sent, or the batch (KPN's batch call)
    created_at: float
    respond: Callable[[int], core_idempotency.StoredResponse]


@dataclasses.dataclass(frozen=True, slots=True)
class Kept:
    fingerprint: str
    response: core_idempotency.StoredResponse


async def claim(conn: AsyncConnection, new: NewKey, remaining: int) -> bool:
    """Store the key with its answer; False when the key is already stored (by a committed transaction, or earlier
    in this one). Through ``fastsql``: this runs inside the accept transaction, on the send's path."""
    answer = new.respond(remaining)
    dialect = conn.dialect.name

    def build() -> Any:
        insert: Any = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(_T)
        values: dict[str, Any] = {c: sa.bindparam(c) for c in _COLUMNS}
        return insert.values(**values).on_conflict_do_nothing(index_elements=["account_id", "key"]).returning(_T.c.key)

    row = {"account_id": new.account_id, "key": new.key, "fingerprint": new.fingerprint, "status": answer.status,
           "headers": [list(h) for h in answer.headers], "body": answer.body, "message_id": new.message_id,
           "created_at": new.created_at}  # fmt: skip
    return bool(await fastsql.fetch(conn, "idempotency:claim", build, row))


_COLUMNS = ("account_id", "key", "fingerprint", "status", "headers", "body", "message_id", "created_at")


class IdempotencyStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def get(self, account_id: str, key: str, *, since: float) -> Kept | None:
        """The kept answer for a key, unless it is older than ``since`` (kept no longer, even before the sweep)."""
        q = sa.select(_T.c.fingerprint, _T.c.status, _T.c.headers, _T.c.body).where(
            _T.c.account_id == account_id, _T.c.key == key, _T.c.created_at >= since
        )
        async with self._engine.connect() as conn:
            row = (await conn.execute(q)).first()
        if row is None:
            return None
        headers = tuple((str(k), str(v)) for k, v in row.headers)
        return Kept(row.fingerprint, core_idempotency.StoredResponse(int(row.status), headers, bytes(row.body)))


async def sweep(conn: AsyncConnection, before: float) -> int:
    """Forget keys created before ``before``; how many."""
    result = await conn.execute(_T.delete().where(_T.c.created_at < before))
    return int(result.rowcount or 0)
