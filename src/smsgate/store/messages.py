"""Writing messages inside a group-commit transaction: the accept batch and the outcome of a dispatch round.

Every write here runs inside a group-commit transaction (``store.committer``) and writes the message change,
its events and any follow-up outbox job together, so a crash can never leave one without the other. What the
events then cause (webhooks, held receipts) is decided by ``services.recording`` in the same transaction.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Sequence
from typing import Any, NamedTuple, TypeVar

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from smsgate import errors, logs
from smsgate.core import events as core_events
from smsgate.core import message as core_message
from smsgate.core import pricing, schedule
from smsgate.store import accounts as store_accounts
from smsgate.store import fastsql, notify, rows, tables
from smsgate.store import idempotency as store_idempotency
from smsgate.store import outbox as store_outbox

log = logging.getLogger(__name__)

Status = core_message.Status
EventType = core_events.EventType
NORMAL = schedule.Priority.NORMAL


@dataclasses.dataclass(frozen=True, slots=True)
class NewMessage:
    """One accepted message; ``charge`` is debited from the account in the same transaction."""

    message: core_message.Message
    parts: tuple[core_message.Part, ...]
    charge: int
    claim: bool = True  # claimed by this node in the accept transaction (the dispatcher's fast path)
    payer: str | None = None  # the account debited (a sub-account's parent); None: the message's own account
    key: store_idempotency.NewKey | None = None  # an Idempotency-Key, stored with its answer in this transaction


class Copy(NamedTuple):
    """A recipient of a batch's text, stored as a copy of the text's first message (``Copies``): what differs."""

    id: str
    recipient: str  # E.164
    country: str | None
    network: str | None
    connector: str
    part_price: int  # 1e-8 units per part
    part_ids: Sequence[str]


@dataclasses.dataclass(frozen=True, slots=True)
class Copies:
    """The recipients of one text in a batch: ``first`` as ``Gateway.build`` made it, each other one a ``Copy`` of
    it that differs only in the ``Copy`` fields (its route, network and price are the same rules', per recipient).
    The store writes them as the rows ``expand()``'s messages would have, without building a ``Message``, its
    ``Part``s and its event per recipient (docs/performance.md, "Batch accept"). Quacks like a ``NewMessage`` for
    ``MessageWrites.accept``: ``message``, ``charge``, ``claim``, ``payer``, ``key``."""

    first: NewMessage
    rest: list[Copy]

    @property
    def message(self) -> core_message.Message:
        return self.first.message

    @property
    def claim(self) -> bool:
        return self.first.claim

    @property
    def payer(self) -> str | None:
        return self.first.payer

    @property
    def key(self) -> store_idempotency.NewKey | None:
        return self.first.key

    @property
    def count(self) -> int:
        """Messages (recipients)."""
        return 1 + len(self.rest)

    @property
    def parts(self) -> int:
        return self.count * self.first.message.parts_count

    @property
    def charge(self) -> int:
        return self.first.charge + self.first.message.parts_count * sum(c.part_price for c in self.rest)

    def expand(self) -> list[NewMessage]:
        """Every recipient's ``NewMessage``, as built one by one (the dispatcher's fast path takes these)."""
        first = self.first
        out = [first]
        for c in self.rest:
            price = c.part_price * first.message.parts_count
            message = dataclasses.replace(first.message, id=c.id, recipient=c.recipient, country=c.country,
                                          network=c.network, connector=c.connector, price=price)  # fmt: skip
            parts = tuple(
                dataclasses.replace(p, id=pid, message_id=c.id, connector=c.connector, price=c.part_price)
                for p, pid in zip(first.parts, c.part_ids, strict=True)
            )
            out.append(dataclasses.replace(first, message=message, parts=parts, charge=price))
        return out


Accepted = TypeVar("Accepted", NewMessage, NewMessage | Copies)


@dataclasses.dataclass(frozen=True, slots=True)
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
    events: list[tuple[EventType, dict[str, Any]]] = dataclasses.field(default_factory=list)  # per message


class MessageWrites:
    """Write handlers run by ``services.recording`` inside group-commit transactions.

    Every statement here goes through ``fastsql`` (compiled once, tuples to the driver): these run for every
    message two or three times, and SQLAlchemy's per-statement overhead would cost more than SQLite's work.
    """

    def __init__(self, *, node_id: str, lease: float) -> None:
        self.node_id = node_id
        self.lease = lease

    async def accept(
        self, conn: AsyncConnection, items: Sequence[Accepted]
    ) -> tuple[list[Any], list[Accepted], list[core_events.Event]]:
        """Per item the account's remaining balance or ``InsufficientBalance``; the items stored; the events of
        their messages (a ``Copies``' copies excepted: their ``accepted`` events are written as rows only, and no
        webhook is planned from an ``accepted`` event, ``webhooks.planner.relevant``)."""
        now = time.time()
        account_ids = sorted({i.payer or i.message.account_id for i in items})
        balance = await store_accounts.balances(conn, account_ids, lock=True)
        debits: dict[str, int] = {}
        results: list[Any] = []
        ok: list[Accepted] = []
        for item in items:
            acc = item.payer or item.message.account_id
            left = balance.get(acc, 0) - debits.get(acc, 0)
            charge = item.charge
            if charge > left:
                results.append(errors.InsufficientBalance())
                continue
            if item.key is not None and not await store_idempotency.claim(conn, item.key, left - charge):
                results.append(errors.IdempotencyKeyTaken())
                continue
            debits[acc] = debits.get(acc, 0) + charge
            results.append(left - charge)
            ok.append(item)
        if not ok:
            return results, ok, []
        singles = [i.first if isinstance(i, Copies) else i for i in ok]
        message_rows = [rows.message_values(i.message) for i in singles]
        part_rows = [rows.part_values(p) for i in singles for p in i.parts]
        events = [core_events.accepted(i.message) for i in singles]
        event_rows = [rows.event_values(e) for e in events]
        lease_until = now + self.lease
        node = self.node_id
        jobs: list[store_outbox.NewJob] = [
            (i.message.id, None, node, lease_until) if i.claim else (i.message.id, None, None, None) for i in ok
        ]
        # a scheduled message's job is due at its send time; a high or bulk one is claimed in its lane's order
        timing = [
            (m.id, m.send_at or now, m.priority.lane)
            for m in (i.message for i in singles)
            if m.send_at is not None or m.priority is not NORMAL
        ]
        for i, event in zip(ok, events, strict=True):
            if not isinstance(i, Copies) or not i.rest:
                continue
            _copied(i.first, event, i.rest, message_rows, part_rows, event_rows)
            holder, until = (node, lease_until) if i.claim else (None, None)
            jobs += [(c.id, None, holder, until) for c in i.rest]
            m = i.first.message
            if m.send_at is not None or m.priority is not NORMAL:
                timing += [(c.id, m.send_at or now, m.priority.lane) for c in i.rest]
        await fastsql.insert_tuples(conn, tables.messages, rows.MESSAGE_COLUMNS, message_rows)
        await fastsql.insert_tuples(conn, tables.parts, rows.PART_COLUMNS, part_rows)
        await fastsql.insert_tuples(conn, tables.events, rows.EVENT_COLUMNS, event_rows)
        if log.isEnabledFor(logging.DEBUG):
            for i in ok:
                m = i.message
                copies: list[Copy] = i.rest if isinstance(i, Copies) else []
                for mid, to in [(m.id, m.recipient), *[(c.id, c.recipient) for c in copies]]:
                    log.debug("message %s accepted: to %s, %d part(s), %s dialect", mid, logs.mask_number(to),
                              m.parts_count, m.dialect)  # fmt: skip
        await store_outbox.add(conn, "submit", jobs, now, timing=timing)
        a = tables.accounts
        await fastsql.executemany(
            conn,
            "debit",
            lambda: (
                a.update().where(a.c.id == sa.bindparam("acc")).values(balance=a.c.balance - sa.bindparam("amount"))
            ),
            [{"acc": k, "amount": v} for k, v in debits.items() if v],
        )
        return results, ok, events

    async def job_results(self, conn: AsyncConnection, items: Sequence[JobResult]) -> list[core_events.Event]:
        """Parts submitted, rejected or put back, the message's status and connector, its events and its outbox
        job (removed when done, else due again at ``retry_at``); returns the events written."""
        now = time.time()
        p, o = tables.parts, tables.outbox
        updates = [u for r in items for u in r.updates]
        final_parts = [u for u in updates if u.status is not Status.ACCEPTED]

        def submitted() -> dict[str, Any]:
            return {"status": "st", "connector": "conn", "network_id": "nid", "error_code": "ec", "error_text": "et",
                    "submitted_at": "now", "attempts": p.c.attempts + 1}  # fmt: skip

        outcomes = [{"k": u.part_id, "st": u.status.value, "conn": u.connector, "nid": u.network_id,
                     "ec": u.error_code, "et": u.error_text, "now": now} for u in final_parts]  # fmt: skip
        await fastsql.update_many(conn, "parts:submitted", p, submitted, outcomes)
        retried = [{"k": u.part_id} for u in updates if u.status is Status.ACCEPTED]
        await fastsql.update_many(conn, "parts:retried", p, lambda: {"attempts": p.c.attempts + 1}, retried)
        events: list[core_events.Event] = []
        for r in items:
            for u in r.updates:
                if u.status is Status.ACCEPTED:
                    continue
                data: dict[str, Any] = {"connector": u.connector, "network_id": u.network_id}
                if u.error_text:
                    data.update(error_code=u.error_code, error_text=u.error_text)
                if u.note:
                    data["note"] = u.note
                events.append(core_events.Event(r.message_id, u.part_id, r.account_id, EventType(u.status), now, data))
            for type_, extra in r.events:
                events.append(core_events.Event(r.message_id, None, r.account_id, type_, now, extra))
            if r.retry_at is not None:
                retry = {"reason": r.retry_reason, "at": r.retry_at, "connector": r.connector}
                events.append(core_events.Event(r.message_id, None, r.account_id, EventType.RETRY, now, retry))
        await set_status(conn, [(r.message_id, r.message_status) for r in items if r.message_status], now)
        await fastsql.update_many(
            conn,
            "messages:connector",
            tables.messages,
            lambda: {"connector": "conn"},
            [{"k": r.message_id, "conn": r.message_connector} for r in items if r.message_connector],
        )
        await insert_events(conn, events)
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
        return events


# the columns a ``Copy`` sets, by position (``fastsql.insert_tuples`` binds tuples in the columns' order)
_COPY_MESSAGE = tuple(rows.MESSAGE_COLUMNS.index(c) for c in ("id", "recipient", "country", "network", "connector",
                                                              "price"))  # fmt: skip
_COPY_PART = tuple(rows.PART_COLUMNS.index(c) for c in ("id", "message_id", "connector", "price"))
_EVENT_MESSAGE = rows.EVENT_COLUMNS.index("message_id")


def _copied(
    first: NewMessage,
    accepted: core_events.Event,
    copies: Sequence[Copy],
    message_rows: list[tuple[Any, ...]],
    part_rows: list[tuple[Any, ...]],
    event_rows: list[tuple[Any, ...]],
) -> None:
    """Append the rows of ``copies``: ``first``'s message, part and ``accepted`` event rows with the ``Copy``
    columns set (one list per row kind reused, a tuple taken of it per copy: no dict, no JSON per recipient)."""
    m = list(rows.message_values(first.message))
    parts = [list(rows.part_values(p)) for p in first.parts]
    e = list(rows.event_values(accepted))
    n = first.message.parts_count
    mid, recipient, country, network, connector, price = _COPY_MESSAGE
    pid, pmid, pconnector, pprice = _COPY_PART
    for c in copies:
        m[mid], m[recipient], m[country], m[network], m[connector], m[price] = (
            c.id, c.recipient, c.country, c.network, c.connector, c.part_price * n)  # fmt: skip
        message_rows.append(tuple(m))
        for p, part_id in zip(parts, c.part_ids, strict=True):
            p[pid], p[pmid], p[pconnector], p[pprice] = part_id, c.id, c.connector, c.part_price
            part_rows.append(tuple(p))
        e[_EVENT_MESSAGE] = c.id
        event_rows.append(tuple(e))


@dataclasses.dataclass(frozen=True, slots=True)
class Cancel:
    """A client's request to cancel one of its messages before it is submitted."""

    account_id: str
    message_id: str


