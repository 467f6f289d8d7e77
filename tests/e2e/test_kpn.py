"""KPN SMS API v1 and the KPN API Store token, against a real gateway process on loopback."""

from __future__ import annotations

import asyncio
import hashlib
import time

import httpx
import pytest
import sqlalchemy as sa

from smsgate.store import engine as store_engine
from smsgate.store import tables
from tests.support import GatewayProcess, wait_for

TOKEN_URL = "/oauth/client_credential/accesstoken?grant_type=client_credentials"
SEND = "/messaging/sms-kpn/v1/send"
STANDARD_HEADERS = (
    "sunset",
    "api-version",
    "quota-interval",
    "quota-limit",
    "quota-reset-utc",
    "quota-time-unit",
    "quota-used",
    "strict-transport-security",
    "access-control-allow-origin",
    "access-control-allow-credentials",
    "access-control-allow-headers",
    "access-control-allow-methods",
    "access-control-max-age",
)


def body(number: str = "0612345678", content: str = "Hi from KPN!", sender: str = "KPN API") -> dict[str, object]:
    return {"sender": sender, "messages": [{"mobile_number": number, "content": content}]}


@pytest.fixture
def kpn(gateway: GatewayProcess, account: dict[str, str]) -> httpx.Client:
    token = gateway.token(account)
    return gateway.client(headers={"Authorization": f"Bearer {token}"})


def assert_kpn_headers(r: httpx.Response) -> None:
    assert r.headers["content-type"] == "application/json"
    for h in STANDARD_HEADERS:
        assert h in r.headers, h
    assert r.headers["sunset"] == "n/a"
    assert r.headers["strict-transport-security"].startswith("max-age=31536000")


# -- token ------------------------------------------------------------------------------------------------------
def test_token_has_the_apigee_shape(gateway: GatewayProcess, account: dict[str, str]) -> None:
    r = httpx.post(
        gateway.url + TOKEN_URL, data={"client_id": account["api_key"], "client_secret": account["api_secret"]}
    )
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"  # exactly: a public client compares the string
    data = r.json()
    assert all(isinstance(v, str) for k, v in data.items() if k != "api_product_list_json")
    assert data["token_type"] == "Bearer"
    assert data["expires_in"] == "3599"
    assert data["status"] == "approved"
    assert data["level"] in ("demo", "prod")
    assert data["client_id"] == account["api_key"]
    assert abs(int(data["issued_at"]) / 1000 - time.time()) < 60
    for key in (
        "refresh_token_expires_in",
        "api_product_list",
        "organization_name",
        "developer_email",
        "application_name",
        "scope",
        "refresh_token",
        "refresh_count",
        "access_token",
    ):
        assert key in data


@pytest.mark.parametrize(
    "form",
    [{"client_id": "nobody", "client_secret": "x"}, {"client_id": "KEY", "client_secret": "wrong"}, {}],
)
def test_bad_client_is_invalid_client(gateway: GatewayProcess, account: dict[str, str], form: dict[str, str]) -> None:
    form = {k: (account["api_key"] if v == "KEY" else v) for k, v in form.items()}
    r = httpx.post(gateway.url + TOKEN_URL, data=form)
    assert r.status_code == 401
    assert r.headers["content-type"] == "application/json"
    assert r.json() == {"ErrorCode": "invalid_client", "Error": "ClientId is Invalid"}


def test_wrong_grant_type(gateway: GatewayProcess, account: dict[str, str]) -> None:
    r = httpx.post(
        gateway.url + "/oauth/client_credential/accesstoken?grant_type=password",
        data={"client_id": account["api_key"], "client_secret": account["api_secret"]},
    )
    assert r.status_code == 400
    assert r.json()["ErrorCode"] == "invalid_request"


