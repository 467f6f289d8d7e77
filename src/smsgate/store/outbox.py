"""The outbox: claiming due jobs as leases, node heartbeats, and taking back the jobs of dead nodes.

A claim is ``claimed_by`` + ``claimed_until``. A job is due when its ``run_at`` has passed and it is not
claimed, or its lease ran out, or its node stopped heart-beating. PostgreSQL claims with
``FOR UPDATE SKIP LOCKED`` so several nodes never take the same job; SQLite has one writer anyway.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Collection, Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from smsgate.store import fastsql, notify, pgraw, tables

# a new job: (ref, account_id, claimed_by, claimed_until). ``ref`` is the message (submit) or the delivery (webhook);
# the account is whose it is (webhook jobs are claimed round-robin by account); a node that holds it from the start
# (the dispatcher's fast path) is named with its lease. A plain tuple: the accept path makes one per message.
NewJob = tuple[str, str | None, str | None, float | None]
# a submit job due later or in another lane than normal: (ref, run_at, lane); lane 0 high, 1 normal, 2 bulk
Timing = tuple[str, float, int]
NORMAL_LANE = 1


_JOB_COLUMNS = ("kind", "ref", "run_at", "claimed_by", "claimed_until", "attempts", "created_at", "account_id",
                "priority")  # fmt: skip


async def add(conn: Any, kind: str, jobs: Sequence[NewJob], now: float, *, timing: Sequence[Timing] = ()) -> None:
    """Inside a write transaction: new jobs of ``kind``, due now unless ``timing`` says otherwise (a scheduled
    message is due at its send time); the one place outbox rows are created. Submit jobs no node holds wake the
    other nodes' dispatchers (PostgreSQL ``NOTIFY``, delivered on commit): they then wait for the earliest."""
    later = {ref: (at, lane) for ref, at, lane in timing}
    normal = (now, NORMAL_LANE)
    rows = []
    for ref, account_id, claimed_by, until in jobs:
        run_at, lane = later.get(ref, normal)
        rows.append((kind, ref, run_at, claimed_by, until, 0, now, account_id, lane))
    await fastsql.insert_tuples(conn, tables.outbox, _JOB_COLUMNS, rows)
    if kind == "submit" and any(j[2] is None for j in jobs):
        await notify.notify_outbox(conn)


