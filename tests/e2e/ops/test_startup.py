"""Running ``smsgate`` as an operator would: a strict config file, one-line startup errors with exit status 2,
database URLs as people write them, one data directory whatever the working directory (issue 15, items 1-4).

Every failure case runs the real command and checks: exit status 2, at most two lines on stderr (the error and
one line of advice), no traceback, and no "listening" line.
"""

from __future__ import annotations

import json
import os
import pathlib
import socket
import subprocess
from collections.abc import Iterator

import httpx
import pytest

from tests.support import SMSGATE, GatewayProcess, free_port, postgres_database, run_cli

SMPP = """
[[connectors]]
name = "kpn-smsc"
type = "smpp"
host = "127.0.0.1"
port = {port}
system_id = "smsgate"
password = "s3cret"

[routing]
default = "kpn-smsc"
"""


def _env(data_dir: pathlib.Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMSGATE_")}
    return {**env, "SMSGATE_DATA_DIR": str(data_dir), **extra}


def serve_fails(
    data_dir: pathlib.Path, *args: str, env: dict[str, str] | None = None, timeout: float = 30
) -> tuple[str, str]:
    """Run ``smsgate serve`` expecting a startup failure; returns (stdout, stderr) after the common checks."""
    port = str(free_port())
    run = subprocess.run(
        [*SMSGATE, "serve", "--port", port, *args],
        env={**_env(data_dir), **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert run.returncode == 2, (run.returncode, run.stdout, run.stderr)
    lines = run.stderr.strip().splitlines()
    assert 1 <= len(lines) <= 2, run.stderr
    assert "Traceback" not in run.stderr + run.stdout
    assert lines[0].startswith("smsgate: error: "), run.stderr
    assert "listening" not in run.stdout
    return run.stdout, run.stderr


def write(path: pathlib.Path, text: str) -> pathlib.Path:
    path.write_text(text)
    return path


# -- item 1: strict configuration -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("token_ttl_secondz = 60\n", "smsgate.toml: token_ttl_secondz: unknown key (did you mean token_ttl_seconds?)"),
        ('[[conectors]]\nname = "x"\n', "smsgate.toml: conectors: unknown key (did you mean connectors?)"),
        (
            '[[connectors]]\nname = "a"\ntype = "sandbox"\n\n[[connectors]]\nname = "b"\ntype = "smpp"\n'
            'host = "h"\nsystm_id = "x"\n',
            "smsgate.toml: connectors[1].systm_id: unknown key (did you mean system_id?)",
        ),
        ('[[connectors]]\nname = "b"\ntype = "smpq"\n', "connectors[0].type: unknown connector type 'smpq' (did you mean smpp?)"),
        ('[[connectors]]\nname = "s"\ntype = "sandbox"\nreceipt_dealy = 1\n', "connectors[0].receipt_dealy: unknown key (did you mean receipt_delay?)"),
        ('[[connectors]]\nname = "b"\ntype = "smpp"\nhost = "h"\nport = 70000\n', "smsgate.toml: connectors[0].port: must be 1..65535"),
        ('[routing]\ndefualt = "sandbox"\n', "smsgate.toml: routing.defualt: unknown key (did you mean default?)"),
        ('[routing]\ndefault = "sandbx"\n', "smsgate.toml: routing.default: no connector named 'sandbx' (did you mean sandbox?)"),
        ('[routing]\nrules = [{ prefx = "31", connector = "sandbox" }]\n', "routing.rules[0].prefx: unknown key (did you mean prefix?)"),
        ('[prices]\ncountry = { NL = "0.07" }\n', "smsgate.toml: prices.country: unknown key (did you mean countries?)"),
        ('token_ttl_seconds = "an hour"\n', "smsgate.toml: token_ttl_seconds: Input should be a valid integer"),
        ("port = \n", "smsgate.toml:1:8: TOML syntax error"),
    ],
)  # fmt: skip
def test_config_file_mistakes_are_one_line(tmp_path: pathlib.Path, text: str, expected: str) -> None:
    config = write(tmp_path / "smsgate.toml", text)
    _out, err = serve_fails(tmp_path / "data", "--config", str(config))
    assert expected in err.splitlines()[0], err
    check = run_cli("config", "check", "--config", str(config), env=_env(tmp_path / "data"), check=False)
    assert check.returncode == 2 and expected in check.stderr and "Traceback" not in check.stderr


def test_unknown_environment_variable_warns_with_the_nearest_name(tmp_path: pathlib.Path) -> None:
    run = run_cli("config", "check", env=_env(tmp_path / "data", SMSGATE_TOKEN_TTL_SECONDZ="60"))
    assert run.stderr.strip() == (
        "smsgate: warning: SMSGATE_TOKEN_TTL_SECONDZ is not a setting (did you mean SMSGATE_TOKEN_TTL_SECONDS?); ignored"
    )
    assert "configuration OK" in run.stdout


def test_bad_environment_value_names_the_variable(tmp_path: pathlib.Path) -> None:
    _out, err = serve_fails(tmp_path / "data", env={"SMSGATE_TOKEN_TTL_SECONDS": "an hour"})
    assert err.startswith("smsgate: error: SMSGATE_TOKEN_TTL_SECONDS: Input should be a valid integer")


def test_a_currency_that_is_no_iso_code_names_the_variable(tmp_path: pathlib.Path) -> None:
    _out, err = serve_fails(tmp_path / "data", env={"SMSGATE_CURRENCY": "euro"})
    assert err.startswith("smsgate: error: SMSGATE_CURRENCY: 'euro' is not an ISO 4217 currency code"), err


def test_config_check_prints_the_effective_configuration_with_secrets_masked(tmp_path: pathlib.Path) -> None:
    config = write(
        tmp_path / "smsgate.toml", 'redis_url = "redis://:redispw@127.0.0.1:6379/0"\n' + SMPP.format(port=2775)
    )
    env = _env(
        tmp_path / "data",
        SMSGATE_OPERATOR_TOKEN="op-token-value",
        SMSGATE_DATABASE_URL="postgres://gw:dbpass@db.example:5432/smsgate",
    )
    run = run_cli("config", "check", "--config", str(config), env=env)
    out = run.stdout
    for secret in ("s3cret", "op-token-value", "dbpass", "redispw"):
        assert secret not in out, secret
    assert f"configuration OK ({config})" in out
    assert "database    postgresql+asyncpg://gw:***@db.example:5432/smsgate" in out
    assert f"data dir    {(tmp_path / 'data').resolve()}" in out
    assert "  kpn-smsc (smpp): host=127.0.0.1, port=2775, system_id=smsgate, password=***" in out
    assert "routing     default -> kpn-smsc" in out
    assert "operator_token = ***" in out and "redis_url = redis://:***@127.0.0.1:6379/0" in out
    data = json.loads(run_cli("config", "check", "--config", str(config), "--json", env=env).stdout)
    assert data["connectors"][0]["password"] == "***" and data["sandbox_only"] is False
    assert data["database"] == "postgresql+asyncpg://gw:***@db.example:5432/smsgate"
    sandbox = run_cli("config", "check", env=_env(tmp_path / "data")).stdout
    assert "sandbox (sandbox)" in sandbox and "no real SMS leaves this machine" in sandbox


def test_banner_names_connectors_and_warns_about_the_sandbox(tmp_path: pathlib.Path) -> None:
    with postgres_database() as url:
        secret_url = url.replace("postgresql://postgres@", "postgresql://postgres:pw-in-url@")
        gw = GatewayProcess(tmp_path / "pg", env={"SMSGATE_DATABASE_URL": secret_url}).start()
        try:
            banner = gw.log.read_text()
        finally:
            gw.stop()
    assert "pw-in-url" not in banner and "postgres:***@" in banner
    assert "connectors  sandbox (sandbox, up)" in banner
    assert "SANDBOX: no real SMS leaves this machine" in banner
    config = write(tmp_path / "smsgate.toml", SMPP.format(port=free_port()))
    gw = GatewayProcess(tmp_path / "smpp", config=config).start()
    try:
        banner = gw.log.read_text()
    finally:
        gw.stop()
    assert "connectors  kpn-smsc (smpp, down)" in banner
    assert "SANDBOX" not in banner and "s3cret" not in banner


# -- item 2: startup failures -------------------------------------------------------------------------------------
@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        yield int(s.getsockname()[1])


def test_port_in_use_is_one_line_before_any_listening_line(tmp_path: pathlib.Path, busy_port: int) -> None:
    run = subprocess.run(
        [*SMSGATE, "serve", "--port", str(busy_port)],
        env=_env(tmp_path / "data"),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert run.stdout == ""  # nothing was printed before the failure, "listening" least of all
    assert run.stderr.splitlines() == [
        f"smsgate: error: cannot listen on 127.0.0.1:{busy_port}: the port is already in use",
        "  stop what is using it (another smsgate?) or choose another port with --port",
    ]
    assert not (tmp_path / "data" / "smsgate.db").exists()  # refused before the database was touched


def test_database_down_missing_or_refusing(tmp_path: pathlib.Path) -> None:
    _out, err = serve_fails(
        tmp_path, env={"SMSGATE_DATABASE_URL": f"postgresql://postgres:pw@127.0.0.1:{free_port()}/x"}
    )
    assert "connection refused" in err and "postgres:***@" in err and ":pw@" not in err
    name = "smsgate_missing_" + os.urandom(4).hex()
    _out, err = serve_fails(tmp_path, env={"SMSGATE_DATABASE_URL": f"postgresql://postgres@127.0.0.1:5432/{name}"})
    assert f'database "{name}" does not exist' in err
    _out, err = serve_fails(
        tmp_path, env={"SMSGATE_DATABASE_URL": "postgresql://nobody_smsgate@127.0.0.1:5432/postgres"}
    )
    assert 'role "nobody_smsgate" does not exist' in err
    _out, err = serve_fails(tmp_path, env={"SMSGATE_DATABASE_URL": "mysql://root@127.0.0.1/x"})
    assert "SMSGATE_DATABASE_URL: unsupported database 'mysql'" in err


def test_data_dir_that_cannot_be_written(tmp_path: pathlib.Path) -> None:
    blocker = write(tmp_path / "a-file", "")
    _out, err = serve_fails(blocker / "data")
    assert err.splitlines() == [
        f"smsgate: error: data dir {blocker / 'data'}: cannot write there (Not a directory)",
        "  point SMSGATE_DATA_DIR at a directory this user can write",
    ]


def test_missing_tls_files(tmp_path: pathlib.Path) -> None:
    _out, err = serve_fails(tmp_path, "--tls-cert", str(tmp_path / "cert.pem"), "--tls-key", str(tmp_path / "key.pem"))
    assert err.splitlines()[0] == f"smsgate: error: {tmp_path / 'cert.pem'}: no such TLS certificate file"
    bad = write(tmp_path / "bad.pem", "not a certificate")
    _out, err = serve_fails(tmp_path, "--tls-cert", str(bad), "--tls-key", str(bad))
    assert "not a matching PEM certificate and key" in err
    _out, err = serve_fails(tmp_path, "--tls-cert", str(bad))
    assert "--tls-cert and --tls-key go together" in err


def test_debug_shows_the_traceback(tmp_path: pathlib.Path) -> None:
    config = write(tmp_path / "smsgate.toml", "token_ttl_secondz = 1\n")
    run = subprocess.run(
        [*SMSGATE, "serve", "--port", str(free_port()), "--config", str(config), "--debug"],
        env=_env(tmp_path / "data"),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert run.returncode == 2
    assert "Traceback" in run.stderr and "smsgate: error: smsgate.toml: token_ttl_secondz" in run.stderr


# -- item 3: database URLs as people write them -----------------------------------------------------------------
def test_database_url_spellings(tmp_path: pathlib.Path) -> None:
    env = _env(tmp_path / "unused")
    forms = [
        ("sqlite:///rel.db", tmp_path / "rel.db"),
        (f"sqlite:///{tmp_path / 'abs.db'}", tmp_path / "abs.db"),
        (f"sqlite+aiosqlite:///{tmp_path / 'drv.db'}", tmp_path / "drv.db"),
    ]
    for url, file in forms:
        run = run_cli("migrate", env={**env, "SMSGATE_DATABASE_URL": url}, cwd=tmp_path)
        assert file.exists(), (url, run.stderr)
        assert run.stderr.strip() == f"database: sqlite+aiosqlite:///{'rel.db' if 'rel' in url else file}"
    with postgres_database() as url:
        rest = url.removeprefix("postgresql://").replace("postgres@", "postgres:pw@", 1)
        empty = run_cli("accounts", "list", env={**env, "SMSGATE_DATABASE_URL": url}, check=False)
        assert empty.returncode == 2 and empty.stderr.splitlines()[0].endswith("has no smsgate tables yet")
        for scheme in ("postgresql", "postgres", "postgresql+asyncpg"):
            run = run_cli("migrate", env={**env, "SMSGATE_DATABASE_URL": f"{scheme}://{rest}"})
            assert run.stderr.strip() == "database: postgresql+asyncpg://" + rest.replace(":pw@", ":***@"), run.stderr
        # and a whole node on the "postgres://" spelling (the LISTEN connection included)
        gw = GatewayProcess(tmp_path / "gw", env={"SMSGATE_DATABASE_URL": f"postgres://{rest}"}).start()
        try:
            assert httpx.get(gw.url + "/readyz").json()["ready"] is True
        finally:
            gw.stop()


# -- item 4: one data directory --------------------------------------------------------------------------------
def test_default_data_dir_is_per_user_whatever_the_working_directory(tmp_path: pathlib.Path) -> None:
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SMSGATE_", "XDG_"))}
    env["HOME"] = str(home)
    db = home / ".local" / "share" / "smsgate" / "smsgate.db"
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    missing = subprocess.run(
        [*SMSGATE, "accounts", "list"], env=env, cwd=tmp_path / "a", capture_output=True, text=True, timeout=60
    )
    assert missing.returncode == 2 and missing.stderr.splitlines()[0] == f"smsgate: error: no database at {db}"
    assert not db.exists() and not (tmp_path / "a" / "data").exists()  # nothing was created
    made = subprocess.run(
        [*SMSGATE, "migrate"], env=env, cwd=tmp_path / "a", capture_output=True, text=True, timeout=60
    )
    assert made.returncode == 0 and made.stderr.strip() == f"database: sqlite+aiosqlite:///{db}"
    created = subprocess.run(
        [*SMSGATE, "accounts", "create", "shop", "--json"],
        env=env,
        cwd=tmp_path / "b",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert created.returncode == 0 and created.stderr.strip() == f"database: sqlite+aiosqlite:///{db}"
    listed = subprocess.run(
        [*SMSGATE, "accounts", "list", "--json"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert [a["name"] for a in json.loads(listed.stdout)] == ["shop"]


def test_missing_config_file_and_bad_option_value(tmp_path: pathlib.Path) -> None:
    _out, err = serve_fails(tmp_path / "data", "--config", str(tmp_path / "nope.toml"))
    assert err.splitlines()[0] == f"smsgate: error: {tmp_path / 'nope.toml'}: no such config file"
    _out, err = serve_fails(tmp_path / "data", env={"SMSGATE_CONFIG": str(tmp_path / "gone.toml")})
    assert "gone.toml: no such config file" in err
    _out, err = serve_fails(tmp_path / "data", "--log-format", "xml")
    assert err.strip() == "smsgate: error: --log-format: must be text or json"


def test_workers_port_in_use_is_one_line_too(tmp_path: pathlib.Path, busy_port: int) -> None:
    from tests.support import require_redis

    with postgres_database() as url:
        env = _env(tmp_path / "data", SMSGATE_DATABASE_URL=url, SMSGATE_REDIS_URL=require_redis())
        run = subprocess.run([*SMSGATE, "serve", "--workers", "2", "--port", str(busy_port)],
                             env=env, capture_output=True, text=True, timeout=60)  # fmt: skip
    assert run.returncode == 2 and run.stdout == "" and "Traceback" not in run.stderr
    assert run.stderr.splitlines()[0] == (
        f"smsgate: error: [worker 0] cannot listen on 127.0.0.1:{busy_port}: the port is already in use"
    )
    assert len(run.stderr.splitlines()) == 2


def test_tables_from_the_environment_are_checked_as_strictly(tmp_path: pathlib.Path) -> None:
    _out, err = serve_fails(
        tmp_path / "data", env={"SMSGATE_CONNECTORS": '[{"name": "x", "type": "smpp", "hots": "h"}]'}
    )
    assert err.splitlines()[0] == (
        "smsgate: error: SMSGATE_CONNECTORS: connectors[0].hots: unknown key (did you mean host?)"
    )
    _out, err = serve_fails(tmp_path / "data", env={"SMSGATE_CONNECTORS": "not json"})
    assert err.strip() == "smsgate: error: SMSGATE_CONNECTORS: not valid JSON"
