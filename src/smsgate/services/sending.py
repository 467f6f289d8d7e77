"""Use cases shared by every dialect: authenticate, send, look up.

A dialect parses its wire format, builds a ``SendRequest`` and maps the result or the ``errors`` class back
to its own format; everything that must be the same in every dialect happens here, once. ``send`` validates,
prices, reserves quota and hands a typed ``core.message.Message`` to the group committer (``services.recording``
stores it); the dispatcher learns of it through the callback ``runtime`` wires, never from here.
"""

from __future__ import annotations

import dataclasses
import logging
import operator
import secrets
import time
from collections.abc import AsyncIterable, Callable, Mapping, Sequence
from decimal import Decimal
from typing import Protocol

from smsgate import caches, changes, credentials, errors, limits
from smsgate import owners as smsgate_owners
from smsgate.core import accounts as core_accounts
from smsgate.core import encoding, ids, networks, numbers, pricing, routing, schedule, segments, senders
from smsgate.core import idempotency as core_idempotency
from smsgate.core import message as core_message
from smsgate.services import suppressions as services_suppressions
from smsgate.store import accounts as store_accounts
from smsgate.store import batches as store_batches
from smsgate.store import committer as store_committer
from smsgate.store import idempotency as store_idempotency
from smsgate.store import messages as store_messages
from smsgate.store import reads as store_reads

log = logging.getLogger(__name__)


@dataclasses.dataclass(slots=True)
class SendRequest:
    account: core_accounts.Account
    dialect: str
    recipient: numbers.Number
    sender: str | None
    text: str | None = None
    encoding: encoding.Encoding | None = None
    body: bytes | None = None  # binary payload (Vonage type=binary)
    udh: bytes | None = None
    max_chars: int | None = None
    client_ref: str | None = None
    callback_url: str | None = None
    ttl_seconds: float | None = None  # validity: Vonage ``ttl``, ``validity_seconds``, ``X-Validity-Seconds``
    send_at: float | None = None  # epoch seconds (core.schedule.parse_send_at); None: now
    priority: schedule.Priority | None = None  # None: the account's default lane
    status_report: bool = True
    message_class: int | None = None
    protocol_id: int = 0
    # references echoed back (Vonage account-ref, entity-id, content-id, trusted-number; Kaarai's asked ``from``)
    account_ref: str | None = None
    entity_id: str | None = None
    content_id: str | None = None
    trusted_number: bool | None = None
    requested_from: str | None = None
    reply_routing: bool = False  # KPN's ``inbound: yes``: replies go to the /register callback of the sender
    reply: Reply | None = None  # an Idempotency-Key: the answer is rendered and stored in the accept transaction
    confirms_optout: bool = False  # the confirmation of a STOP: the one message a suppressed number still gets


@dataclasses.dataclass(slots=True)
class Reply:
    """An Idempotency-Key's claim on a send (``services.idempotency``): ``render`` turns the result into the
    dialect's answer inside the accept transaction, which stores it with the message; ``response`` is then that
    answer, the one to give."""

    key: str
    fingerprint: str
    render: Callable[[SendResult], core_idempotency.StoredResponse]
    response: core_idempotency.StoredResponse | None = None


class Route(Protocol):
    """What sending needs to know of a connector: whether it can submit now."""

    @property
    def available(self) -> bool: ...


@dataclasses.dataclass(slots=True)  # not frozen: built per send (docs/decisions.md)
class SentPart:
    id: str
    price: Decimal


@dataclasses.dataclass(slots=True)  # not frozen: built per send (docs/decisions.md)
class SendResult:
    message_id: str
    parts: tuple[SentPart, ...]
    price: Decimal
    remaining_balance: Decimal
    network: str | None
    queued: bool  # accepted, but its route cannot take it now
    quota: limits.QuotaState
    message: core_message.Message  # as stored, with its parts (``/v1/messages`` answers with them)
    stored_parts: tuple[core_message.Part, ...]


