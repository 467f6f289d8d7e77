"""Shared fixtures: one gateway process per test module on a real SQLite file, accounts per test."""

from __future__ import annotations

import pathlib
from collections.abc import Iterator

import pytest

from tests.support import GatewayProcess

# a user's project, run by its own pytest (tests/e2e/test_plugin.py): not part of this suite
collect_ignore = ["plugin_example"]


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
