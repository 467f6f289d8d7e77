"""Shared fixtures: one gateway process per test module on a real SQLite file, accounts per test."""

from __future__ import annotations

import compileall
import pathlib
from collections.abc import Iterator

import pytest

import smsgate
from tests.support import GatewayProcess

# a user's project, run by its own pytest (tests/e2e/test_plugin.py): not part of this suite
collect_ignore = ["plugin_example"]


def pytest_configure(config: pytest.Config) -> None:
    """Compile the package's bytecode once, before the workers start: with PYTHONDONTWRITEBYTECODE set (as on this
    machine) an editable install has none, and each of the suite's hundreds of gateway and CLI processes would
    compile every module again (~0.1 s of CPU each, measured on ``smsgate --help``)."""
    if not hasattr(config, "workerinput"):  # the xdist controller, or a run without workers
        compileall.compile_dir(pathlib.Path(smsgate.__file__).parent, quiet=1)


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    gw = GatewayProcess(tmp_path_factory.mktemp("gw")).start()
    try:
        yield gw
    finally:
        gw.stop()


@pytest.fixture
def account(gateway: GatewayProcess) -> dict[str, str]:
    return gateway.create_account("test")


@pytest.fixture
def data_dir(tmp_path: pathlib.Path) -> pathlib.Path:
    d = tmp_path / "data"
    d.mkdir()
    return d
