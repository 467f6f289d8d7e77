"""Priority lanes (issue 19): a ``high`` message overtakes a bulk backlog held for a slow connector.

20,000+ bulk parts (an account whose default lane is ``bulk``) wait in the dispatcher for an SMPP connector capped at
100 submits a second; a one-time code sent with ``X-Priority: high`` must reach the SMSC within a second. The
connector is handed about half a second of its rate at a time, so what is already on its way is small, and the
lanes put the high job at the head of the next batch.
"""

from __future__ import annotations

import concurrent.futures
import pathlib
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest

from tests import support

BULK_MESSAGES = 2400
PARTS = 10  # GSM-7, 10 x 153 characters
MAX_TPS = 100  # slow enough that sending the backlog under a loaded CI (up to 40 s) leaves 20,000 queued


@pytest.fixture
def smsc() -> Iterator[support.SmscThread]:
    sim = support.SmscThread(record_cap=40_000).start()
    try:
        yield sim
    finally:
        sim.stop()


def _queued(gw: support.GatewayProcess) -> int:
    r = httpx.get(gw.url + "/v1/connectors", headers={"authorization": "Bearer " + gw.operator_token}, timeout=10)
    return int(next(c for c in r.json()["connectors"] if c["name"] == "smsc")["queued"])


def test_a_high_message_overtakes_20000_bulk_parts_within_a_second(
    data_dir: pathlib.Path, smsc: support.SmscThread
) -> None:
    config = support.smpp_config(data_dir / "smsgate.toml", smsc.sim.port, max_tps=MAX_TPS)
    with support.gateway_process(data_dir, config=config) as gw:
        bulk = gw.create_account("newsletter", default_priority="bulk", balance=10**8 * 10**6)
        otp = gw.create_account("otp")
        text = ("bulk " + "x" * 153 * PARTS)[: 153 * PARTS]

        def send_bulk(n: int) -> list[str]:
            with httpx.Client(base_url=gw.url, auth=(bulk["api_key"], bulk["api_secret"]), timeout=30) as c:
                return [c.post("/v1/send-sms", json={"to": "31612345678", "text": text}).text for _ in range(n)]

        with concurrent.futures.ThreadPoolExecutor(6) as pool:
            answers = [a for batch in pool.map(send_bulk, [BULK_MESSAGES // 6] * 6) for a in batch]
        assert [a for a in answers if '"code":202' not in a] == []
        waiting = _queued(gw) * PARTS
        assert waiting >= 20_000, waiting  # still queued behind the connector's pace

        code = "otp " + uuid.uuid4().hex[:8]
        started = time.time()
        r = httpx.post(
            gw.url + "/messaging/sms-kpn/v1/send",
            json={"messages": [{"mobile_number": "0612345678", "content": code}]},
            headers={"Authorization": f"Bearer {gw.token(otp)}", "X-Priority": "high"},
            timeout=10,
        )
        assert r.status_code == 200, r.text
        record = support.wait_for(lambda: next((x for x in smsc.records()[-2000:] if code.encode() in x.short_message),
                                               None), timeout=5)  # fmt: skip
        assert record is not None, "the high message did not reach the SMSC"
        took = record.at - started
        print(f"high message at the SMSC {took * 1000:.0f} ms after its send, {waiting} bulk parts queued")
        assert took < 1.0, took
        mid = r.json()["document_id"]
        meta = httpx.get(f"{gw.url}/v1/messages/{mid}", auth=(otp["api_key"], otp["api_secret"])).json()["meta"]
        assert meta["priority"] == "high"
        assert _queued(gw) > 0  # bulk still waiting: it was overtaken, not finished
