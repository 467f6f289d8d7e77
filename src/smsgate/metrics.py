"""Prometheus metrics, read from the runtime's own counters when scraped.

Nothing is counted on the hot path for this: the group committer, dispatcher, gateway and webhook sender
already keep plain integer counters, and a scrape turns them into Prometheus families. So a scrape costs a few
microseconds and a send costs nothing extra.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from smsgate.connectors import base
from smsgate.connectors.http import base as http_base
from smsgate.connectors.http import circuit as http_circuit

if TYPE_CHECKING:
    from smsgate.runtime import Runtime

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class RuntimeCollector(Collector):
    def __init__(self, runtime: Runtime) -> None:
        self._rt = runtime

    def collect(self) -> Iterator[Metric]:
        rt = self._rt
        totals = rt.counters()
        accepted = CounterMetricFamily(
            "smsgate_messages_accepted", "Messages accepted (2xx), by dialect", labels=["dialect"]
        )
        for dialect, n in sorted(rt.recorder.accepted.items()):
            accepted.add_metric([dialect], n)
        yield accepted
        yield CounterMetricFamily("smsgate_parts_submitted", "Parts the network accepted", value=totals["submitted"])
        yield CounterMetricFamily("smsgate_receipts", "Delivery receipts persisted", value=totals["receipts"])
        yield CounterMetricFamily("smsgate_inbound_parts", "Inbound parts persisted", value=totals["inbound"])
        yield GaugeMetricFamily(
            "smsgate_dispatch_backlog", "Messages held in memory for submission", value=totals["backlog"]
        )
        yield CounterMetricFamily("smsgate_commits", "Group-commit transactions", value=totals["commits"])
        yield CounterMetricFamily(
            "smsgate_commit_items", "Writes committed by the group committer", value=totals["commit_items"]
        )
        yield CounterMetricFamily(
            "smsgate_webhooks_delivered", "Webhook deliveries answered 2xx", value=totals["webhooks_delivered"]
        )
        up = GaugeMetricFamily(
            "smsgate_connector_available", "1 when the connector can take messages", labels=["connector"]
        )
        state = GaugeMetricFamily(
            "smsgate_connector_state",
            "1 for the connector's current state (up/down/degraded/paused)",
            labels=["connector", "state"],
        )
        for name in sorted(rt.connectors):
            health, available, _queued, _parts = rt.connector_state(name)
            up.add_metric([name], 1.0 if available else 0.0)
            current = health.state
            for s in base.ConnectorState:
                state.add_metric([name, s.value], 1.0 if s is current else 0.0)
        yield up
        yield state
        yield from self._per_connector()

    def _per_connector(self) -> Iterator[Metric]:
        """Parts by outcome for every connector; requests, latency and the circuit for HTTP upstreams."""
        rt = self._rt
        parts = CounterMetricFamily(
            "smsgate_connector_parts",
            "Parts handed to a connector, by outcome (submitted, rejected, unknown, retried, rerouted)",
            labels=["connector", "outcome"],
        )
        for name in sorted(rt.connectors):
            for outcome, count in sorted(rt.connector_state(name)[3].items()):
                parts.add_metric([name, outcome], count)
        yield parts
        upstreams = sorted((n, c) for n, c in rt.connectors.items() if isinstance(c, http_base.HttpConnector))
        requests = CounterMetricFamily(
            "smsgate_upstream_requests",
            "HTTP requests to an upstream, by verdict (accepted, rejected, retry, throttled, unhealthy, unknown)",
            labels=["connector", "verdict"],
        )
        latency = HistogramMetricFamily(
            "smsgate_upstream_request_seconds", "Time an HTTP upstream took to answer", labels=["connector"]
        )
        circuit = GaugeMetricFamily(
            "smsgate_upstream_circuit", "1 for the circuit breaker's current state", labels=["connector", "state"]
        )
        opened = CounterMetricFamily(
            "smsgate_upstream_circuit_opened", "Times the circuit opened", labels=["connector"]
        )
        for name, c in upstreams:
            stats, current, times_opened = _upstream(rt, name, c)
            for verdict, n in sorted(stats.requests.items()):
                requests.add_metric([name, verdict], n)
            cumulative, buckets = 0, []
            for upper, n in zip((*http_base.LATENCY_BUCKETS, float("inf")), stats.buckets, strict=True):
                cumulative += n
                buckets.append(("+Inf" if upper == float("inf") else str(upper), cumulative))
            latency.add_metric([name], buckets, stats.latency_sum)
            for st in http_circuit.State:
                circuit.add_metric([name, st.value], 1.0 if st.value == current else 0.0)
            opened.add_metric([name], times_opened)
        yield from (requests, latency, circuit, opened)


def _upstream(rt: Runtime, name: str, c: http_base.HttpConnector) -> tuple[http_base.Stats, str, int]:
    """An HTTP upstream's request counters, circuit state and openings, from the process that sends through it
    (the delivery process's last report when the node is split)."""
    if rt.remote is None:
        return c.stats, c.circuit.state.value, c.circuit.opened
    stats, opened = rt.remote.upstream(name)
    return stats, rt.remote.health(name).circuit or http_circuit.State.CLOSED.value, opened


def registry(runtime: Runtime) -> CollectorRegistry:
    reg = CollectorRegistry(auto_describe=False)
    reg.register(RuntimeCollector(runtime))
    return reg


def render(reg: CollectorRegistry) -> bytes:
    return generate_latest(reg)
