"""Phone Numbers and Account APIs: the official SDK natively, plain httpx through the KPN proxy, and the CLI pool."""

from __future__ import annotations

import asyncio
import json
import secrets
from decimal import Decimal

import httpx
import pytest
from vonage_http_client import AuthenticationError, HttpRequestError  # type: ignore[import-untyped]
from vonage_numbers import (  # type: ignore[import-untyped]
    ListOwnedNumbersFilter,
    NumberParams,
    SearchAvailableNumbersFilter,
    UpdateNumberParams,
)
from vonage_sms import SmsMessage  # type: ignore[import-untyped]

from smsgate.core import pricing
from smsgate.store import engine as store_engine
from smsgate.store import numbers as store_numbers
from tests.e2e.test_nexmo_kpn import Receiver
from tests.e2e.test_vonage_sdk import vonage_client
from tests.support import GatewayProcess, run_cli, wait_for

PROXY = "/communication/nexmo/phone-numbers"


def virtual_number() -> str:
    return "31970" + "".join(secrets.choice("0123456789") for _ in range(8))


def add_number(gateway: GatewayProcess, msisdn: str, *, cost: str = "0", features: tuple[str, ...] = ("SMS",)) -> None:
    """Straight into the gateway's store (the CLI path is tested once; a subprocess per number is slow)."""

    async def run() -> None:
        engine = store_engine.create(gateway.database_url)
        try:
            units = pricing.to_units(Decimal(cost))
            await store_numbers.NumberStore(engine).add(msisdn, "NL", features=features, cost=units)
        finally:
            await engine.dispose()

    asyncio.run(run())


def numbers_cli(gateway: GatewayProcess, *args: str) -> str:
    return run_cli("numbers", *args, env={"SMSGATE_DATA_DIR": str(gateway.data_dir)}).stdout


def test_cli_pool_then_sdk_update_list_and_inbound(gateway: GatewayProcess, account: dict[str, str]) -> None:
    """``smsgate numbers add --account``; the SDK sets moHttpUrl; a handset's SMS to it reaches that URL."""
    number = virtual_number()
    numbers_cli(gateway, "add", number, "--country", "NL", "--features", "SMS,VOICE", "--account", account["api_key"])
    sdk = vonage_client(gateway, api_key=account["api_key"], api_secret=account["api_secret"])
    with Receiver() as receiver:
        status = sdk.numbers.update_number(
            UpdateNumberParams(country="NL", msisdn=number, mo_http_url=receiver.url + "/mo")
        )
        assert (status.error_code, status.error_code_label) == ("200", "success")
        owned, count, next_page = sdk.numbers.list_owned_numbers(ListOwnedNumbersFilter())
        assert count == 1 and next_page is None
        assert (owned[0].msisdn, owned[0].country, owned[0].features) == (number, "NL", ["SMS", "VOICE"])
        assert owned[0].mo_http_url == receiver.url + "/mo"
        pool = {n["msisdn"]: n for n in json.loads(numbers_cli(gateway, "list", "--json"))}
        assert pool[number]["account_id"] == account["account_id"]
        assert pool[number]["moHttpUrl"] == receiver.url + "/mo"
        with gateway.client(auth=(account["api_key"], account["api_secret"])) as c:
            c.post("/sandbox/handsets/31687654321/reply", json={"to": number, "text": "STOP now"}).raise_for_status()
            inbound = wait_for(lambda: c.get("/v1/messages", params={"direction": "inbound"}).json()["messages"])
        assert inbound[0]["to"] == "+" + number and inbound[0]["text"] == "STOP now"
        hook = wait_for(receiver.payloads, timeout=10)[0]
        assert (hook["msisdn"], hook["to"], hook["keyword"]) == ("31687654321", number, "STOP")
        assert receiver.requests[0]["path"] == "/mo"
    numbers_cli(gateway, "release", number)
    assert sdk.numbers.list_owned_numbers(ListOwnedNumbersFilter())[1] == 0


