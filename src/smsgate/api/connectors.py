"""Connectors over HTTP: the operator's view and switches, and the receivers upstreams call back.

* ``GET /v1/connectors`` — every connector's state, detail, circuit, queue and counters (operator token).
* ``POST /v1/connectors/{name}/pause`` and ``/resume`` — a paused connector is skipped by routing on every node
  (the pause is stored), its queued messages go to their route's next connector or back to the outbox, and it
  keeps taking receipts and inbound messages (operator token).
* ``POST /connectors/{name}/receipts`` and ``/inbound`` (GET too: Vonage can be set to call with GET) — where an
  HTTP upstream posts delivery receipts and inbound SMS. No account credentials: the connector checks the
  upstream's signature or token when one is configured, and answers 200 only once what the call carries is stored.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Body, Path, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from smsgate import errors
from smsgate.api import auth, responses
from smsgate.connectors import base

router = APIRouter(tags=["Connectors"])
_OPERATOR: dict[str, Any] = {"security": [{"operatorToken": []}]}
_UPSTREAM: dict[str, Any] = {"security": [{}]}  # the upstream calls without credentials; see the docstring
NAME = Path(description="the connector's name in the config", examples=["kpn"], max_length=64)


class ConnectorOut(BaseModel):
    name: str
    type: str
    state: str = Field(description="up, down, degraded or paused")
    detail: str
    available: bool = Field(description="routing may choose it now")
    paused: bool
    pause_reason: str | None
    circuit: str | None = Field(description="closed, open or half-open (HTTP connectors)")
    in_flight: int = Field(description="requests on the wire now")
    queued: int = Field(description="messages waiting in this node's memory for it")
    parts: dict[str, int] = Field(description="parts by outcome on this node: submitted, rejected, retried...")


class ConnectorsOut(BaseModel):
    connectors: list[ConnectorOut]


class PauseIn(BaseModel):
    reason: str | None = Field(None, max_length=500, examples=["upstream maintenance until 14:00"])


class ReceivedOut(BaseModel):
    received: int = Field(description="receipts or inbound parts stored")


def _types(request: Request) -> dict[str, str]:
    tables = request.app.state.settings.connectors
    return {str(t.get("name")): str(t.get("type", "smpp")) for t in tables}


def _view(request: Request, name: str, c: base.Connector) -> dict[str, Any]:
    runtime = request.app.state.runtime
    health, available, queued, parts = runtime.connector_state(name)
    return {
        "name": name,
        "type": _types(request).get(name, "sandbox"),
        "state": health.state.value,
        "detail": health.detail,
        "available": available,
        "paused": c.paused,
        "pause_reason": runtime.pausing.reasons.get(name),
        "circuit": health.circuit,
        "in_flight": health.in_flight,
        "queued": queued,
        "parts": parts,
    }


def _connector(request: Request, name: str) -> base.Connector:
    c: base.Connector | None = request.app.state.runtime.connectors.get(name)
    if c is None:
        raise errors.NotFound(f"no connector {name!r}")
    return c


@router.get(
    "/v1/connectors",
    summary="Operator: every connector's state, circuit and queue",
    openapi_extra=_OPERATOR,
    responses={200: {"model": ConnectorsOut}},
)
async def list_connectors(request: Request) -> Response:
    await auth.operator(request)
    connectors = request.app.state.runtime.connectors
    return responses.json({"connectors": [_view(request, n, c) for n, c in connectors.items()]})


@router.post(
    "/v1/connectors/{name}/pause",
    summary="Operator: take a connector out of routing on every node",
    openapi_extra=_OPERATOR,
    responses={200: {"model": ConnectorOut}},
)
async def pause(request: Request, name: str = NAME, body: PauseIn | None = Body(None)) -> Response:
    await auth.operator(request)
    c = _connector(request, name)
    await request.app.state.runtime.pausing.pause(name, body.reason if body else None)
    return responses.json(_view(request, name, c))


@router.post(
    "/v1/connectors/{name}/resume",
    summary="Operator: put a paused connector back into routing",
    openapi_extra=_OPERATOR,
    responses={200: {"model": ConnectorOut}},
)
async def resume(request: Request, name: str = NAME) -> Response:
    await auth.operator(request)
    c = _connector(request, name)
    await request.app.state.runtime.pausing.resume(name)
    return responses.json(_view(request, name, c))


def _receiver(kind: Literal["receipts", "inbound"], what: str) -> None:
    """``POST`` and ``GET /connectors/{name}/<kind>``: hand the upstream's call to the connector (``base.Receiver``)."""

    async def receive(request: Request, name: str = NAME) -> Response:
        c = _connector(request, name)
        if not isinstance(c, base.Receiver):
            raise errors.NotFound(f"connector {name!r} takes no calls from its upstream")
        call = base.UpstreamCall(
            kind=kind,
            method=request.method,
            headers={k.lower(): v for k, v in request.headers.items()},
            query=dict(request.query_params),
            body=await request.body(),
        )
        return responses.json({"received": await c.receive(call)})

    for method in ("POST", "GET"):  # Vonage can be set to call with GET
        router.add_api_route(
            f"/connectors/{{name}}/{kind}",
            receive,
            methods=[method],
            name=f"upstream_{kind}_{method.lower()}",
            summary=f"Upstream: {what}" + (" (GET)" if method == "GET" else ""),
            openapi_extra=_UPSTREAM,
            responses={200: {"model": ReceivedOut}},
        )


_receiver("receipts", "delivery receipts for an HTTP connector (Vonage DLR, the generic connector's mapping)")
_receiver("inbound", "inbound SMS for an HTTP connector (Vonage inbound webhook)")
