"""The FastAPI app: every dialect's router, and one error path that answers in the dialect of the URL.

Errors are rendered by the dialect that owns the path prefix (longest prefix wins), so a core error, an unknown
path or a wrong method comes out as that API's own body and status, and never as a stack trace.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from smsgate import errors, metrics, version
from smsgate.api import (
    auth,
    batches,
    connectors,
    console,
    export,
    fastpath,
    messages,
    messages_send,
    peers,
    sandbox,
    sandbox_control,
    suppressions,
    webhooks,
)
from smsgate.api import docs as api_docs
from smsgate.api import openapi as api_openapi
from smsgate.api.dialects import kaarai, kpn, kpn_batch, nexmo, vonage
from smsgate.runtime import Runtime
from smsgate.store import engine as store_engine

log = logging.getLogger(__name__)

Renderer = Callable[[Request, Exception, int | None], Response]

DESCRIPTION = """
smsgate speaks several SMS APIs on one server, over one durable outbox:

* **KPN SMS API v1** — get a token at `/oauth/client_credential/accesstoken` (client credentials), then
  `POST /messaging/sms-kpn/v1/send`; **KPN SMS (batch)** — `POST /communication/kpn/sms/send`, up to 5,000
  recipients in one call and one transaction, with the same token.
* **Vonage SMS API** — `POST /sms/json` (or `/sms/xml`), `/number/update`, `/account/numbers`,
  `/account/get-balance`, with api_key/api_secret (Basic, form, JSON or query) or a signature.
* **Vonage via KPN** — `POST /communication/nexmo/sms/send` and `/register`, and
  `/communication/nexmo/phone-numbers/...`, with the KPN Bearer token.
* **Kaarai Send Single SMS** — `POST /v1/send-sms` with HTTP Basic `api_key:api_secret`.
* **Our own API** — `POST /v1/messages` (send), `GET /v1/messages`, `GET /v1/messages/{id}`, `POST /v1/segments`,
  with a Bearer token or HTTP Basic `api_key:api_secret`. Every send endpoint takes an `Idempotency-Key` header.
* **Suppression lists** — `GET/PUT/DELETE /v1/suppressions/{msisdn}` and `GET /v1/suppressions`: numbers no
  dialect sends to (recipients who replied STOP land there by themselves).
* **Sandbox network** — `/sandbox/handsets/{msisdn}/messages` and `/reply`; as a test double: `/messages/latest`
  (waits for a message, reads its one-time code), `/script`, `/sandbox/behaviour` and `/sandbox/reset`.
* **Connectors** — the operator's `GET /v1/connectors`, `POST /v1/connectors/{name}/pause` and `/resume`; the
  receivers HTTP upstreams call back, `/connectors/{name}/receipts` and `/connectors/{name}/inbound`.

