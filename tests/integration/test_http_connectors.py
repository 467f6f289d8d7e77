"""The HTTP upstream connectors in-process, against small scripted upstreams on loopback (real HTTP over TCP).

What an end-to-end run cannot set up on demand: a timeout after the request went out, a token refused mid-way,
each upstream's status codes, a half-open circuit's single probe. Each scripted upstream answers from a function
of the request, in its own thread, and records what it was sent.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from smsgate.connectors import base
from smsgate.connectors.http import generic, kaarai, kpn, vonage
from smsgate.connectors.http.base import HttpConnector
from smsgate.core import segments, signing
from tests.support import Reply, Script, ScriptedUpstream, free_port


@pytest.fixture
def upstreams() -> Iterator[list[ScriptedUpstream]]:
    made: list[ScriptedUpstream] = []
    yield made
    for u in made:
        u.stop()


def scripted(upstreams: list[ScriptedUpstream], script: Script, delay: float = 0.0) -> ScriptedUpstream:
    u = ScriptedUpstream(script, delay)
    upstreams.append(u)
    return u


class Sink:
    def __init__(self) -> None:
        self.receipt_list: list[base.Receipt] = []
        self.inbound_list: list[base.InboundPart] = []

    async def receipts(self, receipts: Sequence[base.Receipt]) -> None:
        self.receipt_list += receipts

    async def inbound(self, parts: Sequence[base.InboundPart]) -> None:
        self.inbound_list += parts


def message(mid: str, text: str = "hello", to: str = "31612345678", sender: str = "Shop") -> list[base.OutboundPart]:
    seg = segments.segment_text(text, reference=1)
    return [
        base.OutboundPart(
            part_id=f"{mid}-{p.index}", message_id=mid, source=sender, source_ton=5, source_npi=0, destination=to,
            data_coding=seg.data_coding, udh=p.udh, payload=p.payload, part_index=p.index, part_total=p.total,
            concat_ref=1,
        )
        for p in seg.parts
    ]  # fmt: skip


FAST = {"timeout": 2.0, "connect_timeout": 0.5, "retries": 0, "backoff": 0.05, "backoff_max": 2.0}


async def started(connector: HttpConnector) -> HttpConnector:
    await connector.start(Sink())
    return connector


def generic_connector(url: str, **kw: Any) -> generic.GenericConnector:
    table = {"name": "up", "type": "http", "url": url + "/send", "body": {"to": "{to}", "text": "{text}"},
             "id_path": "$.id", **FAST, **kw}  # fmt: skip
    return generic.GenericConnector(generic.GenericSettings.from_mapping(table))


def ok(req: dict[str, Any]) -> Reply:
    return 200, {}, {"id": "U1"}


# -- the shared base ------------------------------------------------------------------------------------------------
async def test_a_timeout_after_sending_is_not_sent_again(upstreams: list[ScriptedUpstream]) -> None:
    slow = scripted(upstreams, ok, delay=0.6)
    c = await started(generic_connector(slow.url, timeout=0.2, retries=2))
    try:
        [out] = await c.submit(message("m1"))
        assert out.status is base.SubmitStatus.UNKNOWN and "retry_on_timeout = false" in (out.error or "")
        await asyncio.sleep(0.8)
        assert len(slow.requests) == 1  # the SMS may be out: never sent twice
    finally:
        await c.close()


@pytest.mark.parametrize("opt_in", [{"retry_on_timeout": True}, {"idempotency_header": "Idempotency-Key"}])
async def test_a_timeout_is_retried_when_the_operator_or_the_upstream_allows(
    upstreams: list[ScriptedUpstream], opt_in: dict[str, Any]
) -> None:
    slow = scripted(upstreams, ok, delay=0.4)
    c = await started(generic_connector(slow.url, timeout=0.15, retries=2, **opt_in))
    try:
        [out] = await c.submit(message("m1"))
        await asyncio.sleep(0.5)
        assert len(slow.requests) == 3 and out.status is base.SubmitStatus.UNKNOWN  # never offered elsewhere
        if "idempotency_header" in opt_in:
            assert {r["headers"]["idempotency-key"] for r in slow.requests} == {"m1"}
    finally:
        await c.close()


async def test_refused_connections_open_the_circuit_and_a_probe_closes_it(upstreams: list[ScriptedUpstream]) -> None:
    port = free_port()  # nothing listens yet
    c = await started(generic_connector(f"http://127.0.0.1:{port}", circuit_failures=2, circuit_open_seconds=0.3))
    try:
        for i in range(2):
            [out] = await c.submit(message(f"m{i}"))
            assert out.status is base.SubmitStatus.RETRY and out.unsent, out
        health = c.health()
        assert (health.state, health.circuit, c.available) == (base.ConnectorState.DOWN, "open", False)
        assert "circuit open after 2 failures" in health.detail and health.retry_in
        [out] = await c.submit(message("m2"))  # not even tried while open
        assert out.status is base.SubmitStatus.RETRY and "circuit open" in (out.error or "") and out.retry_after
        await asyncio.sleep(0.35)
        assert (c.health().state, c.available) == (base.ConnectorState.DEGRADED, True)  # half-open
        upstreams.append(ScriptedUpstream(ok, port=port))  # the upstream comes up
        [out] = await c.submit(message("m3"))
        assert out.status is base.SubmitStatus.ACCEPTED and out.network_id == "U1"
        assert (c.health().state, c.health().circuit) == (base.ConnectorState.UP, "closed")
        assert c.circuit.opened == 1
    finally:
        await c.close()


async def test_a_half_open_circuit_lets_one_probe_through(upstreams: list[ScriptedUpstream]) -> None:
    failing = [True]

    def script(req: dict[str, Any]) -> Reply:
        return (500, {}, {}) if failing[0] else (200, {}, {"id": "U"})

    up = scripted(upstreams, script, delay=0.15)
    c = await started(generic_connector(up.url, circuit_failures=1, circuit_open_seconds=0.2, concurrency=8))
    try:
        [out] = await c.submit(message("m0"))
        assert out.status is base.SubmitStatus.RETRY and c.circuit.state.value == "open"
        failing[0] = False
        await asyncio.sleep(0.25)
        before = len(up.requests)
        outs = await c.submit([p for i in range(6) for p in message(f"p{i}")])
        assert {o.status for o in outs} == {base.SubmitStatus.ACCEPTED}
        probe, *rest = up.requests[before:]
        assert all(r["at"] >= probe["at"] + 0.14 for r in rest)  # the others waited for the probe's answer
        assert up.most_active > 1  # ...and then went together
    finally:
        await c.close()


async def test_throttling_rests_for_retry_after_and_is_not_a_failure(upstreams: list[ScriptedUpstream]) -> None:
    replies = [(429, {"retry-after": "0.4"}, {"error": "slow down"})]
    up = scripted(upstreams, lambda req: replies.pop(0) if replies else ok(req))
    c = await started(generic_connector(up.url, retries=1, circuit_failures=1))
    try:
        [out] = await c.submit(message("m1"))
        assert out.status is base.SubmitStatus.ACCEPTED
        first, second = up.requests
        assert second["at"] - first["at"] >= 0.4
        assert c.circuit.state.value == "closed" and c.stats.requests == {"throttled": 1, "accepted": 1}
    finally:
        await c.close()


async def test_a_long_message_goes_as_one_request_and_binary_is_refused(upstreams: list[ScriptedUpstream]) -> None:
    up = scripted(upstreams, ok)
    c = await started(generic_connector(up.url))
    text = "Ünïcode needs UCS-2 and this text is longer than seventy characters, so it takes two parts."
    try:
        outs = await c.submit(message("m1", text))
        assert [o.network_id for o in outs] == ["U1", "U1"]
        assert [r["body"]["text"] for r in up.requests] == [text]
        binary = [base.OutboundPart("b1", "b", "Shop", 5, 0, "31612345678", 4, b"", b"\x01\x02", 1, 1, 0)]
        [out] = await c.submit(binary)
        assert out.status is base.SubmitStatus.FAILED and "text only" in (out.error or "")
    finally:
        await c.close()


# -- KPN -----------------------------------------------------------------------------------------------------------
def kpn_script(refuse_first_token: bool = False, token_status: int = 200) -> tuple[Script, dict[str, int]]:
    seen = {"tokens": 0, "sends": 0}

    def script(req: dict[str, Any]) -> Reply:
        if req["path"].startswith(kpn.TOKEN_PATH):
            seen["tokens"] += 1
            if token_status != 200:
                return token_status, {}, {"ErrorCode": "invalid_client", "Error": "ClientId is Invalid"}
            assert req["body"] == {"client_id": "cid", "client_secret": "csecret"}
            return 200, {}, {"access_token": f"tok{seen['tokens']}", "token_type": "Bearer", "expires_in": "3599"}
        seen["sends"] += 1
        if refuse_first_token and req["headers"]["authorization"] == "Bearer tok1":
            return 401, {}, {"fault": {"faultstring": "Invalid access token"}}
        assert req["body"]["messages"][0]["mobile_number"] == "+31612345678"
        return 200, {}, {"document_id": f"doc-{seen['sends']}", "status": "OK"}

    return script, seen


def kpn_connector(url: str, **kw: Any) -> kpn.KpnConnector:
    table = {
        "name": "kpn",
        "type": "kpn",
        "base_url": url,
        "client_id": "cid",
        "client_secret": "csecret",
        **FAST,
        **kw,
    }
    return kpn.KpnConnector(kpn.KpnSettings.from_mapping(table))


async def test_kpn_fetches_one_token_for_concurrent_sends_and_renews_it_on_401(
    upstreams: list[ScriptedUpstream],
) -> None:
    script, seen = kpn_script(refuse_first_token=True)
    up = scripted(upstreams, script)
    c = await started(kpn_connector(up.url))
    try:
        outs = await c.submit([p for i in range(5) for p in message(f"m{i}")])
        assert {o.status for o in outs} == {base.SubmitStatus.ACCEPTED}
        assert all(o.note == "final: no receipt from upstream" for o in outs)
        assert seen["tokens"] == 2  # the first, refused once; then one renewal shared by all
    finally:
        await c.close()


async def test_kpn_refusing_the_client_credentials_opens_the_circuit(upstreams: list[ScriptedUpstream]) -> None:
    script, seen = kpn_script(token_status=401)
    up = scripted(upstreams, script)
    c = await started(kpn_connector(up.url, retries=2))
    try:
        [out] = await c.submit(message("m1"))
        assert out.status is base.SubmitStatus.RETRY and out.unsent
        health = c.health()
        assert health.state is base.ConnectorState.DOWN and "refused the client credentials" in health.detail
        assert "csecret" not in health.detail and "cid" not in repr(c.settings) and "csecret" not in repr(c.settings)
        assert seen == {"tokens": 1, "sends": 0}  # tripped at once: no retries against refused credentials
    finally:
        await c.close()


async def test_kpn_refuses_what_kpn_cannot_take_without_asking(upstreams: list[ScriptedUpstream]) -> None:
    script, seen = kpn_script()
    up = scripted(upstreams, script)
    c = await started(kpn_connector(up.url))
    try:
        [abroad] = await c.submit(message("m1", to="4915112345678"))
        [long_sender] = await c.submit(message("m2", sender="TwelveLetter"))
        assert abroad.status is long_sender.status is base.SubmitStatus.FAILED
        assert seen["sends"] == 0
    finally:
        await c.close()


# -- Vonage --------------------------------------------------------------------------------------------------------
def vonage_connector(url: str, **kw: Any) -> vonage.VonageConnector:
    table = {"name": "vg", "type": "vonage", "base_url": url, "api_key": "key1", "signature_secret": "sigsecret",
             "signature_method": "sha256", **FAST, **kw}  # fmt: skip
    return vonage.VonageConnector(vonage.VonageSettings.from_mapping(table), public_url="https://gw.example")


@pytest.mark.parametrize(
    ("statuses", "expected", "circuit"),
    [
        (["0", "0"], [base.SubmitStatus.ACCEPTED] * 2, "closed"),
        (["0", "1"], [base.SubmitStatus.ACCEPTED, base.SubmitStatus.RETRY], "closed"),  # part 2 throttled
        (["7"], [base.SubmitStatus.FAILED] * 2, "closed"),  # number barred
        (["4"], [base.SubmitStatus.RETRY] * 2, "open"),  # bad credentials: unhealthy at once
        (["5"], [base.SubmitStatus.RETRY] * 2, "closed"),  # internal error: one failure of two allowed
    ],
)
async def test_vonage_statuses(
    upstreams: list[ScriptedUpstream], statuses: list[str], expected: list[base.SubmitStatus], circuit: str
) -> None:
    def script(req: dict[str, Any]) -> Reply:
        params = dict(req["body"])
        assert signing.vonage_verify(params, "sigsecret", "sha256") and "api_secret" not in params
        assert params["client-ref"] == "m1" and params["callback"] == "https://gw.example/connectors/vg/receipts"
        entries = [{"status": s, "message-id": f"V{i}"} if s == "0" else {"status": s, "error-text": "no"}
                   for i, s in enumerate(statuses)]  # fmt: skip
        return 200, {}, {"message-count": str(len(entries)), "messages": entries}

    up = scripted(upstreams, script)
    c = await started(vonage_connector(up.url, circuit_failures=2))
    try:
        outs = await c.submit(message("m1", "x" * 200))  # two parts
        assert [o.status for o in outs] == expected
        if statuses == ["0", "0"]:
            assert [o.network_id for o in outs] == ["V0", "V1"]
        assert c.circuit.state.value == circuit
    finally:
        await c.close()


async def test_vonage_receipts_need_a_valid_signature() -> None:
    c = vonage_connector("http://127.0.0.1:9")
    sink = Sink()
    await c.start(sink)
    try:
        params = {"messageId": "V1", "status": "delivered", "err-code": "0", "msisdn": "31612345678", "to": "Shop",
                  "message-timestamp": "2026-01-02 03:04:05", "timestamp": "1767323045", "nonce": "n1"}  # fmt: skip
        signed = {**params, "sig": signing.vonage_sign(params, "sigsecret", "sha256")}
        call = base.UpstreamCall(
            "receipts", "POST", {"content-type": "application/json"}, {}, json.dumps(signed).encode()
        )
        assert await c.receive(call) == 1
        [r] = sink.receipt_list
        assert (r.connector, r.network_id, r.state, r.error_code) == ("vg", "V1", base.ReceiptState.DELIVERED, 0)
        forged = {**signed, "status": "failed"}
        with pytest.raises(Exception, match="signature"):
            await c.receive(base.UpstreamCall("receipts", "GET", {}, forged, b""))
    finally:
        await c.close()


# -- Kaarai --------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("status", "code", "expected", "circuit"),
    [
        (202, 2020, base.SubmitStatus.ACCEPTED, "closed"),
        (202, 2021, base.SubmitStatus.ACCEPTED, "closed"),
        (400, 4003, base.SubmitStatus.FAILED, "closed"),
        (403, 4031, base.SubmitStatus.FAILED, "closed"),
        (403, 4030, base.SubmitStatus.RETRY, "open"),
        (503, 5030, base.SubmitStatus.RETRY, "closed"),
    ],
)
async def test_kaarai_codes(
    upstreams: list[ScriptedUpstream], status: int, code: int, expected: base.SubmitStatus, circuit: str
) -> None:
    def script(req: dict[str, Any]) -> Reply:
        assert req["headers"]["authorization"].startswith("Basic ")
        assert req["body"] == {"to": "31612345678", "from": "Shop", "text": "hello"}
        return status, {}, {"code": code, "message": "m", "message_id": "K1"}

    up = scripted(upstreams, script)
    table = {"name": "ka", "type": "kaarai", "url": up.url + "/v1/send-sms", "username": "u", "password": "p",
             **FAST, "circuit_failures": 2}  # fmt: skip
    c = await started(kaarai.KaaraiConnector(kaarai.KaaraiSettings.from_mapping(table)))
    try:
        [out] = await c.submit(message("m1"))
        assert out.status is expected and c.circuit.state.value == circuit
        if code == 2021:
            assert out.network_id == "K1" and "queued" in (out.note or "") and "no receipt" in (out.note or "")
    finally:
        await c.close()


async def test_max_tps_paces_the_requests(upstreams: list[ScriptedUpstream]) -> None:
    """max_tps counts parts: 20 one-part messages at 10 per second take about 2 s (the first ~2 at once)."""
    up = scripted(upstreams, ok)
    c = await started(generic_connector(up.url, max_tps=10, concurrency=8))
    try:
        outs = await c.submit([p for i in range(20) for p in message(f"m{i}")])
        assert {o.status for o in outs} == {base.SubmitStatus.ACCEPTED}
        stamps = sorted(r["at"] for r in up.requests)
        assert stamps[-1] - stamps[0] >= 1.7
        for t0 in stamps:  # in any second: at most the rate plus the burst
            assert sum(1 for t in stamps if t0 <= t < t0 + 1.0) <= 10 + 2
    finally:
        await c.close()
