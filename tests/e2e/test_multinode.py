"""Two ``smsgate serve`` nodes on one PostgreSQL and one Redis, submitting to one SMSC simulator.

The simulator (``smsgate.sim.smsc``, in a thread of this process) counts every submit_sm and fingerprints its
body, so "exactly once" is checked where it matters: at the SMSC. Each node binds with its own system_id,
so the simulator's records also show that both nodes did part of the work.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import os
import pathlib
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from typing import Any

import asyncpg
import httpx
import orjson
import pytest

from smsgate.sim import smsc
from tests import support

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis]

MESSAGES = 10_000
CAP_TPS = 100.0  # the capped connector's max_tps: per process in the connector, for the sum via Redis
CAPPED_PREFIX = "3161111"
HTTP_PREFIX = "3163333"  # to the capped HTTP connector


class SimThread:
    """The SMSC simulator on its own event loop, so the gateways' traffic never waits for the test's."""

    def __init__(self) -> None:
        self.sim = smsc.SmscSimulator(record_cap=3 * MESSAGES)
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="smsc-sim", daemon=True)

    def start(self) -> SimThread:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.sim.start(), self.loop).result(10)
        return self

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.sim.stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)

    def counter(self, name: str) -> int:
        return int(self.sim.stats.counters[name])

    def duplicates(self) -> dict[tuple[str, bytes], list[str]]:
        """Bodies submitted more than once, with the system_id (node) of each copy."""
        seen: dict[tuple[str, bytes], list[str]] = {}
        for r in list(self.sim.records):
            seen.setdefault((r.destination, r.short_message), []).append(r.system_id)
        return {k: v for k, v in seen.items() if len(v) > 1}

    def by_system(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in list(self.sim.records):
            out[r.system_id] = out.get(r.system_id, 0) + 1
        return out


def node_config(path: pathlib.Path, sim_port: int, node: str, http_port: int) -> pathlib.Path:
    path.write_text(
        f"""
[[connectors]]
type = "smpp"
name = "smsc"
host = "127.0.0.1"
port = {sim_port}
system_id = "fast-{node}"
window = 200

[[connectors]]
type = "smpp"
name = "capped"
host = "127.0.0.1"
port = {sim_port}
system_id = "capped-{node}"
max_tps = {CAP_TPS}

[[connectors]]
type = "http"
name = "capped-http"
url = "http://127.0.0.1:{http_port}/sms"
body = {{ to = "{{to}}", text = "{{text}}" }}
max_tps = {CAP_TPS}

[routing]
default = "smsc"
rules = [{{ prefix = "{CAPPED_PREFIX}", connector = "capped" }}, {{ prefix = "{HTTP_PREFIX}", connector = "capped-http" }}]
"""
    )
    return path


@pytest.fixture(scope="module")
def http_upstream() -> Iterator[support.ScriptedUpstream]:
    """An HTTP SMS API both nodes' ``capped-http`` connector sends to."""
    upstream = support.ScriptedUpstream(lambda req: (200, {}, {"id": "H"}))
    yield upstream
    upstream.stop()


@pytest.fixture(scope="module")
def cluster(
    tmp_path_factory: pytest.TempPathFactory, http_upstream: support.ScriptedUpstream
) -> Iterator[tuple[list[support.GatewayProcess], SimThread]]:
    redis_url = support.require_redis()
    sim = SimThread().start()
    try:
        with support.postgres_database() as db:
            env = {
                "SMSGATE_DATABASE_URL": db,
                "SMSGATE_REDIS_URL": redis_url,
                "SMSGATE_REDIS_PREFIX": f"smsgate-test-{os.urandom(4).hex()}:",
                # production-like liveness: the 2 s of the crash tests would declare a node starved of CPU dead
                "SMSGATE_NODE_DEAD_AFTER": "10",
                "SMSGATE_NODE_HEARTBEAT_INTERVAL": "1",
            }
            nodes = []
            try:
                for name in ("a", "b"):
                    d = tmp_path_factory.mktemp(f"node-{name}")
                    cfg = node_config(d / "smsgate.toml", sim.sim.port, name, http_upstream.port)
                    nodes.append(support.GatewayProcess(d, env=env, config=cfg).start())
                yield nodes, sim
            finally:
                for n in nodes:
                    n.stop()
    finally:
        sim.stop()