Use **Authorize** with your api_key as client_id and api_secret as client_secret; "Try it out" then works.
"""


def create_app(runtime: Runtime) -> FastAPI:
    app = FastAPI(
        title="smsgate",
        version=version.VERSION,
        description=DESCRIPTION,
        docs_url=None,  # ours, with local assets (api.docs)
        openapi_url="/openapi.json",
        redoc_url=None,
    )
    app.state.runtime = runtime
    app.state.gateway = runtime.gateway
    app.state.webhooks = runtime.webhook_service
    app.state.numbers = runtime.numbers
    app.state.batches = runtime.batches
    app.state.idempotency = runtime.idempotency
    app.state.settings = runtime.settings
    app.state.cors_origins = frozenset(runtime.settings.cors_origins)
    app.state.proxies = peers.networks(runtime.settings.trusted_proxies)
    app.state.auth_failures = runtime.login_failures
    app.state.signatures = runtime.signatures
    app.state.console_streams = console.routes.StreamCounter(runtime.settings.console_streams_per_account)
    renderers: dict[str, Renderer] = {}
    for prefix in kpn.PREFIXES:
        renderers[prefix] = kpn.render_error
    for prefix in nexmo.PREFIXES:
        renderers[prefix] = nexmo.render_error
    for prefix in vonage.PREFIXES:
        renderers[prefix] = vonage.render_error
    renderers.update(dict.fromkeys(kaarai.PREFIXES, kaarai.render_error))
    renderers.update(
        dict.fromkeys(
            (
                "/v1/messages",
                "/v1/batches",
                "/v1/segments",
                "/v1/webhooks",
                "/v1/account",
                "/v1/connectors",
                "/v1/suppressions",
                "/connectors/",
            ),
            messages.render_error,
        )
    )  # ours, under /v1/, and the upstreams' receivers
    app.state.renderers = renderers

    app.include_router(kpn.router)
    app.include_router(kpn_batch.router)
    app.include_router(nexmo.router)
    app.include_router(vonage.router)
    app.include_router(kaarai.router)
    app.include_router(messages_send.router)
    app.include_router(export.router)  # before messages: /v1/messages/export is no message id
    app.include_router(messages.router)
    app.include_router(batches.router)
    app.include_router(sandbox.router)
    app.include_router(sandbox_control.router)
    app.include_router(webhooks.router)
    app.include_router(suppressions.router)
    app.include_router(connectors.router)
    app.include_router(console.router)

    def renderer_for(path: str) -> Renderer:
        best = ""
        for prefix in renderers:
            if path.startswith(prefix) and len(prefix) > len(best):
                best = prefix
        return renderers.get(best, messages.render_error)

    async def on_error(request: Request, exc: Exception) -> Response:
        """Every error, in the dialect of the URL (also the direct route's handler, see ``fastpath``)."""
        render = renderer_for(request.url.path)
        if isinstance(exc, StarletteHTTPException) and isinstance(exc.__cause__, errors.SmsgateError):
            exc = exc.__cause__  # FastAPI's body parsing wraps what our body cap raised (fastpath._capped)
        if isinstance(exc, errors.SmsgateError):
            return render(request, exc, None)
        if isinstance(exc, StarletteHTTPException):
            return render(request, exc, exc.status_code)
        if isinstance(exc, RequestValidationError):
            first = exc.errors()[0] if exc.errors() else {}
            if first.get("type") == "json_invalid":  # FastAPI words it "8: JSON decode error"
                loc = first.get("loc", ())
                pos = loc[-1] if loc and isinstance(loc[-1], int) else 0
                reason = str((first.get("ctx") or {}).get("error", "not JSON"))
                return render(request, errors.ValidationError(errors.json_problem(exc.body or "", pos, reason)), 400)
            where = ".".join(str(x) for x in first.get("loc", ()) if x != "body")
            msg = f"{where}: {first.get('msg', 'invalid')}" if where else str(first.get("msg", "invalid request"))
            return render(request, errors.ValidationError(msg), 400)
        down = store_engine.unavailable(exc)
        if down is not None:  # a read on a cache miss while the database is cut: "try again", not a 500
            log.warning("store unavailable on %s %s: %s", request.method, request.url.path, exc)
            return render(request, down, None)
        log.error("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
        return render(request, exc, 500)

    # the database's own failure types get a handler of their own: Starlette re-raises what only the catch-all
    # ``Exception`` handler answered, and the server then drops the keep-alive connection
    for kind in (
        errors.SmsgateError,
        StarletteHTTPException,
        RequestValidationError,
        *store_engine.UNAVAILABLE,
        Exception,
    ):
        app.add_exception_handler(kind, on_error)
    app.state.on_error = on_error

    metrics_registry = metrics.registry(runtime)

    @app.get("/metrics", include_in_schema=False)
    async def prometheus_metrics(request: Request) -> Response:
        """Aggregate counters for Prometheus: with the operator token when one is configured, else only to a
        client on this machine (loopback, and not passed on by a reverse proxy)."""
        if runtime.settings.operator_token:
            if not auth.is_operator(request):
                raise errors.AuthError("operator token required")
        elif not auth.is_local(request):
            raise errors.AuthError("metrics are served to this machine only; set SMSGATE_OPERATOR_TOKEN to scrape them")
        return Response(metrics.render(metrics_registry), media_type=metrics.CONTENT_TYPE)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> Response:
        """Liveness: the process answers HTTP. Restart the node when this fails; nothing else is checked."""
        return Response(orjson.dumps({"status": "ok", "node": runtime.node_id}), media_type="application/json")

    @app.get("/readyz", include_in_schema=False)
    async def readyz(connectors: str = "any") -> Response:
        """Readiness: 200 when this node can accept a message durably (its database takes a write now), 503
        otherwise or while it shuts down. Connector states are in the body; ``?connectors=all`` also answers
        503 while any connector is down (for operators who would rather drain a node than queue)."""
        if connectors not in ("any", "all"):
            raise errors.ValidationError("connectors must be any or all")
        report = await runtime.readiness()
        if connectors == "all" and any(c["state"] == "down" for c in report["connectors"].values()):
            report["ready"], report["status"] = False, "connector down"
        return Response(
            orjson.dumps(report), status_code=200 if report["ready"] else 503, media_type="application/json"
        )

    @app.get("/version", include_in_schema=False)
    async def version_info() -> Response:
        return Response(orjson.dumps(version.info()), media_type="application/json")

    api_docs.install(app)

    _add_security_scheme(app)
    return app


def create_asgi(runtime: Runtime) -> fastpath.FastPath:
    """The app ``smsgate serve`` runs: the FastAPI app behind the direct route for sends and the body cap."""
    app = create_app(runtime)
    batch_cap = runtime.settings.batch_max_request_bytes
    return fastpath.FastPath(app, app.state.on_error, max_body=runtime.settings.max_request_bytes,
                             larger={kpn_batch.PATH: batch_cap, "/v1/batches": batch_cap})  # fmt: skip


def _add_security_scheme(app: FastAPI) -> None:
    """OAuth2 client credentials pointing at the token URL, so Swagger UI's "Try it out" works."""
    original = app.openapi

    def openapi() -> dict[str, object]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = original()
        comps = schema.setdefault("components", {})
        comps.setdefault("securitySchemes", {}).update(
            {
                "kpnOAuth2": {
                    "type": "oauth2",
                    "flows": {
                        "clientCredentials": {
                            "tokenUrl": kpn.TOKEN_PATH + "?grant_type=client_credentials",
                            "scopes": {},
                        }
                    },
                },
                "basicAuth": {"type": "http", "scheme": "basic"},
                "operatorToken": {"type": "http", "scheme": "bearer", "description": "SMSGATE_OPERATOR_TOKEN"},
            }
        )
        app.openapi_schema = api_openapi.finish(schema)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
