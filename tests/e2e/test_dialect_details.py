"""Dialect details the seeds state (issue 19, item 7), against a real gateway process:

* a Kaarai send without ``from`` and a KPN send without ``sender``, from an account without a default sender, go
  out from the gateway's sender (``SMSGATE_DEFAULT_SENDER``, shown in the banner);
* ``status-report-req`` defaults to false on KPN's Vonage proxy and to true on the native Vonage API;
* ``/register`` is for demo-level accounts, the Phone Numbers API's ``number/update`` for production ones: the
  other level gets KPN's 403 saying which to use.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support import GatewayProcess

SENDER = "GatewayName"
NEXMO = "/communication/nexmo"


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    g = GatewayProcess(tmp_path_factory.mktemp("gw"), env={"SMSGATE_DEFAULT_SENDER": SENDER}).start()
    try:
        yield g
    finally:
        g.stop()


def message(g: GatewayProcess, acc: dict[str, str], message_id: str) -> dict[str, Any]:
    r = httpx.get(f"{g.url}/v1/messages/{message_id}", auth=(acc["api_key"], acc["api_secret"]), timeout=10)
    assert r.status_code == 200, r.text
    out: dict[str, Any] = r.json()
    return out


def test_the_banner_shows_the_gateways_sender(gw: GatewayProcess) -> None:
    assert f"sender      {SENDER}" in gw.log.read_text()


def test_kaarai_without_from_uses_the_gateways_sender(gw: GatewayProcess) -> None:
    acc = gw.create_account("no-default", default_sender=None)
    r = httpx.post(
        gw.url + "/v1/send-sms", json={"to": "31612345678", "text": "hi"}, auth=(acc["api_key"], acc["api_secret"])
    )
    assert r.status_code == 202 and r.json()["code"] == 2020, r.text
    assert message(gw, acc, r.json()["message_id"])["from"] == SENDER
    own = gw.create_account("own-default", default_sender="Shop")
    r = httpx.post(
        gw.url + "/v1/send-sms", json={"to": "31612345678", "text": "hi"}, auth=(own["api_key"], own["api_secret"])
    )
    assert message(gw, own, r.json()["message_id"])["from"] == "Shop"  # the account's default comes first


def test_kpn_without_sender_uses_the_gateways_sender(gw: GatewayProcess) -> None:
    acc = gw.create_account("no-default", default_sender=None)
    r = httpx.post(
        gw.url + "/messaging/sms-kpn/v1/send",
        json={"messages": [{"mobile_number": "0612345678", "content": "hi"}]},
        headers={"authorization": f"Bearer {gw.token(acc)}"},
    )
    assert r.status_code == 200, r.text
    assert message(gw, acc, r.json()["document_id"])["from"] == SENDER


def test_status_report_req_defaults_false_via_kpn_and_true_natively(gw: GatewayProcess) -> None:
    acc = gw.create_account("reports")
    form = {"from": "Shop", "to": "31612345678", "text": "hi"}
    r = httpx.post(gw.url + NEXMO + "/sms/send", data=form, headers={"authorization": f"Bearer {gw.token(acc)}"})
    proxied = r.json()["messages"][0]["message-id"]
    r = httpx.post(gw.url + "/sms/json", data={**form, "api_key": acc["api_key"], "api_secret": acc["api_secret"]})
    native = r.json()["messages"][0]["message-id"]
    by_part = {p["parts"][0]["id"]: p for p in _outbound(gw, acc)}
    assert by_part[proxied]["meta"]["status_report"] is False
    assert by_part[native]["meta"]["status_report"] is True
    r = httpx.post(
        gw.url + NEXMO + "/sms/send",
        data={**form, "status-report-req": "true"},
        headers={"authorization": f"Bearer {gw.token(acc)}"},
    )
    explicit = r.json()["messages"][0]["message-id"]
    assert {p["parts"][0]["id"]: p for p in _outbound(gw, acc)}[explicit]["meta"]["status_report"] is True


def _outbound(gw: GatewayProcess, acc: dict[str, str]) -> list[dict[str, Any]]:
    auth = (acc["api_key"], acc["api_secret"])
    listed = httpx.get(gw.url + "/v1/messages", auth=auth, timeout=10).json()["messages"]
    return [message(gw, acc, m["id"]) for m in listed]


def test_register_is_for_demo_accounts_and_number_update_for_production_ones(gw: GatewayProcess) -> None:
    prod, demo = gw.create_account("prod", level="prod"), gw.create_account("demo")
    r = httpx.post(
        gw.url + NEXMO + "/sms/register",
        data={"to": "31612345678", "callback_url": "https://example.com/in"},
        headers={"authorization": f"Bearer {gw.token(prod)}"},
    )
    assert r.status_code == 403, r.text
    body = r.json()
    assert body["status"] == "403" and body["name"] == "Forbidden" and "phone-numbers/number/update" in body["message"]
    r = httpx.post(
        gw.url + NEXMO + "/phone-numbers/number/update",
        data={"country": "NL", "msisdn": "3197012345678", "moHttpUrl": "https://example.com/in"},
        headers={"authorization": f"Bearer {gw.token(demo)}"},
    )
    assert r.status_code == 403, r.text
    assert r.json()["name"] == "Forbidden" and "/sms/register" in r.json()["message"]
    r = httpx.post(
        gw.url + NEXMO + "/sms/register",
        data={"to": "31612345679", "callback_url": "https://example.com/in"},
        headers={"authorization": f"Bearer {gw.token(demo)}"},
    )
    assert r.status_code == 200, r.text
