"""Native Vonage ``/sms/json`` and ``/sms/xml`` driven by the official ``vonage`` SDK (only pointed at loopback)."""

from __future__ import annotations

import hashlib
import time
from typing import Any
from xml.etree import ElementTree

import httpx
import pytest
import requests
from requests.adapters import HTTPAdapter
from vonage import Auth, HttpClientOptions, Vonage  # type: ignore[import-untyped]
from vonage_sms import SmsError, SmsMessage  # type: ignore[import-untyped]

from smsgate.core import signing
from tests.support import GatewayProcess, wait_for

TO = "31612345678"


class PlainHttpAdapter(HTTPAdapter):
    """The SDK always builds ``https://{rest_host}``: send it over plain HTTP to the loopback gateway."""

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        assert request.url is not None
        request.url = request.url.replace("https://", "http://", 1)
        return super().send(request, *args, **kwargs)


def vonage_client(gateway: GatewayProcess, **auth: Any) -> Vonage:
    host = f"127.0.0.1:{gateway.port}"
    client = Vonage(Auth(**auth), HttpClientOptions(rest_host=host, api_host=host, max_retries=0))
    client.http_client._session.mount(f"https://{host}", PlainHttpAdapter())
    return client


@pytest.fixture
def sdk(gateway: GatewayProcess, account: dict[str, str]) -> Vonage:
    return vonage_client(gateway, api_key=account["api_key"], api_secret=account["api_secret"])


def test_short_message(sdk: Vonage, gateway: GatewayProcess, account: dict[str, str]) -> None:
    r = sdk.sms.send(SmsMessage(to=TO, from_="smsgate", text="Hello & = é", client_ref="ref-1"))
    assert r.message_count == "1"
    m = r.messages[0]
    assert (m.status, m.to, m.client_ref, m.network) == ("0", TO, "ref-1", "20408")
    assert m.message_price == "0.07000000"
    assert m.remaining_balance == "999.93000000"
    with gateway.client(auth=(account["api_key"], account["api_secret"])) as c:
        stored = c.get("/v1/messages", params={"direction": "outbound"}).json()["messages"]
    assert stored[0]["text"] == "Hello & = é" and stored[0]["dialect"] == "vonage"
    assert stored[0]["client_ref"] == "ref-1"


def test_long_message_one_entry_per_part(sdk: Vonage, gateway: GatewayProcess, account: dict[str, str]) -> None:
    text = "x" * 400  # GSM-7: 153 per part -> 3 parts
    r = sdk.sms.send(SmsMessage(to=TO, from_="smsgate", text=text))
    assert r.message_count == "3"
    assert len(r.messages) == 3
    ids = [m.message_id for m in r.messages]
    assert len(set(ids)) == 3 and all(ids)
    assert all(m.status == "0" and m.message_price == "0.07000000" for m in r.messages)
    with gateway.client(auth=(account["api_key"], account["api_secret"])) as c:
        mid = c.get("/v1/messages").json()["messages"][0]["id"]
        detail = c.get(f"/v1/messages/{mid}").json()
    assert [p["id"] for p in detail["parts"]] == ids


def test_unicode_message(sdk: Vonage, gateway: GatewayProcess, account: dict[str, str]) -> None:
    r = sdk.sms.send(SmsMessage(to=TO, from_="smsgate", text="Привет 👋", type="unicode"))
    assert r.messages[0].status == "0"
    with gateway.client(auth=(account["api_key"], account["api_secret"])) as c:
        stored = c.get("/v1/messages").json()["messages"][0]
    assert stored["encoding"] == "ucs2" and stored["text"] == "Привет 👋"


def test_unicode_type_forces_ucs2_for_gsm_text(sdk: Vonage, gateway: GatewayProcess, account: dict[str, str]) -> None:
    sdk.sms.send(SmsMessage(to=TO, from_="smsgate", text="plain", type="unicode"))
    with gateway.client(auth=(account["api_key"], account["api_secret"])) as c:
        assert c.get("/v1/messages").json()["messages"][0]["encoding"] == "ucs2"


def test_binary_message(sdk: Vonage, gateway: GatewayProcess, account: dict[str, str]) -> None:
    r = sdk.sms.send(
        SmsMessage(to=TO, from_="smsgate", text="ignored", type="binary", body="0011223344", udh="06050415811581")
    )
    assert r.messages[0].status == "0"
    with gateway.client(auth=(account["api_key"], account["api_secret"])) as c:
        m = c.get("/v1/messages").json()["messages"][0]
    assert m["encoding"] == "binary" and m["text"] is None


def test_throttled_surfaces_as_sdk_error(gateway: GatewayProcess) -> None:
    acc = gateway.create_account("tps", rate_limit_tps=1)
    client = vonage_client(gateway, api_key=acc["api_key"], api_secret=acc["api_secret"])
    client.sms.send(SmsMessage(to=TO, from_="smsgate", text="first"))
    with pytest.raises(SmsError) as info:
        client.sms.send(SmsMessage(to=TO, from_="smsgate", text="second"))
    assert "error code 1: Throttled" in str(info.value)


