"""The ``smsgate`` command: serve, migrate, accounts, and the SMSC simulator. Every command reads the same
settings as ``serve`` (environment ``SMSGATE_*`` and ``--config FILE``)."""

from __future__ import annotations

import json
import pathlib
from collections.abc import Awaitable, Callable
from typing import Any

import typer

from smsgate import startup, version
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
    print_table,
    run_store,
    startup_errors,
)
from smsgate.core import accounts as core_accounts
from smsgate.core import pricing
from smsgate.importing import without_gc
from smsgate.store import accounts as store_accounts
from smsgate.store import notify

app = typer.Typer(help="smsgate: a self-hostable SMS API gateway", no_args_is_help=True)
accounts_app = typer.Typer(help="Manage accounts (API credentials, quota, sender, balance)", no_args_is_help=True)
app.add_typer(accounts_app, name="accounts")


def _with_store(
    config: pathlib.Path | None, fn: Callable[[store_accounts.AccountStore], Awaitable[T]], **kw: bool
) -> T:
    return run_store(config, lambda engine: fn(store_accounts.AccountStore(engine)), **kw)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"smsgate {version.VERSION}")
        raise typer.Exit()


@app.callback()
def main(
    _version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="print the version and exit"
    ),
) -> None:
    """smsgate: a self-hostable SMS API gateway."""


@app.command()
def serve(
    host: str = typer.Option(None, help="listen address (default 127.0.0.1)"),
    port: int = typer.Option(None, help="listen port (default 8080)"),
    config: pathlib.Path | None = ConfigOpt,
    log_level: str = typer.Option("info", help="debug, info, warning, error"),
    log_format: str = typer.Option(None, help="text (default) or json: one JSON object per line"),
    tls_cert: pathlib.Path | None = typer.Option(None, help="serve HTTPS with this PEM certificate (chain)"),
    tls_key: pathlib.Path | None = typer.Option(None, help="the PEM private key of --tls-cert"),
    tls_self_signed: bool = typer.Option(
        False, help="serve HTTPS with a certificate for 127.0.0.1/localhost written into the data dir"
    ),
    workers: int = typer.Option(1, help="node processes sharing the port (needs PostgreSQL and Redis)"),
    processes: int = typer.Option(
        None, help="SQLite: 2 runs the node as an accept and a delivery process, one per core (default 1)"
    ),
    debug: bool = typer.Option(False, help="show the traceback when the gateway cannot start"),
) -> None:
    """Run the gateway: HTTP APIs, dispatcher, connectors."""
    with startup_errors(debug):
        s = load_settings(
            config,
            host=host,
            port=port,
            log_format=log_format,
            tls_cert=tls_cert,
            tls_key=tls_key,
            tls_self_signed=tls_self_signed or None,
            processes=processes,
        )
        with without_gc():  # the server's modules only once the settings hold: a mistake there is said at once
            from smsgate import logs, server, split

        problem = server.workers_problem(s, workers) or split.problem(s, s.processes)
        if problem is not None:
            raise startup.StartupError(problem)
        if workers > 1:
            raise typer.Exit(server.serve_workers(s, workers, log_level=log_level.upper()))
        logs.configure(log_level, s.log_format, access=s.access_log)
        server.run(s, banner=typer.echo, log_level=log_level.upper())


config_app = typer.Typer(help="Check the configuration", no_args_is_help=True)
app.add_typer(config_app, name="config")


@config_app.command("check")
def config_check(config: pathlib.Path | None = ConfigOpt, as_json: bool = JsonOpt) -> None:
    """Validate the config file and environment; print the effective configuration (secrets masked)."""
    from smsgate import effective

    with startup_errors(False):
        s = load_settings(config)
    report = effective.report(s)
    if as_json:
        typer.echo(json.dumps(report, indent=2, default=str))
        return
    for line in effective.lines(report):
        typer.echo(line)


@app.command(
    "smsc-sim", add_help_option=False, context_settings={"allow_extra_args": True, "ignore_unknown_options": True}
)
def smsc_sim(ctx: typer.Context) -> None:
    """Run the SMSC simulator (SMPP v3.4 server for tests and demos); --help for its options."""
    from smsgate.sim import control

    control.main(list(ctx.args))


@app.command()
def migrate(config: pathlib.Path | None = ConfigOpt, as_json: bool = JsonOpt) -> None:
    """Create the database, or bring it up to date (``serve`` does this too)."""

    async def noop(_store: store_accounts.AccountStore) -> None:
        return None

    _with_store(config, noop, create=True)
    if as_json:
        typer.echo(json.dumps({"database": load_settings(config).masked_database_url, "status": "up to date"}))
    else:
        console.print("database is up to date")