@dataclasses.dataclass(frozen=True, slots=True)
class Answer:
    status: int
    headers: dict[str, str]


async def send_all(
    nodes: list[support.GatewayProcess], tokens: list[str], numbers: list[str], *, concurrency: int = 32
) -> list[Answer]:
    """KPN sends spread round-robin over the nodes, ``concurrency`` keep-alive connections in all.

    Raw HTTP/1.1 on asyncio streams rather than httpx: the client shares the CPUs with both nodes, and
    10,000 requests through httpx would measure httpx.
    """
    out: list[Answer | None] = [None] * len(numbers)
    todo = iter(enumerate(numbers))

    async def worker(k: int) -> None:
        node = nodes[k % len(nodes)]
        reader, writer = await asyncio.open_connection("127.0.0.1", node.port)
        head = (
            f"POST /messaging/sms-kpn/v1/send HTTP/1.1\r\nHost: 127.0.0.1:{node.port}\r\n"
            f"Authorization: Bearer {tokens[k % len(nodes)]}\r\nContent-Type: application/json\r\n"
        )
        try:
            for i, number in todo:
                body = orjson.dumps({"messages": [{"mobile_number": number, "content": f"multinode message {i}"}]})
                writer.write(f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body)
                status = int((await reader.readline()).split(b" ", 2)[1])
                headers: dict[str, str] = {}
                while (line := await reader.readline()) not in (b"\r\n", b""):
                    name, _, value = line.decode("latin-1").partition(":")
                    headers[name.strip().lower()] = value.strip()
                await reader.readexactly(int(headers.get("content-length", "0")))
                out[i] = Answer(status, headers)
        finally:
            writer.close()

    await asyncio.gather(*(worker(k) for k in range(concurrency)))
    return [r for r in out if r is not None]


def tokens_for(nodes: list[support.GatewayProcess], acc: dict[str, str]) -> list[str]:
    return [n.token(acc) for n in nodes]


def test_ten_thousand_messages_reach_the_smsc_exactly_once(cluster: Any) -> None:
    nodes, sim = cluster
    acc = nodes[0].create_account("bulk", balance=10**8 * 10**6)
    before = sim.counter("submits")
    start = time.monotonic()
    numbers = [f"+3162{i:07d}" for i in range(MESSAGES)]
    responses = asyncio.run(asyncio.wait_for(send_all(nodes, tokens_for(nodes, acc), numbers), 300))
    accepted = time.monotonic() - start
    assert [r.status for r in responses] == [200] * MESSAGES, collections.Counter(r.status for r in responses)
    support.wait_for(lambda: sim.counter("submits") - before >= MESSAGES, timeout=120)
    time.sleep(0.5)  # a duplicate would show up now
    dups = sim.duplicates()
    assert not dups, f"{len(dups)} parts submitted twice, e.g. {list(dups.items())[:5]}"
    assert sim.counter("submits") - before == MESSAGES
    per_node = sim.by_system()
    assert per_node.get("fast-a", 0) + per_node.get("fast-b", 0) == MESSAGES
    assert per_node.get("fast-a", 0) > MESSAGES // 4 and per_node.get("fast-b", 0) > MESSAGES // 4
    print(f"\n{MESSAGES} accepted in {accepted:.1f}s; submitted {per_node}")


