"""What the ``smsgate`` sub-commands share: the ``--config``/``--json`` options, amounts, account lookup, the
account-settings options, and running a coroutine against the migrated store with errors as one red line."""

from __future__ import annotations

import asyncio
import functools
import inspect
import pathlib
from collections.abc import Awaitable, Callable
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar

import typer
from rich.console import Console
from sqlalchemy.ext.asyncio import AsyncEngine

from smsgate import changes, errors, limits
from smsgate import settings as settings_mod
from smsgate.core import accounts as core_accounts
from smsgate.core import pricing
from smsgate.store import accounts as store_accounts
from smsgate.store import engine as store_engine
from smsgate.store import migrate as store_migrate

console = Console()
T = TypeVar("T")

ConfigOpt = typer.Option(
    None, "--config", "-c", help="TOML config file (also SMSGATE_CONFIG)", exists=True, dir_okay=False
)
JsonOpt = typer.Option(False, "--json", help="print JSON")
AccountArg = typer.Argument(..., help="account id or api_key")


def load_settings(config: pathlib.Path | None, **overrides: Any) -> settings_mod.Settings:
    return settings_mod.load(config, **overrides)


def run_store(config: pathlib.Path | None, fn: Callable[[AsyncEngine], Awaitable[T]]) -> T:
    """Run ``fn`` on a migrated engine; a gateway error (no such account, ...) is one red line and exit 1."""
    s = load_settings(config)

    async def run() -> T:
        store_engine.prepare_sqlite(s.effective_database_url)
        engine = store_engine.create(s.effective_database_url, sqlite_synchronous=s.sqlite_synchronous)
        try:
            await store_migrate.upgrade(engine)
            return await fn(engine)
        finally:
            await engine.dispose()

    try:
        return asyncio.run(run())
    except errors.SmsgateError as exc:
        console.print(f"[red]{exc.message}[/red]")
        raise typer.Exit(1) from None


def announce(config: pathlib.Path | None, topic: str, key: str) -> None:
    """Tell running gateways that ``topic:key`` changed (on PostgreSQL the store's NOTIFY already has): through Redis
    when one is configured. Without either they see it when their cache expires (``SMSGATE_CACHE_SECONDS``)."""
    s = load_settings(config)
    if not s.redis_url:
        return

    async def run() -> None:
        client = limits.redis_client(s.redis_url or "")
        try:
            await changes.publish(client, f"{s.redis_prefix}changes", f"{topic}:{key}")
        finally:
            await client.aclose()

    asyncio.run(run())


async def find_account(accounts: store_accounts.AccountStore, ref: str) -> core_accounts.Account:
    """The account with this id or api_key; NotFound otherwise."""
    acc = await accounts.find(ref)
    if acc is None:
        raise errors.NotFound(f"no account {ref}")
    return acc


def money(raw: str) -> int:
    """An amount typed by the operator ("25.00") in price units."""
    try:
        return pricing.to_units(Decimal(raw))
    except InvalidOperation:
        raise typer.BadParameter(f"not an amount: {raw}") from None


# -- the account-settings options (create and set) ------------------------------------------------------------
def _option(name: str, kind: Any, flag: str, help: str) -> inspect.Parameter:
    return inspect.Parameter(
        name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=typer.Option(None, flag, help=help), annotation=kind
    )


_SETTINGS_OPTIONS = (
    _option("default_sender", str | None, "--default-sender", "sender used when a request gives none"),
    _option("quota_limit", int | None, "--quota-limit", "sends per quota window (-1: unlimited)"),
    _option("quota_interval", int | None, "--quota-interval", "length of the quota window, in units"),
    _option("quota_unit", str | None, "--quota-unit", "minute, hour, day, week or month"),
    _option("balance", str | None, "--balance", "account credit, e.g. 25.00"),
    _option("level", str | None, "--level", "demo or prod (the token's level)"),
    _option("allowed_countries", str | None, "--allowed-countries", "comma-separated ISO codes, e.g. NL,BE"),
    _option(
        "allowed_senders", str | None, "--allowed-senders", "comma-separated senders it may use ('' = any it owns)"
    ),
    _option("sandbox_only", bool | None, "--sandbox-only/--no-sandbox-only", "send through sandbox connectors only"),
    _option(
        "allow_sim_messages",
        bool | None,
        "--allow-sim-messages/--no-allow-sim-messages",
        "may send silent (protocol-id 64), SIM data download (127) and class-2 binary messages",
    ),
)


def _settings_from_options(
    default_sender: str | None,
    quota_limit: int | None,
    quota_interval: int | None,
    quota_unit: str | None,
    balance: str | None,
    level: str | None,
    allowed_countries: str | None,
    allowed_senders: str | None,
    sandbox_only: bool | None,
    allow_sim_messages: bool | None,
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if default_sender is not None:
        out["default_sender"] = default_sender
    if quota_limit is not None:
        out["quota_limit"] = quota_limit if quota_limit >= 0 else None
    if quota_interval is not None:
        out["quota_interval"] = quota_interval
    if quota_unit is not None:
        if quota_unit not in core_accounts.QUOTA_UNITS:
            raise typer.BadParameter(f"quota unit must be one of {', '.join(core_accounts.QUOTA_UNITS)}")
        out["quota_unit"] = quota_unit
    if balance is not None:
        out["balance"] = money(balance)
    if level is not None:
        if level not in ("demo", "prod"):
            raise typer.BadParameter("level must be demo or prod")
        out["level"] = level
    if allowed_countries is not None:
        out["allowed_countries"] = [c.strip().upper() for c in allowed_countries.split(",") if c.strip()] or None
    if allowed_senders is not None:
        out["allowed_senders"] = [x.strip() for x in allowed_senders.split(",") if x.strip()] or None
    if sandbox_only is not None:
        out["sandbox_only"] = sandbox_only
    if allow_sim_messages is not None:
        out["allow_sim_messages"] = allow_sim_messages
    return out


def account_settings_options(command: Callable[..., None]) -> Callable[..., None]:
    """Add the account-settings options to ``command`` (just before its ``--config``) and pass them, checked,
    as the keyword ``changes`` (only those given). Typer reads options from a signature, hence the splice."""
    params = [p for p in inspect.signature(command, eval_str=True).parameters.values() if p.name != "changes"]
    at = next((i for i, p in enumerate(params) if p.name == "config"), len(params))
    params[at:at] = _SETTINGS_OPTIONS

    @functools.wraps(command)
    def with_options(**kwargs: Any) -> None:
        raw = {p.name: kwargs.pop(p.name) for p in _SETTINGS_OPTIONS}
        command(**kwargs, changes=_settings_from_options(**raw))

    with_options.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    return with_options
