"""``smsgate suppressions import/export`` against a real SQLite file and a real PostgreSQL database; an import is all
or nothing."""

from __future__ import annotations

import csv
import io
import pathlib

import pytest

from tests import support


@pytest.mark.parametrize("backend", support.BACKENDS)
def test_import_then_export(tmp_path: pathlib.Path, backend: str) -> None:
    with support.backend_env(backend) as db:
        check_import_then_export(tmp_path, {"SMSGATE_DATA_DIR": str(tmp_path / "data"), **db})


def check_import_then_export(tmp_path: pathlib.Path, env: dict[str, str]) -> None:
    # the accounts straight through the store, which migrates: the commands under test are the suppressions ones
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    url = env.get("SMSGATE_DATABASE_URL") or f"sqlite+aiosqlite:///{data / 'smsgate.db'}"
    acc, other = support.create_account(url, "shop"), support.create_account(url, "other")
    good = tmp_path / "list.csv"
    good.write_text("msisdn,reason\n+31612345678,asked in the shop\n0031612345679\n\n31612345678,twice\n")
    out = support.cli_json("suppressions", "import", str(good), "--account", acc["api_key"], "--json", env=env)
    assert out == {"account_id": acc["account_id"], "read": 3, "added": 2}
    bad = tmp_path / "bad.csv"
    bad.write_text("31612345670\nnot a number\n")
    r = support.run_cli("suppressions", "import", str(bad), "--account", acc["api_key"], env=env, check=False)
    said = " ".join(r.stderr.replace("│", " ").split())  # rich wraps the message in a box as wide as the terminal
    assert r.returncode == 2 and "line 2:" in said, r.stderr
    exported = support.run_cli("suppressions", "export", "--account", acc["account_id"], env=env).stdout
    rows = list(csv.DictReader(io.StringIO(exported)))
    assert [(x["msisdn"], x["source"], x["reason"]) for x in rows] == [
        ("31612345678", "import", "asked in the shop"),
        ("31612345679", "import", ""),
    ]  # nothing of the refused file
    theirs = support.run_cli("suppressions", "export", "--account", other["account_id"], env=env).stdout
    assert theirs.strip() == "msisdn,source,reason,created_at"


def test_accounts_set_opt_out_and_retention(tmp_path: pathlib.Path) -> None:
    env = {"SMSGATE_DATA_DIR": str(tmp_path / "data")}
    (tmp_path / "data").mkdir(mode=0o700)
    # through the store, which migrates: the command under test is accounts set
    acc = support.create_account(f"sqlite+aiosqlite:///{tmp_path / 'data' / 'smsgate.db'}", "shop")
    args = ["accounts", "set", acc["api_key"], "--stop-keywords", " halt, Stop ,", "--optout-reply", "Bye."]
    out = support.cli_json(*args, "--retention-days", "90", "--content-retention-days", "7", "--json", env=env)
    assert out["optout"] == {"stop_keywords": ["HALT", "STOP"], "start_keywords": None, "reply": "Bye."}
    assert out["retention"] == {"days": 90, "content_days": 7}
    back = ["accounts", "set", acc["api_key"], "--stop-keywords", "", "--optout-reply", "", "--retention-days", "-1"]
    out = support.cli_json(*back, "--json", env=env)
    assert out["optout"]["stop_keywords"] is None and out["optout"]["reply"] is None
    assert out["retention"] == {"days": None, "content_days": 7}
    many = ",".join(f"W{i}" for i in range(21))
    r = support.run_cli("accounts", "set", acc["api_key"], "--stop-keywords", many, env=env, check=False)
    assert r.returncode == 2 and "at most 20 keywords" in r.stderr, r.stderr
