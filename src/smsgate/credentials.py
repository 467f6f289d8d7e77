"""Who is calling: an account from its key and secret or from a token, kept off the database for most requests by
small caches, and kept honest by credential generations.

Revocation without a query per request: an account row carries ``credential_gen``, raised by a secret rotation and
by a disable (``store.accounts``), and each token row the generation it was minted under. A token is good while
its account is active and the generations match. The token itself is cached for its lifetime, the account for
``SMSGATE_CACHE_SECONDS`` (5); so a rotation or disable made by any process (the CLI included) holds here within 5 s, and at
once when its signal arrives (``changes``: PostgreSQL NOTIFY, Redis, or this process's own change).

The token endpoint hands a client's live token out again (while at least half of its lifetime is left) rather
than writing a row per call.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Awaitable, Callable

from smsgate import caches, errors, logs
from smsgate.core import accounts as core_accounts
from smsgate.store import accounts as store_accounts

CACHE_SECONDS = 5.0
TOKEN_GRACE = 60.0  # a token is cached this long past its expiry, so it is refused as expired without a query


class Credentials:
    def __init__(
        self, accounts: store_accounts.AccountStore, *, token_ttl: float, cache_seconds: float = CACHE_SECONDS
    ) -> None:
        self._accounts = accounts
        self._token_ttl = token_ttl
        self._cache_seconds = cache_seconds
        self._logins: caches.Expiring[tuple[str, str], core_accounts.Account] = caches.Expiring(10_000)
        # token hash -> (account, expires_at, generation), kept a minute past its expiry ("expired", not "unknown")
        self._tokens: caches.Expiring[str, tuple[str, float, int]] = caches.Expiring(100_000)
        self._cached: caches.Expiring[str, core_accounts.Account] = caches.Expiring(100_000)
        # account -> its live token (token, issued_at, expires_at, generation), while half its lifetime is left
        self._live: caches.Expiring[str, tuple[str, float, float, int]] = caches.Expiring(100_000)
        # the one read under way per missed entry (``_read_once``); changes seen (a read across one is not cached)
        self._loading: dict[tuple[str, ...], asyncio.Future[core_accounts.Account | None]] = {}
        self._changes = 0

    # -- key and secret --------------------------------------------------------------------------------------
    def cached_login(self, api_key: str, secret: str) -> core_accounts.Account | None:
        """The account if this very pair was verified in the last few seconds (no limiter needed: it is right)."""
        hit = self._logins.get((api_key, _digest(secret)))
        if hit is None:
            return None
        logs.current_account.set(hit.id)  # the request acts for it (the access line names it)
        return hit

    async def authenticate(self, api_key: str, secret: str) -> core_accounts.Account:
        """The active account for this pair; AuthError when the pair is wrong (the same whether the key exists or
        not), AccountDisabled when it is right but the account is off."""
        acc = self.cached_login(api_key, secret)
        if acc is None:
            pair = (api_key, _digest(secret))
            found = await self._read_once(("login", *pair), lambda: self._accounts.verify(api_key, secret),
                                          lambda acc: self._logins.put(pair, acc, self._cache_seconds))  # fmt: skip
            if found is None:
                raise errors.AuthError()
            acc = found
        if not acc.active:
            raise errors.AccountDisabled()
        logs.current_account.set(acc.id)
        return acc

    # -- tokens ----------------------------------------------------------------------------------------------
    async def issue_token(self, account: core_accounts.Account) -> tuple[str, float, float]:
        """(token, issued_at, seconds left): the client's live token while half its lifetime is left, else a new one."""
        now = time.time()
        live = self._live.get(account.id)
        if live is not None and live[3] == account.credential_gen and live[2] - now >= self._token_ttl / 2:
            return live[0], live[1], live[2] - now
        token, issued = await self._accounts.issue_token(account.id, self._token_ttl, account.credential_gen)
        expires = issued + self._token_ttl
        self._live.put(account.id, (token, issued, expires, account.credential_gen), self._token_ttl / 2)
        self._remember_token(store_accounts.hash_token(token), (account.id, expires, account.credential_gen))
        return token, issued, self._token_ttl

    def _remember_token(self, key: str, owner: tuple[str, float, int]) -> None:
        self._tokens.put(key, owner, max(0.0, owner[1] - time.time()) + TOKEN_GRACE)

    async def account_for_token(self, token: str) -> core_accounts.Account:
        key = store_accounts.hash_token(token)
        hit = self._tokens.get(key)
        if hit is None:
            owner = await self._accounts.token_owner(token)
            if owner is None:
                raise errors.TokenError("Invalid access token")
            hit = owner
            self._remember_token(key, hit)
        account_id, expires_at, generation = hit
        if time.time() >= expires_at:
            raise errors.TokenError("Access Token expired", expired=True)
        acc = await self.account(account_id)
        if acc is None or not acc.active or acc.credential_gen != generation:
            raise errors.TokenError("Invalid access token")  # revoked: secret rotated or account disabled
        logs.current_account.set(acc.id)
        return acc

    # -- accounts --------------------------------------------------------------------------------------------
    async def account(self, account_id: str) -> core_accounts.Account | None:
        hit = self._cached.get(account_id)
        if hit is not None:
            return hit
        return await self._read_once(("account", account_id), lambda: self._accounts.get(account_id),
                                     lambda acc: self._cached.put(account_id, acc, self._cache_seconds))  # fmt: skip

    async def _read_once(
        self,
        key: tuple[str, ...],
        read: Callable[[], Awaitable[core_accounts.Account | None]],
        keep: Callable[[core_accounts.Account], None],
    ) -> core_accounts.Account | None:
        """``read()``, once for every request that misses the same cache entry at the same time: when a busy
        account's entry expired, its concurrent sends (20 on the bench) each read the row, a connection and a query
        apiece (~1.5 % of a send's CPU); they now share one read. ``keep`` caches what it found, unless an account
        changed while it was read (``forget``): its callers get it, the cache does not."""
        loading = self._loading.get(key)
        if loading is None:

            async def load() -> core_accounts.Account | None:
                changes = self._changes
                try:
                    acc = await read()
                finally:
                    if self._loading.get(key) is asyncio.current_task():
                        del self._loading[key]
                if acc is not None and changes == self._changes:
                    keep(acc)
                return acc

            loading = asyncio.ensure_future(load())
            self._loading[key] = loading
        return await asyncio.shield(loading)  # one caller's cancellation does not cancel the others' read

    def forget(self, account_id: str | None) -> None:
        """Drop what is cached about an account (None: about every account) whose settings or secret changed;
        its tokens are then checked against the fresh generation."""
        self._changes += 1
        self._loading.clear()  # reads begun before the change: their waiters get them, later callers read again
        if account_id is None:
            self._logins.clear()
            self._cached.clear()
            self._live.clear()
            return
        self._cached.pop(account_id)
        self._live.pop(account_id)
        self._logins.drop(lambda v: v.id != account_id)


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()