def test_quota_is_exhausted_across_nodes_after_exactly_n_sends(cluster: Any) -> None:
    nodes, _sim = cluster
    quota = 37
    acc = nodes[0].create_account("quota", quota_limit=quota, quota_interval=1, quota_unit="day")
    numbers = [f"+3163{i:07d}" for i in range(quota + 23)]
    responses = asyncio.run(asyncio.wait_for(send_all(nodes, tokens_for(nodes, acc), numbers, concurrency=12), 30))
    codes = [r.status for r in responses]
    assert codes.count(200) == quota and codes.count(429) == len(numbers) - quota
    refused = next(r for r in responses if r.status == 429)
    assert int(refused.headers["retry-after"]) >= 1  # KPN's own refusal, with its headers
    ok = [r for r in responses if r.status == 200]
    assert {r.headers.get("quota-limit") for r in ok} <= {str(quota), None}


def test_connector_tps_cap_holds_for_the_sum_of_nodes(cluster: Any) -> None:
    nodes, sim = cluster
    acc = nodes[0].create_account("capped", balance=10**8 * 10**6)
    count = 600
    numbers = [f"+{CAPPED_PREFIX}{i:04d}" for i in range(count)]
    base = sim.counter("submits")
    samples: list[tuple[float, int]] = []
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            samples.append((time.monotonic(), sim.counter("submits") - base))
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        responses = asyncio.run(asyncio.wait_for(send_all(nodes, tokens_for(nodes, acc), numbers), 30))
        assert all(r.status == 200 for r in responses)
        support.wait_for(lambda: sim.counter("submits") - base >= count, timeout=30)
    finally:
        done.set()
        sampler.join(5)
    samples.append((time.monotonic(), sim.counter("submits") - base))
    first = next(t for t, n in samples if n > 0)
    last = next(t for t, n in samples if n >= count)
    rate = count / (last - first)
    # one node alone may send CAP_TPS (its connector paces itself); two nodes without the shared bucket would
    # reach twice that. The shared bucket holds the sum at the cap (plus one burst of 0.2 s).
    assert rate <= CAP_TPS * 1.1, f"{rate:.0f}/s over the whole run"
    for t0, n0 in samples:  # and in every 1-second window
        n1 = max(n for t, n in samples if t <= t0 + 1.0)
        assert n1 - n0 <= CAP_TPS * 1.2 + 2, f"{n1 - n0} submits in 1 s from t={t0 - first:.2f}"
    per_node = sim.by_system()
    assert per_node.get("capped-a", 0) > 0 and per_node.get("capped-b", 0) > 0
    assert sim.counter("duplicate_parts") == 0
    for node in nodes:  # the LISTEN connection held and nothing crashed
        text = node.log.read_text()
        assert "LISTEN" not in text and "Traceback" not in text, text[-2000:]