# -- auth on send ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("scheme", ["Bearer", "BearerToken", "bearer"])
def test_send_accepts_both_token_schemes(gateway: GatewayProcess, account: dict[str, str], scheme: str) -> None:
    token = gateway.token(account)
    r = httpx.post(gateway.url + SEND, json=body(), headers={"Authorization": f"{scheme} {token}"})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "OK"


@pytest.mark.parametrize("header", [None, "Bearer nonsense", "Basic abc"])
def test_missing_or_bad_token_is_apigee_fault(gateway: GatewayProcess, header: str | None) -> None:
    headers = {"Authorization": header} if header else {}
    r = httpx.post(gateway.url + SEND, json=body(), headers=headers)
    assert r.status_code == 401
    assert r.json() == {
        "fault": {"faultstring": "Invalid access token", "detail": {"errorcode": "oauth.v2.InvalidAccessToken"}}
    }
    assert_kpn_headers(r)


def test_expired_token(gateway: GatewayProcess, account: dict[str, str]) -> None:
    token = "expired-" + account["api_key"]

    async def insert() -> None:
        engine = store_engine.create(gateway.database_url)
        async with engine.begin() as conn:
            await conn.execute(
                tables.tokens.insert().values(
                    token_hash=hashlib.sha256(token.encode()).hexdigest(),
                    account_id=account["account_id"],
                    issued_at=time.time() - 7200,
                    expires_at=time.time() - 3600,
                )
            )
        await engine.dispose()

    asyncio.run(insert())
    r = httpx.post(gateway.url + SEND, json=body(), headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 401
    assert r.json()["fault"]["detail"]["errorcode"] == "keymanagement.service.access_token_expired"


# -- send ------------------------------------------------------------------------------------------------------
def test_send_is_stored_delivered_and_readable(
    gateway: GatewayProcess, account: dict[str, str], kpn: httpx.Client
) -> None:
    r = kpn.post(SEND, json=body("+31612345678", "Hello handset"))
    assert r.status_code == 200
    assert_kpn_headers(r)
    doc = r.json()["document_id"]
    assert r.json() == {"document_id": doc, "status": "OK"}
    assert r.headers["api-version"] == "v1"

    def delivered() -> dict[str, object] | None:
        m = kpn.get(f"/v1/messages/{doc}").json()
        return m if m["status"] == "delivered" else None

    m = wait_for(delivered)
    assert m["to"] == "+31612345678"
    assert m["network"] == "20408"  # 0612… is a KPN range
    assert [e["type"] for e in m["events"]] == ["accepted", "submitted", "delivered"]
    assert m["parts"][0]["network_message_id"]
    inbox = kpn.get("/sandbox/handsets/0612345678/messages").json()
    assert any(x["id"] == doc and x["text"] == "Hello handset" for x in inbox["messages"])


def test_long_content_is_split_into_parts(kpn: httpx.Client) -> None:
    text = "x" * 400
    doc = kpn.post(SEND, json=body(content=text)).json()["document_id"]
    m = kpn.get(f"/v1/messages/{doc}").json()
    assert m["parts_count"] == 3
    assert "".join(p["text"] for p in m["parts"]) == text


@pytest.mark.parametrize(
    "number", ["0612345678", "+31612345678", "0031612345678", "0031 6 12345678", "06-12 34 56 78", "+3197012345678"]
)
def test_accepted_number_formats(kpn: httpx.Client, number: str) -> None:
    r = kpn.post(SEND, json=body(number))
    assert r.status_code == 200, r.text


@pytest.mark.parametrize(
    ("number", "fragment"),
    [
        ("0601234567", "060"),
        ("0671234567", "067"),
        ("0691234567", "069"),
        ("0661234567", "pager"),
        ("0201234567", "landline"),
        ("+32470123456", "Dutch"),
        ("+4915112345678", "Dutch"),
        ("06123", "short"),
        ("hello", "number"),
    ],
)
def test_refused_numbers_have_a_reason(kpn: httpx.Client, number: str, fragment: str) -> None:
    r = kpn.post(SEND, json=body(number))
    assert r.status_code == 400
    assert_kpn_headers(r)
    err = r.json()["errorResponse"]
    assert err["code"] == "400"
    assert fragment.lower() in err["info"].lower(), err


@pytest.mark.parametrize(
    ("payload", "fragment"),
    [
        ({"sender": "ThisIsTooLongSender", "messages": [{"mobile_number": "0612345678", "content": "x"}]}, "sender"),
        ({"sender": "", "messages": [{"mobile_number": "0612345678", "content": "x"}]}, "sender"),
        ({"sender": "KPN"}, "messages"),
        ({"sender": "KPN", "messages": []}, "messages"),
        ({"sender": "KPN", "messages": [{"mobile_number": "0612345678", "content": "a"}] * 2}, "one message"),
        ({"sender": "KPN", "messages": [{"content": "a"}]}, "mobile_number"),
        ({"sender": "KPN", "messages": [{"mobile_number": "0612345678"}]}, "content"),
        ({"sender": "KPN", "messages": [{"mobile_number": "0612345678", "content": ""}]}, "empty"),
        ({"sender": "KPN", "messages": [{"mobile_number": 612345678, "content": "a"}]}, "mobile_number"),
        ({"sender": "KPN", "messages": ["x"]}, "object"),
        ([1, 2], "object"),
        ({"sender": "KPN", "messages": [{"mobile_number": "0612345678", "content": "a" * 1001}]}, "1000"),
    ],
)
def test_invalid_fields(kpn: httpx.Client, payload: object, fragment: str) -> None:
    r = kpn.post(SEND, json=payload)
    assert r.status_code == 400, r.text
    assert fragment.lower() in r.json()["errorResponse"]["info"].lower()


def test_malformed_json_wrong_type_and_oversized(kpn: httpx.Client) -> None:
    r = kpn.post(SEND, content=b"{not json", headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and "json" in r.json()["errorResponse"]["info"].lower()
    r = kpn.post(SEND, content=b"sender=x", headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 400 and "content-type" in r.json()["errorResponse"]["info"].lower()
    r = kpn.post(SEND, content=b'{"a": "' + b"x" * 70000 + b'"}', headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and "too large" in r.json()["errorResponse"]["info"].lower()
    assert_kpn_headers(r)
    # past the server-wide cap the body is refused before it is read, still in KPN's format
    r = kpn.post(SEND, content=b"x" * (3 << 20), headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and "too large" in r.json()["errorResponse"]["info"].lower()
    assert_kpn_headers(r)


def test_unknown_path_and_wrong_method(kpn: httpx.Client) -> None:
    r = kpn.post("/messaging/sms-kpn/v1/sendd", json=body())
    assert r.status_code == 404 and r.json()["errorResponse"]["code"] == "404"
    assert_kpn_headers(r)
    r = kpn.get(SEND)
    assert r.status_code == 405 and r.json()["errorResponse"]["code"] == "405"
    assert_kpn_headers(r)


def test_cors_preflight(gateway: GatewayProcess) -> None:
    r = httpx.options(
        gateway.url + SEND,
        headers={
            "Origin": "https://app.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type",
        },
    )
    assert r.status_code == 200
    # no SMSGATE_CORS_ORIGINS on this gateway: any origin may call with a token, none with browser credentials
    assert r.headers["access-control-allow-origin"] == "*"
    assert r.headers["access-control-allow-credentials"] == "false"
    assert "POST" in r.headers["access-control-allow-methods"]
    assert "authorization" in r.headers["access-control-allow-headers"].lower()


def test_quota_headers_and_429(gateway: GatewayProcess) -> None:
    acc = gateway.create_account("quota", quota_limit=2, quota_interval=1, quota_unit="hour")
    c = gateway.client(headers={"Authorization": f"Bearer {gateway.token(acc)}"})
    first = c.post(SEND, json=body())
    assert first.status_code == 200
    assert first.headers["quota-limit"] == "2" and first.headers["quota-used"] == "1"
    assert first.headers["quota-time-unit"] == "hour" and first.headers["quota-interval"] == "1"
    assert first.headers["quota-reset-utc"].endswith("Z")
    assert c.post(SEND, json=body()).headers["quota-used"] == "2"
    third = c.post(SEND, json=body())
    assert third.status_code == 429
    assert 1 <= int(third.headers["retry-after"]) <= 3600
    assert third.json()["fault"]["detail"]["errorcode"] == "policies.ratelimit.QuotaViolation"
    assert third.headers["quota-limit"] == "2" and third.headers["quota-used"] == "2"  # errors carry the state too
    bad = c.post(SEND, json=body(number="0201234567"))
    assert bad.status_code == 400 and bad.headers["quota-used"] == "2" and bad.headers["quota-limit"] == "2"


def test_insufficient_balance_is_refused_and_not_charged(gateway: GatewayProcess) -> None:
    acc = gateway.create_account("poor", balance=10**8 // 100 * 7)  # 0.07: one NL part
    c = gateway.client(headers={"Authorization": f"Bearer {gateway.token(acc)}"})
    assert c.post(SEND, json=body()).status_code == 200
    r = c.post(SEND, json=body())
    assert r.status_code == 403 and "balance" in r.json()["errorResponse"]["info"].lower()
    msgs = c.get("/v1/messages").json()["messages"]
    assert len(msgs) == 1


def test_accounts_see_only_their_own_messages(gateway: GatewayProcess, kpn: httpx.Client) -> None:
    doc = kpn.post(SEND, json=body()).json()["document_id"]
    other = gateway.create_account("other")
    c = gateway.client(auth=(other["api_key"], other["api_secret"]))
    assert c.get(f"/v1/messages/{doc}").status_code == 404
    assert all(m["id"] != doc for m in c.get("/v1/messages").json()["messages"])
    assert kpn.get(f"/v1/messages/{doc}").status_code == 200


def test_message_list_paging_and_filters(gateway: GatewayProcess) -> None:
    acc = gateway.create_account("pager")
    c = gateway.client(headers={"Authorization": f"Bearer {gateway.token(acc)}"})
    ids = [c.post(SEND, json=body(content=f"m{i}")).json()["document_id"] for i in range(5)]
    seen: list[str] = []
    cursor = None
    while True:
        page = c.get("/v1/messages", params={"limit": 2, **({"cursor": cursor} if cursor else {})}).json()
        seen += [m["id"] for m in page["messages"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == list(reversed(ids))
    assert [m["text"] for m in c.get("/v1/messages", params={"q": "m3"}).json()["messages"]] == ["m3"]
    assert c.get("/v1/messages", params={"direction": "inbound"}).json()["messages"] == []
    assert c.get("/v1/messages", params={"cursor": "!!"}).status_code == 400


def test_store_rows_are_written_in_one_transaction(gateway: GatewayProcess, kpn: httpx.Client) -> None:
    doc = kpn.post(SEND, json=body(content="y" * 200)).json()["document_id"]

    async def counts() -> tuple[int, int, int]:
        engine = store_engine.create(gateway.database_url)
        async with engine.connect() as conn:
            m = await conn.scalar(
                sa.select(sa.func.count()).select_from(tables.messages).where(tables.messages.c.id == doc)
            )
            p = await conn.scalar(
                sa.select(sa.func.count()).select_from(tables.parts).where(tables.parts.c.message_id == doc)
            )
            e = await conn.scalar(
                sa.select(sa.func.count())
                .select_from(tables.events)
                .where(tables.events.c.message_id == doc, tables.events.c.type == "accepted")
            )
        await engine.dispose()
        return int(m or 0), int(p or 0), int(e or 0)

    assert asyncio.run(counts()) == (1, 2, 1)
