"""Writing and reading messages: the accept batch, submit outcomes, receipts, and the read side.

Every write here runs inside a group-commit transaction (``store.committer``) and writes the message change,
its event and any follow-up outbox job together, so a crash can never leave one without the other.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from smsgate import errors, logs
from smsgate.connectors import base as connector_base
from smsgate.core import message as core_message
from smsgate.store import accounts as store_accounts
from smsgate.store import fastsql, notify, tables

log = logging.getLogger(__name__)

Status = core_message.Status

RECEIPT_STATUS = {
    connector_base.ReceiptState.DELIVERED: Status.DELIVERED,
    connector_base.ReceiptState.EXPIRED: Status.EXPIRED,
    connector_base.ReceiptState.DELETED: Status.FAILED,
    connector_base.ReceiptState.UNDELIVERABLE: Status.FAILED,
    connector_base.ReceiptState.UNKNOWN: Status.FAILED,
    connector_base.ReceiptState.REJECTED: Status.REJECTED,
    connector_base.ReceiptState.ENROUTE: Status.SUBMITTED,
    connector_base.ReceiptState.ACCEPTED: Status.SUBMITTED,
}


# After this process held a receipt, submit results look for waiting receipts for this long (seconds); later
# ones, and other nodes' on SQLite, are applied by the periodic sweep.
HELD_RECENTLY = 600.0


@dataclasses.dataclass(slots=True)
class NewMessage:
    """Rows for one accepted message; ``charge`` is debited from the account in the same transaction."""

    message: dict[str, Any]
    parts: list[dict[str, Any]]
    charge: int
    event_data: dict[str, Any] | None = None
    claim: bool = True  # claimed by this node in the accept transaction (the dispatcher's fast path)


@dataclasses.dataclass(slots=True)
class PartUpdate:
    part_id: str
    status: Status
    connector: str
    network_id: str | None = None
    error_code: int | None = None
    error_text: str | None = None
    note: str | None = None  # for the part's event only ("final: no receipt from upstream")


@dataclasses.dataclass(slots=True)
class JobResult:
    """What one dispatch round did to one message."""

    message_id: str
    account_id: str
    updates: list[PartUpdate]
    message_status: Status | None  # new message status, if it changed
    done: bool  # every part has left "accepted": remove the outbox job
    retry_at: float | None = None  # otherwise: when to try the remaining parts again
    retry_reason: str | None = None
    connector: str | None = None  # the connector of this round, for the retry event
    keep_claim: bool = False  # not done, still held in memory (offered to another connector): leave the job as is
    message_connector: str | None = None  # the message went out through another connector than recorded at accept
    events: list[tuple[str, dict[str, Any]]] = dataclasses.field(default_factory=list)  # (type, data) per message


class Hooks:
    """Called inside the transaction that records an event, so follow-up jobs (webhooks) commit with it."""

    async def events_recorded(self, conn: AsyncConnection, events: Sequence[Mapping[str, Any]]) -> None:
        return None


class MessageWrites:
    """Group-commit handlers (registered with ``GroupCommitter``).

    Every statement here goes through ``fastsql`` (compiled once, tuples to the driver): these run for every
    message two or three times, and SQLAlchemy's per-statement overhead would cost more than SQLite's work.
    """

    def __init__(self, *, node_id: str, lease: float, hooks: Hooks | None = None) -> None:
        self.node_id = node_id
        self.lease = lease
        self.hooks = hooks or Hooks()
        # when this process last held a receipt that overtook its submit_sm_resp: until then, recording submit
        # results need not look for waiting receipts (another node's are found by the periodic sweep)
        self._held_at = -1e18

    async def accept(self, conn: AsyncConnection, items: Sequence[NewMessage]) -> list[Any]:
        now = time.time()
        account_ids = sorted({i.message["account_id"] for i in items})
        balance = await store_accounts.balances(conn, account_ids, lock=True)
        debits: dict[str, int] = {}
        results: list[Any] = []
        ok: list[NewMessage] = []
        for item in items:
            acc = item.message["account_id"]
            left = balance.get(acc, 0) - debits.get(acc, 0)
            if item.charge > left:
                results.append(errors.InsufficientBalance())
                continue
            debits[acc] = debits.get(acc, 0) + item.charge
            results.append(left - item.charge)
            ok.append(item)
        if not ok:
            return results
        await fastsql.insert_many(conn, tables.messages, [i.message for i in ok])
        await fastsql.insert_many(conn, tables.parts, [p for i in ok for p in i.parts])
        events = [_event(i.message["id"], None, i.message["account_id"], "accepted", now, i.event_data) for i in ok]
        await fastsql.insert_many(conn, tables.events, events)
        if log.isEnabledFor(logging.DEBUG):
            for i in ok:
                m = i.message
                log.debug("message %s accepted: to %s, %d part(s), %s dialect", m["id"],
                          logs.mask_number(str(m.get("recipient", ""))), len(i.parts), m.get("dialect"))  # fmt: skip
        lease_until = now + self.lease
        await fastsql.insert_many(
            conn,
            tables.outbox,
            [
                {
                    "kind": "submit",
                    "ref": i.message["id"],
                    "run_at": now,
                    "claimed_by": self.node_id if i.claim else None,
                    "claimed_until": lease_until if i.claim else None,
                    "attempts": 0,
                    "created_at": now,
                }
                for i in ok
            ],
        )
        if any(not i.claim for i in ok):  # jobs no node holds yet: wake the other nodes (PostgreSQL)
            await notify.notify_outbox(conn)
        a = tables.accounts
        await fastsql.executemany(
            conn,
            "debit",
            lambda: (
                a.update().where(a.c.id == sa.bindparam("acc")).values(balance=a.c.balance - sa.bindparam("amount"))
            ),
            [{"acc": k, "amount": v} for k, v in debits.items() if v],
        )
        await self.hooks.events_recorded(conn, events)
        return results

    async def job_results(self, conn: AsyncConnection, items: Sequence[JobResult]) -> list[None]:
        now = time.time()
        p, o = tables.parts, tables.outbox
        updates = [u for r in items for u in r.updates]
        final_parts = [u for u in updates if u.status is not Status.ACCEPTED]
        await fastsql.executemany(
            conn,
            "parts:submitted",
            lambda: (
                p.update()
                .where(p.c.id == sa.bindparam("pid"))
                .values(
                    status=sa.bindparam("st"),
                    connector=sa.bindparam("conn"),
                    network_id=sa.bindparam("nid"),
                    error_code=sa.bindparam("ec"),
                    error_text=sa.bindparam("et"),
                    submitted_at=sa.bindparam("now"),
                    attempts=p.c.attempts + 1,
                )
            ),
            [
                {
                    "pid": u.part_id,
                    "st": u.status.value,
                    "conn": u.connector,
                    "nid": u.network_id,
                    "ec": u.error_code,
                    "et": u.error_text,
                    "now": now,
                }
                for u in final_parts
            ],
        )
        await fastsql.executemany(
            conn,
            "parts:retried",
            lambda: p.update().where(p.c.id == sa.bindparam("pid")).values(attempts=p.c.attempts + 1),
            [{"pid": u.part_id} for u in updates if u.status is Status.ACCEPTED],
        )
        events: list[dict[str, Any]] = []
        for r in items:
            for u in r.updates:
                if u.status is Status.ACCEPTED:
                    continue
                data: dict[str, Any] = {"connector": u.connector, "network_id": u.network_id}
                if u.error_text:
                    data.update(error_code=u.error_code, error_text=u.error_text)
                if u.note:
                    data["note"] = u.note
                events.append(_event(r.message_id, u.part_id, r.account_id, u.status.value, now, data))
            for type_, extra in r.events:
                events.append(_event(r.message_id, None, r.account_id, type_, now, extra))
            if r.retry_at is not None:
                retry = {"reason": r.retry_reason, "at": r.retry_at, "connector": r.connector}
                events.append(_event(r.message_id, None, r.account_id, "retry", now, retry))
        await self._set_message_status(conn, [(r.message_id, r.account_id, r.message_status) for r in items], now)
        m = tables.messages
        await fastsql.executemany(
            conn,
            "messages:connector",
            lambda: m.update().where(m.c.id == sa.bindparam("mid")).values(connector=sa.bindparam("conn")),
            [{"mid": r.message_id, "conn": r.message_connector} for r in items if r.message_connector],
        )
        await fastsql.insert_many(conn, tables.events, events)
        _log_changes(events)
        await fastsql.executemany(
            conn,
            "outbox:done",
            lambda: o.delete().where(o.c.kind == "submit", o.c.ref == sa.bindparam("ref")),
            [{"ref": r.message_id} for r in items if r.done],
        )
        later = [r for r in items if not r.done and not r.keep_claim]
        if later:
            await fastsql.executemany(
                conn,
                "outbox:later",
                lambda: (
                    o.update()
                    .where(o.c.kind == "submit", o.c.ref == sa.bindparam("b_ref"))
                    .values(
                        run_at=sa.bindparam("b_run_at"),  # not a column's name: SQLAlchemy reserves those
                        claimed_by=None,
                        claimed_until=None,
                        attempts=o.c.attempts + 1,
                    )
                ),
                [{"b_ref": r.message_id, "b_run_at": r.retry_at or now} for r in later],
            )
            await notify.notify_outbox(conn)
        await self.hooks.events_recorded(conn, events)
        # receipts that overtook their submit_sm_resp are waiting for these network ids
        if conn.dialect.name == "postgresql" or time.monotonic() - self._held_at < HELD_RECENTLY:
            by_conn: dict[str, list[str]] = {}
            for u in final_parts:
                if u.network_id:
                    by_conn.setdefault(u.connector, []).append(u.network_id)
            if by_conn:
                await self.apply_pending(conn, by_conn)
        return [None] * len(items)

    async def receipts(self, conn: AsyncConnection, items: Sequence[connector_base.Receipt]) -> list[None]:
        await self._apply_receipts(conn, items, hold_unmatched=True)
        return [None] * len(items)

    async def apply_pending(
        self, conn: AsyncConnection, by_conn: Mapping[str, Sequence[str]] | None = None, *, max_age: float = 86400.0
    ) -> int:
        """Apply held receipts whose part is now known (all of them when ``by_conn`` is None).

        The full sweep also drops receipts held longer than ``max_age``: their part never appeared (another
        system's ids), and keeping them would make every sweep re-read them.
        """
        pr = tables.pending_receipts
        cols = (pr.c.id, pr.c.connector, pr.c.network_id, pr.c.state, pr.c.error_code, pr.c.raw)
        if by_conn is None:
            await fastsql.execute(
                conn,
                "pending:expire",
                lambda: pr.delete().where(pr.c.received_at < sa.bindparam("before")),
                {"before": time.time() - max_age},
            )
            # only those whose part exists by now: receipts for ids no part carries (another system's, or the
            # first copy of a message sent again after a crash) would otherwise be re-read on every sweep
            p = tables.parts
            known = sa.exists().where(p.c.connector == pr.c.connector, p.c.network_id == pr.c.network_id)
            rows = await fastsql.fetch(
                conn, "pending:known", lambda: sa.select(*cols).where(known).order_by(pr.c.id).limit(5000)
            )
        else:
            rows = []
            for c, ids in by_conn.items():
                rows += await fastsql.fetch_in(
                    conn,
                    "pending:by-id",
                    lambda binds: sa.select(*cols).where(
                        pr.c.connector == sa.bindparam("c"), pr.c.network_id.in_(binds)
                    ),
                    ids,
                    {"c": c},
                )
            rows.sort(key=lambda r: r["id"])
        if not rows:
            return 0
        receipts = [
            connector_base.Receipt(
                connector=r["connector"],
                network_id=r["network_id"],
                state=connector_base.ReceiptState(r["state"]),
                error_code=r["error_code"],
                raw=r["raw"] or "",
            )
            for r in rows
        ]
        applied = await self._apply_receipts(conn, receipts, hold_unmatched=False)
        ids = [r["id"] for r, ok in zip(rows, applied, strict=True) if ok]
        await fastsql.executemany(
            conn,
            "pending:applied",
            lambda: pr.delete().where(pr.c.id == sa.bindparam("rid")),
            [{"rid": i} for i in ids],
        )
        return len(ids)

    async def _apply_receipts(
        self, conn: AsyncConnection, receipts: Sequence[connector_base.Receipt], *, hold_unmatched: bool
    ) -> list[bool]:
        now = time.time()
        p, m = tables.parts, tables.messages
        # an upstream that gives one id per message (KPN, Kaarai, a generic HTTP API) puts it on every part, so a
        # receipt for that id applies to all of them
        found: dict[tuple[str, str], list[dict[str, Any]]] = {}
        by_conn: dict[str, list[str]] = {}
        for r in receipts:
            by_conn.setdefault(r.connector, []).append(r.network_id)
        for c, ids in by_conn.items():
            for row in await fastsql.fetch_in(
                conn,
                "parts:by-network-id",
                lambda binds: sa.select(p.c.id, p.c.message_id, p.c.status, p.c.network_id).where(
                    p.c.connector == sa.bindparam("c"), p.c.network_id.in_(binds)
                ),
                ids,
                {"c": c},
            ):
                found.setdefault((c, row["network_id"]), []).append(row)
        matched: list[bool] = []
        held: list[dict[str, Any]] = []
        part_status: dict[str, Status] = {}
        part_message: dict[str, str] = {}
        events_src: list[tuple[str, str, Status, connector_base.Receipt]] = []
        for r in receipts:
            hits = found.get((r.connector, r.network_id))
            if not hits:
                matched.append(False)
                if hold_unmatched:
                    held.append(
                        {
                            "connector": r.connector,
                            "network_id": r.network_id,
                            "state": r.state.value,
                            "error_code": r.error_code,
                            "raw": r.raw[:1000],
                            "received_at": now,
                        }
                    )
                continue
            matched.append(True)
            new = RECEIPT_STATUS[r.state]
            for hit in hits:
                pid = hit["id"]
                current = part_status.get(pid, Status(hit["status"]))
                if core_message.can_move(current, new):
                    part_status[pid] = new
                    part_message[pid] = hit["message_id"]
                    events_src.append((hit["message_id"], pid, new, r))
        if held:
            self._held_at = time.monotonic()
            await fastsql.insert_many(conn, tables.pending_receipts, held)
        if not part_status:
            return matched
        # the error code of the receipt that set each part's final status (not of an earlier intermediate one)
        last_code = {pid: r.error_code for _mid, pid, _st, r in events_src}
        await fastsql.executemany(
            conn,
            "parts:receipt",
            lambda: (
                p.update()
                .where(p.c.id == sa.bindparam("pid"))
                .values(status=sa.bindparam("st"), done_at=sa.bindparam("now"), error_code=sa.bindparam("ec"))
            ),
            [{"pid": pid, "st": st.value, "ec": last_code[pid], "now": now} for pid, st in part_status.items()],
        )
        message_ids = sorted(set(part_message.values()))
        msg = {
            r["id"]: r
            for r in await fastsql.fetch_in(
                conn,
                "messages:status-of",
                lambda binds: sa.select(m.c.id, m.c.account_id, m.c.status, m.c.parts_count).where(m.c.id.in_(binds)),
                message_ids,
            )
        }
        siblings: dict[str, list[Status]] = {}
        multi = [mid for mid, r in msg.items() if r["parts_count"] > 1]
        for prow in await fastsql.fetch_in(
            conn,
            "parts:of-messages",
            lambda binds: sa.select(p.c.message_id, p.c.id, p.c.status).where(p.c.message_id.in_(binds)),
            multi,
        ):
            siblings.setdefault(prow["message_id"], []).append(part_status.get(prow["id"], Status(prow["status"])))
        changes = []
        for mid in message_ids:
            mrow = msg.get(mid)
            if mrow is None:
                continue
            statuses = siblings.get(mid) or [s for pid, s in part_status.items() if part_message[pid] == mid]
            new_status = core_message.derive(statuses)
            if new_status.value != mrow["status"] and core_message.can_move(Status(mrow["status"]), new_status):
                changes.append((mid, mrow["account_id"], new_status))
        await self._set_message_status(conn, changes, now)
        events = []
        for mid, pid, st, r in events_src:
            mrow = msg.get(mid)
            if mrow is None:
                continue
            data: dict[str, Any] = {"network_id": r.network_id, "error_code": r.error_code}
            if r.raw:
                data["receipt"] = r.raw[:500]
            events.append(_event(mid, pid, mrow["account_id"], st.value, now, data))
        for mid, acc, st in changes:
            if msg[mid]["parts_count"] > 1:
                events.append(_event(mid, None, acc, st.value, now, None))
        if events:
            await fastsql.insert_many(conn, tables.events, events)
            _log_changes(events)
            await self.hooks.events_recorded(conn, events)
        return matched

    async def _set_message_status(
        self, conn: AsyncConnection, changes: Sequence[tuple[str, str, Status | None]], now: float
    ) -> None:
        m = tables.messages
        await fastsql.executemany(
            conn,
            "messages:status",
            lambda: (
                m.update()
                .where(m.c.id == sa.bindparam("mid"))
                .values(status=sa.bindparam("st"), updated_at=sa.bindparam("now"))
            ),
            [{"mid": mid, "st": st.value, "now": now} for mid, _acc, st in changes if st is not None],
        )


def _log_changes(events: Sequence[Mapping[str, Any]]) -> None:
    """One DEBUG line per recorded state change (never the text; numbers are not in events)."""
    if not log.isEnabledFor(logging.DEBUG):
        return
    for e in events:
        data = e["data"] or {}
        detail = ", ".join(f"{k}={data[k]}" for k in _LOGGED_DATA if data.get(k) is not None)
        part = f" part {e['part_id']}" if e["part_id"] else ""
        log.debug("message %s%s %s%s", e["message_id"], part, e["type"], f" ({detail})" if detail else "")


_LOGGED_DATA = ("connector", "network_id", "error_code", "error_text", "reason")


def as_dict(row: Any) -> dict[str, Any]:
    """A row as a plain dict with plain ``str`` keys (SQLAlchemy may hand back ``quoted_name`` keys)."""
    return {str(k): v for k, v in row._mapping.items()}


def _event(
    message_id: str, part_id: str | None, account_id: str, type_: str, at: float, data: dict[str, Any] | None
) -> dict[str, Any]:
    return {
        "message_id": message_id,
        "part_id": part_id,
        "account_id": account_id,
        "type": type_,
        "at": at,
        "data": data,
    }


class MessageReads:
    """The read side: one account sees only its own messages (``account_id`` None = operator)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def get(self, account_id: str | None, message_id: str) -> dict[str, Any] | None:
        m, p, e = tables.messages, tables.parts, tables.events
        q = sa.select(m).where(m.c.id == message_id)
        if account_id is not None:
            q = q.where(m.c.account_id == account_id)
        async with self._engine.connect() as conn:
            row = (await conn.execute(q)).first()
            if row is None:
                return None
            part_rows = (
                await conn.execute(
                    sa.select(
                        p.c.id,
                        p.c.idx,
                        p.c.total,
                        p.c.status,
                        p.c.connector,
                        p.c.network_id,
                        p.c.text,
                        p.c.data_coding,
                        p.c.price,
                        p.c.error_code,
                        p.c.error_text,
                        p.c.submitted_at,
                        p.c.done_at,
                    )
                    .where(p.c.message_id == message_id)
                    .order_by(p.c.idx)
                )
            ).all()
            event_rows = (
                await conn.execute(
                    sa.select(e.c.type, e.c.part_id, e.c.at, e.c.data)
                    .where(e.c.message_id == message_id)
                    .order_by(e.c.id)
                )
            ).all()
        out = as_dict(row)
        out["parts"] = [as_dict(r) for r in part_rows]
        out["events"] = [as_dict(r) for r in event_rows]
        return out

    async def list(
        self,
        account_id: str | None,
        *,
        direction: str | None = None,
        status: str | None = None,
        number: str | None = None,
        sender: str | None = None,
        dialect: str | None = None,
        since: float | None = None,
        until: float | None = None,
        text: str | None = None,
        before: tuple[float, str] | None = None,
        limit: int = 50,
    ) -> list[dict[str, Any]]:
        m = tables.messages
        q = sa.select(m)
        if account_id is not None:
            q = q.where(m.c.account_id == account_id)
        if direction:
            q = q.where(m.c.direction == direction)
        if status:
            q = q.where(m.c.status == status)
        if number:
            q = q.where(sa.or_(m.c.recipient == number, m.c.sender == number))
        if sender:
            q = q.where(m.c.sender == sender)
        if dialect:
            q = q.where(m.c.dialect == dialect)
        if since is not None:
            q = q.where(m.c.created_at >= since)
        if until is not None:
            q = q.where(m.c.created_at < until)
        if text:
            q = q.where(m.c.text.contains(text, autoescape=True))
        if before is not None:
            t, mid = before
            q = q.where(sa.or_(m.c.created_at < t, sa.and_(m.c.created_at == t, m.c.id < mid)))
        q = q.order_by(m.c.created_at.desc(), m.c.id.desc()).limit(limit)
        async with self._engine.connect() as conn:
            rows = (await conn.execute(q)).all()
        return [as_dict(r) for r in rows]

    async def count_since(self, account_id: str, since: float) -> int:
        """Parts the account sent since ``since``: what quotas count (a long message costs what it is billed)."""
        m = tables.messages
        async with self._engine.connect() as conn:
            n = await conn.scalar(
                sa.select(sa.func.coalesce(sa.func.sum(m.c.parts_count), 0)).where(
                    m.c.account_id == account_id, m.c.direction == "outbound", m.c.created_at >= since
                )
            )
        return int(n or 0)
