"""The ``Idempotency-Key`` header for every dialect's send endpoint (``services.idempotency`` does the work).

A dialect hands over its ``SendRequest``, the function that renders a result as its answer, and the pieces that
identify the request (path and body, without credentials). Without the header this is the plain send: no lookup.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import Request
from fastapi.responses import Response

from smsgate.api import auth, send_options
from smsgate.core import idempotency as core_idempotency
from smsgate.services import idempotency, sending

Render = Callable[[sending.SendResult], Response]
Perform = Callable[[str, str], Awaitable[core_idempotency.StoredResponse]]  # (key, fingerprint) -> the kept answer
HEADER_DOC = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "schema": {"type": "string", "minLength": 1, "maxLength": core_idempotency.MAX_KEY},
    "description": "1-255 printable ASCII characters (a UUID). A retry with the same key and request gets the "
    "first answer again, byte for byte, with `Idempotent-Replayed: true`, and sends nothing; the same key with "
    "another request is refused. Kept for SMSGATE_IDEMPOTENCY_HOURS (24 h).",
}


def service(request: Request) -> idempotency.Idempotency:
    svc: idempotency.Idempotency = request.app.state.idempotency
    return svc


async def send(request: Request, req: sending.SendRequest, render: Render, *identity: bytes | str) -> Response:
    """Send ``req`` and answer with ``render(result)``; with an ``Idempotency-Key``, once per key and request."""
    raw = request.headers.get(core_idempotency.HEADER)
    gw = auth.gateway(request)
    if raw is None:
        return render(await gw.send(req))

    async def perform(key: str, fingerprint: str) -> core_idempotency.StoredResponse:
        reply = sending.Reply(key, fingerprint, lambda result: stored(render(result)))
        req.reply = reply
        await gw.send(req)
        assert reply.response is not None  # rendered in the accept transaction
        return reply.response

    return await once(request, req.account.id, raw, perform, *identity)


async def once(request: Request, scope: str, raw: str, perform: Perform, *identity: bytes | str) -> Response:
    """The request with Idempotency-Key ``raw`` (as sent) once per key in ``scope`` (an account id): ``perform``
    sends with the key and the request's fingerprint and returns the answer its accept transaction stored; a retry
    gets that answer again (``Idempotent-Replayed: true``). ``identity`` are the pieces that make the request (its
    body, say); the path and the X-Send-At, X-Validity-Seconds and X-Priority headers as sent are added here."""
    key = core_idempotency.parse_key(raw)
    options = send_options.given_raw(request)  # X-Send-At, X-Validity-Seconds, X-Priority as sent
    fingerprint = core_idempotency.fingerprint(request.method, request.url.path, *identity, *options)

    async def first() -> core_idempotency.StoredResponse:
        refusal: Exception | None = getattr(request.state, "replay_only", None)
        if refusal is not None:  # a request that may only be answered from what is kept (a repeated signature)
            raise refusal
        return await perform(key, fingerprint)

    answer, replayed = await service(request).once(scope, key, fingerprint, first)
    return replay(answer) if replayed else Response(answer.body, answer.status, dict(answer.headers))


def stored(response: Response) -> core_idempotency.StoredResponse:
    headers = tuple(
        (k.decode("latin-1"), v.decode("latin-1")) for k, v in response.raw_headers if k != b"content-length"
    )
    return core_idempotency.StoredResponse(response.status_code, headers, bytes(response.body))


def replay(answer: core_idempotency.StoredResponse) -> Response:
    return Response(answer.body, answer.status, {**dict(answer.headers), core_idempotency.REPLAYED: "true"})
