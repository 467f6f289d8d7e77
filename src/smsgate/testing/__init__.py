"""pytest plugin: a private smsgate gateway for your test session, an account per test, and the helpers a test of an
SMS flow needs (``docs/testing-your-application.md``).

Registered through the ``pytest11`` entry point, so installing smsgate is enough. Fixtures:

* ``smsgate_server`` (session): ``smsgate serve`` on a free loopback port with a temporary data dir, sandbox network
  only; started on first use, stopped and its data dir removed when the session ends.
* ``smsgate_account`` (test): fresh credentials and a virtual number of its own, which is its default sender.

Helpers, acting for the current test's account: ``wait_for_sms(to, timeout)`` and ``reply(from_handset, to, text)``.

ini options: ``smsgate_tls`` (serve HTTPS with a self-signed certificate, for the Vonage SDK, which only speaks
HTTPS) and ``smsgate_env`` (lines of ``SMSGATE_*=value`` settings for the test gateway).

Importing this module costs nothing beyond pytest: the gateway's own modules load when a fixture is first used.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from smsgate.testing.account import Account, Sms
    from smsgate.testing.gateway import Gateway

__all__ = ["reply", "smsgate_account", "smsgate_server", "wait_for_sms"]

_current: list[Account] = []  # the account of the test that is running (the helpers act for it)
_USED = pytest.StashKey["Gateway"]()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini("smsgate_tls", "smsgate test gateway: serve HTTPS with a self-signed certificate", type="bool")
    parser.addini("smsgate_env", "smsgate test gateway: SMSGATE_*=value settings, one a line", type="linelist")


@pytest.fixture(scope="session")
def smsgate_server(request: pytest.FixtureRequest) -> Iterator[Gateway]:
    """The session's gateway: ``url``, ``ca_file`` (with ``smsgate_tls``), ``operator_token``, ``create_account()``."""
    from smsgate.testing.gateway import Gateway

    env = {}
    for line in request.config.getini("smsgate_env"):
        key, sep, value = line.partition("=")
        if not sep or not key.strip().upper().startswith("SMSGATE_"):
            raise pytest.UsageError(f"smsgate_env: {line!r} is not SMSGATE_NAME=value")
        env[key.strip().upper()] = value.strip()
    gw = Gateway(tls=bool(request.config.getini("smsgate_tls")), env=env)
    request.config.stash[_USED] = gw
    try:
        gw.start()
        yield gw
    finally:
        gw.stop()
        gw.remove_data()  # after reading the log's error lines for the summary


@pytest.fixture
def smsgate_account(smsgate_server: Gateway) -> Iterator[Account]:
    """A new account for this test: ``api_key``, ``api_secret``, ``number`` (a virtual number it owns and sends from
    by default), ``url``; reset and its claims given back when the test ends."""
    account = smsgate_server.create_account()
    _current.append(account)
    try:
        yield account
    finally:
        _current.remove(account)
        account.close()


def _account() -> Account:
    if not _current:
        raise RuntimeError("smsgate.testing helpers act for the test's account: request the smsgate_account fixture")
    return _current[-1]


def wait_for_sms(to: str, timeout: float = 5.0, *, otp_pattern: str | None = None) -> Sms:
    """The next SMS the handset ``to`` receives from the test's account (``.text``, ``.otp``, ``.sender`` ...);
    AssertionError when none comes within ``timeout`` seconds."""
    return _account().wait_for_sms(to, timeout, otp_pattern=otp_pattern)


def reply(from_handset: str, to: str, text: str) -> None:
    """The handset ``from_handset`` sends ``text`` to ``to`` (the number or name your application sent from; the
    test's account is made to own it), and the gateway delivers it to your application as an inbound message."""
    _account().reply(from_handset, to, text)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    gw = config.stash.get(_USED, None)
    if gw is None:
        return
    terminalreporter.write_sep("-", "smsgate test gateway")
    state = "removed" if not gw.data_dir.exists() else "left in place"
    terminalreporter.write_line(
        f"{gw.url} (pid {gw.pid}) started in {gw.started_in:.2f} s, stopped; data dir {gw.data_dir} {state}"
    )
    for line in gw.logged_errors[:20]:
        terminalreporter.write_line("  gateway: " + line)
