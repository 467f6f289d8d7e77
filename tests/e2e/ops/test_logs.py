"""Logs an operator can use (issue 15, item 6): JSON or text lines, an access line per request with the account
and never a secret, token, query string or message text; state changes at DEBUG with masked numbers; a
"shutting down" and a "stopped" line."""

from __future__ import annotations

import json
import pathlib
from typing import Any

import httpx

from tests.support import GatewayProcess, wait_for

NUMBER = "+31612345678"
TEXT = "a private message 4711"


def _send_kpn(gw: GatewayProcess, account: dict[str, str]) -> str:
    token = gw.token(account)
    r = httpx.post(
        gw.url + "/messaging/sms-kpn/v1/send",
        headers={"Authorization": f"Bearer {token}"},
        json={"messages": [{"mobile_number": NUMBER, "content": TEXT}]},
    )
    assert r.status_code == 200, r.text
    mid = str(r.json()["document_id"])
    with gw.client(auth=(account["api_key"], account["api_secret"])) as c:
        wait_for(lambda: c.get(f"/v1/messages/{mid}").json()["status"] == "delivered")
    return token


def after_banner(gw: GatewayProcess) -> str:
    """The log after the banner (whose "Try it" lines show the README's example number on purpose)."""
    return gw.log.read_text().rsplit('-H "Authorization: Bearer $TOKEN"\n', 1)[-1]


def test_json_access_lines_carry_the_account_and_nothing_secret(tmp_path: pathlib.Path) -> None:
    gw = GatewayProcess(tmp_path / "data", args=("--log-format", "json"), log_level="info").start()
    try:
        acc = gw.create_account("logs")
        token = _send_kpn(gw, acc)
        # Vonage lets a caller put the secret in the query string: the path is logged without it
        r = httpx.post(
            gw.url + "/sms/json",
            params={"api_key": acc["api_key"], "api_secret": acc["api_secret"], "to": "31612345678",
                    "from": "smsgate", "text": TEXT},
        )  # fmt: skip
        assert r.status_code == 200 and r.json()["messages"][0]["status"] == "0"
        handset = httpx.get(gw.url + "/sandbox/handsets/31612345678/messages", auth=(acc["api_key"], acc["api_secret"]))
        assert handset.status_code == 200
        bad = httpx.post(gw.url + "/v1/send-sms", auth=(acc["api_key"], "wrong-secret"), json={"to": "1", "text": "x"})
        assert bad.status_code == 403
    finally:
        gw.stop()
    log = after_banner(gw)
    for secret in (acc["api_secret"], token, TEXT, NUMBER, "31612345678", "wrong-secret"):
        assert secret not in log, f"{secret!r} is in the log"
    records: list[dict[str, Any]] = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    access = [r for r in records if r["logger"] == "smsgate.access"]
    send = next(r for r in access if r["path"] == "/messaging/sms-kpn/v1/send")
    assert send["method"] == "POST" and send["status"] == 200 and send["account"] == acc["account_id"]
    assert isinstance(send["duration_ms"], float) and send["client"] == "127.0.0.1"
    vonage = next(r for r in access if r["path"] == "/sms/json")
    assert vonage["account"] == acc["account_id"] and "?" not in vonage["message"]
    token_line = next(r for r in access if r["path"] == "/oauth/client_credential/accesstoken")
    assert token_line["status"] == 200 and token_line["account"] == acc["account_id"]
    assert any(r["path"] == "/sandbox/handsets/3161*****78/messages" for r in access)
    refused = next(r for r in access if r["path"] == "/v1/send-sms")
    assert refused["status"] == 403 and refused["account"] == "-"
    messages = [r["message"] for r in records if r["logger"] == "smsgate.server"]
    assert any(m.startswith("shutting down (SIGTERM)") for m in messages) and messages[-1] == "stopped"


def test_debug_state_changes_mask_numbers_and_never_log_the_text(tmp_path: pathlib.Path) -> None:
    gw = GatewayProcess(tmp_path / "data", log_level="debug").start()
    try:
        acc = gw.create_account("debug")
        _send_kpn(gw, acc)
        with gw.client(auth=(acc["api_key"], acc["api_secret"])) as c:
            mid = c.get("/v1/messages").json()["messages"][0]["id"]
    finally:
        gw.stop()
    log = after_banner(gw)
    assert TEXT not in log and "31612345678" not in log
    assert f"message {mid} accepted: to +3161*****78, 1 part(s), kpn dialect" in log
    assert f"message {mid} part " in log and " submitted (connector=sandbox, network_id=SBX" in log
    assert f"message {mid} part " in log and " delivered (network_id=SBX" in log
    assert "aiosqlite" not in log  # debug is smsgate's own lines, not every driver call
    assert '"POST /messaging/sms-kpn/v1/send" 200 ' in log and f"account={acc['account_id']}" in log
