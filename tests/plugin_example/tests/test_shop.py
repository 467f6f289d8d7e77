"""The shop's SMS flows, each provider's client against the smsgate test gateway."""

from __future__ import annotations

import time
from typing import Any

import pytest
from shop.flows import Signup
from shop.sms import KaaraiSms, KpnSms, VonageSms

from smsgate.testing import reply, wait_for_sms

PHONE = "+31612345678"


@pytest.mark.parametrize("provider", ["kpn", "vonage", "kaarai"])
def test_signup_code_arrives_and_confirms(provider: str, smsgate_account: Any, request: pytest.FixtureRequest) -> None:
    sms: KpnSms | VonageSms | KaaraiSms = request.getfixturevalue(provider)
    signup = Signup(sms)
    signup.start(PHONE)
    received = wait_for_sms(PHONE, timeout=5)
    assert received.text is not None and received.text.startswith("Your MyShop code is")
    assert received.otp is not None and signup.confirm(PHONE, received.otp)
    assert received.sender == sms.sender


def test_a_new_code_replaces_the_first(kpn: KpnSms) -> None:
    signup = Signup(kpn)
    signup.start(PHONE)
    first = wait_for_sms(PHONE)
    signup.start(PHONE)  # "send me a new code"
    second = wait_for_sms(PHONE)  # each wait returns the next message
    assert first.id != second.id
    assert second.otp is not None and signup.confirm(PHONE, second.otp)


def test_customer_answers_yes(orders: Any, smsgate_account: Any) -> None:
    orders.ask(PHONE, "1234")
    assert wait_for_sms(PHONE).text == "Reply YES to confirm order 1234"
    reply(PHONE, "MyShop", "yes")
    deadline = time.monotonic() + 5
    while "1234" not in orders.confirmed and time.monotonic() < deadline:
        time.sleep(0.02)
    assert orders.confirmed == {"1234"}


def test_scripted_customer(orders: Any, smsgate_account: Any) -> None:
    smsgate_account.own("MyShop")  # the handset answers the sender: replies to MyShop must reach this account
    smsgate_account.script(PHONE, [{"match": r"confirm order (\d+)", "reply": "YES", "delay_ms": 50}])
    orders.ask(PHONE, "77")
    deadline = time.monotonic() + 5
    while "77" not in orders.confirmed and time.monotonic() < deadline:
        time.sleep(0.02)
    assert orders.confirmed == {"77"}


def test_lost_receipt_leaves_the_message_submitted(kaarai: KaaraiSms, smsgate_account: Any) -> None:
    smsgate_account.network(missing=1.0)
    kaarai.send(PHONE, "Your parcel is on its way")
    assert wait_for_sms(PHONE).status == "submitted"
