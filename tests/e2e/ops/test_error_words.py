"""Errors that say the right thing (issue 15, item 11), each in its dialect's own format."""

from __future__ import annotations

import httpx

from tests.support import GatewayProcess


def test_kaarai_body_too_large_has_no_content_type_prefix(gateway: GatewayProcess, account: dict[str, str]) -> None:
    r = httpx.post(
        gateway.url + "/v1/send-sms",
        auth=(account["api_key"], account["api_secret"]),
        headers={"Content-Type": "application/json"},
        content=b"x" * (1 << 20 | 1),
    )
    assert r.status_code == 400
    assert r.json() == {"code": 4000, "message": "Request body too large (limit 1048576 bytes)"}


def test_our_api_words_json_errors(gateway: GatewayProcess, account: dict[str, str]) -> None:
    auth = (account["api_key"], account["api_secret"])
    r = httpx.post(gateway.url + "/v1/segments", auth=auth, content=b'{"text": x}',
                   headers={"Content-Type": "application/json"})  # fmt: skip
    assert r.status_code == 400
    assert r.json()["error"]["message"] == "Malformed JSON at line 1, column 10: expecting value"
    r = httpx.post(gateway.url + "/v1/segments", auth=auth, content=b'{\n  "text": "x",\n}',
                   headers={"Content-Type": "application/json"})  # fmt: skip
    assert r.json()["error"]["message"].startswith("Malformed JSON at line 3, column 1: ")


def test_vonage_broken_json_is_called_malformed(gateway: GatewayProcess, account: dict[str, str]) -> None:
    body = b'{"api_key": "%s", "api_secret": "%s", "to": "31612345678", "text": "hi"' % (
        account["api_key"].encode(),
        account["api_secret"].encode(),
    )
    r = httpx.post(gateway.url + "/sms/json", content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 200  # Vonage answers errors with HTTP 200 and a status
    [msg] = r.json()["messages"]
    assert msg["status"] == "3"
    assert (
        msg["error-text"]
        == f"Invalid Parameters: Malformed JSON at line 1, column {len(body) + 1}: unexpected end of data"
    )


def test_kpn_non_utf8_body(gateway: GatewayProcess, account: dict[str, str]) -> None:
    token = gateway.token(account)
    body = b'{"messages":[{"mobile_number":"0612345678","content":"caf\xe9"}]}'
    r = httpx.post(
        gateway.url + "/messaging/sms-kpn/v1/send",
        content=body,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    assert r.status_code == 400
    at = body.index(b"\xe9")
    assert r.json()["errorResponse"]["info"] == f"the body is not valid UTF-8 (byte {at})"
