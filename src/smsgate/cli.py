"""The ``smsgate`` command: serve, migrate, accounts, and the SMSC simulator. Every command reads the same
settings as ``serve`` (environment ``SMSGATE_*`` and ``--config FILE``)."""

from __future__ import annotations

import json
import logging
import pathlib
from collections.abc import Awaitable, Callable
from typing import Any

import typer
from rich.table import Table

from smsgate.cli_common import (
    AccountArg,
    ConfigOpt,
    JsonOpt,
    T,
    account_settings_options,
    announce,
    console,
    find_account,
    load_settings,
    money,
    run_store,
)
from smsgate.core import accounts as core_accounts
from smsgate.core import pricing
from smsgate.store import accounts as store_accounts
from smsgate.store import notify

app = typer.Typer(help="smsgate: a self-hostable SMS API gateway", no_args_is_help=True)
accounts_app = typer.Typer(help="Manage accounts (API credentials, quota, sender, balance)", no_args_is_help=True)
app.add_typer(accounts_app, name="accounts")


def _with_store(config: pathlib.Path | None, fn: Callable[[store_accounts.AccountStore], Awaitable[T]]) -> T:
    return run_store(config, lambda engine: fn(store_accounts.AccountStore(engine)))


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

    s = load_settings(config, host=host, port=port)
    problem = server.workers_problem(s, workers)
    if problem is not None:
        typer.echo(f"Error: {problem}", err=True)
        raise typer.Exit(2)
    if workers > 1:
        raise typer.Exit(server.serve_workers(s, workers, log_level=log_level.upper()))
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    server.run(s, banner=typer.echo)


@app.command(
    "smsc-sim", add_help_option=False, context_settings={"allow_extra_args": True, "ignore_unknown_options": True}
)
def smsc_sim(ctx: typer.Context) -> None:
    """Run the SMSC simulator (SMPP v3.4 server for tests and demos); --help for its options."""
    from smsgate.sim import control

    control.main(list(ctx.args))


@app.command()
def migrate(config: pathlib.Path | None = ConfigOpt) -> None:
    """Apply the database migrations (``serve`` does this too)."""

    async def noop(_store: store_accounts.AccountStore) -> None:
        return None

    _with_store(config, noop)
    console.print("database is up to date")


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


@accounts_app.command("create")
@account_settings_options
def accounts_create(
    name: str, as_json: bool = JsonOpt, config: pathlib.Path | None = ConfigOpt, *, changes: dict[str, Any]
) -> None:
    """Create an account; its api_secret is shown once."""
    opts = dict(changes)
    if "balance" not in opts:
        opts["balance"] = money(load_settings(config).default_balance)

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
def accounts_list(as_json: bool = JsonOpt, config: pathlib.Path | None = ConfigOpt) -> None:
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


def _update(config: pathlib.Path | None, ref: str, **changes: Any) -> core_accounts.Account:
    async def run(store: store_accounts.AccountStore) -> core_accounts.Account:
        return await store.update((await find_account(store, ref)).id, **changes)

    acc = _with_store(config, run)
    announce(config, notify.ACCOUNT, acc.id)
    return acc


@accounts_app.command("disable")
def accounts_disable(account: str = AccountArg, config: pathlib.Path | None = ConfigOpt) -> None:
    """Disable an account: its credentials and tokens stop working."""
    console.print(f"account {_update(config, account, status='disabled').id} disabled")


@accounts_app.command("enable")
def accounts_enable(account: str = AccountArg, config: pathlib.Path | None = ConfigOpt) -> None:
    """Enable a disabled account."""
    console.print(f"account {_update(config, account, status='active').id} enabled")


@accounts_app.command("rotate-secret")
def accounts_rotate(
    account: str = AccountArg, as_json: bool = JsonOpt, config: pathlib.Path | None = ConfigOpt
) -> None:
    """Issue a new api_secret (the old one and its tokens stop working)."""

    async def run(store: store_accounts.AccountStore) -> tuple[core_accounts.Account, str]:
        acc = await find_account(store, account)
        return acc, await store.rotate_secret(acc.id)

    acc, secret = _with_store(config, run)
    announce(config, notify.ACCOUNT, acc.id)
    if as_json:
        typer.echo(json.dumps({"account_id": acc.id, "api_key": acc.api_key, "api_secret": secret}))
    else:
        console.print(f"new api_secret for {acc.api_key}: {secret}")


@accounts_app.command("set")
@account_settings_options
def accounts_set(
    account: str = AccountArg, config: pathlib.Path | None = ConfigOpt, *, changes: dict[str, Any]
) -> None:
    """Change an account's settings: quota, default sender, balance, level, countries."""
    if not changes:
        raise typer.BadParameter("nothing to change")
    console.print_json(json.dumps(_account_json(_update(config, account, **changes))))


from smsgate.cli_numbers import numbers_app  # noqa: E402  (its own module; wired here)
from smsgate.cli_senders import senders_app  # noqa: E402

app.add_typer(numbers_app, name="numbers")
app.add_typer(senders_app, name="senders")
