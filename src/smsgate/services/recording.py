"""The use cases that record what happened, each inside one group-commit transaction (``store.committer``):

    accept        store the message, its parts, ``accepted`` event and outbox job; debit the account
    accept_batch  the same for every message of a batch, all or nothing (the payer's balance covers all of it)
    job_results   a dispatch round's outcome: parts submitted / rejected / put back, the job done or due again;
                  then the receipts that overtook this submit (held) are applied
    receipts      ``core.receipts.apply`` (pure) on what the store loads → store writes; unmatched ones are held
    inbound       fragments kept until complete; ``core.inbound.assemble`` (pure); the owner (``store.ownership``);
                  a STOP / START keyword (``core.optout``) changes the owner's suppression list in the same transaction
    sweep         held receipts whose part appeared meanwhile, inbound fragments that waited too long, and
                  Idempotency-Key answers older than they are kept
    cancel        a client cancels a message not yet submitted: job out of the outbox, parts canceled, refund

and after each: webhook planning (``webhooks.planner``, pure) on the events just written, its deliveries written
by the store in the same transaction. Nothing here calls up the chain: what must happen after a commit (the
dispatcher takes the accepted messages, the webhook sender wakes) is a callback ``runtime`` wires in.

``Ingest`` is the ``InboundSink`` every connector reports to: receipts and inbound parts, durable before it
returns.
"""

from __future__ import annotations

import dataclasses
import logging
import secrets
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from smsgate import errors
from smsgate.core import accounts as core_accounts
from smsgate.core import events as core_events
from smsgate.core import inbound as core_inbound
from smsgate.core import message as core_message
from smsgate.core import optout
from smsgate.core import receipts as core_receipts
from smsgate.store import accounts as store_accounts
from smsgate.store import batches as store_batches
from smsgate.store import committer as store_committer
from smsgate.store import idempotency as store_idempotency
from smsgate.store import inbound as store_inbound
from smsgate.store import messages as store_messages
from smsgate.store import ownership
from smsgate.store import receipts as store_receipts
from smsgate.store import suppressions as store_suppressions
from smsgate.store import webhooks as store_webhooks
from smsgate.webhooks import planner

log = logging.getLogger(__name__)
Tx = Any  # the connection a group-commit transaction runs on (``store.committer``); only the store uses it

# The receipts this process held on SQLite are remembered by network id for this long (seconds), at most this many:
# a submit result naming one applies it in its own transaction. Older ones, and those another process or node held,
# are applied by the periodic sweep (every 2 s); on PostgreSQL every submit result looks in the store.
HELD_KEPT = 600.0
HELD_TRACKED = 100_000
KEY_SWEEP_INTERVAL = 60.0  # seconds between sweeps of old Idempotency-Key answers
KINDS = ("accept", "accept_batch", "job_results", "receipts", "inbound", "sweep", "cancel")


@dataclasses.dataclass(frozen=True, slots=True)
class OptOut:
    """A keyword changed an account's suppression list (told after the commit: caches, the confirmation)."""

    account: core_accounts.Account
    msisdn: str  # the handset, digits
    number: str  # the account's number it wrote to, as stored
    added: bool


