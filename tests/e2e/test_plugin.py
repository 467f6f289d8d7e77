"""The pytest plugin (``smsgate.testing``, issue #22 item 4), as a user's project meets it: ``tests/plugin_example``
run by its own pytest in a subprocess, the plugin loaded only through the installed package's ``pytest11`` entry
point; and a throwaway project for what the example does not show (a wait that finds nothing, plain HTTP,
``smsgate_env``, a developer's own ``SMSGATE_*`` variables kept out)."""

from __future__ import annotations

import os
import pathlib
import re
import subprocess
import sys
import textwrap

EXAMPLE = pathlib.Path(__file__).parent.parent / "plugin_example"
REPO = EXAMPLE.parent.parent


def run_pytest(cwd: pathlib.Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
        cwd=cwd,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1", **(env or {})},
        capture_output=True,
        text=True,
        timeout=180,
    )


def gateway_line(out: str) -> tuple[int, pathlib.Path]:
    """(pid, data dir) from the plugin's summary line."""
    found = re.search(r"\(pid (\d+)\) started in [\d.]+ s, stopped; data dir (\S+) removed", out)
    assert found, out
    return int(found.group(1)), pathlib.Path(found.group(2))


def assert_gone(pid: int, data_dir: pathlib.Path) -> None:
    assert not data_dir.exists()
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return
    raise AssertionError(f"the test gateway (pid {pid}) is still running")


def test_the_example_project_sends_through_each_dialect() -> None:
    r = run_pytest(EXAMPLE, "-q", "--durations=0", "--durations-min=0")
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    assert re.search(r"\b7 passed\b", out), out
    for dialect in ("kpn", "vonage", "kaarai"):
        assert f"test_signup_code_arrives_and_confirms[{dialect}]" in out, out
    assert_gone(*gateway_line(out))
    # each test, the gateway's start aside, well under a second on a quiet machine (2 s: room for a loaded CI
    # running four test workers on two cores; a test that waits out a timeout takes 5 s or more)
    calls = [float(t) for t in re.findall(r"^([\d.]+)s call ", out, re.M)]
    assert len(calls) == 7 and max(calls) < 2.0, out


USER_PROJECT = """
import os

import httpx
import pytest

from smsgate.testing import reply, wait_for_sms


def test_nothing_came(smsgate_account):
    with pytest.raises(AssertionError) as caught:
        wait_for_sms("0612345670", timeout=0.3)
    assert "no new SMS to +31612345670 within 0.3 s" in str(caught.value)
    assert "sent nothing to +31612345670" in str(caught.value)


def test_plain_http_and_settings(smsgate_server, smsgate_account):
    assert smsgate_server.url.startswith("http://") and smsgate_server.ca_file is None
    # SMSGATE_DATABASE_URL of the developer's shell is not the test gateway's
    assert str(smsgate_server.data_dir) in smsgate_server.database_url
    auth = (smsgate_account.api_key, smsgate_account.api_secret)
    r = httpx.post(smsgate_server.url + "/v1/send-sms", json={"to": "31612345678", "text": "code 4321"}, auth=auth)
    assert r.json()["code"] == 2020
    sms = wait_for_sms("+31612345678", otp_pattern=r"code (\\d+)")
    assert (sms.otp, sms.sender) == ("4321", smsgate_account.number)
    # smsgate_env: receipts after 1.5 s here
    status = lambda: httpx.get(smsgate_server.url + "/v1/messages/" + sms.id, auth=auth).json()["status"]
    assert status() == "submitted"
    reply("31612345678", smsgate_account.number, "STOP")
    assert smsgate_account.received()[0]["text"] == "STOP"


def test_each_test_has_its_own_account(smsgate_account):
    with pytest.raises(AssertionError):  # the message of the test before is not this account's
        wait_for_sms("+31612345678", timeout=0.1)
"""


def test_a_project_without_tls(tmp_path: pathlib.Path) -> None:
    (tmp_path / "pytest.ini").write_text(
        textwrap.dedent(
            """
            [pytest]
            addopts = -p no:asyncio
            filterwarnings = error
            smsgate_env =
                SMSGATE_SANDBOX_RECEIPT_DELAY=1.5
            """
        )
    )
    (tmp_path / "test_user.py").write_text(USER_PROJECT)
    r = run_pytest(tmp_path, "-q", env={"SMSGATE_DATABASE_URL": "postgresql://nobody@192.0.2.1/not-this-one"})
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    assert re.search(r"\b3 passed\b", out), out
    assert_gone(*gateway_line(out))


def test_our_own_suite_does_not_load_the_plugin() -> None:
    """The plugin is auto-loaded wherever smsgate is installed; our suite has its own gateway fixtures and turns it
    off (pyproject's addopts), so none of its fixtures or hooks are in play here."""
    # -n0: listing fixtures needs none of the four xdist workers addopts would start (~12 s of CPU)
    r = run_pytest(REPO, "--fixtures", "-q", "-n0", "tests/unit/test_numbers.py")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "smsgate_server" not in r.stdout and "gateway" in r.stdout