@dataclasses.dataclass(frozen=True, slots=True)
class Canceled:
    """What a cancel did: ``refund`` (1e-8 units) went back to the balance; ``again``: it was canceled before."""

    parts: int
    refund: int
    created_at: float
    again: bool = False


async def cancel(
    conn: AsyncConnection, items: Sequence[Cancel]
) -> tuple[list[Canceled | errors.SmsgateError], list[core_events.Event]]:
    """Cancel messages whose submit job no node holds and none of whose parts left: the job is taken out of the
    outbox, the parts and the message become ``canceled``, the price goes back to the balance, one ``canceled``
    event. Per item the outcome, or ``NotFound`` (not this account's outbound message) / ``TooLate`` (submitted,
    or being submitted now).

    Set-wise: a page of a batch cancel (thousands of messages) costs four reads and five writes, not eight
    statements a message (on PostgreSQL 5,000 cancels took 33 s that way, each statement a round trip).

    Exactly one of a cancel and a dispatcher's claim wins: the job rows are locked here (PostgreSQL ``FOR UPDATE``;
    the claim skips locked rows, and a claim that came first leaves ``claimed_by`` set, so the row is not picked)
    and SQLite has one writer; the dispatcher submits only what it claimed."""
    now = time.time()
    m, p, o, a = tables.messages, tables.parts, tables.outbox, tables.accounts
    ids = [i.message_id for i in items]
    found = await fastsql.fetch_in(
        conn,
        "cancel:messages",
        lambda b: sa.select(m.c.id, m.c.account_id, m.c.status, m.c.price, m.c.parts_count, m.c.created_at).where(
            m.c.id.in_(b), m.c.direction == "outbound"
        ),
        ids,
    )
    rows = {r["id"]: r for r in found}
    jobs = {
        r["ref"]: r["id"]
        for r in await fastsql.fetch_in(
            conn,
            "cancel:jobs",
            lambda b: (
                sa.select(o.c.id, o.c.ref)
                .where(o.c.kind == "submit", o.c.ref.in_(b), o.c.claimed_by.is_(None))
                .with_for_update()
            ),
            ids,
        )
    }
    gone = {  # messages with a part that left (or is leaving): too late
        r["message_id"]
        for r in await fastsql.fetch_in(
            conn,
            "cancel:left",
            lambda b: sa.select(p.c.message_id).where(p.c.message_id.in_(b), p.c.status != Status.ACCEPTED.value),
            ids,
        )
    }
    payers = {  # the refund goes to whoever paid: a sub-account's parent (accept debits ``NewMessage.payer``)
        r["id"]: r["parent_id"] or r["id"]
        for r in await fastsql.fetch_in(
            conn, "cancel:payers", lambda b: sa.select(a.c.id, a.c.parent_id).where(a.c.id.in_(b)),
            [i.account_id for i in items],
        )
    }  # fmt: skip
    out: list[Canceled | errors.SmsgateError] = []
    events: list[core_events.Event] = []
    done: set[str] = set()
    refunds: dict[str, int] = {}
    for item in items:
        row = rows.get(item.message_id)
        if row is None or row["account_id"] != item.account_id:
            out.append(errors.NotFound("no such message"))
            continue
        if row["status"] == Status.CANCELED or item.message_id in done:
            out.append(Canceled(row["parts_count"], 0, row["created_at"], again=True))
            continue
        if item.message_id not in jobs or item.message_id in gone:
            status = row["status"]
            now_or_done = "being submitted now" if status in _NOT_YET else f"{status} already"
            out.append(errors.TooLate(f"the message is {now_or_done} and can no longer be canceled"))
            continue
        done.add(item.message_id)
        payer = payers.get(item.account_id, item.account_id)
        refunds[payer] = refunds.get(payer, 0) + row["price"]
        events.append(
            core_events.Event(item.message_id, None, item.account_id, EventType.CANCELED, now,
                              {"previous": row["status"],
                               "refund": pricing.format_amount(pricing.from_units(row["price"]))})
        )  # fmt: skip
        out.append(Canceled(row["parts_count"], row["price"], row["created_at"]))
    keys = [{"k": i} for i in done]
    await fastsql.executemany(
        conn, "cancel:job", lambda: o.delete().where(o.c.id == sa.bindparam("k")), [{"k": jobs[i]} for i in done]
    )
    canceled = {"status": "st", "done_at": "at", "error_text": "why"}  # bind names: not the columns' own
    await fastsql.update_many(
        conn,
        "cancel:parts",
        p,
        lambda: canceled,
        [{"st": Status.CANCELED.value, "at": now, "why": "canceled by the client", **k} for k in keys],
        key="message_id",
    )
    await fastsql.update_many(
        conn, "cancel:message", m, lambda: {"status": "st", "updated_at": "at"},
        [{"st": Status.CANCELED.value, "at": now, **k} for k in keys],
    )  # fmt: skip
    await fastsql.update_many(
        conn, "cancel:refund", a, lambda: {"balance": a.c.balance + sa.bindparam("refund")},
        [{"k": payer, "refund": amount} for payer, amount in sorted(refunds.items()) if amount],  # one lock order
    )  # fmt: skip
    await insert_events(conn, events)
    return out, events