def _account_json(a: core_accounts.Account) -> dict[str, Any]:
    return {
        "account_id": a.id,
        "name": a.name,
        "api_key": a.api_key,
        "status": a.status,
        "level": a.level,
        "default_sender": a.default_sender,
        "default_priority": a.default_priority,
        "quota": {"limit": a.quota_limit, "interval": a.quota_interval, "unit": a.quota_unit},
        "balance": pricing.format_amount(pricing.from_units(a.balance)),
        "parent_id": a.parent_id,
        "optout": {"stop_keywords": a.stop_keywords, "start_keywords": a.start_keywords, "reply": a.optout_reply},
        "retention": {"days": a.retention_days, "content_days": a.content_retention_days},
    }


@accounts_app.command("create")
@account_settings_options
def accounts_create(
    name: str,
    as_json: bool = JsonOpt,
    config: pathlib.Path | None = ConfigOpt,
    parent: str | None = typer.Option(
        None,
        "--parent",
        help="make it a sub-account of this account (id, api_key or name): the parent pays for its traffic and "
        "sees its messages, and addresses it by NAME (KPN SubAccount header, `account` in our API)",
    ),
    *,
    changes: dict[str, Any],
) -> None:
    """Create an account (or a sub-account with --parent); its api_secret is shown once."""
    opts = dict(changes)
    if "balance" not in opts:
        opts["balance"] = 0 if parent else money(load_settings(config).default_balance)

    async def run(store: store_accounts.AccountStore) -> tuple[core_accounts.Account, str]:
        if parent is not None:
            opts["parent_id"] = (await find_account(store, parent)).id
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
    accs = _with_store(config, lambda s: s.list(), writes=False)
    if as_json:
        typer.echo(json.dumps([_account_json(a) for a in accs]))
        return
    rows = []
    for a in accs:
        quota = f"{a.quota_limit}/{a.quota_interval} {a.quota_unit}" if a.quota_limit is not None else "unlimited"
        rows.append(
            [
                a.id,
                a.name,
                a.api_key,
                a.status,
                a.level,
                a.default_sender or "",
                quota,
                pricing.format_amount(pricing.from_units(a.balance)),
            ]
        )
    print_table(["id", "name", "api_key", "status", "level", "sender", "quota", "balance"], rows)


def _update(config: pathlib.Path | None, ref: str, **changes: Any) -> core_accounts.Account:
    async def run(store: store_accounts.AccountStore) -> core_accounts.Account:
        return await store.update((await find_account(store, ref)).id, **changes)

    acc = _with_store(config, run)
    announce(config, notify.ACCOUNT, acc.id)
    return acc


@accounts_app.command("disable")
def accounts_disable(
    account: str = AccountArg, as_json: bool = JsonOpt, config: pathlib.Path | None = ConfigOpt
) -> None:
    """Disable an account: its credentials and tokens stop working."""
    acc = _update(config, account, status="disabled")
    typer.echo(json.dumps(_account_json(acc)) if as_json else f"account {acc.id} disabled")


@accounts_app.command("enable")
def accounts_enable(
    account: str = AccountArg, as_json: bool = JsonOpt, config: pathlib.Path | None = ConfigOpt
) -> None:
    """Enable a disabled account."""
    acc = _update(config, account, status="active")
    typer.echo(json.dumps(_account_json(acc)) if as_json else f"account {acc.id} enabled")


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
    account: str = AccountArg,
    as_json: bool = JsonOpt,
    config: pathlib.Path | None = ConfigOpt,
    *,
    changes: dict[str, Any],
) -> None:
    """Change an account's settings: quota, default sender, balance, level, countries (prints the account)."""
    if not changes:
        raise typer.BadParameter("nothing to change")
    data = _account_json(_update(config, account, **changes))
    if as_json:
        typer.echo(json.dumps(data))
    else:
        console.print_json(json.dumps(data))


from smsgate.cli_numbers import numbers_app  # noqa: E402  (its own module; wired here)
from smsgate.cli_optout import purge, suppressions_app  # noqa: E402
from smsgate.cli_send import send  # noqa: E402
from smsgate.cli_senders import senders_app  # noqa: E402

app.add_typer(numbers_app, name="numbers")
app.add_typer(senders_app, name="senders")
app.command("send")(send)
app.add_typer(suppressions_app, name="suppressions")
app.command("purge")(purge)
