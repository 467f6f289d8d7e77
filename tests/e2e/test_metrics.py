"""/metrics: Prometheus text from the runtime's counters, behind the operator token."""

from __future__ import annotations

import httpx

from tests.support import GatewayProcess, wait_for

SEND = "/messaging/sms-kpn/v1/send"


def _scrape(gateway: GatewayProcess) -> dict[str, float]:
    r = httpx.get(gateway.url + "/metrics", headers={"Authorization": f"Bearer {gateway.operator_token}"})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    out: dict[str, float] = {}
    for line in r.text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def test_counts_follow_sends(gateway: GatewayProcess, account: dict[str, str]) -> None:
    before = _scrape(gateway)
    token = gateway.token(account)
    with gateway.client(headers={"Authorization": f"Bearer {token}"}) as c:
        for _ in range(3):
            body = {"sender": "Test", "messages": [{"mobile_number": "0612345678", "content": "hi"}]}
            assert c.post(SEND, json=body).status_code == 200
    key = 'smsgate_messages_accepted_total{dialect="kpn"}'
    after = wait_for(
        lambda: (
            (m := _scrape(gateway)).get("smsgate_receipts_total", 0) >= before.get("smsgate_receipts_total", 0) + 3
            and m
        )
    )
    assert after[key] == before.get(key, 0) + 3
    assert after["smsgate_parts_submitted_total"] >= before.get("smsgate_parts_submitted_total", 0) + 3
    assert after["smsgate_commits_total"] > before["smsgate_commits_total"]
    assert after['smsgate_connector_available{connector="sandbox"}'] == 1.0
    assert after['smsgate_connector_state{connector="sandbox",state="up"}'] == 1.0
    assert after['smsgate_connector_state{connector="sandbox",state="down"}'] == 0.0


def test_needs_the_operator_token(gateway: GatewayProcess, account: dict[str, str]) -> None:
    assert httpx.get(gateway.url + "/metrics").status_code == 401
    bad = httpx.get(gateway.url + "/metrics", headers={"Authorization": f"Bearer {gateway.token(account)}"})
    assert bad.status_code == 401
