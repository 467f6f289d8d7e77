"""``smsgate senders``: sender names the operator reserves for one account.

Names (alphanumeric senders) are open to every account by default; a reserved one may be sent with only by its
account, and inbound messages addressed to it belong to that account. Numbers are owned through the pool
(``smsgate numbers``) or KPN's ``/register``, never reserved here.
"""

from __future__ import annotations

import json
import pathlib
from collections.abc import Awaitable, Callable

import typer
from rich.table import Table

from smsgate.cli_common import AccountArg, ConfigOpt, JsonOpt, T, announce, console, find_account, run_store
from smsgate.store import accounts as store_accounts
from smsgate.store import notify, ownership

senders_app = typer.Typer(help="Reserve sender names for one account", no_args_is_help=True)
Stores = tuple[ownership.Ownership, store_accounts.AccountStore]


def _run(config: pathlib.Path | None, fn: Callable[[Stores], Awaitable[T]]) -> T:
    return run_store(config, lambda engine: fn((ownership.Ownership(engine), store_accounts.AccountStore(engine))))


@senders_app.command("reserve")
def senders_reserve(
    name: str = typer.Argument(..., help="the sender name, e.g. MyBank (compared without regard to case)"),
    account: str = AccountArg,
    config: pathlib.Path | None = ConfigOpt,
) -> None:
    """Only this account may send as NAME (and inbound messages to NAME are its own)."""

    async def run(stores: Stores) -> str:
        acc = await find_account(stores[1], account)
        await stores[0].reserve(name, acc.id)
        return acc.id

    owner = _run(config, run)
    announce(config, notify.SENDERS, ownership.name_key(name))
    console.print(f"sender {name!r} reserved for {owner}")


@senders_app.command("release")
def senders_release(name: str = typer.Argument(...), config: pathlib.Path | None = ConfigOpt) -> None:
    """Open NAME to every account again."""

    async def run(stores: Stores) -> None:
        await stores[0].release(name)

    _run(config, run)
    announce(config, notify.SENDERS, ownership.name_key(name))
    console.print(f"sender {name!r} released")


@senders_app.command("list")
def senders_list(as_json: bool = JsonOpt, config: pathlib.Path | None = ConfigOpt) -> None:
    """Every reserved name and its account."""

    async def run(stores: Stores) -> list[dict[str, object]]:
        return await stores[0].reserved()

    rows = [{"sender": r["display"], "account_id": r["account_id"]} for r in _run(config, run)]
    if as_json:
        typer.echo(json.dumps(rows))
        return
    table = Table("sender", "account")
    for r in rows:
        table.add_row(str(r["sender"]), str(r["account_id"]))
    console.print(table)
