"""The sandbox network as a test double, per account: wait for a handset's message, script its answers, make the
network misbehave for the account's own traffic, and start over.

**Waiting** (``latest`` with ``wait``) does not poll: a message reaches a handset when the transaction recording
its submit commits, and the group committer's after-commit hook for those writes wakes the account's waiters, which
then read the store once. Nobody waiting costs the hook one truth test per commit. With several nodes on
PostgreSQL the message may be submitted by another node, whose commit this node does not see: waiters there also
look every ``recheck`` seconds (0.25), so a wait ends within that of the message arriving (at once when this node
submitted it, as it does for the messages it accepted).

**Scripts** are read by the node that submits the message (they are cached on every node and refreshed when a
change is announced: NOTIFY, Redis, or this process). The handset answers the message's sender, and only when the
account owns that sender (``owners``: a number it holds or a name reserved for it), as for a reply typed through
the API; otherwise the script's ``last_run`` says why it stayed silent. Answers waiting for their ``delay_ms`` live
in this process: a restart drops them (a person who did not answer), never an accepted message.

**Behaviour** switches live in the sandbox connectors (``SandboxNetwork.set_behaviour``), loaded from the store at
start and on every change.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, Protocol

from smsgate import changes, errors
from smsgate import owners as smsgate_owners
from smsgate.core import handsets
from smsgate.core import message as core_message
from smsgate.store import committer as store_committer
from smsgate.store import sandbox as store_sandbox

log = logging.getLogger(__name__)

MAX_WAIT = 30.0  # seconds one long poll may hold its connection
MAX_PENDING_REPLIES = 100  # scripted answers waiting for their delay, per account and process
REMOTE_RECHECK = 0.25  # seconds between looks when other nodes may submit (PostgreSQL)


class Network(Protocol):
    """What this needs of a sandbox connector (``connectors.sandbox.SandboxNetwork``)."""

    name: str

    def set_behaviour(self, account_id: str, behaviour: handsets.Behaviour | None) -> None: ...

    async def reply(self, source: str, destination: str, text: str) -> int: ...


class SandboxControl:
    def __init__(
        self,
        *,
        store: store_sandbox.SandboxStore,
        networks: Sequence[Network],
        owners: smsgate_owners.Owners,
        otp_pattern: handsets.Pattern = handsets.DEFAULT_OTP,
        waits_per_account: int = 20,
        recheck: float | None = None,
    ) -> None:
        self._store = store
        self._networks = {n.name: n for n in networks}
        self.names = tuple(self._networks)
        self._owners = owners
        self.otp_pattern = otp_pattern
        self._waits_per_account = waits_per_account
        self._recheck = recheck
        self._waiting: dict[str, set[asyncio.Event]] = {}
        self._scripts: dict[str, dict[str, tuple[handsets.Rule, ...]]] = {}  # account -> handset -> rules
        self._behaviours: dict[str, handsets.Behaviour] = {}
        self._replies: dict[tuple[str, str], set[asyncio.Task[None]]] = {}  # (account, handset) -> waiting answers
        self._tasks: set[asyncio.Task[None]] = set()
        self._bus: changes.Changes | None = None
        # the delivery process of a split node holds the networks: it is told each switch as it is made, so the
        # next message (handed over right behind it) already sees it; the store's copy follows by ``changes``
        self.on_behaviour: Callable[[str, handsets.Behaviour | None], None] | None = None
        self.on_scripts: Callable[[str, dict[str, tuple[handsets.Rule, ...]]], None] | None = None  # likewise
        self.on_cancel: Callable[[str, str | None], None] | None = None  # and the answers to drop

    @property
    def available(self) -> bool:
        return bool(self._networks)

    def watch(self, committer: store_committer.GroupCommitter, bus: changes.Changes) -> None:
        committer.after_commit("job_results", self._after_results)
        bus.subscribe(changes.SANDBOX, self._changed)
        self._bus = bus

    async def start(self) -> None:
        await self._refresh(None)

    async def close(self) -> None:
        tasks = [*self._tasks, *(t for ts in self._replies.values() for t in ts)]
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t

    # -- what a handset received ------------------------------------------------------------------------------
    async def latest(
        self, account_id: str, msisdn: str, after: store_sandbox.Cursor | None, wait: float
    ) -> store_sandbox.HandsetMessage | None:
        """The newest message ``msisdn`` received from the account (after ``after``), waiting up to ``wait``
        seconds for one to arrive; None when none did."""
        self._need_network()
        found = await self._store.latest(account_id, self.names, msisdn, after)
        if found is not None or wait <= 0:
            return found
        waiting = self._waiting.setdefault(account_id, set())
        if len(waiting) >= self._waits_per_account:
            raise errors.RateLimited(
                f"at most {self._waits_per_account} waiting requests per account; let one finish first", retry_after=1
            )
        event = asyncio.Event()
        waiting.add(event)  # before the next read: a commit between that read and the wait still wakes us
        loop = asyncio.get_running_loop()
        deadline = loop.time() + min(wait, MAX_WAIT)
        try:
            while True:
                event.clear()
                found = await self._store.latest(account_id, self.names, msisdn, after)
                left = deadline - loop.time()
                if found is not None or left <= 0:
                    return found
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(event.wait(), min(left, self._recheck or left))
        finally:
            waiting.discard(event)
            if not waiting:
                self._waiting.pop(account_id, None)

    def otp(self, message: store_sandbox.HandsetMessage, pattern: handsets.Pattern | None = None) -> str | None:
        return handsets.otp(pattern or self.otp_pattern, message.text)

    async def cursor_of(self, account_id: str, message_id: str) -> store_sandbox.Cursor | None:
        return await self._store.cursor_of(account_id, message_id)

    async def delete_handset(self, account_id: str, msisdn: str) -> int:
        self._need_network()
        self._cancel_replies(account_id, msisdn)
        return await self._store.delete_messages(account_id, self.names, msisdn)

    async def reset(self, account_id: str) -> store_sandbox.Reset:
        """The account's sandbox as new: conversations deleted, scripts and waiting answers dropped, the normal
        network back. Other accounts' conversations with the same handsets stay."""
        self._need_network()
        self._cancel_replies(account_id, None)
        done = await self._store.reset(account_id, self.names)
        await self._apply(account_id, scripts=[], behaviour=None)
        return done

    # -- scripts ----------------------------------------------------------------------------------------------
    async def put_script(self, account_id: str, msisdn: str, rules: Sequence[handsets.Rule]) -> store_sandbox.Script:
        self._need_network()
        script = await self._store.put_script(account_id, msisdn, [r.as_json() for r in rules])
        self._set_scripts(account_id, {**self._scripts.get(account_id, {}), msisdn: tuple(rules)})
        await self._announce(account_id)
        return script

    async def script(self, account_id: str, msisdn: str) -> store_sandbox.Script | None:
        self._need_network()
        found = await self._store.scripts(account_id, msisdn)
        return found[0] if found else None

    async def delete_script(self, account_id: str, msisdn: str) -> bool:
        self._need_network()
        gone = await self._store.delete_script(account_id, msisdn)
        self._set_scripts(account_id, {k: v for k, v in self._scripts.get(account_id, {}).items() if k != msisdn})
        await self._announce(account_id)
        return gone

    # -- network behaviour ------------------------------------------------------------------------------------
    def behaviour(self, account_id: str) -> handsets.Behaviour:
        self._need_network()
        return self._behaviours.get(account_id, handsets.NORMAL)

    async def set_behaviour(self, account_id: str, behaviour: handsets.Behaviour) -> None:
        self._need_network()
        await self._store.put_behaviour(account_id, None if behaviour.normal else behaviour.as_json())
        self._set_behaviour(account_id, behaviour)
        await self._announce(account_id)

    def _set_scripts(self, account_id: str, rules: dict[str, tuple[handsets.Rule, ...]]) -> None:
        if self.on_scripts is not None:
            self.on_scripts(account_id, rules)
        self.apply_scripts(account_id, rules)

    def apply_scripts(self, account_id: str, rules: dict[str, tuple[handsets.Rule, ...]]) -> None:
        """An account's scripts (handset -> rules) in this process (``_set_scripts`` also tells the other). Answers
        still waiting from a handset whose script is gone are dropped: on every node, as the change reaches it."""
        for account, msisdn in [k for k in self._replies if k[0] == account_id and k[1] not in rules]:
            self.cancel_replies(account, msisdn)
        if rules:
            self._scripts[account_id] = rules
        else:
            self._scripts.pop(account_id, None)

    def _set_behaviour(self, account_id: str, behaviour: handsets.Behaviour | None) -> None:
        if self.on_behaviour is not None:
            self.on_behaviour(account_id, behaviour)
        self.apply_behaviour(account_id, behaviour)

    def apply_behaviour(self, account_id: str, behaviour: handsets.Behaviour | None) -> None:
        """An account's switches in this process's networks (``_set_behaviour`` also tells the other process)."""
        if behaviour is None or behaviour.normal:
            self._behaviours.pop(account_id, None)
        else:
            self._behaviours[account_id] = behaviour
        for n in self._networks.values():
            n.set_behaviour(account_id, behaviour)

    # -- keeping every node's copy right ------------------------------------------------------------------------
    async def _announce(self, account_id: str) -> None:
        if self._bus is not None:  # the other processes (on PostgreSQL the store's NOTIFY has told them too)
            await self._bus.announce(changes.SANDBOX, account_id)

    def _changed(self, account_id: str | None) -> None:
        self._spawn(self._refresh(account_id), "sandbox-refresh")

    async def _refresh(self, account_id: str | None) -> None:
        """Read an account's scripts and behaviour again (every account's with None)."""
        try:
            scripts = await self._store.scripts(account_id)
            behaviours = await self._store.behaviours(account_id)
        except Exception as exc:
            log.warning("could not read the sandbox scripts and behaviour (%s); keeping what is cached", exc)
            return
        by_account: dict[str, list[store_sandbox.Script]] = {}
        for s in scripts:
            by_account.setdefault(s.account_id, []).append(s)
        accounts = {account_id} if account_id is not None else {*self._scripts, *self._behaviours, *by_account}
        for acc in accounts | set(behaviours):
            raw = behaviours.get(acc)
            await self._apply(acc, scripts=by_account.get(acc, []), behaviour=raw)

    async def _apply(
        self, account_id: str, *, scripts: Sequence[store_sandbox.Script], behaviour: dict[str, Any] | None
    ) -> None:
        rules: dict[str, tuple[handsets.Rule, ...]] = {}
        for s in scripts:
            try:
                rules[s.msisdn] = handsets.parse_rules(s.rules)
            except errors.ValidationError as exc:  # stored by an older version with other limits
                log.warning("sandbox script of %s for a handset is unusable: %s", account_id, exc.message)
        self._set_scripts(account_id, rules)
        switches = None
        if behaviour:
            try:
                switches = handsets.Behaviour.from_json(behaviour)
            except errors.ValidationError as exc:
                log.warning("sandbox behaviour of %s is unusable (%s); the normal network", account_id, exc.message)
        self._set_behaviour(account_id, switches)

    # -- after a submit commits ---------------------------------------------------------------------------------
    def arrived(self, account_id: str) -> None:
        """Another process (the delivery half of a split node) committed a message of the account that a sandbox
        network took: its waiters look now."""
        for event in self._waiting.get(account_id, ()):
            event.set()

    def _after_results(self, _kind: str, items: Sequence[Any], _results: Sequence[Any]) -> None:
        """A message reached a handset when its submit result commits with the message ``submitted``: wake the
        account's waiters, and run the handset's script."""
        if not self._waiting and not self._scripts:
            return
        scripted: dict[str, str] = {}
        for r in items:
            if r.message_status is not core_message.Status.SUBMITTED or r.connector not in self._networks:
                continue
            for event in self._waiting.get(r.account_id, ()):
                event.set()
            if r.account_id in self._scripts:
                scripted[r.message_id] = r.connector
        if scripted:
            self._spawn(self._run_scripts(scripted), "sandbox-scripts")

    async def _run_scripts(self, connectors: dict[str, str]) -> None:
        for msg in await self._store.arrived(list(connectors)):
            rules = self._scripts.get(msg.account_id, {}).get(msg.recipient)
            hit = handsets.respond(rules, msg.text) if rules else None
            if hit is None:
                continue
            rule, text, delay_ms = hit
            key = (msg.account_id, msg.recipient)
            if sum(len(v) for k, v in self._replies.items() if k[0] == msg.account_id) >= MAX_PENDING_REPLIES:
                await self._record(msg, rule, text, "refused", f"more than {MAX_PENDING_REPLIES} answers waiting")
                continue
            waiting = self._replies.setdefault(key, set())
            task = asyncio.create_task(
                self._answer(self._networks[connectors[msg.message_id]], msg, rule, text, delay_ms),
                name="sandbox-script-reply",
            )
            waiting.add(task)
            task.add_done_callback(functools.partial(self._reply_done, key))

    async def _answer(self, network: Network, msg: store_sandbox.Arrived, rule: int, text: str, delay_ms: int) -> None:
        if delay_ms:
            await asyncio.sleep(delay_ms / 1000)
        try:
            if await self._owners.of_address(msg.sender) != msg.account_id:
                # else a script could put words in another account's inbox, as a typed reply could
                await self._record(
                    msg,
                    rule,
                    text,
                    "refused",
                    f"the handset answers the sender {msg.sender}, which is not a number (or reserved name) "
                    "your account owns",
                )
                return
            parts = await network.reply(msg.recipient, msg.sender, text)
            await self._record(msg, rule, text, "sent", None, parts=parts)
        except Exception:
            log.exception("sandbox script of %s could not answer", msg.account_id)

    async def _record(
        self, msg: store_sandbox.Arrived, rule: int, text: str, status: str, reason: str | None, **extra: Any
    ) -> None:
        run = {"at": time.time(), "message_id": msg.message_id, "rule": rule, "to": msg.sender, "reply": text}
        run.update(status=status, **extra)
        if reason is not None:
            run["reason"] = reason
            log.info("sandbox script of %s did not answer: %s", msg.account_id, reason)
        await self._store.record_run(msg.account_id, msg.recipient, run)

    def _reply_done(self, key: tuple[str, str], task: asyncio.Task[None]) -> None:
        waiting = self._replies.get(key)
        if waiting is not None:
            waiting.discard(task)
            if not waiting:
                self._replies.pop(key, None)

    def _cancel_replies(self, account_id: str, msisdn: str | None) -> None:
        if self.on_cancel is not None:
            self.on_cancel(account_id, msisdn)
        self.cancel_replies(account_id, msisdn)

    def cancel_replies(self, account_id: str, msisdn: str | None) -> None:
        """Drop the scripted answers waiting for their delay in this process (an account's, or one handset's)."""
        for key, tasks in list(self._replies.items()):
            if key[0] == account_id and (msisdn is None or key[1] == msisdn):
                for t in tasks:
                    t.cancel()

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.create_task(self._logged(coro), name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @staticmethod
    async def _logged(coro: Coroutine[Any, Any, None]) -> None:
        try:
            await coro
        except Exception:
            log.exception("sandbox control task failed")

    def _need_network(self) -> None:
        if not self._networks:
            raise errors.NotFound("the sandbox network is not configured on this gateway")
