"""Validity (issue 19): ``X-Validity-Seconds`` on KPN and Kaarai (Vonage ``ttl`` as before) reaches the SMSC as
SMPP's relative ``validity_period`` and is enforced here: a part not submitted in time ends ``expired``, with its
event and webhook, and is never sent late, whether its connector is paused or its SMSC too slow to take it.
"""

from __future__ import annotations

import contextlib
import pathlib
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest

from smsgate.connectors.smpp import connector as smpp_connector
from tests import support
from tests.e2e.test_schedule import get_message, kaarai_send, kpn_send


@pytest.fixture
def smsc() -> Iterator[support.SmscThread]:
    sim = support.SmscThread(receipt_delay_ms=50).start()
    try:
        yield sim
    finally:
        sim.stop()


def _gateway(
    data_dir: pathlib.Path, sim: support.SmscThread, **connector: str | int | float
) -> contextlib.AbstractContextManager[support.GatewayProcess]:
    config = support.smpp_config(data_dir / "smsgate.toml", sim.sim.port, **connector)
    return support.gateway_process(data_dir, config=config)


def test_validity_reaches_the_smsc_as_relative_validity_period(
    data_dir: pathlib.Path, smsc: support.SmscThread
) -> None:
    with _gateway(data_dir, smsc) as gw:
        acc = gw.create_account("validity")
        kpn_text, kaarai_text = "kpn " + uuid.uuid4().hex[:8], "kaarai " + uuid.uuid4().hex[:8]
        a = kpn_send(gw, gw.token(acc), kpn_text, **{"X-Validity-Seconds": "600"}).json()["document_id"]
        b = kaarai_send(gw, acc, kaarai_text, **{"X-Validity-Seconds": "90000"}).json()["message_id"]
        assert support.wait_for(lambda: kpn_text in smsc.copies_by_text() and kaarai_text in smsc.copies_by_text())
        seen = smsc.copies_by_text()
        assert seen[kpn_text][0].validity_period == smpp_connector.relative_validity(600) == "000000001000000R"
        assert seen[kaarai_text][0].validity_period == "000001010000000R"  # 1 day 1 hour
        assert get_message(gw, acc, a)["meta"]["ttl_seconds"] == 600
        assert get_message(gw, acc, b)["meta"]["ttl_seconds"] == 90000
        r = kpn_send(gw, gw.token(acc), "x", **{"X-Validity-Seconds": "0"})
        assert r.status_code == 400 and "validity" in r.json()["errorResponse"]["info"]


def test_a_message_held_by_a_paused_connector_expires_and_is_never_sent(
    data_dir: pathlib.Path, smsc: support.SmscThread
) -> None:
    sink = support.WebhookSink().start()
    try:
        with _gateway(data_dir, smsc) as gw:
            acc = gw.create_account("paused", receipt_url=sink.url)
            op = {"authorization": "Bearer " + gw.operator_token}
            assert httpx.post(gw.url + "/v1/connectors/smsc/pause", headers=op).status_code == 200
            text = "too late " + uuid.uuid4().hex[:8]
            mid = kpn_send(gw, gw.token(acc), text, **{"X-Validity-Seconds": "2"}).json()["document_id"]
            assert get_message(gw, acc, mid)["status"] == "accepted"
            done = support.wait_for(lambda: get_message(gw, acc, mid)["status"] == "expired" or None, 6)
            assert done
            msg = get_message(gw, acc, mid)
            assert msg["parts"][0]["status"] == "expired"
            assert msg["updated_at"] - msg["created_at"] < 2.0 + 1.0  # at its expiry, not a long backoff later
            assert httpx.post(gw.url + "/v1/connectors/smsc/resume", headers=op).status_code == 200
            assert support.wait_for(lambda: sink.types_by_message().get(mid) == {"message.expired"} or None, 10)
            time.sleep(0.5)
            assert text not in smsc.copies_by_text()
    finally:
        sink.stop()


def test_parts_waiting_on_a_slow_smsc_expire_instead_of_going_late(
    data_dir: pathlib.Path, smsc: support.SmscThread
) -> None:
    """A window of 1 and an SMSC answering after 2 s: the first two go (at 0 s and 2 s), the next two would go at
    4 s and 6 s, past their 3 s validity, so they end expired at the connector and never reach the SMSC."""
    smsc.set_mode("slow:2000")
    with _gateway(data_dir, smsc, window=1, response_timeout=5.0) as gw:
        acc = gw.create_account("slow")
        token = gw.token(acc)
        tag = uuid.uuid4().hex[:6]
        ids = [kpn_send(gw, token, f"slow {i} {tag}", **{"X-Validity-Seconds": "3"}).json()["document_id"]
               for i in range(4)]  # fmt: skip
        final = ("submitted", "delivered", "expired")
        assert support.wait_for(lambda: all(get_message(gw, acc, m)["status"] in final for m in ids) or None, 15)
        statuses = [get_message(gw, acc, m)["status"] for m in ids]
        assert statuses.count("expired") == 2, statuses
        seen = smsc.copies_by_text()
        for mid, i in zip(ids, range(4), strict=True):
            sent = f"slow {i} {tag}" in seen
            assert sent == (get_message(gw, acc, mid)["status"] != "expired")
