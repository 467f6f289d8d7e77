"""The ``smsgate`` command: serve, migrate, accounts, and the SMSC simulator. Every command reads the same
settings as ``serve`` (environment ``SMSGATE_*`` and ``--config FILE``)."""

from __future__ import annotations

import asyncio
import json
import logging
import pathlib
from collections.abc import Awaitable, Callable
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from smsgate import settings as settings_mod
from smsgate.core import accounts as core_accounts
from smsgate.core import pricing
from smsgate.store import accounts as store_accounts
from smsgate.store import engine as store_engine
from smsgate.store import migrate as store_migrate

app = typer.Typer(help="smsgate: a self-hostable SMS API gateway", no_args_is_help=True)
accounts_app = typer.Typer(help="Manage accounts (API credentials, quota, sender, balance)", no_args_is_help=True)
app.add_typer(accounts_app, name="accounts")
console = Console()
T = TypeVar("T")

ConfigOpt = typer.Option(
    None, "--config", "-c", help="TOML config file (also SMSGATE_CONFIG)", exists=True, dir_okay=False
)


def _settings(config: pathlib.Path | None, **overrides: Any) -> settings_mod.Settings:
    return settings_mod.load(config, **overrides)


def _with_store(config: pathlib.Path | None, fn: Callable[[store_accounts.AccountStore], Awaitable[T]]) -> T:
    s = _settings(config)

    async def run() -> T:
        if s.is_sqlite:
            s.data_dir.mkdir(parents=True, exist_ok=True)
        engine = store_engine.create(s.effective_database_url, sqlite_synchronous=s.sqlite_synchronous)
        try:
            await store_migrate.upgrade(engine)
            return await fn(store_accounts.AccountStore(engine))
        finally:
            await engine.dispose()

    return asyncio.run(run())


@app.command()
def serve(
    host: str = typer.Option(None, help="listen address (default 127.0.0.1)"),
    port: int = typer.Option(None, help="listen port (default 8080)"),
    config: pathlib.Path | None = ConfigOpt,
    log_level: str = typer.Option("info", help="debug, info, warning, error"),
    workers: int = typer.Option(1, help="node processes sharing the port (needs PostgreSQL and Redis)"),
) -> None:
    """Run the gateway: HTTP APIs, dispatcher, connectors."""
    from smsgate import server

    s = _settings(config, host=host, port=port)
    problem = server.workers_problem(s, workers)
    if problem is not None:
        typer.echo(f"Error: {problem}", err=True)
        raise typer.Exit(2)
    if workers > 1:
        raise typer.Exit(server.serve_workers(s, workers, log_level=log_level.upper()))
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(server.serve(s, banner=typer.echo))


@app.command(
    "smsc-sim", add_help_option=False, context_settings={"allow_extra_args": True, "ignore_unknown_options": True}
)
def smsc_sim(ctx: typer.Context) -> None:
    """Run the SMSC simulator (SMPP v3.4 server for tests and demos); --help for its options."""
    from smsgate.sim import smsc

    smsc.main(list(ctx.args))


@app.command()
def migrate(config: pathlib.Path | None = ConfigOpt) -> None:
    """Apply the database migrations (``serve`` does this too)."""

    async def noop(_store: store_accounts.AccountStore) -> None:
        return None

    _with_store(config, noop)
    console.print("database is up to date")


def _money(raw: str | None) -> int | None:
    if raw is None:
        return None
    try:
        return pricing.to_units(Decimal(raw))
    except InvalidOperation:
        raise typer.BadParameter(f"not an amount: {raw}") from None


def _account_json(a: core_accounts.Account) -> dict[str, Any]:
    return {
        "account_id": a.id,
        "name": a.name,
        "api_key": a.api_key,
        "status": a.status,
        "level": a.level,
        "default_sender": a.default_sender,
        "quota": {"limit": a.quota_limit, "interval": a.quota_interval, "unit": a.quota_unit},
        "balance": pricing.format_amount(pricing.from_units(a.balance)),
    }


