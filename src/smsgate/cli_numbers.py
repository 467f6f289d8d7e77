"""``smsgate numbers``: the operator's pool of virtual numbers that accounts search, buy and point at a webhook.

A number added here is available to every account (Vonage ``/number/search`` and ``/number/buy``) until it is
assigned; ``assign`` gives it to an account directly, ``release`` takes it back (and clears its webhook).
"""

from __future__ import annotations

import json
import pathlib
import re
from collections.abc import Awaitable, Callable
from typing import Any

import typer

from smsgate import errors
from smsgate.cli_common import (
    AccountArg,
    ConfigOpt,
    JsonOpt,
    T,
    announce,
    console,
    find_account,
    money,
    print_table,
    run_store,
)
from smsgate.core import pricing
from smsgate.store import accounts as store_accounts
from smsgate.store import notify
from smsgate.store import numbers as store_numbers

numbers_app = typer.Typer(help="Manage the pool of virtual numbers (Vonage Phone Numbers API)", no_args_is_help=True)
Stores = tuple[store_numbers.NumberStore, store_accounts.AccountStore]


def _run(config: pathlib.Path | None, fn: Callable[[Stores], Awaitable[T]], *, writes: bool = True) -> T:
    return run_store(
        config,
        lambda engine: fn((store_numbers.NumberStore(engine), store_accounts.AccountStore(engine))),
        writes=writes,
    )


def _msisdn(raw: str) -> str:
    """E.164 digits, or a short code (3 digits or more): both can be owned, and only their owner may send from them."""
    digits = re.sub(r"[\s\-+]", "", raw)
    if not digits.isdigit() or not 3 <= len(digits) <= 15:
        raise typer.BadParameter(f"{raw!r} is not an E.164 number (digits, with the country code) or a short code")
    return digits


def _out(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "msisdn": row["msisdn"],
        "country": row["country"],
        "type": row["type"],
        "features": list(row["features"] or []),
        "cost": pricing.format_amount(pricing.from_units(row["cost"])),
        "account_id": row["account_id"],
        "moHttpUrl": row["mo_http_url"],
    }


@numbers_app.command("add")
def numbers_add(
    msisdn: str = typer.Argument(..., help="E.164 digits, e.g. 3197010240299"),
    country: str = typer.Option(..., "--country", help="ISO 3166-1 alpha-2, e.g. NL"),
    type: str = typer.Option("mobile-lvn", "--type", help="landline, mobile-lvn or landline-toll-free"),
    features: str = typer.Option("SMS", "--features", help="comma-separated: SMS,VOICE,MMS"),
    cost: str = typer.Option("0", "--cost", help="price an account pays to buy it, e.g. 0.50"),
    account: str | None = typer.Option(None, "--account", help="assign it to this account (id, api_key or name) now"),
    as_json: bool = JsonOpt,
    config: pathlib.Path | None = ConfigOpt,
) -> None:
    """Add a number to the pool."""
    digits = _msisdn(msisdn)
    if not re.fullmatch(r"[A-Za-z]{2}", country):
        raise typer.BadParameter("country must be a two-letter ISO code")
    units = money(cost)
    feats = [f.strip().upper() for f in features.split(",") if f.strip()]

    async def run(stores: Stores) -> dict[str, Any]:
        nums, accounts = stores
        owner = (await find_account(accounts, account)).id if account else None
        await nums.add(digits, country, type=type, features=feats, cost=units)
        if owner:
            await nums.assign(digits, owner)
        return await _row(nums, digits)

    row = _run(config, run)
    if row["account_id"]:
        announce(config, notify.NUMBER, digits)
    if as_json:
        typer.echo(json.dumps(_out(row)))
    else:
        console.print(f"number {digits} added" + (f" and assigned to {row['account_id']}" if row["account_id"] else ""))


@numbers_app.command("list")
def numbers_list(as_json: bool = JsonOpt, config: pathlib.Path | None = ConfigOpt) -> None:
    """Every number in the pool, with its owner and webhook."""

    async def run(stores: Stores) -> list[dict[str, Any]]:
        return await stores[0].all()

    rows = [_out(r) for r in _run(config, run, writes=False)]
    if as_json:
        typer.echo(json.dumps(rows))
        return
    print_table(
        ["msisdn", "country", "type", "features", "cost", "account", "moHttpUrl"],
        [
            [r["msisdn"], r["country"], r["type"], ",".join(r["features"]), r["cost"], r["account_id"] or "-",
             r["moHttpUrl"] or ""]
            for r in rows
        ],
    )  # fmt: skip


@numbers_app.command("assign")
def numbers_assign(
    msisdn: str = typer.Argument(..., help="a number in the pool"),
    account: str = AccountArg,
    as_json: bool = JsonOpt,
    config: pathlib.Path | None = ConfigOpt,
) -> None:
    """Give a number to an account (no charge)."""
    digits = _msisdn(msisdn)

    async def run(stores: Stores) -> dict[str, Any]:
        nums, accounts = stores
        await nums.assign(digits, (await find_account(accounts, account)).id)
        return await _row(nums, digits)

    row = _run(config, run)
    announce(config, notify.NUMBER, digits)
    typer.echo(json.dumps(_out(row)) if as_json else f"number {digits} assigned to {row['account_id']}")


@numbers_app.command("release")
def numbers_release(
    msisdn: str = typer.Argument(..., help="a number in the pool"),
    as_json: bool = JsonOpt,
    config: pathlib.Path | None = ConfigOpt,
) -> None:
    """Take a number back into the pool; its webhook is cleared."""
    digits = _msisdn(msisdn)

    async def run(stores: Stores) -> dict[str, Any]:
        await stores[0].assign(digits, None)
        return await _row(stores[0], digits)

    row = _run(config, run)
    announce(config, notify.NUMBER, digits)
    typer.echo(json.dumps(_out(row)) if as_json else f"number {digits} released")


async def _row(nums: store_numbers.NumberStore, digits: str) -> dict[str, Any]:
    row = await nums.get(digits)
    if row is None:
        raise errors.NotFound(f"no number {digits} in the pool")
    return row
