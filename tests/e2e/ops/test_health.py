"""Health and version (issue 15, item 7): ``/healthz`` is liveness; ``/readyz`` is 200 only while the database
takes a write, and reports every connector's state; ``smsgate --version`` and ``GET /version`` agree."""

from __future__ import annotations

import importlib.metadata
import pathlib
import sqlite3

import httpx

from tests.e2e.ops.test_startup import SMPP
from tests.support import GatewayProcess, free_port, run_cli, wait_for


def test_version_from_the_command_and_the_server(gateway: GatewayProcess) -> None:
    installed = importlib.metadata.version("smsgate")
    assert run_cli("--version").stdout.strip() == f"smsgate {installed}"
    body = httpx.get(gateway.url + "/version").json()
    assert body["name"] == "smsgate" and body["version"] == installed
    assert httpx.get(gateway.url + "/openapi.json").json()["info"]["version"] == installed
    live = httpx.get(gateway.url + "/healthz")
    assert live.status_code == 200 and live.json()["status"] == "ok"


def test_ready_while_the_database_takes_writes_whatever_the_connectors(tmp_path: pathlib.Path) -> None:
    gw = GatewayProcess(tmp_path / "data", env={"SMSGATE_READY_TIMEOUT": "0.5"}).start()
    try:
        ready = httpx.get(gw.url + "/readyz")
        assert ready.status_code == 200, ready.text
        body = ready.json()
        assert body["ready"] is True and body["database"]["ok"] is True
        assert body["connectors"] == {
            "sandbox": {"state": "up", "detail": "sandbox network: no SMS leaves this machine"}
        }
        # the connector goes down: messages still get accepted (they wait in the outbox), so still ready ...
        op = {"Authorization": f"Bearer {gw.operator_token}"}
        assert httpx.post(gw.url + "/sandbox/network", json={"available": False}, headers=op).status_code == 200
        down = httpx.get(gw.url + "/readyz")
        assert down.status_code == 200 and down.json()["connectors"]["sandbox"]["state"] == "down"
        # ... unless the probe asks for every connector
        strict = httpx.get(gw.url + "/readyz", params={"connectors": "all"})
        assert strict.status_code == 503 and strict.json()["status"] == "connector down"
        assert httpx.post(gw.url + "/sandbox/network", json={"available": True}, headers=op).status_code == 200
        assert httpx.get(gw.url + "/readyz", params={"connectors": "all"}).status_code == 200
        # another process holds SQLite's write lock: no write gets through, so not ready
        db = sqlite3.connect(tmp_path / "data" / "smsgate.db", timeout=5, isolation_level=None)
        try:
            db.execute("BEGIN IMMEDIATE")
            blocked = httpx.get(gw.url + "/readyz", timeout=10)
            assert blocked.status_code == 503, blocked.text
            assert blocked.json()["database"] == {"ok": False, "error": "no answer to a write within 0.5 s"}
        finally:
            db.execute("ROLLBACK")
            db.close()
        wait_for(lambda: httpx.get(gw.url + "/readyz").status_code == 200)
    finally:
        gw.stop()


def test_unbound_smpp_connector_is_reported_down(tmp_path: pathlib.Path) -> None:
    config = tmp_path / "smsgate.toml"
    config.write_text(SMPP.format(port=free_port()))
    gw = GatewayProcess(tmp_path / "data", config=config).start()
    try:
        body = httpx.get(gw.url + "/readyz").json()
        assert body["ready"] is True and body["connectors"]["kpn-smsc"]["state"] == "down"
        assert "s3cret" not in str(body)
    finally:
        gw.stop()