def _settings_from_options(
    default_sender: str | None,
    quota_limit: int | None,
    quota_interval: int | None,
    quota_unit: str | None,
    balance: str | None,
    level: str | None,
    allowed_countries: str | None,
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
        out["balance"] = _money(balance)
    if level is not None:
        if level not in ("demo", "prod"):
            raise typer.BadParameter("level must be demo or prod")
        out["level"] = level
    if allowed_countries is not None:
        out["allowed_countries"] = [c.strip().upper() for c in allowed_countries.split(",") if c.strip()] or None
    return out


SenderOpt = typer.Option(None, "--default-sender", help="sender used when a request gives none")
QuotaOpt = typer.Option(None, "--quota-limit", help="sends per quota window (-1: unlimited)")
IntervalOpt = typer.Option(None, "--quota-interval", help="length of the quota window, in units")
UnitOpt = typer.Option(None, "--quota-unit", help="minute, hour, day, week or month")
BalanceOpt = typer.Option(None, "--balance", help="account credit, e.g. 25.00")
LevelOpt = typer.Option(None, "--level", help="demo or prod (the token's level)")
CountriesOpt = typer.Option(None, "--allowed-countries", help="comma-separated ISO codes, e.g. NL,BE")


@accounts_app.command("create")
def accounts_create(
    name: str,
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
    default_sender: str | None = SenderOpt,
    quota_limit: int | None = QuotaOpt,
    quota_interval: int | None = IntervalOpt,
    quota_unit: str | None = UnitOpt,
    balance: str | None = BalanceOpt,
    level: str | None = LevelOpt,
    allowed_countries: str | None = CountriesOpt,
    config: pathlib.Path | None = ConfigOpt,
) -> None:
    """Create an account; its api_secret is shown once."""
    opts = _settings_from_options(
        default_sender, quota_limit, quota_interval, quota_unit, balance, level, allowed_countries
    )
    if "balance" not in opts:
        opts["balance"] = _money(_settings(config).default_balance)

    async def run(store: store_accounts.AccountStore) -> tuple[core_accounts.Account, str]:
        return await store.create(name, **opts)

    acc, secret = _with_store(config, run)
    data = {**_account_json(acc), "api_secret": secret}
    if as_json:
        typer.echo(json.dumps(data))
        return
    console.print(f"[bold]account[/bold] {acc.id} ({acc.name})")
    console.print(f"  api_key     {acc.api_key}")
    console.print(f"  api_secret  {secret}   [dim](shown once; only its hash is stored)[/dim]")


@accounts_app.command("list")
def accounts_list(as_json: bool = typer.Option(False, "--json"), config: pathlib.Path | None = ConfigOpt) -> None:
    """List accounts (never their secrets)."""
    accs = _with_store(config, lambda s: s.list())
    if as_json:
        typer.echo(json.dumps([_account_json(a) for a in accs]))
        return
    table = Table("id", "name", "api_key", "status", "level", "sender", "quota", "balance")
    for a in accs:
        quota = f"{a.quota_limit}/{a.quota_interval} {a.quota_unit}" if a.quota_limit is not None else "unlimited"
        table.add_row(
            a.id,
            a.name,
            a.api_key,
            a.status,
            a.level,
            a.default_sender or "",
            quota,
            pricing.format_amount(pricing.from_units(a.balance)),
        )
    console.print(table)


def _require(acc: core_accounts.Account | None, ref: str) -> core_accounts.Account:
    if acc is None:
        console.print(f"[red]no account {ref}[/red]")
        raise typer.Exit(1)
    return acc


@accounts_app.command("disable")
def accounts_disable(
    account: str = typer.Argument(..., help="account id or api_key"), config: pathlib.Path | None = ConfigOpt
) -> None:
    """Disable an account: its credentials and tokens stop working."""

    async def run(store: store_accounts.AccountStore) -> core_accounts.Account:
        acc = _require(await store.find(account), account)
        return await store.update(acc.id, status="disabled")

    acc = _with_store(config, run)
    console.print(f"account {acc.id} disabled")


@accounts_app.command("enable")
def accounts_enable(
    account: str = typer.Argument(..., help="account id or api_key"), config: pathlib.Path | None = ConfigOpt
) -> None:
    """Enable a disabled account."""

    async def run(store: store_accounts.AccountStore) -> core_accounts.Account:
        acc = _require(await store.find(account), account)
        return await store.update(acc.id, status="active")

    acc = _with_store(config, run)
    console.print(f"account {acc.id} enabled")


@accounts_app.command("rotate-secret")
def accounts_rotate(
    account: str = typer.Argument(..., help="account id or api_key"),
    as_json: bool = typer.Option(False, "--json"),
    config: pathlib.Path | None = ConfigOpt,
) -> None:
    """Issue a new api_secret (the old one and its tokens stop working)."""

    async def run(store: store_accounts.AccountStore) -> tuple[core_accounts.Account, str]:
        acc = _require(await store.find(account), account)
        return acc, await store.rotate_secret(acc.id)

    acc, secret = _with_store(config, run)
    if as_json:
        typer.echo(json.dumps({"account_id": acc.id, "api_key": acc.api_key, "api_secret": secret}))
    else:
        console.print(f"new api_secret for {acc.api_key}: {secret}")


@accounts_app.command("set")
def accounts_set(
    account: str = typer.Argument(..., help="account id or api_key"),
    default_sender: str | None = SenderOpt,
    quota_limit: int | None = QuotaOpt,
    quota_interval: int | None = IntervalOpt,
    quota_unit: str | None = UnitOpt,
    balance: str | None = BalanceOpt,
    level: str | None = LevelOpt,
    allowed_countries: str | None = CountriesOpt,
    config: pathlib.Path | None = ConfigOpt,
) -> None:
    """Change an account's settings: quota, default sender, balance, level, countries."""
    opts = _settings_from_options(
        default_sender, quota_limit, quota_interval, quota_unit, balance, level, allowed_countries
    )
    if not opts:
        raise typer.BadParameter("nothing to change")

    async def run(store: store_accounts.AccountStore) -> core_accounts.Account:
        acc = _require(await store.find(account), account)
        return await store.update(acc.id, **opts)

    acc = _with_store(config, run)
    console.print_json(json.dumps(_account_json(acc)))


from smsgate.cli_numbers import numbers_app  # noqa: E402  (its own module; wired here)

app.add_typer(numbers_app, name="numbers")
