"""Batches: one call, many recipients, one transaction.

A batch is validated whole before anything is reserved: every recipient's destination and the sender are checked,
each distinct text is segmented and built once, for its first recipient, its other recipients stored as copies of
that message (``store_messages.Copies``: route, network and price still chosen per recipient), and the parts of
all recipients are counted against the account's quota (reserved all or none) and the payer's balance (checked
inside the transaction that stores the batch). Then every message goes to the group committer as one item
(``accept_batch``), so the batch commits whole or not at all, in one transaction with a handful of statements, not
a round trip per message.

Per-destination and per-sender rates (``limits.Policy``) are not applied per recipient: a batch is metered by its
quota and balance, and its pace on the wire is the connectors' (docs/decisions.md).
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from collections.abc import Callable, Sequence
from decimal import Decimal

from smsgate import errors, limits
from smsgate.core import accounts as core_accounts
from smsgate.core import idempotency as core_idempotency
from smsgate.core import ids, numbers, pricing, schedule
from smsgate.services import sending
from smsgate.store import batches as store_batches
from smsgate.store import idempotency as store_idempotency
from smsgate.store import messages as store_messages

FAST_PATH_MAX = 100  # recipients: a batch this small is claimed in its accept transaction like a single send


@dataclasses.dataclass(frozen=True, slots=True)
class Recipient:
    number: numbers.Number
    text: str
    label: str  # how an error names it (``messages[3] 0612345678``)
    index: int = 0  # its place in the request (``/v1/batches`` refusals name it)


@dataclasses.dataclass(frozen=True, slots=True)
class Refusal:
    index: int
    to: str
    reason: str


@dataclasses.dataclass(frozen=True, slots=True)
class BatchRequest:
    account: core_accounts.Account
    dialect: str
    kind: str  # kpn | api
    recipients: Sequence[Recipient]
    sender: str | None
    max_chars: int | None = None
    callback_url: str | None = None
    ttl_seconds: float | None = None
    refused: Sequence[Refusal] = ()  # recipients the dialect refused itself (``/v1/batches``)
    partial: bool = False  # refuse a recipient the gateway will not take, keep the rest (else refuse the call)
    send_at: float | None = None
    priority: schedule.Priority | None = None
    idempotency_key: str | None = None  # stored with the batch, with ``answer(...)``: a repeat gets that answer
    reply: Reply | None = None  # an Idempotency-Key claimed in the accept transaction with its answer (KPN)


@dataclasses.dataclass(slots=True)
class Reply:
    """An Idempotency-Key's claim on a batch (``api.idempotent.once``), like ``sending.Reply`` for one message:
    ``render`` turns the result into the dialect's answer inside the accept transaction, which stores it in
    ``idempotency_keys`` under ``scope`` (the caller's account); ``response`` is then that answer."""

    scope: str
    key: str
    fingerprint: str
    render: Callable[[BatchResult], core_idempotency.StoredResponse]
    response: core_idempotency.StoredResponse | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class BatchResult:
    batch_id: str
    message_ids: tuple[str, ...]  # of the recipients accepted, in order
    refused: tuple[Refusal, ...]  # the dialect's and the gateway's, by index
    parts: int
    price: Decimal
    remaining_balance: Decimal
    quota: limits.QuotaState


async def send_batch(gw: sending.Gateway, req: BatchRequest) -> BatchResult:
    """Validate every recipient, reserve quota for all parts, and store the batch in one transaction."""
    account = req.account
    if not account.active:
        raise errors.AccountDisabled()
    refused = list(req.refused)
    sender = (await gw.resolve_sender(account, req.sender)).value
    groups: dict[str, store_messages.Copies] = {}  # by text: the first recipient built, the others copies of it
    now = time.time()
    batch_id = str(uuid.uuid4())
    # a small batch takes the dispatcher's fast path (claimed in its accept transaction, handed over in memory); a
    # big one stays in the outbox, unclaimed, and the dispatcher claims it in pages once woken: building a job per
    # message in the commit's callback cost as much as storing it, and held the call's answer back
    claim = len(req.recipients) <= FAST_PATH_MAX and gw.has_room()
    new_ids = iter(ids.message_ids(len(req.recipients), now))  # time-ordered: appended to the indexes by id
    part_ids = ids.PartIds()
    # the account's opted-out recipients (its suppression list, read once from the cache for the whole batch)
    suppressed = await gw.suppressions.refusals(account, (r.number.digits for r in req.recipients))
    accepted: list[str] = []  # message ids, in the recipients' order
    for r in req.recipients:
        group = groups.get(r.text)
        try:
            gw.check_destination(account, r.number)
            if r.number.digits in suppressed:
                raise errors.Suppressed("the recipient has opted out of messages from this account (suppressed)")
            if group is None:  # the text's first recipient: a whole request, segmented once for all of them
                one = sending.SendRequest(account=account, dialect=req.dialect, recipient=r.number, sender=sender,
                                          text=r.text, max_chars=req.max_chars, callback_url=req.callback_url,
                                          ttl_seconds=req.ttl_seconds, send_at=req.send_at,
                                          priority=req.priority)  # fmt: skip
                seg = gw.segment(one)
        except (errors.PolicyError, errors.ValidationError) as exc:
            if not req.partial:
                raise type(exc)(f"{r.label}: {exc.message}") from None
            refused.append(Refusal(r.index, r.number.e164, exc.message))
            continue
        message_id = next(new_ids)
        if group is None:
            first = gw.build(one, sender, seg, now, claim=claim, batch_id=batch_id, message_id=message_id,
                             part_ids=part_ids).item  # fmt: skip
            groups[r.text] = store_messages.Copies(first, [])
        else:
            group.rest.append(gw.copy(account, group.first, r.number, message_id, part_ids))
        accepted.append(message_id)
    if not groups:
        raise errors.ValidationError("the batch has no recipient to send to")
    refused.sort(key=lambda f: f.index)
    batch = store_batches.NewBatch(batch_id, account.id, req.kind, tuple(groups.values()), account.payer,
                                   len(refused), now, req.idempotency_key)  # fmt: skip
    if req.idempotency_key is not None:
        batch = dataclasses.replace(batch, answer=answer(batch, refused))
    parts = batch.parts
    quota = await gw.quotas.take(account, parts)

    def result(remaining: int) -> BatchResult:
        return BatchResult(
            batch_id=batch_id,
            message_ids=tuple(accepted),
            refused=tuple(refused),
            parts=parts,
            price=pricing.from_units(batch.charge),
            remaining_balance=pricing.from_units(remaining),
            quota=quota,
        )

    if req.reply is not None:
        reply = req.reply

        def respond(remaining: int) -> core_idempotency.StoredResponse:
            reply.response = reply.render(result(remaining))
            return reply.response

        key = store_idempotency.NewKey(reply.scope, reply.key, reply.fingerprint, batch_id, now, respond)
        batch = dataclasses.replace(batch, key=key)
    try:
        remaining = await gw.write_batch(batch)
    except BaseException:
        await gw.quotas.give_back(account, parts)
        raise
    return result(remaining)


def answer(batch: store_batches.NewBatch, refused: Sequence[Refusal]) -> dict[str, object]:
    """What ``POST /v1/batches`` answers for a batch (without the balance left, which a repeat cannot know)."""
    return {
        "id": batch.id,
        "accepted": batch.count,
        "refused": [{"index": f.index, "to": f.to, "reason": f.reason} for f in refused],
        "parts": batch.parts,
        "price": pricing.format_amount(pricing.from_units(batch.charge)),
    }