def test_search_buy_cancel_and_balance(gateway: GatewayProcess, account: dict[str, str]) -> None:
    prefix = "3197" + "".join(secrets.choice("0123456789") for _ in range(4))
    a, b = prefix + "1111111", prefix + "2222222"
    add_number(gateway, a, cost="0.50")
    add_number(gateway, b, cost="0.50", features=("VOICE",))
    sdk = vonage_client(gateway, api_key=account["api_key"], api_secret=account["api_secret"])
    assert sdk.account.get_balance().value == 1000.0
    found, count, _ = sdk.numbers.search_available_numbers(
        SearchAvailableNumbersFilter(country="NL", pattern=prefix, search_pattern=0)
    )
    assert count == 2 and {n.msisdn for n in found} == {a, b} and found[0].cost == "0.50"
    sms_only, count, _ = sdk.numbers.search_available_numbers(
        SearchAvailableNumbersFilter(country="NL", pattern=prefix, search_pattern=0, features="SMS")
    )
    assert [n.msisdn for n in sms_only] == [a]
    assert sdk.numbers.buy_number(NumberParams(country="NL", msisdn=a)).error_code == "200"
    balance = sdk.account.get_balance()
    assert balance.value == 999.5 and balance.auto_reload is False
    with pytest.raises(HttpRequestError) as info:  # already sold
        sdk.numbers.buy_number(NumberParams(country="NL", msisdn=a))
    assert info.value.response.status_code == 420
    other = gateway.create_account("other")
    rival = vonage_client(gateway, api_key=other["api_key"], api_secret=other["api_secret"])
    with pytest.raises(HttpRequestError) as info:
        rival.numbers.cancel_number(NumberParams(country="NL", msisdn=a))
    assert info.value.response.json()["error-code"] == "420"
    with pytest.raises(HttpRequestError) as info:
        rival.numbers.update_number(UpdateNumberParams(country="NL", msisdn=a, mo_http_url="http://x.test/"))
    assert info.value.response.json()["error-code"] == "420"
    assert sdk.numbers.cancel_number(NumberParams(country="NL", msisdn=a)).error_code == "200"
    assert (
        sdk.numbers.search_available_numbers(
            SearchAvailableNumbersFilter(country="NL", pattern=prefix, search_pattern=0)
        )[1]
        == 2
    )
    sdk.sms.send(SmsMessage(to="31612345678", from_="smsgate", text="costs 0.07"))
    assert sdk.account.get_balance().value == pytest.approx(999.43)


def test_numbers_and_balance_refuse_bad_credentials(gateway: GatewayProcess, account: dict[str, str]) -> None:
    sdk = vonage_client(gateway, api_key=account["api_key"], api_secret="wrong")
    with pytest.raises(AuthenticationError):
        sdk.account.get_balance()
    with pytest.raises(AuthenticationError):
        sdk.numbers.list_owned_numbers(ListOwnedNumbersFilter())
    with gateway.client() as c:
        r = c.get("/account/get-balance", params={"api_key": account["api_key"], "api_secret": account["api_secret"]})
        assert r.status_code == 200 and isinstance(r.json()["value"], float)
        r = c.post("/number/update", data={"api_key": account["api_key"], "api_secret": account["api_secret"]})
        assert r.status_code == 420 and "country" in r.json()["error-code-label"]


def test_numbers_through_the_kpn_proxy(gateway: GatewayProcess) -> None:
    account = gateway.create_account("production", level="prod")  # number/update via KPN: production accounts only
    number = virtual_number()
    add_number(gateway, number)
    token = gateway.token(account)
    with gateway.client(headers={"authorization": f"Bearer {token}"}) as c:
        found = c.get(PROXY + "/number/search", params={"country": "NL", "pattern": number, "search_pattern": "0"})
        assert found.json() == {
            "count": 1,
            "numbers": [{"country": "NL", "msisdn": number, "type": "mobile-lvn", "cost": "0.00", "features": ["SMS"]}],
        }
        update = {"country": "NL", "msisdn": number, "moHttpUrl": "https://example.com/inbound-sms"}
        r = c.post(PROXY + "/number/update", data=update)
        assert r.status_code == 420  # not ours yet
        assert c.post(PROXY + "/number/buy", data={"country": "NL", "msisdn": number}).json() == {
            "error-code": "200",
            "error-code-label": "success",
        }
        r = c.post(PROXY + "/number/update", data=update)
        assert r.status_code == 200 and r.headers["content-type"] == "application/json"
        assert r.json() == {"error-code": "200", "error-code-label": "success"}
        owned = c.get(PROXY + "/account/numbers").json()
        assert owned["count"] == 1 and owned["numbers"][0]["moHttpUrl"] == "https://example.com/inbound-sms"
        # a registered demo callback may not claim someone else's virtual number
        other = gateway.create_account("other")
        with gateway.client(headers={"authorization": f"Bearer {gateway.token(other)}"}) as o:
            r = o.post(
                "/communication/nexmo/sms/register", data={"to": number, "callback_url": "https://example.com/x"}
            )
            assert r.status_code == 400
        assert c.post(PROXY + "/number/cancel", data={"country": "NL", "msisdn": number}).json()["error-code"] == "200"
        assert c.get(PROXY + "/account/numbers").json() == {"count": 0, "numbers": []}
    r = httpx.get(gateway.url + PROXY + "/account/numbers", headers={"authorization": "Bearer expired-or-not"})
    assert r.status_code == 401 and "fault" in r.json()
