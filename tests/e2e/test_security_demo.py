"""Issue #14 item 2: the well-known demo credentials never reach a real network.

Real gateways on SQLite and the SMSC simulator over SMPP. A gateway whose route is a real (SMPP) connector creates
no demo account. A sandbox-only gateway creates ``sandbox1``; started again with an SMPP connector added, it warns
on every start while the demo account exists, the demo account's messages still go to the sandbox network (another
account's go to the SMSC), and with no sandbox connector left they are refused.
"""

from __future__ import annotations

import json
import pathlib
from collections.abc import Iterator

import httpx
import pytest

from tests.support import GatewayProcess, SmscThread, run_cli, smpp_config, wait_for

DEMO = {"api_key": "sandbox1", "api_secret": "sandbox-secret"}
KPN_SEND = "/messaging/sms-kpn/v1/send"


@pytest.fixture
def sim() -> Iterator[SmscThread]:
    s = SmscThread().start()
    yield s
    s.stop()


def accounts(gw: GatewayProcess) -> list[dict[str, str]]:
    return list(json.loads(run_cli("accounts", "list", "--json", env=gw.env).stdout))


def send_as(gw: GatewayProcess, acc: dict[str, str], text: str) -> httpx.Response:
    auth = (acc["api_key"], acc["api_secret"])
    return httpx.post(gw.url + "/v1/send-sms", json={"to": "31612345678", "text": text}, auth=auth)


def test_no_demo_account_when_a_real_connector_is_configured(tmp_path: pathlib.Path, sim: SmscThread) -> None:
    gw = GatewayProcess(tmp_path, config=smpp_config(tmp_path / "smsgate.toml", sim.sim.port)).start()
    try:
        assert accounts(gw) == []
        r = httpx.post(
            gw.url + "/oauth/client_credential/accesstoken?grant_type=client_credentials",
            data={"client_id": DEMO["api_key"], "client_secret": DEMO["api_secret"]},
        )
        assert r.status_code == 401, r.text
    finally:
        gw.stop()
    assert "demo account" not in gw.log.read_text()


def test_demo_account_stays_in_the_sandbox(tmp_path: pathlib.Path, sim: SmscThread) -> None:
    gw = GatewayProcess(tmp_path).start()  # sandbox only: the demo account with its well-known secret
    try:
        assert [a["api_key"] for a in accounts(gw)] == ["sandbox1"]
        assert send_as(gw, DEMO, "in the sandbox").status_code == 202
    finally:
        gw.stop()
    mixed = tmp_path / "mixed.toml"
    smpp_config(mixed, sim.sim.port)
    mixed.write_text(mixed.read_text() + '\n[[connectors]]\nname = "sandbox"\ntype = "sandbox"\n')
    for start in (1, 2):  # the warning comes on every start
        gw.config = mixed
        gw.start()
        try:
            bob = gw.create_account(f"bob{start}")
            demo = send_as(gw, DEMO, f"demo {start}")
            sent = send_as(gw, bob, f"bob {start}")
            assert demo.status_code == sent.status_code == 202, (demo.text, sent.text)
            with httpx.Client(base_url=gw.url, auth=(DEMO["api_key"], DEMO["api_secret"])) as c:
                url = f"/v1/messages/{demo.json()['message_id']}"
                m = wait_for(lambda c=c, url=url: (m := c.get(url).json())["status"] == "delivered" and m)
            assert m["connector"] == "sandbox"
            text = f"bob {start}".encode()
            wait_for(lambda text=text: text in [r.short_message for r in sim.records()])
            assert not [r for r in sim.records() if b"demo" in r.short_message]  # never reached the SMSC
        finally:
            gw.stop()
        warnings = [ln for ln in gw.log.read_text().splitlines() if "WARNING" in ln and "demo account sandbox1" in ln]
        # one per start: the sandbox-only one that created it, and each start since
        assert len(warnings) == start + 1 and "published 'sandbox-secret'" in warnings[-1], warnings
    gw.config = smpp_config(tmp_path / "smpp-only.toml", sim.sim.port)  # no sandbox connector left
    gw.start()
    try:
        r = send_as(gw, DEMO, "nowhere to go")
        assert r.status_code == 403 and r.json()["code"] == 4031, r.text
        r = httpx.post(
            gw.url + "/sms/json",
            data={"from": "smsgate", "to": "31612345678", "text": "nowhere"},
            auth=(DEMO["api_key"], DEMO["api_secret"]),
        )
        assert r.json()["messages"][0]["status"] == "7", r.text
    finally:
        gw.stop()
    assert not [r for r in sim.records() if b"demo" in r.short_message or b"nowhere" in r.short_message]
