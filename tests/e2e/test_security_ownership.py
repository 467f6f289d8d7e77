"""Issue #14 item 3: number ownership is the one rule, for senders, ``/register``, inbound and the sandbox.

A real gateway on SQLite (sandbox network), two accounts. Alice owns a pool number, claimed a test number with
KPN's ``/register``, is allowed one more number by the operator and holds a reserved name. Bob can send from none
of them, nor from a number nobody owns, in any dialect (each with its own refusal), cannot claim any of them with
``/register``, and cannot make a handset write to them; inbound messages to Alice's numbers reach only Alice.
The routing of inbound messages that reach the gateway from the network (SMPP) is in ``test_security_smpp.py``.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.e2e.test_webhooks import Receiver
from tests.support import GatewayProcess, add_numbers, gateway_process, run_cli, wait_for

NEXMO = "/communication/nexmo"
POOL, SHORT, CLAIMED, ALLOWED, UNOWNED = "3197011110001", "4567", "31611110002", "31622220003", "3197011110004"
NAME = "AliceBank"


@pytest.fixture(scope="module")
def world(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[GatewayProcess, dict[str, str], dict[str, str], Receiver]]:
    receiver = Receiver().start()
    with gateway_process(tmp_path_factory.mktemp("ownership")) as gw:
        alice = gw.create_account("alice", inbound_url=receiver.url + "/alice", allowed_senders=None)
        bob = gw.create_account("bob", inbound_url=receiver.url + "/bob")
        add_numbers(gw.database_url, {POOL: alice["account_id"], SHORT: alice["account_id"], UNOWNED: None})
        r = httpx.post(
            gw.url + NEXMO + "/sms/register",
            data={"to": CLAIMED, "callback_url": receiver.url + "/alice-callback"},
            headers={"authorization": f"Bearer {gw.token(alice)}"},
        )
        assert r.status_code == 200, r.text
        run_cli("senders", "reserve", NAME, alice["api_key"], env=gw.env)
        carol = gw.create_account("carol", allowed_senders=[ALLOWED, "Carol"])  # the operator allows her a number
        alice["carol_key"] = carol["api_key"]
        try:
            yield gw, alice, bob, receiver
        finally:
            receiver.stop()


def sends(gw: GatewayProcess, acc: dict[str, str], sender: str) -> dict[str, object]:
    """Each dialect's answer to sending as ``sender``."""
    auth = (acc["api_key"], acc["api_secret"])
    vonage = httpx.post(gw.url + "/sms/json", data={"from": sender, "to": "31612345678", "text": "x"}, auth=auth)
    kpn = httpx.post(
        gw.url + "/messaging/sms-kpn/v1/send",
        json={"sender": sender, "messages": [{"mobile_number": "0612345678", "content": "x"}]},
        headers={"authorization": f"Bearer {gw.token(acc)}"},
    )
    kaarai = httpx.post(gw.url + "/v1/send-sms", json={"to": "31612345678", "from": sender, "text": "x"}, auth=auth)
    out = {"vonage": vonage.json()["messages"][0]["status"], "kpn": kpn.status_code, "kaarai": kaarai.json()["code"]}
    if kaarai.status_code == 202:  # which sender it went out with
        mid = kaarai.json()["message_id"]
        out["kaarai_from"] = httpx.get(f"{gw.url}/v1/messages/{mid}", auth=auth).json()["from"]
    return out


def refused(sender: str, kaarai: object = 4031) -> dict[str, object]:
    """Vonage 15, KPN 403 (400 for a sender longer than KPN's 11 characters), Kaarai 4031 (or its default sender)."""
    out: dict[str, object] = {"vonage": "15", "kpn": 403 if len(sender) <= 11 else 400, "kaarai": kaarai}
    if kaarai == 2020:
        out["kaarai_from"] = "smsgate"
    return out


@pytest.mark.parametrize("sender", [POOL, "+" + POOL, SHORT, CLAIMED, NAME, NAME.upper()])
def test_another_accounts_sender_is_refused_in_every_dialect(world: tuple, sender: str) -> None:
    gw, _alice, bob, _r = world
    assert sends(gw, bob, sender) == refused(sender)


@pytest.mark.parametrize("sender", [UNOWNED, ALLOWED])
def test_a_number_bob_does_not_own_is_not_his_sender(world: tuple, sender: str) -> None:
    """Nobody's number, or one the operator allowed another account: Kaarai's spec replaces a sender the user may
    not use by the default one."""
    gw, _alice, bob, _r = world
    assert sends(gw, bob, sender) == refused(sender, kaarai=2020)
    assert sends(gw, bob, "BobShop") == {"vonage": "0", "kpn": 200, "kaarai": 2020, "kaarai_from": "BobShop"}


def test_the_owner_sends_from_what_it_owns(world: tuple) -> None:
    gw, alice, _bob, _r = world
    for sender in (POOL, SHORT, CLAIMED, NAME):
        answer = sends(gw, alice, sender)
        assert answer["vonage"] == "0" and answer["kpn"] in (200, 400) and answer["kaarai"] == 2020, (sender, answer)
        assert answer["kaarai_from"] == sender


@pytest.mark.parametrize("number", [POOL, CLAIMED, ALLOWED, UNOWNED])
def test_register_cannot_claim_another_accounts_number(world: tuple, number: str) -> None:
    gw, _alice, bob, receiver = world
    r = httpx.post(
        gw.url + NEXMO + "/sms/register",
        data={"to": number, "callback_url": receiver.url + "/bob-callback"},
        headers={"authorization": f"Bearer {gw.token(bob)}"},
    )
    assert r.status_code == 400 and r.json()["name"] == "Bad Request", r.text


def test_a_handset_writes_only_to_the_callers_own_numbers(world: tuple) -> None:
    gw, alice, bob, receiver = world
    for to in (POOL, CLAIMED, NAME, UNOWNED):
        r = httpx.post(
            gw.url + "/sandbox/handsets/31612345670/reply",
            json={"to": to, "text": "forged by bob"},
            auth=(bob["api_key"], bob["api_secret"]),
        )
        assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden", (to, r.text)
    for to in (POOL, CLAIMED, NAME):
        r = httpx.post(
            gw.url + "/sandbox/handsets/31612345670/reply",
            json={"to": to, "text": f"hello alice at {to}"},
            auth=(alice["api_key"], alice["api_secret"]),
        )
        assert r.status_code == 202, r.text
    wait_for(lambda: len([x for x in receiver.ok if "alice" in x["path"]]) >= 3, timeout=10)
    paths = sorted(x["path"] for x in receiver.ok if "hello alice" in x["body"] or "hello" in x["path"])
    assert not [x for x in receiver.ok if "forged" in x["body"]]
    assert all("/bob" not in x["path"] for x in receiver.ok), paths

    def inbound(acc: dict[str, str]) -> list[str]:
        r = httpx.get(
            gw.url + "/v1/messages", params={"direction": "inbound"}, auth=(acc["api_key"], acc["api_secret"])
        )
        return sorted(m["text"] for m in r.json()["messages"])

    assert wait_for(lambda: len(inbound(alice)) == 3 and inbound(alice)) == sorted(
        f"hello alice at {t}" for t in (POOL, CLAIMED, NAME)
    )
    assert inbound(bob) == []
