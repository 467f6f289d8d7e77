"""What the ``smsgate`` sub-commands share: the ``--config``/``--json`` options, amounts, account lookup, the
account-settings options, tables that never cut an id, startup errors as one line and exit 2, and running a
coroutine against the store with errors as one red line."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import pathlib
import traceback
from collections.abc import Awaitable, Callable, Iterator, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from smsgate import changes, errors, limits, startup
from smsgate import settings as settings_mod
from smsgate.core import accounts as core_accounts
from smsgate.core import optout, pricing, schedule
from smsgate.store import accounts as store_accounts
from smsgate.store import engine as store_engine
from smsgate.store import migrate as store_migrate

console = Console()
T = TypeVar("T")

# a missing file is reported by settings.load in one line (startup_errors), not by a usage box
ConfigOpt = typer.Option(None, "--config", "-c", help="TOML config file (also SMSGATE_CONFIG)", dir_okay=False)
JsonOpt = typer.Option(False, "--json", help="print JSON")
AccountArg = typer.Argument(..., help="account id, api_key or name")
STARTUP_EXIT = 2
MAX_REPLY = 640  # an opt-out confirmation: at most 4 GSM-7 parts (accounts.optout_reply)


def load_settings(config: pathlib.Path | None, **overrides: Any) -> settings_mod.Settings:
    return settings_mod.load(config, **overrides)


@contextlib.contextmanager
def startup_errors(debug: bool) -> Iterator[None]:
    """A failure to start (bad config, database down, port in use...) is one line on stderr, at most one line
    of advice, and exit status 2; with ``debug`` the traceback comes first."""
    try:
        yield
    except (typer.Exit, typer.Abort, KeyboardInterrupt):
        raise
    except Exception as exc:
        if debug:
            traceback.print_exc()
        line, hint = startup.explain(exc)
        typer.echo(f"smsgate: error: {line}", err=True)
        if hint:
            typer.echo(f"  {hint}", err=True)
        raise typer.Exit(STARTUP_EXIT) from None


def run_store(
    config: pathlib.Path | None,
    fn: Callable[[store_engine.Engine], Awaitable[T]],
    *,
    create: bool = False,
    writes: bool = True,
) -> T:
    """Run ``fn`` on the store; a gateway error (no such account, ...) is one red line and exit 1.

    Only ``create`` (``smsgate migrate``) may create the database; any other command against a database that
    does not exist yet says so (exit 2) instead of making an empty one. Commands that ``writes`` name the
    database they wrote to, on stderr (stdout stays clean for ``--json``)."""
    with startup_errors(False):
        s = load_settings(config)
        if create:
            startup.check_data_dir(s)
        else:
            startup.require_database(s)

    async def run() -> T:
        store_engine.prepare_sqlite(s.effective_database_url)
        engine = store_engine.create(s.effective_database_url, sqlite_synchronous=s.sqlite_synchronous)
        try:
            try:
                if not create and await store_migrate.current(engine) is None:
                    raise startup.DatabaseMissing(
                        f"database {s.masked_database_url} has no smsgate tables yet",
                        "run smsgate migrate (or start the gateway once) to create them",
                    )
                await store_migrate.upgrade(engine)
            except startup.StartupError:
                raise
            except Exception as exc:
                raise startup.database_error(s, exc) from exc
            return await fn(engine)
        finally:
            await engine.dispose()

    with startup_errors(False):
        try:
            result = asyncio.run(run())
        except errors.SmsgateError as exc:
            console.print(f"[red]{exc.message}[/red]", soft_wrap=True, highlight=False)
            raise typer.Exit(1) from None
    if writes:
        typer.echo(f"database: {s.masked_database_url}", err=True)
    return result


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
    """The account with this id or api_key, else the one account with this name; NotFound otherwise."""
    acc = await accounts.find(ref)
    if acc is not None:
        return acc
    named = await accounts.named(ref)
    if len(named) > 1:
        ids = ", ".join(a.id for a in named)
        raise errors.NotFound(f"{len(named)} accounts are named {ref} ({ids}): use the id or api_key")
    if not named:
        raise errors.NotFound(f"no account {ref}")
    return named[0]


def print_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """A table whose cells are never cut or wrapped (ids and numbers must survive a copy and paste): as wide as
    its content needs, even past the terminal's width."""
    table = Table(*headers)
    for column in table.columns:
        column.no_wrap = True
        column.overflow = "ignore"
    for row in rows:
        table.add_row(*row)
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(headers)]
    needed = sum(widths) + 3 * len(widths) + 1
    Console(width=max(needed, console.width)).print(table)


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
    _option("stop_keywords", str | None, "--stop-keywords", "comma-separated opt-out keywords ('' = the defaults)"),
    _option("start_keywords", str | None, "--start-keywords", "comma-separated opt-in keywords ('' = the defaults)"),
    _option("optout_reply", str | None, "--optout-reply", "text sent back to a number that replied STOP ('' = none)"),
    _option("retention_days", int | None, "--retention-days", "delete its messages after N days (0 keep, -1 default)"),
    _option(
        "content_retention_days",
        int | None,
        "--content-retention-days",
        "blank its message texts after N days (0 keep, -1 the gateway's default)",
    ),
    _option(
        "default_priority", str | None, "--default-priority", "lane of a message that names none: high, normal, bulk"
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
    stop_keywords: str | None,
    start_keywords: str | None,
    optout_reply: str | None,
    retention_days: int | None,
    content_retention_days: int | None,
    default_priority: str | None,
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
    for name, raw in (("stop_keywords", stop_keywords), ("start_keywords", start_keywords)):
        if raw is not None:
            try:
                out[name] = list(optout.keywords(raw.split(","))) or None
            except ValueError as exc:
                raise typer.BadParameter(f"--{name.replace('_', '-')}: {exc}") from None
    if optout_reply is not None:
        if len(optout_reply) > MAX_REPLY:
            raise typer.BadParameter(f"--optout-reply: at most {MAX_REPLY} characters")
        out["optout_reply"] = optout_reply or None
    for name, days in (("retention_days", retention_days), ("content_retention_days", content_retention_days)):
        if days is not None:
            out[name] = days if days >= 0 else None
    if default_priority is not None:
        try:
            out["default_priority"] = schedule.parse_priority(default_priority).value
        except errors.ValidationError as exc:
            raise typer.BadParameter(exc.message) from None
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
