"""Issue #14 item 7: one bad deliver_sm must not poison its batch.

A real gateway on SQLite bound over SMPP to the simulator; two accounts, each owning a virtual number. In one
write the SMSC sends a receipt whose ``err:`` field is ``¹`` (a digit to ``str.isdigit``, not to ``int``), one with
a 4,300-digit error field, and a valid MO for each account. Every PDU gets its own response: the receipts are
recorded (the message is delivered), both MOs reach their owners, and nothing is answered 0x64 or sent again.
"""

from __future__ import annotations

import pathlib
from collections.abc import Iterator

import httpx
import pytest

from smsgate.connectors.smpp import receipts, wire
from tests.support import GatewayProcess, SmscThread, add_numbers, smpp_config, wait_for


@pytest.fixture
def rig(tmp_path: pathlib.Path) -> Iterator[tuple[GatewayProcess, SmscThread]]:
    sim = SmscThread(receipt_delay_ms=60_000, max_redeliveries=3, redeliver_delay_ms=100).start()
    try:
        gw = GatewayProcess(
            tmp_path, env={"SMSGATE_SANDBOX": "false"}, config=smpp_config(tmp_path / "smsgate.toml", sim.sim.port)
        ).start()
        try:
            yield gw, sim
        finally:
            gw.stop()
    finally:
        sim.stop()


def test_each_deliver_sm_is_parsed_and_answered_on_its_own(rig: tuple[GatewayProcess, SmscThread]) -> None:
    gw, sim = rig
    alice, bob = gw.create_account("alice"), gw.create_account("bob")
    add_numbers(gw.database_url, {"31970100000001": alice["account_id"], "31970100000002": bob["account_id"]})
    ids = []
    for acc in (alice, bob):
        with gw.client(auth=(acc["api_key"], acc["api_secret"])) as c:
            r = c.post("/v1/send-sms", json={"to": "31612345678", "text": "for a receipt"})
            assert r.status_code == 202, r.text
            ids.append(r.json()["message_id"])
    records = wait_for(lambda: len(sim.records()) == 2 and sim.records())
    by_account = {}
    for acc, mid in zip((alice, bob), ids, strict=True):
        with gw.client(auth=(acc["api_key"], acc["api_secret"])) as c:
            part = wait_for(lambda c=c, mid=mid: c.get(f"/v1/messages/{mid}").json()["parts"][0]["network_message_id"])
        by_account[acc["account_id"]] = part
    assert sorted(by_account.values()) == sorted(r.message_id for r in records)

    superscript = receipts.receipt_text(by_account[alice["account_id"]], "DELIVRD").replace(b"err:000", b"err:\xb9")
    huge = receipts.receipt_text(by_account[bob["account_id"]], "UNDELIV").replace(b"err:000", b"err:" + b"9" * 4301)
    assert len(huge) > 255  # too long for short_message: it travels in message_payload

    def burst() -> None:  # one flush: the gateway reads them as one batch
        sim.sim.inject_raw("31612345678", "", superscript, esm_class=wire.ESM_RECEIPT)
        sim.sim.inject_raw("31612345678", "", b"", esm_class=wire.ESM_RECEIPT, tlvs=((wire.TAG_MESSAGE_PAYLOAD, huge),))
        sim.sim.inject_mo("31612345678", "31970100000001", "hello alice")
        sim.sim.inject_mo("31612345678", "31970100000002", "hello bob")

    sim.call(burst)
    stats = wait_for(lambda: (s := sim.stats())["deliver_resp_status"].get("0x00", 0) >= 4 and s, timeout=10)
    assert stats["deliver_resp_status"] == {"0x00": 4}, stats  # no 0x64, no redelivery
    assert stats.get("redeliveries", 0) == 0, stats

    def inbound(acc: dict[str, str]) -> list[str]:
        r = httpx.get(
            gw.url + "/v1/messages", params={"direction": "inbound"}, auth=(acc["api_key"], acc["api_secret"])
        )
        return [m["text"] for m in r.json()["messages"]]

    assert wait_for(lambda: inbound(alice)) == ["hello alice"]
    assert wait_for(lambda: inbound(bob)) == ["hello bob"]
    with gw.client(auth=(alice["api_key"], alice["api_secret"])) as c:
        assert wait_for(lambda: c.get(f"/v1/messages/{ids[0]}").json()["status"] == "delivered")
    with gw.client(auth=(bob["api_key"], bob["api_secret"])) as c:
        assert wait_for(lambda: c.get(f"/v1/messages/{ids[1]}").json()["status"] == "failed")


def test_inbound_to_an_address_nobody_owns_is_kept_for_the_operator(rig: tuple[GatewayProcess, SmscThread]) -> None:
    """Issue #14 item 3 on the network side: a reply goes to the owner of the address it was sent to, never to
    whoever wrote to that handset last from it; with no owner it is the operator's."""
    gw, sim = rig
    alice, bob = gw.create_account("alice"), gw.create_account("bob")
    add_numbers(gw.database_url, {"3197010000003": alice["account_id"]})
    for acc, sender in ((alice, "3197010000003"), (bob, "Shop")):
        r = httpx.post(
            gw.url + "/v1/send-sms",
            json={"to": "31612340077", "from": sender, "text": "reply to me"},
            auth=(acc["api_key"], acc["api_secret"]),
        )
        assert r.status_code == 202, r.text
    wait_for(lambda: len(sim.records()) == 2)
    sim.call(lambda: sim.sim.inject_mo("31612340077", "Shop", "who gets this?"))
    sim.call(lambda: sim.sim.inject_mo("31612340077", "3197010000003", "for alice"))

    def inbound(acc: dict[str, str]) -> list[str]:
        r = httpx.get(
            gw.url + "/v1/messages", params={"direction": "inbound"}, auth=(acc["api_key"], acc["api_secret"])
        )
        return [m["text"] for m in r.json()["messages"]]

    op = {"authorization": f"Bearer {gw.operator_token}"}
    kept = wait_for(
        lambda: [
            m
            for m in httpx.get(gw.url + "/console/api/messages", params={"direction": "inbound"}, headers=op).json()[
                "messages"
            ]
            if m["text"] == "who gets this?"
        ]
    )
    assert kept[0]["account_id"] == "" and kept[0]["to"] == "Shop"
    assert wait_for(lambda: inbound(alice)) == ["for alice"]
    assert inbound(bob) == []  # bob wrote to the handset last as "Shop": that does not make its reply his
