"""``Idempotency-Key`` on every send endpoint: a retried request gets the first one's answer, byte for byte.

The answer is stored in the accept transaction of its message (``store.idempotency.claim`` through
``sending.Reply``), so a crash between that commit and the reply still leaves it to replay. Only 2xx answers are
stored: a refused request may be retried with the same key. Per key, three cases:

* a kept answer with the same fingerprint: replayed (``Idempotent-Replayed: true``), nothing is sent again;
* a kept answer with another fingerprint: ``IdempotencyKeyReused`` (each dialect's 400-class error, our 422);
* none: this request sends. A second request with the key on this node meanwhile waits for it (an in-process
  future per key) and then replays; one on another node (PostgreSQL) loses the insert of the key inside its accept
  transaction (``IdempotencyKeyTaken``, nothing of it is written) and replays the winner's committed answer.

The key is not looked up first: a request with a new key (nearly all of them) just sends, and the insert of its
key in the accept transaction is the check (a lookup through the async driver cost ~450 µs and multiplied the
latency under load, ``bench/bench_idempotency.py``). Only when the send is refused, by that insert or by anything
else (a retry after the quota was used up must still get its answer), is the kept answer read. A replay therefore
goes through the send's checks first: its quota is given back, but it takes a rate-limit token.

A request without the header never comes here: no lookup, no cost.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from smsgate import errors
from smsgate.core import idempotency as core_idempotency
from smsgate.store import idempotency as store_idempotency

log = logging.getLogger(__name__)
Send = Callable[[], Awaitable[core_idempotency.StoredResponse]]


class Idempotency:
    def __init__(self, store: store_idempotency.IdempotencyStore, *, kept_seconds: float) -> None:
        self._store = store
        self._kept = kept_seconds
        self._running: dict[tuple[str, str], asyncio.Future[None]] = {}

    async def once(
        self, account_id: str, key: str, fingerprint: str, send: Send
    ) -> tuple[core_idempotency.StoredResponse, bool]:
        """(the answer, whether it is a replay). ``send`` performs the request with a ``sending.Reply`` for this
        key and fingerprint, and returns the answer that was stored with its message."""
        slot = (account_id, key)
        waited = False
        while (running := self._running.get(slot)) is not None:
            await asyncio.shield(running)  # a request with this key is under way here: its answer decides
            waited = True
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._running[slot] = done  # no await since the loop saw the slot free: this request leads now
        try:
            if waited:  # the one before most likely stored it
                kept = await self._kept_answer(account_id, key, fingerprint)
                if kept is not None:
                    return kept, True
            try:
                return await send(), False
            except errors.IdempotencyKeyTaken:
                log.info("Idempotency-Key of account %s was stored first by another request; replaying", account_id)
                refusal: errors.SmsgateError = errors.StoreUnavailable("the Idempotency-Key is being stored; retry")
            except errors.SmsgateError as exc:  # a retry the send refuses now (its quota used up since, say)
                refusal = exc
            kept = await self._kept_answer(account_id, key, fingerprint)
            if kept is None:
                raise refusal
            return kept, True
        finally:
            del self._running[slot]
            done.set_result(None)

    async def _kept_answer(self, account_id: str, key: str, fingerprint: str) -> core_idempotency.StoredResponse | None:
        kept = await self._store.get(account_id, key, since=time.time() - self._kept)
        if kept is None:
            return None
        if kept.fingerprint != fingerprint:
            raise errors.IdempotencyKeyReused(
                "this Idempotency-Key was used with a different request; use a new key for a new request"
            ).at("Idempotency-Key")
        return kept.response