@dataclasses.dataclass(slots=True)  # not frozen: built per send (docs/decisions.md)
class Built:
    """A message ready to store (``Gateway.build``), with its part price and the connectors its route may use."""

    item: store_messages.NewMessage
    part_price: Decimal
    connectors: tuple[str, ...]


class Gateway:
    def __init__(
        self,
        *,
        accounts: store_accounts.AccountStore,
        reads: store_reads.MessageReads,
        committer: store_committer.GroupCommitter,
        connectors: Mapping[str, Route],
        router: routing.Router,
        prices: pricing.PriceTable,
        ported: Mapping[str, str],
        token_ttl: float,
        retry_max_seconds: float,
        node_id: str,
        quotas: limits.QuotaLimiter | None = None,
        buckets: limits.RateLimiter | None = None,
        policy: limits.Policy | None = None,
        changes_bus: changes.Changes | None = None,
        cache_seconds: float = credentials.CACHE_SECONDS,
        owners: smsgate_owners.Owners,
        suppressions: services_suppressions.Suppressions,
        sandboxes: tuple[str, ...] = (),
        has_room: Callable[[], bool] = lambda: True,
        default_sender: str = "smsgate",
    ) -> None:
        self.accounts = accounts
        self.reads = reads
        self._committer = committer
        # whether the dispatcher can take a new message at once (it is then claimed in its accept transaction)
        self._has_room = has_room
        self._connectors = connectors
        self._router = router
        self._prices = prices
        self._ported = dict(ported)
        self._retry_max = retry_max_seconds
        self._node = node_id
        # in-process unless runtime hands in the Redis twins (several nodes share the limits)
        self.quotas: limits.QuotaLimiter = quotas or limits.Quotas(reads.count_since)
        self.buckets: limits.RateLimiter = buckets or limits.TokenBuckets()
        self._policy = policy or limits.Policy()
        self.credentials = credentials.Credentials(accounts, token_ttl=token_ttl, cache_seconds=cache_seconds)
        self.authenticate = self.credentials.authenticate
        self.issue_token = self.credentials.issue_token
        self.account_for_token = self.credentials.account_for_token
        self.account = self.credentials.account
        self.changes = changes_bus or changes.Changes()
        self.changes.subscribe(changes.ACCOUNT, self.credentials.forget)
        self.owners = owners
        self.owners.watch(self.changes)
        self.suppressions = suppressions
        self.suppressions.watch(self.changes)
        self._sandboxes = tuple(sandboxes)  # the sandbox connectors: the only route of a sandbox-only account
        self._ref = secrets.randbelow(256)
        # single sends take consecutive part ids from one random start per process: a random id per part put
        # every insert at another page of the ``parts`` primary key (one more page into the WAL per part)
        self._part_ids = ids.PartIds()
        self._cache_seconds = cache_seconds
        self._children: caches.Expiring[tuple[str, str], str] = caches.Expiring(10_000)  # (parent, name) -> id
        self._default_sender = senders.parse_sender(default_sender)  # the gateway's, for accounts without one

    # -- credentials (``credentials.Credentials``) -------------------------------------------------------------
    async def account_changed(self, account_id: str) -> None:
        """An account's secret, status or settings changed: drop what every process cached about it, now."""
        await self.changes.announce(changes.ACCOUNT, account_id)

    async def number_changed(self, msisdn: str) -> None:
        """A number's owner changed (bought, given back, claimed): every process asks again who owns it."""
        await self.changes.announce(changes.NUMBER, msisdn)

    # -- sending ----------------------------------------------------------------------------------------------
    def has_room(self) -> bool:
        """Whether the dispatcher takes new messages straight from their accept commit (claimed in it)."""
        return self._has_room()

    async def write_batch(self, batch: store_batches.NewBatch) -> int:
        """Commit a batch (``services.batches``) whole: the payer's remaining balance, or InsufficientBalance."""
        return int(await self._committer.write("accept_batch", batch))

    def route_available(self, connector: str) -> bool:
        c = self._connectors.get(connector)
        return c is not None and c.available

    def check_destination(self, account: core_accounts.Account, number: numbers.Number) -> None:
        """Demo allow-list, enabled countries, blocked prefixes: DestinationNotAllowed otherwise."""
        if account.blocked_prefixes and any(number.digits.startswith(p.lstrip("+")) for p in account.blocked_prefixes):
            raise errors.DestinationNotAllowed("destination is blocked")
        numbers.country_allowed(number, account.allowed_countries)
        if account.level == "demo" and account.demo_allowlist is not None:
            allowed = {n.lstrip("+") for n in account.demo_allowlist}
            if number.digits not in allowed:
                raise errors.NotWhitelisted()

    async def resolve_sender(self, account: core_accounts.Account, raw: str | None) -> senders.Sender:
        """The sender to use: the account's default (set by the operator), or the requested one if the account may
        use it (``owners``: its own numbers and any unreserved name, or the operator's list). No sender asked for
        and no default of the account's: the gateway's (``SMSGATE_DEFAULT_SENDER``), as Kaarai's spec promises
        ("a default number will be provided") and KPN's send without ``sender`` needs."""
        if raw is None or raw == "" or not account.may_choose_sender:
            if not account.default_sender:
                if raw is None or raw == "":
                    return self._default_sender
                raise errors.InvalidSender("the account may not choose its sender and has no default sender")
            raw = account.default_sender
        sender = senders.parse_sender(raw)
        if account.may_choose_sender and raw != account.default_sender:
            await self.owners.check(account, sender)
        return sender

    def segment(self, req: SendRequest) -> segments.Segmentation:
        self._ref = (self._ref + 1) & 0xFF
        if req.body is not None:
            return segments.segment_binary(req.body, udh=req.udh or b"", reference=self._ref)
        return segments.segment_text(
            req.text or "", encoding=req.encoding, reference=self._ref, max_chars=req.max_chars
        )

    async def send(self, req: SendRequest) -> SendResult:
        """Validate, price, reserve quota, and commit the message with its parts, event and outbox job."""
        account = req.account
        if not account.active:
            raise errors.AccountDisabled()
        self.check_destination(account, req.recipient)
        if not req.confirms_optout:
            await self.suppressions.check(account, req.recipient)
        if not account.allow_sim_messages and _sim_message(req):
            raise errors.FeatureNotAllowed(
                "silent (protocol-id 64), SIM data download (protocol-id 127) and class-2 binary messages are not "
                "enabled for this account (the operator can allow them)"
            )
        sender = await self.resolve_sender(account, req.sender)
        seg = self.segment(req)
        await self.buckets.take_all(self._policy.rates(account, sender.value, req.recipient.e164), seg.count)
        built = self.build(req, sender.value, seg, time.time(), claim=self._has_room())
        item, message = built.item, built.item.message
        quota = await self.quotas.take(account, seg.count)
        queued = not any(self.route_available(c) for c in built.connectors)

        def result(remaining: int) -> SendResult:
            return SendResult(
                message_id=message.id,
                parts=tuple(SentPart(p.id, built.part_price) for p in item.parts),
                price=built.part_price * seg.count,
                remaining_balance=pricing.from_units(remaining),
                network=message.network,
                queued=queued,
                quota=quota,
                message=message,
                stored_parts=item.parts,
            )

        if req.reply is not None:
            reply = req.reply

            def respond(remaining: int) -> core_idempotency.StoredResponse:
                reply.response = reply.render(result(remaining))
                return reply.response

            key = store_idempotency.NewKey(account.id, reply.key, reply.fingerprint, message.id, message.created_at,
                                           respond)  # fmt: skip
            item = dataclasses.replace(item, key=key)
        try:
            remaining = await self._committer.write("accept", item)
        except BaseException:
            await self.quotas.give_back(account, seg.count)
            raise
        return result(remaining)

    def build(
        self,
        req: SendRequest,
        sender: str,
        seg: segments.Segmentation,
        now: float,
        *,
        claim: bool,
        batch_id: str | None = None,
        message_id: str | None = None,
        part_ids: ids.PartIds | None = None,
    ) -> Built:
        """The message to store for ``req``, already segmented: its route and connector, network, price, parts.
        RouteUnavailable when its connector does not exist. Shared by ``send`` and batches (``services.batches``),
        which segment a text once for all its recipients and make the ids of all its messages at once."""
        account = req.account
        network, part_price, connector, connectors, pinned = self._place(account, req.recipient, req.dialect)
        message_id = message_id or ids.message_id(now)
        new_parts = (part_ids or self._part_ids).take(seg.count)
        units = pricing.to_units(part_price)
        text = req.text if req.body is None else None
        scheduled = req.send_at is not None and req.send_at > now
        message = core_message.Message(
            id=message_id,
            account_id=account.id,
            direction=core_message.Direction.OUTBOUND,
            dialect=req.dialect,
            sender=sender,
            recipient=req.recipient.e164,
            text=text,
            encoding=seg.encoding.value,
            parts_count=seg.count,
            status=core_message.Status.SCHEDULED if scheduled else core_message.Status.ACCEPTED,
            created_at=now,
            updated_at=now,
            connector=connector,
            network=network,
            country=req.recipient.country,
            price=units * seg.count,
            client_ref=req.client_ref,
            callback_url=req.callback_url,
            ttl_seconds=req.ttl_seconds or None,
            retry_max_seconds=None if req.ttl_seconds else self._retry_max,
            pinned=pinned,  # the dispatcher keeps it on ``connector``, never fails over
            batch_id=batch_id,
            send_at=req.send_at if scheduled else None,
            priority=req.priority or schedule.Priority(account.default_priority),
            **dict(zip(_PASSED_ON, _passed_on(req), strict=True)),
        )
        accepted = core_message.Status.ACCEPTED
        parts = tuple(
            core_message.Part(pid, message_id, p.index, p.total, accepted, seg.data_coding, p.udh, p.payload, p.text,
                              connector=connector, concat_ref=self._ref, price=units)
            for pid, p in zip(new_parts, seg.parts, strict=True)
        )  # fmt: skip
        # a scheduled message waits in the outbox for its time; the dispatcher claims it then
        item = store_messages.NewMessage(message, parts, units * seg.count, claim=claim and not scheduled,
                                         payer=account.parent_id)  # fmt: skip
        return Built(item, part_price, connectors)

    def copy(
        self,
        account: core_accounts.Account,
        first: store_messages.NewMessage,
        recipient: numbers.Number,
        message_id: str,
        part_ids: ids.PartIds,
    ) -> store_messages.Copy:
        """``first`` (built for another recipient of the same text, same request) for ``recipient``: the same rules
        as ``build`` choose its network, price and connector, the rest is ``first``'s (``store_messages.Copies``)."""
        network, part_price, connector, _connectors, _pinned = self._place(account, recipient, first.message.dialect)
        return store_messages.Copy(message_id, recipient.e164, recipient.country, network, connector,
                                   pricing.to_units(part_price), part_ids.take(first.message.parts_count))  # fmt: skip

    def _place(
        self, account: core_accounts.Account, recipient: numbers.Number, dialect: str
    ) -> tuple[str | None, Decimal, str, tuple[str, ...], bool]:
        """Where a message to ``recipient`` goes: (network, part price, connector, the connectors its route may use,
        pinned to the sandbox). RouteUnavailable when its connector does not exist."""
        network = networks.network_for(recipient, self._ported)
        part_price = self._prices.part_price(recipient.country, network)
        route = self._router.route(digits=recipient.digits, country=recipient.country, account=account.id,
                                   dialect=dialect)  # fmt: skip
        connector = route.primary  # the dispatcher chooses among the route's connectors at submit time
        pinned = account.sandbox_only  # a demo account's messages never leave the sandbox, whatever the route says
        if pinned and connector not in self._sandboxes:
            if not self._sandboxes:
                raise errors.DestinationNotAllowed("this demo account may only send through the sandbox network")
            connector = self._sandboxes[0]
        if connector not in self._connectors:
            raise errors.RouteUnavailable(f"no connector {connector!r}")
        return network, part_price, connector, (connector,) if pinned else route.connectors, pinned

    # -- sub-accounts -----------------------------------------------------------------------------------------
    async def acting_as(self, caller: core_accounts.Account, name: str | None) -> core_accounts.Account:
        """The account a call acts for: ``caller`` itself when ``name`` is blank, else its active sub-account of that
        name (KPN's ``SubAccount`` header, ``account`` in our API); PolicyError (403) for any other name, so a
        caller cannot probe which accounts exist. Cached like every account (``SMSGATE_CACHE_SECONDS``)."""
        name = (name or "").strip()
        if not name:
            return caller
        key = (caller.id, name)
        child_id = self._children.get(key)
        if child_id is None:
            found = await self.accounts.child(caller.id, name)
            if found is None:
                raise errors.NotASubAccount(f"{name!r} is not a sub-account of this account")
            child_id = found.id
            self._children.put(key, child_id, self._cache_seconds)
        child = await self.account(child_id)
        if child is None or child.parent_id != caller.id:
            raise errors.NotASubAccount(f"{name!r} is not a sub-account of this account")
        if not child.active:
            raise errors.NotASubAccount(f"sub-account {name!r} is disabled")
        return child

    async def cancel(self, account: core_accounts.Account, message_id: str) -> store_reads.Detail:
        """Cancel a message not yet submitted (``errors.TooLate`` otherwise): refunded, and its quota given back when
        it was counted in the account's current quota window."""
        done = await self._committer.write("cancel", store_messages.Cancel(account.id, message_id))
        await self._quota_back(account, [done])
        return await self.message(account, message_id)

    async def cancel_many(self, account: core_accounts.Account, pages: AsyncIterable[Sequence[str]]) -> tuple[int, int]:
        """Cancel the messages of ``pages`` (a batch's, all ``account``'s, ``BatchReads.unsent``) not yet submitted,
        each as ``cancel`` does: (canceled now, too late). One page at a time, its cancels queued to the committer
        together (one transaction, no task each) and its quota given back before the next page is read: a
        5,000-recipient batch never holds more than a page of ids, futures or locks at once."""
        canceled = too_late = 0
        async for page in pages:
            outs = await self._committer.write_each("cancel", [store_messages.Cancel(account.id, i) for i in page])
            for out in outs:
                if isinstance(out, BaseException) and not isinstance(out, errors.TooLate | errors.NotFound):
                    raise out
            done = [o for o in outs if isinstance(o, store_messages.Canceled)]
            await self._quota_back(account, done)
            canceled += sum(not d.again for d in done)
            too_late += sum(isinstance(o, errors.TooLate) for o in outs)
        return canceled, too_late

    async def _quota_back(self, account: core_accounts.Account, done: Sequence[store_messages.Canceled]) -> None:
        """Give back the parts of messages just canceled that count in the account's current quota window."""
        window = core_accounts.quota_window(time.time(), account.quota_interval, account.quota_unit)
        parts = sum(d.parts for d in done if not d.again and d.created_at >= window.start)
        if parts:
            await self.quotas.give_back(account, parts)

    # -- reading ----------------------------------------------------------------------------------------------
    async def message(self, account: core_accounts.Account | None, message_id: str) -> store_reads.Detail:
        found = await self.reads.get(account.id if account else None, message_id)
        if found is None:
            raise errors.NotFound("no such message")
        return found


# what a SendRequest hands to its Message as it is: delivery settings and the references echoed back
_PASSED_ON = ("status_report", "message_class", "protocol_id", "reply_routing", "account_ref", "entity_id",
              "content_id", "trusted_number", "requested_from")  # fmt: skip
_passed_on = operator.attrgetter(*_PASSED_ON)
SILENT, SIM_DATA_DOWNLOAD = 0x40, 0x7F  # TP-PID "short message type 0" and "(U)SIM data download" (3GPP TS 23.040)


def _sim_message(req: SendRequest) -> bool:
    """A message a handset does not show, or one that writes to the SIM: tracking and SIM-attack material, so an
    account needs the operator's permission (``allow_sim_messages``) to send one."""
    return req.protocol_id in (SILENT, SIM_DATA_DOWNLOAD) or (req.body is not None and req.message_class == 2)