_NOT_YET = (Status.SCHEDULED.value, Status.ACCEPTED.value)


async def set_status(conn: AsyncConnection, changes: Sequence[tuple[str, Status]], now: float) -> None:
    """Messages' new statuses."""
    await fastsql.update_many(
        conn,
        "messages:status",
        tables.messages,
        lambda: {"status": "st", "updated_at": "now"},
        [{"k": mid, "st": st.value, "now": now} for mid, st in changes],
    )


async def insert_events(
    conn: AsyncConnection, events: Sequence[core_events.Event], *, log_changes: bool = True
) -> None:
    await fastsql.insert_tuples(conn, tables.events, rows.EVENT_COLUMNS, [rows.event_values(e) for e in events])
    if log_changes and log.isEnabledFor(logging.DEBUG):
        _log_changes(events)


def _log_changes(events: Sequence[core_events.Event]) -> None:
    """One DEBUG line per recorded state change (never the text; numbers are not in events)."""
    for e in events:
        data = e.data or {}
        detail = ", ".join(f"{k}={data[k]}" for k in _LOGGED_DATA if data.get(k) is not None)
        part = f" part {e.part_id}" if e.part_id else ""
        log.debug("message %s%s %s%s", e.message_id, part, e.type.value, f" ({detail})" if detail else "")


_LOGGED_DATA = ("connector", "network_id", "error_code", "error_text", "reason")