def test_refused_sender_and_demo_destination(gateway: GatewayProcess) -> None:
    acc = gateway.create_account("strict", allowed_senders=["Shop"], demo_allowlist=["+31611111111"])
    client = vonage_client(gateway, api_key=acc["api_key"], api_secret=acc["api_secret"])
    with pytest.raises(SmsError, match="error code 15"):
        client.sms.send(SmsMessage(to="31611111111", from_="Other", text="hi"))
    with pytest.raises(SmsError, match="error code 29: Non-Whitelisted Destination"):
        client.sms.send(SmsMessage(to=TO, from_="Shop", text="hi"))
    assert client.sms.send(SmsMessage(to="31611111111", from_="Shop", text="hi")).messages[0].status == "0"


def test_bad_credentials(gateway: GatewayProcess, account: dict[str, str]) -> None:
    client = vonage_client(gateway, api_key=account["api_key"], api_secret="wrong-secret")
    with pytest.raises(SmsError, match="error code 4: Bad Credentials"):
        client.sms.send(SmsMessage(to=TO, from_="smsgate", text="hi"))


@pytest.mark.parametrize("method", ["md5", "sha1", "sha256", "sha512"])
def test_signed_requests_from_the_sdk(gateway: GatewayProcess, method: str) -> None:
    acc = gateway.create_account("signed", signature_secret="s3cr3t-" + method, signature_method=method)
    client = vonage_client(
        gateway, api_key=acc["api_key"], signature_secret="s3cr3t-" + method, signature_method=method
    )
    r = client.sms.send(SmsMessage(to=TO, from_="smsgate", text="signed & sealed", client_ref="c1"))
    assert r.messages[0].status == "0"


def test_wrong_signature_is_status_14(gateway: GatewayProcess) -> None:
    acc = gateway.create_account("signed", signature_secret="right", signature_method="sha256")
    client = vonage_client(gateway, api_key=acc["api_key"], signature_secret="wrong", signature_method="sha256")
    with pytest.raises(SmsError, match="error code 14: Invalid Signature"):
        client.sms.send(SmsMessage(to=TO, from_="smsgate", text="hi"))


def _signed_form(key: str, secret: str, method: str, **params: str) -> dict[str, str]:
    form = {"api_key": key, "from": "smsgate", "to": TO, "text": "hi & bye", **params}
    form.setdefault("timestamp", str(int(time.time())))
    form["sig"] = signing.vonage_sign(form, secret, method)
    return form


def test_md5hash_signature_and_timestamp_window(gateway: GatewayProcess) -> None:
    acc = gateway.create_account("md5hash", signature_secret="plain", signature_method="md5hash")
    with gateway.client() as c:
        form = _signed_form(acc["api_key"], "plain", "md5hash")
        base = "".join(f"&{k}={v.replace('&', '_').replace('=', '_')}" for k, v in sorted(form.items()) if k != "sig")
        assert form["sig"] == hashlib.md5((base + "plain").encode()).hexdigest()  # the documented algorithm
        assert c.post("/sms/json", data=form).json()["messages"][0]["status"] == "0"
        old = _signed_form(acc["api_key"], "plain", "md5hash", timestamp=str(int(time.time()) - 600))
        assert c.post("/sms/json", data=old).json()["messages"][0]["status"] == "14"
        for odd in ("nan", "inf", "-inf"):  # correctly signed, but no time at all: refused like a stale one
            weird = _signed_form(acc["api_key"], "plain", "md5hash", timestamp=odd)
            assert c.post("/sms/json", data=weird).json()["messages"][0]["status"] == "14"
        both = _signed_form(acc["api_key"], "plain", "md5hash", api_secret=acc["api_secret"])
        assert c.post("/sms/json", data=both).json()["messages"][0]["status"] == "32"


def test_credentials_in_form_query_and_json(gateway: GatewayProcess, account: dict[str, str]) -> None:
    creds = {"api_key": account["api_key"], "api_secret": account["api_secret"]}
    msg = {"from": "smsgate", "to": TO, "text": "hi"}
    with gateway.client() as c:
        assert c.post("/sms/json", data={**creds, **msg}).json()["messages"][0]["status"] == "0"
        assert c.post("/sms/json", params=creds, data=msg).json()["messages"][0]["status"] == "0"
        assert c.get("/sms/json", params={**creds, **msg}).json()["messages"][0]["status"] == "0"
        assert c.post("/sms/json", json={**creds, **msg}).json()["messages"][0]["status"] == "0"
        # a form body labelled JSON (the SDK's sticky header, reference notes §0.5)
        r = c.post(
            "/sms/json",
            content=httpx.QueryParams({**creds, **msg}).__str__(),
            headers={"content-type": "application/json"},
        )
        assert r.json()["messages"][0]["status"] == "0"
        assert r.headers["content-type"] == "application/json"


