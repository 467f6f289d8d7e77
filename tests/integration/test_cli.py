"""The ``smsgate accounts`` and ``smsgate numbers`` commands, in process, against a real SQLite data dir."""

from __future__ import annotations

import json
import pathlib

import pytest
from typer.testing import CliRunner, Result

from smsgate.cli import app


@pytest.fixture
def cli(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("SMSGATE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("SMSGATE_DATABASE_URL", raising=False)
    runner = CliRunner()
    run(runner, "migrate")
    return runner


def run(cli: CliRunner, *args: str, code: int = 0) -> Result:
    result = cli.invoke(app, list(args))
    assert result.exit_code == code, (result.output, result.exception)
    return result


def test_create_with_every_option_then_list(cli: CliRunner) -> None:
    made = json.loads(
        run(cli, "accounts", "create", "shop", "--json", "--default-sender", "Shop", "--quota-limit", "10",
            "--quota-interval", "2", "--quota-unit", "hour", "--balance", "25.5", "--level", "prod",
            "--allowed-countries", "nl, be,").stdout
    )  # fmt: skip
    assert made["name"] == "shop" and made["api_secret"] and made["level"] == "prod"
    assert made["default_sender"] == "Shop" and made["balance"] == "25.50000000"
    assert made["quota"] == {"limit": 10, "interval": 2, "unit": "hour"}
    listed = json.loads(run(cli, "accounts", "list", "--json").stdout)
    assert [a["account_id"] for a in listed] == [made["account_id"]]
    assert "api_secret" not in listed[0] and listed[0]["quota"] == made["quota"]


def test_create_defaults_the_balance_and_prints_the_secret_once(cli: CliRunner) -> None:
    out = run(cli, "accounts", "create", "plain").stdout
    assert "api_secret" in out and "shown once" in out
    (acc,) = json.loads(run(cli, "accounts", "list", "--json").stdout)
    assert acc["balance"] == "100.00000000" and acc["quota"]["limit"] is None and acc["level"] == "demo"


def test_set_disable_enable_rotate(cli: CliRunner) -> None:
    acc = json.loads(run(cli, "accounts", "create", "a", "--json").stdout)
    key = acc["api_key"]
    run(cli, "accounts", "set", key, "--quota-limit", "5", "--quota-unit", "day")
    changed = json.loads(run(cli, "accounts", "set", acc["account_id"], "--quota-limit", "-1", "--balance", "1").stdout)
    assert (
        changed["quota"]["limit"] is None and changed["quota"]["unit"] == "day" and changed["balance"] == "1.00000000"
    )
    assert f"account {acc['account_id']} disabled" in run(cli, "accounts", "disable", key).stdout
    assert json.loads(run(cli, "accounts", "list", "--json").stdout)[0]["status"] == "disabled"
    assert f"account {acc['account_id']} enabled" in run(cli, "accounts", "enable", key).stdout
    assert json.loads(run(cli, "accounts", "list", "--json").stdout)[0]["status"] == "active"
    assert (
        json.loads(run(cli, "accounts", "set", key, "--default-priority", "bulk").stdout)["default_priority"] == "bulk"
    )
    rotated = json.loads(run(cli, "accounts", "rotate-secret", key, "--json").stdout)
    assert rotated["api_key"] == key and rotated["api_secret"] not in ("", acc["api_secret"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--quota-unit", "fortnight"), "quota unit must be one of"),
        (("--level", "gold"), "level must be demo or prod"),
        (("--balance", "lots"), "not an amount: lots"),
        (("--default-priority", "urgent"), "priority must be one of high, normal, bulk"),
        ((), "nothing to change"),
    ],
)
def test_set_refuses_bad_options(cli: CliRunner, args: tuple[str, ...], message: str) -> None:
    key = json.loads(run(cli, "accounts", "create", "a", "--json").stdout)["api_key"]
    assert message in run(cli, "accounts", "set", key, *args, code=2).output


@pytest.mark.parametrize("command", ["disable", "enable", "rotate-secret", "set"])
def test_unknown_account_is_one_line_and_exit_1(cli: CliRunner, command: str) -> None:
    extra = ["--level", "prod"] if command == "set" else []
    assert run(cli, "accounts", command, "nobody", *extra, code=1).output.strip() == "no account nobody"


def test_numbers_pool_add_assign_release(cli: CliRunner) -> None:
    key = json.loads(run(cli, "accounts", "create", "a", "--json").stdout)["api_key"]
    row = json.loads(
        run(cli, "numbers", "add", "+31 970-1024 0299", "--country", "nl", "--cost", "0.5", "--json").stdout
    )
    assert row == {
        "msisdn": "3197010240299", "country": "NL", "type": "mobile-lvn", "features": ["SMS"],
        "cost": "0.50000000", "account_id": None, "moHttpUrl": None,
    }  # fmt: skip
    owner = run(cli, "numbers", "assign", "3197010240299", key).stdout
    assert owner.startswith("number 3197010240299 assigned to ")
    assert json.loads(run(cli, "numbers", "list", "--json").stdout)[0]["account_id"] == owner.split()[-1]
    assert run(cli, "numbers", "release", "3197010240299").stdout.strip() == "number 3197010240299 released"
    assert json.loads(run(cli, "numbers", "list", "--json").stdout)[0]["account_id"] is None


def test_numbers_refuse_bad_input(cli: CliRunner) -> None:
    assert "not an amount: free" in run(cli, "numbers", "add", "3197010240299", "--country", "NL", "--cost", "free",
                                         code=2).output  # fmt: skip
    assert "not an E.164 number" in run(cli, "numbers", "add", "12ab", "--country", "NL", code=2).output
    out = run(cli, "numbers", "add", "3197010240299", "--country", "NL", "--account", "nobody", code=1).stdout
    assert out.strip() == "no account nobody"
    assert run(cli, "migrate").stdout.strip() == "database is up to date"


# -- issue 15, item 10: CLI papercuts ---------------------------------------------------------------------------
def test_accounts_by_name(cli: CliRunner) -> None:
    made = json.loads(run(cli, "accounts", "create", "webshop", "--json").stdout)
    disabled = json.loads(run(cli, "accounts", "disable", "webshop", "--json").stdout)
    assert disabled["account_id"] == made["account_id"] and disabled["status"] == "disabled"
    assert json.loads(run(cli, "accounts", "enable", "webshop", "--json").stdout)["status"] == "active"
    run(cli, "numbers", "add", "3197010240299", "--country", "NL", "--account", "webshop")
    assigned = json.loads(run(cli, "numbers", "assign", "3197010240299", "webshop", "--json").stdout)
    assert assigned["account_id"] == made["account_id"]
    assert json.loads(run(cli, "numbers", "release", "3197010240299", "--json").stdout)["account_id"] is None
    run(cli, "accounts", "create", "webshop")  # a second account with that name: the name is now ambiguous
    out = run(cli, "accounts", "disable", "webshop", code=1).stdout
    assert out.startswith("2 accounts are named webshop (") and "use the id or api_key" in out


def test_every_data_command_speaks_json(cli: CliRunner) -> None:
    key = json.loads(run(cli, "accounts", "create", "j", "--json").stdout)["api_key"]
    for args in (
        ("accounts", "list"),
        ("accounts", "set", key, "--level", "prod"),
        ("accounts", "disable", key),
        ("accounts", "enable", key),
        ("accounts", "rotate-secret", key),
        ("numbers", "add", "3197010240298", "--country", "NL"),
        ("numbers", "list"),
        ("numbers", "assign", "3197010240298", key),
        ("numbers", "release", "3197010240298"),
        ("migrate",),
        ("config", "check"),
    ):
        json.loads(run(cli, *args, "--json").stdout)  # stdout is JSON and nothing else


def test_tables_never_cut_ids_or_numbers(cli: CliRunner, tmp_path: pathlib.Path) -> None:
    """In a narrow terminal the table grows wider than it rather than cutting an id, key or number."""
    from tests.support import run_cli

    acc = json.loads(run(cli, "accounts", "create", "a-rather-long-account-name", "--json").stdout)
    run(cli, "numbers", "add", "3197010240299", "--country", "NL", "--account", acc["api_key"])
    # the tables in processes of their own: the console takes the terminal's width when it is made
    env = {"SMSGATE_DATA_DIR": str(tmp_path / "data"), "COLUMNS": "40"}
    accounts = run_cli("accounts", "list", env=env).stdout
    numbers = run_cli("numbers", "list", env=env).stdout
    for whole in (acc["account_id"], acc["api_key"], "a-rather-long-account-name"):
        assert whole in accounts, accounts
    assert "3197010240299" in numbers and acc["account_id"] in numbers, numbers
    assert "…" not in accounts + numbers


def test_smsc_sim_help_is_for_users() -> None:
    from tests.support import run_cli

    out = run_cli("smsc-sim", "--help").stdout
    for option in ("--host", "--port", "--control-port", "--receipt-delay-ms", "--mode", "--system-id",
                   "--message-id-format"):  # fmt: skip
        assert option in out
    for mode in ("throttle_every:N", "queue_full_every:N", "fail_every:N", "drop_after:N", "slow[:MS]",
                 "no_response", "generic_nack", "refuse_bind", "duplicate_receipts"):  # fmt: skip
        assert mode in out, mode
    for endpoint in ("GET  /stats", "POST /mo", "POST /mode", "POST /reset"):
        assert endpoint in out
    assert "Mode.parse" not in out and "interop test" not in out and "smpp34" not in out
    bad = run_cli("smsc-sim", "--mode", "throtle_every:3", check=False)
    assert bad.returncode == 2 and "unknown simulator mode 'throtle_every'" in bad.stderr


def test_licence_and_ignores_match_the_project() -> None:
    import tomllib

    root = pathlib.Path(__file__).parents[2]
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    assert project["license"] == {"text": "Apache-2.0"}  # setuptools ships LICENSE* with the package itself
    licence = (root / "LICENSE").read_text()
    assert "Apache License" in licence and "Version 2.0, January 2004" in licence
    assert ".schemathesis/" in (root / ".gitignore").read_text().splitlines()