class Recorder:
    """The group-commit handlers, registered under ``KINDS`` (``register``)."""

    def __init__(
        self,
        writes: store_messages.MessageWrites,
        *,
        reassembly_timeout: float,
        kpn_retry_delays: Sequence[str] = ("60", "120", "240"),
        keys_kept: float = 24 * 3600.0,
    ) -> None:
        self._writes = writes
        self._kpn_retry_delays = ",".join(kpn_retry_delays) or None
        self._reassembly_timeout = reassembly_timeout
        self._keys_kept = keys_kept  # seconds an Idempotency-Key's answer is kept (SMSGATE_IDEMPOTENCY_HOURS)
        self._keys_swept = 0.0
        # receipts this process held (they overtook their submit result), by (connector, network id), with when
        # (monotonic), oldest first: written after their commit, so a rolled-back hold is never in it; a submit
        # result looks in the store only for these (another process's are found by the periodic sweep)
        self._held: dict[tuple[str, str], float] = {}
        self._releasing: list[tuple[str, str]] = []  # of the transaction being written: forgotten after its commit
        self._planned = False  # a transaction planned deliveries: wake the webhook sender after its commit
        self.on_accepted: list[Callable[[Sequence[store_messages.NewMessage]], None]] = []
        self.on_deliveries: list[Callable[[], None]] = []
        self.on_optout: list[Callable[[Sequence[OptOut]], None]] = []
        self._optouts: list[OptOut] = []  # of the transaction being written
        # the account's confirmation of a STOP, built for the keyword's own transaction (``services.optout``)
        self.confirmation: Callable[[OptOut, float], store_messages.NewMessage | None] | None = None
        self._confirmations: list[store_messages.NewMessage] = []  # stored in the transaction being written
        self.accepted: dict[str, int] = {}  # by dialect, for metrics

    def register(self, committer: store_committer.GroupCommitter) -> None:
        committer.register("accept", self.accept)
        committer.register("accept_batch", self.accept_batch)
        committer.register("job_results", self.job_results, lazy=True)
        committer.register("receipts", self.receipts, lazy=True, last=True)
        committer.register("inbound", self.inbound)
        committer.register("sweep", self.sweep, lazy=True)
        committer.register("cancel", self.cancel)
        committer.after_commit("accept", self._after_accept)
        committer.after_commit("accept_batch", self._after_batch)
        committer.after_commit("receipts", self._after_receipts)
        committer.after_commit("job_results", self._after_job_results)

        committer.after_commit("inbound", self._after_optout)
        committer.after_commit("sweep", self._after_optout)
        for kind in KINDS:
            committer.after_commit(kind, self._after_commit)

    # -- the handlers ------------------------------------------------------------------------------------------
    async def accept(self, tx: Tx, items: Sequence[store_messages.NewMessage]) -> list[Any]:
        results, _stored, events = await self._writes.accept(tx, items)
        await self._plan(tx, events)
        return results

    async def accept_batch(self, tx: Tx, items: Sequence[store_batches.NewBatch]) -> list[Any]:
        """Per batch the payer's remaining balance, or ``InsufficientBalance`` and nothing of it written."""
        results: list[Any] = []
        for batch in items:
            left = await store_batches.payer_balance(tx, batch)
            if batch.charge > left:
                results.append(errors.InsufficientBalance())
                continue
            if batch.key is not None and not await store_idempotency.claim(tx, batch.key, left - batch.charge):
                results.append(errors.IdempotencyKeyTaken())  # stored first by another request: nothing of this
                continue
            outcome, stored, events = await self._writes.accept(tx, batch.groups)
            if len(stored) != len(batch.groups):  # cannot happen once the total fits; never store part of one
                raise errors.InsufficientBalance()
            await store_batches.insert(tx, batch)
            await self._plan(tx, events)
            results.append(outcome[-1] if outcome else left)
        return results

    async def job_results(self, tx: Tx, items: Sequence[store_messages.JobResult]) -> list[None]:
        events = await self._writes.job_results(tx, items)
        await self._plan(tx, events)
        # receipts that overtook their submit result may be waiting for these network ids: on PostgreSQL any node
        # may have held one, so the store is asked; on SQLite only for those this process held (``_held``)
        self._releasing = []
        anyone = tx.dialect.name == "postgresql"
        if anyone or self._held:
            by_conn: dict[str, list[str]] = {}
            for r in items:
                for u in r.updates:
                    if not u.network_id or u.status is core_message.Status.ACCEPTED:
                        continue
                    if anyone:
                        by_conn.setdefault(u.connector, []).append(u.network_id)
                    elif (u.connector, u.network_id) in self._held:
                        by_conn.setdefault(u.connector, []).append(u.network_id)
                        self._releasing.append((u.connector, u.network_id))
            if by_conn:
                await self.apply_held(tx, by_conn)
        return [None] * len(items)

    async def receipts(self, tx: Tx, items: Sequence[core_receipts.Receipt]) -> list[bool]:
        """Per receipt whether it was held (its part is not known yet) for this process to remember (``_held``):
        never on PostgreSQL, where submit results look in the store."""
        now = time.time()
        outcome = await self._apply(tx, items, now)
        unmatched = [r for r, ok in zip(items, outcome.matched, strict=True) if not ok]
        if unmatched:
            await store_receipts.hold(tx, unmatched, now)
        remember = tx.dialect.name != "postgresql"
        return [remember and not ok for ok in outcome.matched]

    async def apply_held(self, tx: Tx, by_conn: Mapping[str, Sequence[str]] | None = None) -> int:
        """Apply held receipts whose part is now known (all of them when ``by_conn`` is None)."""
        held = await store_receipts.held(tx, by_conn)
        if not held:
            return 0
        outcome = await self._apply(tx, [r for _id, r in held], time.time())
        applied = [rid for (rid, _r), ok in zip(held, outcome.matched, strict=True) if ok]
        await store_receipts.release(tx, applied)
        return len(applied)

    async def inbound(self, tx: Tx, items: Sequence[core_inbound.InboundPart]) -> list[None]:
        self._optouts, self._confirmations = [], []  # what a rolled-back try of this batch found is not news
        now = time.time()
        for part in items:
            info = core_inbound.concat_info(part)
            if info is None:
                pieces: list[core_inbound.Piece] | None = [core_inbound.Piece(1, part.data_coding, part.payload)]
            else:
                pieces = await store_inbound.add_fragment(tx, part, info, now)
            if pieces is not None:
                await self._store_inbound(tx, part.connector, part.source, part.destination,
                                          core_inbound.assemble(pieces), now)  # fmt: skip
        return [None] * len(items)

    async def sweep(self, tx: Tx, items: Sequence[None]) -> list[None]:
        """Held receipts whose part appeared meanwhile, and inbound fragments that waited too long. A group-commit
        kind: on SQLite it then writes through the one writer connection like everything else."""
        self._optouts, self._confirmations = [], []
        await self.apply_held(tx)
        now = time.time()
        for late in await store_inbound.overdue(tx, now - self._reassembly_timeout):
            assembled = core_inbound.assemble(late.pieces, incomplete=True, total=late.total)
            await self._store_inbound(tx, late.connector, late.source, late.destination, assembled, now)
        if now - self._keys_swept >= KEY_SWEEP_INTERVAL:
            self._keys_swept = now
            await store_idempotency.sweep(tx, now - self._keys_kept)
        return [None] * len(items)

    async def cancel(self, tx: Tx, items: Sequence[store_messages.Cancel]) -> list[store_messages.Canceled | Exception]:
        results, events = await store_messages.cancel(tx, items)
        await self._plan(tx, events)
        return list(results)

    # -- the steps ---------------------------------------------------------------------------------------------
    async def _apply(self, tx: Tx, receipts: Sequence[core_receipts.Receipt], now: float) -> core_receipts.Outcome:
        """The receipt rule: what the store knows → ``core.receipts.apply`` → the store writes it."""
        found, messages = await store_receipts.tracked(tx, receipts)
        outcome = core_receipts.apply(receipts, found, messages, now)
        await store_receipts.write(tx, outcome, now)
        await self._plan(tx, outcome.events)
        return outcome

    async def _store_inbound(
        self, tx: Tx, connector: str, source: str, destination: str, msg: core_inbound.Assembled, now: float
    ) -> None:
        owner = await ownership.owner(tx, destination)
        account_id = owner.account_id if owner is not None else ""
        message_id = str(uuid.uuid4())
        recipient = core_inbound.address(destination)
        if owner is None:  # no owner: kept for the operator (the console shows it), never given to a guess
            log.info("inbound message %s to %s has no owner; kept for the operator", message_id, recipient)
        message = core_message.Message(
            id=message_id,
            account_id=account_id,
            direction=core_message.Direction.INBOUND,
            dialect="network",
            sender=core_inbound.address(source),
            recipient=recipient,
            text=msg.text,
            encoding=msg.encoding,
            parts_count=msg.parts_count,
            status=core_message.Status.RECEIVED,
            created_at=now,
            updated_at=now,
            connector=connector,
            routed_by=owner.via if owner is not None else None,
            incomplete=msg.incomplete,
            parts_received=tuple(msg.received) if msg.incomplete else None,
            data=msg.data,
        )
        parts = [
            core_message.Part(
                id=secrets.token_hex(8).upper(),
                message_id=message_id,
                index=piece.seq,
                total=msg.parts_count,
                status=core_message.Status.RECEIVED,
                data_coding=piece.data_coding,
                udh=b"",
                payload=piece.payload,
                text=text,
                connector=connector,
                done_at=now,
            )
            for piece, text in msg.parts
        ]
        data: dict[str, Any] = {"incomplete": True} if msg.incomplete else {}
        change = await self._keyword(tx, message, now) if owner is not None else None
        if change is not None:
            data["optout"] = "added" if change.added else "removed"
        event = core_events.Event(message_id, None, account_id, core_events.EventType.RECEIVED, now, data or None)
        await store_inbound.insert(tx, message, parts, event)
        await self._plan(tx, [event])
        if change is not None:
            planned = planner.optout(change.account, message, change.added, now)
            if planned is not None:
                await store_webhooks.insert(tx, [planned], now)
                self._planned = True
            await self._confirm(tx, change, now)

    async def _confirm(self, tx: Tx, change: OptOut, now: float) -> None:
        """The account's confirmation of a STOP, stored as an ordinary outbound message (debited, in the outbox) in
        the keyword's own transaction: a crash after this commit cannot lose it, and it is retried like any other.
        Not affordable or not routable: the opt-out stands, without a confirmation (logged)."""
        item = self.confirmation(change, now) if self.confirmation is not None and change.added else None
        if item is None:
            return
        results, stored, events = await self._writes.accept(tx, [item])
        if not stored:
            log.warning("opt-out confirmation for account %s not sent: %s", change.account.id, results[0])
            return
        self._confirmations.extend(stored)
        await self._plan(tx, events)

    async def _keyword(self, tx: Tx, message: core_message.Message, now: float) -> OptOut | None:
        """A STOP or START keyword: the sender joins or leaves the owner's suppression list, in this transaction.
        Only a short text costs the account read (``optout.action`` refuses anything longer at once)."""
        if not optout.short(message.text):
            return None
        acc = await store_accounts.load(tx, message.account_id)
        said = optout.action(message.text, acc.stop_keywords, acc.start_keywords) if acc is not None else None
        if acc is None or said is None or not message.sender.lstrip("+").isdigit():
            return None
        digits = message.sender.lstrip("+")
        if said is optout.Action.STOP:
            keyword = (message.text or "").strip()[: optout.MAX_KEYWORD_LENGTH]
            changed = await store_suppressions.add(tx, acc.id, digits, "keyword", f"replied {keyword}", now)
        else:
            changed = await store_suppressions.remove(tx, acc.id, digits)
        if not changed:
            return None
        change = OptOut(acc, digits, message.recipient, said is optout.Action.STOP)
        self._optouts.append(change)
        return change

    async def _plan(self, tx: Tx, events: Sequence[core_events.Event]) -> None:
        """Webhooks for ``events``: the planner decides on what the store loads; the store writes its deliveries."""
        relevant = planner.relevant(events)
        if not relevant:
            return
        msgs, accs = await store_webhooks.subjects(tx, sorted({e.message_id for e in relevant}))
        if not accs:
            return
        needs = planner.needs(relevant, msgs, accs)
        ctx = await store_webhooks.context(tx, needs, msgs)
        now = time.time()
        deliveries = planner.plan(relevant, msgs, accs, ctx, now, kpn_retry_delays=self._kpn_retry_delays)
        if deliveries:
            await store_webhooks.insert(tx, deliveries, now)
            self._planned = True

    # -- after commit ------------------------------------------------------------------------------------------
    def _after_accept(self, _kind: str, items: Sequence[Any], results: Sequence[Any]) -> None:
        accepted = [i for i, r in zip(items, results, strict=True) if not isinstance(r, BaseException)]
        for i in accepted:
            self.accepted[i.message.dialect] = self.accepted.get(i.message.dialect, 0) + 1
        self._hand_over(accepted)

    def _after_batch(self, _kind: str, items: Sequence[Any], results: Sequence[Any]) -> None:
        """A claimed group (a small batch: the fast path) goes to the dispatcher message by message; an unclaimed one
        only by its first message, enough to wake the dispatcher, which claims them all from the outbox."""
        stored: list[store_batches.NewBatch] = [b for b, r in zip(items, results, strict=True)
                                                if not isinstance(r, BaseException)]  # fmt: skip
        groups = [g for b in stored for g in b.groups]
        for g in groups:
            self.accepted[g.message.dialect] = self.accepted.get(g.message.dialect, 0) + g.count
        self._hand_over([m for g in groups for m in (g.expand() if g.claim else [g.first])])

    def _hand_over(self, accepted: Sequence[store_messages.NewMessage]) -> None:
        for cb in self.on_accepted:
            cb(accepted)

    def _after_receipts(self, _kind: str, items: Sequence[core_receipts.Receipt], held: Sequence[bool]) -> None:
        if not any(held):
            return
        now = time.monotonic()
        for r, h in zip(items, held, strict=True):
            if h:
                self._held.pop((r.connector, r.network_id), None)  # to the end: the oldest are forgotten first
                self._held[(r.connector, r.network_id)] = now
        while self._held:  # the oldest first: the sweep applies those forgotten here
            key, at = next(iter(self._held.items()))
            if len(self._held) <= HELD_TRACKED and now - at < HELD_KEPT:
                break
            del self._held[key]

    def _after_job_results(self, _kind: str, _items: Sequence[Any], _results: Sequence[Any]) -> None:
        """The held receipts these submit results named were applied in their transaction."""
        for key in self._releasing:
            self._held.pop(key, None)
        self._releasing = []

    def _after_optout(self, kind: str, _items: Sequence[Any], _results: Sequence[Any]) -> None:
        if self._confirmations:  # to the dispatcher, as an accept's (unclaimed: it wakes and takes them)
            stored, self._confirmations = self._confirmations, []
            self._after_accept(kind, stored, [None] * len(stored))
        if self._optouts:
            done, self._optouts = self._optouts, []
            for cb in self.on_optout:
                cb(done)

    def _after_commit(self, _kind: str, _items: Sequence[Any], _results: Sequence[Any]) -> None:
        if self._planned:
            self._planned = False
            for cb in self.on_deliveries:
                cb()


class Ingest:
    """The ``InboundSink`` every connector reports to: receipts and inbound parts, persisted before returning."""

    def __init__(self, committer: store_committer.GroupCommitter) -> None:
        self._committer = committer
        self.receipt_count = 0
        self.inbound_count = 0

    async def receipts(self, receipts: Sequence[core_receipts.Receipt]) -> None:
        await self._committer.write_many("receipts", list(receipts))
        self.receipt_count += len(receipts)

    async def inbound(self, parts: Sequence[core_inbound.InboundPart]) -> None:
        await self._committer.write_many("inbound", list(parts))
        self.inbound_count += len(parts)