def test_xml_responses(gateway: GatewayProcess, account: dict[str, str]) -> None:
    creds = {"api_key": account["api_key"], "api_secret": account["api_secret"]}
    with gateway.client() as c:
        ok = c.post("/sms/xml", data={**creds, "from": "smsgate", "to": TO, "text": "z" * 200, "client-ref": "x<y"})
        bad = c.post("/sms/xml", data={**creds, "from": "smsgate", "text": "hi"})
    assert ok.status_code == 200 and ok.headers["content-type"].startswith("application/xml")
    root = ElementTree.fromstring(ok.content)
    assert root.tag == "mt-submission-response"
    msgs = root.find("messages")
    assert msgs is not None and msgs.get("count") == "2"
    first = msgs.findall("message")[0]
    assert first.findtext("status") == "0" and first.findtext("messageId")
    assert first.findtext("messagePrice") == "0.07000000" and first.findtext("clientRef") == "x<y"
    err = ElementTree.fromstring(bad.content).find("messages/message")
    assert err is not None and err.findtext("status") == "2" and "to" in (err.findtext("errorText") or "")


def test_messages_reach_the_network(gateway: GatewayProcess, account: dict[str, str], sdk: Vonage) -> None:
    r = sdk.sms.send(SmsMessage(to="31612340000", from_="smsgate", text="deliver me"))
    with gateway.client(auth=(account["api_key"], account["api_secret"])) as c:
        mid = c.get("/v1/messages").json()["messages"][0]["id"]
        wait_for(lambda: c.get(f"/v1/messages/{mid}").json()["status"] == "delivered", timeout=10)
    assert r.messages[0].status == "0"


STATUS_CASES: list[tuple[str, dict[str, Any], dict[str, str], str]] = [
    # (case, account settings, form fields over a valid message, expected status)
    ("quota used up", {"quota_limit": 0}, {}, "1"),
    ("missing to", {}, {"to": ""}, "2"),
    ("missing text", {}, {"text": ""}, "2"),
    ("missing binary body", {}, {"type": "binary", "text": ""}, "2"),
    ("to not digits", {}, {"to": "31-6-abc"}, "3"),
    ("ttl out of range", {}, {"ttl": "1000"}, "3"),
    ("bad hex body", {}, {"type": "binary", "body": "xyz"}, "3"),
    ("unsupported type", {}, {"type": "vcard"}, "3"),
    ("bad status-report-req", {}, {"status-report-req": "maybe"}, "3"),
    ("unrecognised prefix", {}, {"to": "999123456"}, "6"),
    ("country not enabled", {"allowed_countries": ["BE"]}, {}, "7"),
    ("blocked prefix", {"blocked_prefixes": ["+3161"]}, {}, "7"),
    ("account disabled", {"status": "disabled"}, {}, "8"),
    ("no credit", {"balance": 0}, {}, "9"),
    ("too long", {}, {"text": "x" * 3201}, "12"),
    ("sender invalid", {}, {"from": "a sender far too long"}, "15"),
    ("sender not allowed", {"allowed_senders": ["Shop"]}, {"from": "Other"}, "15"),
    ("bad callback", {}, {"callback": "javascript:alert(1)"}, "23"),
    ("demo allow-list", {"demo_allowlist": ["+31600000001"]}, {}, "29"),
]


@pytest.mark.parametrize(
    ("settings", "fields", "status"), [c[1:] for c in STATUS_CASES], ids=[c[0] for c in STATUS_CASES]
)
def test_status_codes(gateway: GatewayProcess, settings: dict[str, Any], fields: dict[str, str], status: str) -> None:
    acc = gateway.create_account("status", **settings)
    form = {"api_key": acc["api_key"], "api_secret": acc["api_secret"], "from": "smsgate", "to": TO, "text": "hi"}
    with gateway.client() as c:
        r = c.post("/sms/json", data={**form, **fields})
    assert r.status_code == 200
    assert r.json()["message-count"] == "1"
    entry = r.json()["messages"][0]
    assert entry["status"] == status and entry["error-text"]


def test_missing_credentials_and_internal_error_status() -> None:
    from smsgate import errors
    from smsgate.api import vonage_sms

    assert vonage_sms.status_for(RuntimeError("boom")) == ("5", "Internal Error")
    assert vonage_sms.status_for(errors.MissingParameter("Missing api_key param")) == ("2", "Missing api_key param")


def test_unknown_path_and_method(gateway: GatewayProcess) -> None:
    with gateway.client() as c:
        assert c.delete("/sms/json").status_code == 405
        r = c.get("/account/nothing-here")
        assert r.status_code == 404 and r.json()["error-code"] == "404"
        assert c.post("/sms/json", data={"to": TO}).json()["messages"][0]["status"] == "2"  # no api_key