def test_http_connector_cap_and_pause_hold_for_all_nodes(cluster: Any, http_upstream: support.ScriptedUpstream) -> None:
    """An HTTP connector's max_tps holds for the sum of both nodes (Redis), and a pause made through one node's
    operator API stops the connector on the other node too (the pause is stored)."""
    nodes, _sim = cluster
    acc = nodes[0].create_account("capped-http", balance=10**8 * 10**6)
    count = 300
    responses = asyncio.run(
        asyncio.wait_for(send_all(nodes, tokens_for(nodes, acc), [f"+{HTTP_PREFIX}{i:04d}" for i in range(count)]), 30)
    )
    assert all(r.status == 200 for r in responses)
    support.wait_for(lambda: len(http_upstream.requests) >= count, timeout=30)
    stamps = sorted(r["at"] for r in http_upstream.requests)
    # the steady rate: the dispatcher may hand a capped connector half a second of its rate at once (two batches of
    # a quarter second, issue 19's priority lanes), so that first burst is not part of the span's rate
    assert (count - CAP_TPS * 0.5) / (stamps[-1] - stamps[0]) <= CAP_TPS * 1.1
    # in every 1-second window: the rate plus one burst of 0.2 s, and 0.1 s of arrivals bunched by a loaded machine
    # (stamped as the scripted upstream's thread reads them; a full run once saw 125 against 122): two nodes without
    # the shared bucket would send twice the rate
    for t0 in stamps:
        assert sum(1 for t in stamps if t0 <= t < t0 + 1.0) <= CAP_TPS * 1.3 + 2

    def op(node: support.GatewayProcess, path: str) -> httpx.Response:
        return httpx.post(node.url + path, headers={"authorization": "Bearer " + node.operator_token}, timeout=10)

    def paused_on(node: support.GatewayProcess) -> bool:
        headers = {"authorization": "Bearer " + node.operator_token}
        r = httpx.get(node.url + "/v1/connectors", headers=headers, verify=support.system_cas())  # polled
        return {c["name"]: c["paused"] for c in r.json()["connectors"]}["capped-http"]

    assert op(nodes[0], "/v1/connectors/capped-http/pause").status_code == 200
    support.wait_for(lambda: paused_on(nodes[1]), timeout=5)  # the other node reads the pause at its heartbeat
    held = asyncio.run(send_all(nodes[1:], tokens_for(nodes[1:], acc), [f"+{HTTP_PREFIX}9{i:03d}" for i in range(5)]))
    assert all(r.status == 200 for r in held)
    time.sleep(1.0)
    assert len(http_upstream.requests) == count  # nothing went out while paused
    assert op(nodes[1], "/v1/connectors/capped-http/resume").status_code == 200
    support.wait_for(lambda: len(http_upstream.requests) >= count + 5, timeout=40)


def test_workers_refused_without_postgresql(tmp_path: pathlib.Path) -> None:
    res = support.run_cli("serve", "--workers", "2", env={"SMSGATE_DATA_DIR": str(tmp_path)}, check=False)
    assert res.returncode == 2
    assert "--workers needs PostgreSQL" in res.stderr


def test_workers_are_nodes_sharing_one_port(tmp_path: pathlib.Path) -> None:
    """``serve --workers 2``: two processes on one port (SO_REUSEPORT), each heart-beating as its own node."""
    with support.postgres_database() as db:
        env = {
            "SMSGATE_DATABASE_URL": db,
            "SMSGATE_REDIS_URL": support.require_redis(),
            "SMSGATE_REDIS_PREFIX": f"smsgate-test-{os.urandom(4).hex()}:",
        }
        gw = support.GatewayProcess(tmp_path, env=env)
        args = [*support.SMSGATE, "serve", "--workers", "2", "--port", str(gw.port), "--log-level", "warning"]
        with open(gw.log, "wb") as fh:
            proc = subprocess.Popen(args, env=gw.env, stdout=fh, stderr=subprocess.STDOUT)
        try:
            support.wait_for(lambda: _nodes(db) == 2, timeout=60, interval=0.3)
            acc = gw.create_account("workers", quota_limit=5)
            token = gw.token(acc)
            codes = []
            for i in range(7):  # new connection each time: the kernel spreads them over the workers
                with httpx.Client(base_url=gw.url, timeout=10) as c:
                    r = c.post(
                        "/messaging/sms-kpn/v1/send",
                        headers={"Authorization": f"Bearer {token}"},
                        json={"messages": [{"mobile_number": f"+3164{i:07d}", "content": "hi"}]},
                    )
                    codes.append(r.status_code)
            assert codes.count(200) == 5 and codes.count(429) == 2  # one quota, whichever worker answered
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
        assert proc.returncode == 0, gw.log.read_text()[-2000:]
        assert _nodes(db) == 0  # both workers stopped cleanly and left


def _nodes(db: str) -> int:
    async def count() -> int:
        conn = await asyncpg.connect(db, timeout=5)
        try:
            return int(await conn.fetchval("SELECT count(*) FROM nodes"))
        finally:
            await conn.close()

    try:
        return asyncio.run(count())
    except asyncpg.UndefinedTableError:
        return 0
