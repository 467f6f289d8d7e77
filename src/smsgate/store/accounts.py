"""Accounts, their hashed secrets and OAuth2 tokens.

Secrets and tokens are random and long (≥ 160 bits), so a salted HMAC-SHA256 is as safe as a slow KDF
against guessing and keeps per-request Basic auth cheap (docs/decisions.md).
"""

from __future__ import annotations

import builtins
import hashlib
import hmac
import secrets
import time
from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from smsgate import errors
from smsgate.core import accounts as core_accounts
from smsgate.store import fastsql, notify, tables

_SETTABLE = {
    "name",
    "status",
    "level",
    "default_sender",
    "may_choose_sender",
    "allowed_senders",
    "allowed_countries",
    "demo_allowlist",
    "blocked_prefixes",
    "quota_limit",
    "quota_interval",
    "quota_unit",
    "rate_limit_tps",
    "balance",
    "signature_secret",
    "signature_method",
    "sign_webhooks",
    "receipt_url",
    "inbound_url",
    "webhook_method",
    "webhook_format",
    "sandbox_only",
    "allow_sim_messages",
    "stop_keywords",
    "start_keywords",
    "optout_reply",
    "retention_days",
    "content_retention_days",
    "default_priority",
}


def hash_secret(salt: str, secret: str) -> str:
    return hmac.new(salt.encode(), secret.encode(), hashlib.sha256).hexdigest()


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def from_row(row: Mapping[Any, Any]) -> core_accounts.Account:  # a RowMapping's keys may be columns too
    fields = {f for f in core_accounts.Account.__dataclass_fields__}
    return core_accounts.Account(**{k: v for k, v in row.items() if k in fields})


async def load(conn: AsyncConnection, account_id: str) -> core_accounts.Account | None:
    """Inside a transaction: the account as it sees it (the inbound path reads its opt-out keywords)."""
    row = (await conn.execute(sa.select(tables.accounts).where(tables.accounts.c.id == account_id))).first()
    return from_row(row._mapping) if row else None


class AccountStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def create(
        self, name: str, *, api_key: str | None = None, secret: str | None = None, **settings: Any
    ) -> tuple[core_accounts.Account, str]:
        """A new account and its secret (returned once; only its hash is kept).

        ``api_key``/``secret`` are only given for the sandbox's well-known demo account.
        """
        unknown = set(settings) - _SETTABLE - {"parent_id"}
        if unknown:
            raise ValueError(f"unknown account settings: {sorted(unknown)}")
        secret = secret or secrets.token_urlsafe(24)
        salt = secrets.token_hex(16)
        fixed_key = api_key
        async with self._engine.begin() as conn:
            for _ in range(10):
                api_key = fixed_key or secrets.token_hex(4)
                exists = await conn.scalar(sa.select(tables.accounts.c.id).where(tables.accounts.c.api_key == api_key))
                if exists is None:
                    break
            else:  # pragma: no cover - 2**32 keys
                raise RuntimeError("could not find a free api_key")
            parent_id = settings.get("parent_id")
            if parent_id is not None:
                await _check_parent(conn, parent_id, name)
            row = {
                "id": "acc_" + secrets.token_hex(8),
                "name": name,
                "api_key": api_key,
                "secret_salt": salt,
                "secret_hash": hash_secret(salt, secret),
                "created_at": time.time(),
                **settings,
            }
            await conn.execute(tables.accounts.insert().values(**row))
            created = (await conn.execute(sa.select(tables.accounts).where(tables.accounts.c.id == row["id"]))).one()
        return from_row(created._mapping), secret

    async def get(self, account_id: str) -> core_accounts.Account | None:
        async with self._engine.connect() as conn:
            row = (await conn.execute(sa.select(tables.accounts).where(tables.accounts.c.id == account_id))).first()
        return from_row(row._mapping) if row else None

    async def find(self, id_or_key: str) -> core_accounts.Account | None:
        c = tables.accounts.c
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(sa.select(tables.accounts).where(sa.or_(c.id == id_or_key, c.api_key == id_or_key)))
            ).first()
        return from_row(row._mapping) if row else None

    async def named(self, name: str) -> list[core_accounts.Account]:
        """Accounts with this name (names are labels, not unique: the CLI refuses an ambiguous one)."""
        async with self._engine.connect() as conn:
            rows = (await conn.execute(sa.select(tables.accounts).where(tables.accounts.c.name == name))).all()
        return [from_row(r._mapping) for r in rows]

    async def child(self, parent_id: str, name: str) -> core_accounts.Account | None:
        """The parent's sub-account of this name (names are unique among one parent's sub-accounts)."""
        c = tables.accounts.c
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(sa.select(tables.accounts).where(c.parent_id == parent_id, c.name == name))
            ).first()
        return from_row(row._mapping) if row else None

    async def list(self) -> list[core_accounts.Account]:
        async with self._engine.connect() as conn:
            rows = (await conn.execute(sa.select(tables.accounts).order_by(tables.accounts.c.created_at))).all()
        return [from_row(r._mapping) for r in rows]

    async def count(self) -> int:
        async with self._engine.connect() as conn:
            return int(await conn.scalar(sa.select(sa.func.count()).select_from(tables.accounts)) or 0)

    async def sandbox_only_keys(self) -> builtins.list[str]:
        """api_keys of the active sandbox-only (demo) accounts."""
        a = tables.accounts.c
        async with self._engine.connect() as conn:
            return list((await conn.scalars(sa.select(a.api_key).where(a.sandbox_only, a.status == "active"))).all())

    async def update(self, account_id: str, **settings: Any) -> core_accounts.Account:
        """Change settings; disabling also revokes every token (they stay dead if the account is enabled again)."""
        unknown = set(settings) - _SETTABLE
        if unknown:
            raise ValueError(f"unknown account settings: {sorted(unknown)}")
        a = tables.accounts
        async with self._engine.begin() as conn:
            values = dict(settings)
            if settings.get("status", "active") != "active":
                values["credential_gen"] = a.c.credential_gen + 1
                await conn.execute(tables.tokens.delete().where(tables.tokens.c.account_id == account_id))
            res = await conn.execute(a.update().where(a.c.id == account_id).values(**values))
            if res.rowcount == 0:
                raise errors.NotFound("no such account")
            await notify.notify_change(conn, notify.ACCOUNT, account_id)
        acc = await self.get(account_id)
        assert acc is not None
        return acc

    async def rotate_secret(self, account_id: str) -> str:
        """A new secret; the old one and every token of the account stop working (a new credential generation)."""
        secret = secrets.token_urlsafe(24)
        salt = secrets.token_hex(16)
        a = tables.accounts
        async with self._engine.begin() as conn:
            res = await conn.execute(
                a.update()
                .where(a.c.id == account_id)
                .values(secret_salt=salt, secret_hash=hash_secret(salt, secret), credential_gen=a.c.credential_gen + 1)
            )
            if res.rowcount == 0:
                raise errors.NotFound("no such account")
            await conn.execute(tables.tokens.delete().where(tables.tokens.c.account_id == account_id))
            await notify.notify_change(conn, notify.ACCOUNT, account_id)
        return secret

    async def verify(self, api_key: str, secret: str) -> core_accounts.Account | None:
        """The account if the pair matches (constant-time compare), else None."""
        async with self._engine.connect() as conn:
            row = (await conn.execute(sa.select(tables.accounts).where(tables.accounts.c.api_key == api_key))).first()
        if row is None:
            hash_secret("x" * 32, secret)  # same work as a real check: no timing oracle for unknown keys
            return None
        m = row._mapping
        if not hmac.compare_digest(hash_secret(m["secret_salt"], secret), m["secret_hash"]):
            return None
        return from_row(m)

    async def issue_token(self, account_id: str, ttl: float, generation: int) -> tuple[str, float]:
        """A new token under the account's credential ``generation`` (it dies when that is raised)."""
        token = secrets.token_urlsafe(21)
        now = time.time()
        async with self._engine.begin() as conn:
            await conn.execute(
                tables.tokens.insert().values(
                    token_hash=hash_token(token),
                    account_id=account_id,
                    issued_at=now,
                    expires_at=now + ttl,
                    generation=generation,
                )
            )
            # expired tokens are worthless: prune them as we go
            await conn.execute(tables.tokens.delete().where(tables.tokens.c.expires_at < now - 3600))
        return token, now

    async def token_owner(self, token: str) -> tuple[str, float, int] | None:
        """(account_id, expires_at, generation) of a token, expired or not; None if unknown."""
        t = tables.tokens.c
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(
                    sa.select(t.account_id, t.expires_at, t.generation).where(t.token_hash == hash_token(token))
                )
            ).first()
        return (row[0], row[1], row[2]) if row else None


async def _check_parent(conn: AsyncConnection, parent_id: str, name: str) -> None:
    """A sub-account's parent exists and is not itself a sub-account (one level: who pays stays obvious), and no
    sibling has the name (it addresses the sub-account in KPN's ``SubAccount`` header)."""
    c = tables.accounts.c
    parent = (await conn.execute(sa.select(c.id, c.parent_id).where(c.id == parent_id))).first()
    if parent is None:
        raise errors.NotFound("no such parent account")
    if parent.parent_id is not None:
        raise errors.ValidationError("a sub-account cannot have sub-accounts of its own")
    taken = await conn.scalar(sa.select(c.id).where(c.parent_id == parent_id, c.name == name))
    if taken is not None:
        raise errors.ValidationError(f"the parent already has a sub-account named {name!r}")


async def balances(conn: AsyncConnection, account_ids: Sequence[str], *, lock: bool) -> dict[str, int]:
    a = tables.accounts
    pg_lock = lock and conn.dialect.name == "postgresql"

    def build(binds: list[sa.BindParameter[Any]]) -> Any:
        q = sa.select(a.c.id, a.c.balance).where(a.c.id.in_(binds))
        return q.with_for_update() if pg_lock else q

    rows = await fastsql.fetch_in(conn, f"balances:{pg_lock}", build, account_ids)
    return {r["id"]: r["balance"] for r in rows}