class Outbox:
    def __init__(self, engine: AsyncEngine, *, node_id: str, lease: float, dead_after: float) -> None:
        self._engine = engine
        self.node_id = node_id
        self.lease = lease
        self.dead_after = dead_after
        # PostgreSQL: the lease renewals before each dispatch batch run on one connection kept for them, each a
        # single statement in its own transaction (one round trip; a pool checkout with its ping, BEGIN and
        # COMMIT made it five, ~10 % of a node's GIL time under load)
        self._renewer: pgraw.PgConnection | None = None
        self._kept = engine.dialect.name == "postgresql"
        self._renewing = asyncio.Lock()

    async def heartbeat(self, info: dict[str, Any] | None = None) -> None:
        now = time.time()
        n = tables.nodes
        async with self._engine.begin() as conn:
            res = await conn.execute(n.update().where(n.c.id == self.node_id).values(heartbeat_at=now))
            if res.rowcount == 0:
                await conn.execute(n.insert().values(id=self.node_id, started_at=now, heartbeat_at=now, info=info))
            # forget nodes that have been silent for a day
            await conn.execute(n.delete().where(n.c.heartbeat_at < now - 86400))

    async def leave(self) -> None:
        """Give back this node's claims on a clean shutdown, so others need not wait for the lease (and the
        connection kept for renewing them)."""
        async with self._renewing:
            if self._renewer is not None:
                await self._renewer.close()
                self._renewer = None
        async with self._engine.begin() as conn:
            res = await conn.execute(self._give_back())
            await conn.execute(tables.nodes.delete().where(tables.nodes.c.id == self.node_id))
            if res.rowcount:  # the other nodes take them now, not at their next poll
                await notify.notify_outbox(conn)

    def _due(self, kind: str, now: float) -> sa.ColumnElement[bool]:
        o, n = tables.outbox, tables.nodes
        alive = sa.select(n.c.id).where(n.c.heartbeat_at >= now - self.dead_after, n.c.id != self.node_id)
        return sa.and_(
            o.c.kind == kind,
            o.c.run_at <= now,
            sa.or_(
                o.c.claimed_by.is_(None),
                o.c.claimed_until < now,
                o.c.claimed_by.not_in(alive) & (o.c.claimed_by != self.node_id),
            ),
        )

    async def claim(self, kind: str, limit: int) -> list[tuple[str, int]]:
        """Claim up to ``limit`` due jobs of ``kind``, the most urgent lane first, then oldest first; returns
        (ref, attempts)."""
        o = tables.outbox
        now = time.time()
        pick = sa.select(o.c.id).where(self._due(kind, now)).order_by(o.c.priority, o.c.run_at).limit(limit)
        return await self._take(pick, now, windowed=False)

    async def claim_fair(
        self, kind: str, limit: int, *, per_account: int, busy: Mapping[str, int]
    ) -> list[tuple[str, int]]:
        """Claim up to ``limit`` due jobs round-robin across accounts: each account's oldest job first, then each
        one's second..., and no account beyond ``per_account`` jobs held here (``busy``: what each holds now). So
        one account's backlog, however large or slow, never fills the slots another account's jobs need."""
        o = tables.outbox
        now = time.time()
        account = sa.func.coalesce(o.c.account_id, "")
        rank = sa.func.row_number().over(partition_by=account, order_by=(o.c.run_at, o.c.id))
        ranked = (
            sa.select(o.c.id, o.c.run_at, account.label("account"), rank.label("rank"))
            .where(self._due(kind, now))
            .subquery()
        )
        room: Any = per_account
        if busy:
            room = sa.case({a: per_account - n for a, n in busy.items()}, value=ranked.c.account, else_=per_account)
        pick = sa.select(ranked.c.id).where(ranked.c.rank <= room).order_by(ranked.c.rank, ranked.c.run_at).limit(limit)
        return await self._take(pick, now, windowed=True)

    async def _take(self, pick: sa.Select[Any], now: float, *, windowed: bool) -> list[tuple[str, int]]:
        """Lease the jobs ``pick`` selects (PostgreSQL: skipping rows another node is claiming right now; a
        window function cannot be locked, so a windowed pick is locked through ``id IN (pick)``)."""
        o = tables.outbox
        async with self._engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                if windowed:
                    pick = sa.select(o.c.id).where(o.c.id.in_(pick.scalar_subquery()))
                pick = pick.with_for_update(skip_locked=True)
            ids = [r[0] for r in (await conn.execute(pick)).all()]
            if not ids:
                return []
            rows = (
                await conn.execute(
                    o.update()
                    .where(o.c.id.in_(ids))
                    .values(claimed_by=self.node_id, claimed_until=now + self.lease)
                    .returning(o.c.ref, o.c.attempts)
                )
            ).all()
        return [(r[0], r[1]) for r in rows]

    async def extend(self, kind: str, refs: list[str]) -> set[str]:
        """Renew the lease on jobs this node is still working on; returns the refs it still holds (another
        node may have taken a job over while this one was too slow to heart-beat)."""
        if not refs:
            return set()
        o = tables.outbox

        def build(binds: list[sa.BindParameter[Any]]) -> Any:
            return (
                o.update()
                .where(o.c.kind == sa.bindparam("k_kind"), o.c.ref.in_(binds), o.c.claimed_by == sa.bindparam("k_node"))
                .values(claimed_until=sa.bindparam("k_until"))
                .returning(o.c.ref)
            )

        params = {"k_kind": kind, "k_node": self.node_id, "k_until": time.time() + self.lease}
        async with self._renewal() as conn:
            return {r["ref"] for r in await fastsql.fetch_in(conn, "outbox:extend", build, refs, params)}

    async def release_unheld(self, kind: str, keep: Collection[str]) -> int:
        """Give back this node's claims of ``kind`` on jobs other than ``keep`` (those it is working on); how many.

        A claim whose COMMIT went through but whose answer was lost (the connection cut at that moment) leaves
        jobs leased to this node, which is alive, so no claim takes them (``_due``) until the lease ends. A
        caller whose claim failed calls this before claiming again, and they come back at once."""
        o = tables.outbox
        cond = [o.c.kind == kind, o.c.ref.not_in(sorted(keep))] if keep else [o.c.kind == kind]
        async with self._engine.begin() as conn:
            res = await conn.execute(self._give_back(*cond))
        return int(res.rowcount or 0)

    def _give_back(self, *where: sa.ColumnElement[bool]) -> sa.Update:
        """This node's claims (of the jobs ``where`` picks) handed back: due again for any node at once."""
        o = tables.outbox
        return o.update().where(o.c.claimed_by == self.node_id, *where).values(claimed_by=None, claimed_until=None)

    @contextlib.asynccontextmanager
    async def _renewal(self) -> AsyncIterator[Any]:
        """The connection lease renewals run on: on PostgreSQL the kept one (each statement commits by itself),
        replaced once the server dropped it; on SQLite a transaction of the pool's."""
        if not self._kept:
            async with self._engine.begin() as conn:
                yield conn
            return
        async with self._renewing:
            if self._renewer is None:
                self._renewer = await pgraw.PgConnection.open(self._engine)
            try:
                yield self._renewer
            finally:
                if self._renewer.broken:
                    await self._renewer.close()
                    self._renewer = None

    async def next_due(self, kind: str) -> float | None:
        """When the next job of ``kind`` may be claimed: its ``run_at``, or the end of its lease when a node holds
        it (a node that dies is noticed by the poll, not here); None when there is none."""
        o = tables.outbox
        free_at = sa.case(
            (o.c.claimed_by.is_(None), o.c.run_at),
            (o.c.claimed_until > o.c.run_at, o.c.claimed_until),
            else_=o.c.run_at,
        )
        async with self._engine.connect() as conn:
            v = await conn.scalar(sa.select(sa.func.min(free_at)).where(o.c.kind == kind))
        return float(v) if v is not None else None


async def touch(conn: Any, node_id: str) -> None:
    """Inside a group-commit transaction: this node's heartbeat (the readiness probe's durable write)."""
    n = tables.nodes
    await conn.execute(n.update().where(n.c.id == node_id).values(heartbeat_at=time.time()))
