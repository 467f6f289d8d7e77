"""Suppression lists on a real server: the API, and a suppressed number refused at accept in every dialect, in each
dialect's own words, never stored and never debited."""

from __future__ import annotations

import secrets
from decimal import Decimal
from typing import Any

import httpx

from tests.support import GatewayProcess, handset

KPN_SEND = "/messaging/sms-kpn/v1/send"
NEXMO_SEND = "/communication/nexmo/sms/send"


def basic(gw: GatewayProcess, acc: dict[str, str]) -> httpx.Client:
    return gw.client(auth=(acc["api_key"], acc["api_secret"]))


def send_everywhere(gw: GatewayProcess, acc: dict[str, str], to: str) -> dict[str, httpx.Response]:
    """One send to ``to`` through each dialect."""
    token = gw.token(acc)
    bearer = {"authorization": f"Bearer {token}"}
    vonage = {"from": "smsgate", "to": to, "text": "hi " + secrets.token_hex(3)}
    with gw.client() as c:
        return {
            "kpn": c.post(KPN_SEND, headers=bearer, json={"messages": [{"mobile_number": "+" + to, "content": "hi"}]}),
            "nexmo": c.post(NEXMO_SEND, headers=bearer, data=vonage),
            "vonage": c.post("/sms/json", data={**vonage, "api_key": acc["api_key"], "api_secret": acc["api_secret"]}),
            "kaarai": c.post("/v1/send-sms", auth=(acc["api_key"], acc["api_secret"]), json={"to": to, "text": "hi"}),
            "v1": c.post("/v1/messages", headers=bearer, json={"to": "+" + to, "text": "hi"}),
        }


def balance(gw: GatewayProcess, acc: dict[str, str]) -> Decimal:
    with basic(gw, acc) as c:
        return Decimal(c.get("/v1/account").json()["balance"])


def test_put_get_list_and_delete(gateway: GatewayProcess, account: dict[str, str]) -> None:
    with basic(gateway, account) as c:
        r = c.put("/v1/suppressions/+31612340001", json={"reason": "asked by phone"})
        assert r.status_code == 201, r.text
        assert r.json()["msisdn"] == "31612340001" and r.json()["source"] == "api"
        assert r.json()["reason"] == "asked by phone"
        assert c.put("/v1/suppressions/31612340001").status_code == 200  # already there: kept, 200
        assert c.put("/v1/suppressions/31612340002").status_code == 201  # no body: no reason
        assert c.get("/v1/suppressions/0031612340001").json()["msisdn"] == "31612340001"
        page = c.get("/v1/suppressions", params={"limit": 1}).json()
        assert [s["msisdn"] for s in page["suppressions"]] == ["31612340001"] and page["next_cursor"] == "31612340001"
        rest = c.get("/v1/suppressions", params={"limit": 1, "cursor": page["next_cursor"]}).json()
        assert [s["msisdn"] for s in rest["suppressions"]] == ["31612340002"] and rest["next_cursor"] is None
        assert c.get("/v1/suppressions", params={"source": "keyword"}).json()["suppressions"] == []
        assert len(c.get("/v1/suppressions", params={"source": "api"}).json()["suppressions"]) == 2
        assert c.delete("/v1/suppressions/31612340001").status_code == 204
        missing = c.get("/v1/suppressions/31612340001")
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
        assert c.delete("/v1/suppressions/31612340001").status_code == 404


def test_bad_input_gets_a_400_never_a_500(gateway: GatewayProcess, account: dict[str, str]) -> None:
    with basic(gateway, account) as c:
        for bad in ("abc", "0612345678", "1" * 30):
            r = c.put(f"/v1/suppressions/{bad}")
            assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_request", (bad, r.text)
        r = c.put("/v1/suppressions/31612340003", json={"reason": "x" * 201})
        assert r.status_code == 400, r.text
        assert c.put("/v1/suppressions/31612340003", content=b"{nope").status_code == 400
        assert c.get("/v1/suppressions", params={"source": "nope"}).status_code == 400
        assert c.get("/v1/suppressions", params={"cursor": "x' or 1=1"}).status_code == 400
    with gateway.client() as anonymous:
        r = anonymous.get("/v1/suppressions")
        assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"


def test_each_account_has_its_own_list(gateway: GatewayProcess) -> None:
    a, b = gateway.create_account("a"), gateway.create_account("b")
    to = handset()
    with basic(gateway, a) as ca, basic(gateway, b) as cb:
        assert ca.put(f"/v1/suppressions/{to}", json={"reason": "a's secret"}).status_code == 201
        assert cb.get(f"/v1/suppressions/{to}").status_code == 404
        assert "a's secret" not in cb.get("/v1/suppressions").text
        assert cb.delete(f"/v1/suppressions/{to}").status_code == 404
        assert ca.get(f"/v1/suppressions/{to}").status_code == 200  # B's delete left A's entry alone
        token = gateway.token(b)
        listed = cb.get("/v1/suppressions", headers={"authorization": f"Bearer {token}"})
        assert listed.status_code == 200 and listed.json()["suppressions"] == []
    assert send_everywhere(gateway, b, to)["kaarai"].status_code == 202  # B may still message the number


def refused_in_own_words(answers: dict[str, httpx.Response]) -> None:
    kpn = answers["kpn"]
    assert kpn.status_code == 403, kpn.text
    assert kpn.json()["errorResponse"]["code"] == "403" and "opted out" in kpn.json()["errorResponse"]["info"]
    for dialect in ("nexmo", "vonage"):
        msg: dict[str, Any] = answers[dialect].json()["messages"][0]
        assert answers[dialect].status_code == 200 and msg["status"] == "7", answers[dialect].text
        assert msg["error-text"].startswith("Number Barred"), msg
    kaarai = answers["kaarai"]
    assert kaarai.status_code == 403 and kaarai.json()["code"] == 4031, kaarai.text
    ours = answers["v1"]
    assert ours.status_code == 422 and ours.json()["error"]["code"] == "suppressed", ours.text


def test_a_suppressed_number_is_refused_in_every_dialect(gateway: GatewayProcess, account: dict[str, str]) -> None:
    to = handset()
    with basic(gateway, account) as c:
        assert c.put(f"/v1/suppressions/{to}").status_code == 201
        before = balance(gateway, account)
        refused_in_own_words(send_everywhere(gateway, account, to))
        assert balance(gateway, account) == before  # never debited
        assert c.get("/v1/messages", params={"number": "+" + to}).json()["messages"] == []  # never stored
        assert c.get(f"/sandbox/handsets/{to}/messages").json()["messages"] == []  # never reached the network
        assert c.delete(f"/v1/suppressions/{to}").status_code == 204
        sent = send_everywhere(gateway, account, to)
    assert sent["kpn"].status_code == 200 and sent["kaarai"].status_code == 202 and sent["v1"].status_code == 201
    assert (
        sent["vonage"].json()["messages"][0]["status"] == "0" and sent["nexmo"].json()["messages"][0]["status"] == "0"
    )
    assert balance(gateway, account) < before
