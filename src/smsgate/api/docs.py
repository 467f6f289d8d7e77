"""Swagger UI at ``/docs`` with every asset served by the gateway itself, never from a CDN.

A self-hosted gateway often runs where the internet is not reachable; its API docs must still work. The
assets are Swagger UI's own distribution files as the ``swagger-ui-bundle-v2`` package ships them (Apache-2.0,
its licence in the package's metadata); FastAPI's page template would otherwise load them, and its favicon,
from other hosts.
"""

from __future__ import annotations

import mimetypes
import pathlib

from fastapi import APIRouter, FastAPI
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse, Response
from swagger_ui_bundle import swagger_ui_path

from smsgate import errors

DOCS = "/docs"
ASSETS = DOCS + "/assets"
OAUTH2_REDIRECT = DOCS + "/oauth2-redirect"
_FILES = ("swagger-ui-bundle.js", "swagger-ui-bundle.js.map", "swagger-ui.css", "swagger-ui.css.map",
          "favicon-32x32.png")  # fmt: skip
_DIST = pathlib.Path(str(swagger_ui_path))


def install(app: FastAPI) -> None:
    """Add ``/docs``, its assets and the OAuth2 redirect page (the app is built with ``docs_url=None``)."""
    router = APIRouter(include_in_schema=False)
    openapi_url = app.openapi_url or "/openapi.json"

    @router.get(DOCS)
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{app.title} - API docs",
            swagger_js_url=f"{ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS}/favicon-32x32.png",
            oauth2_redirect_url=OAUTH2_REDIRECT,
            swagger_ui_parameters=app.swagger_ui_parameters,
        )

    @router.get(OAUTH2_REDIRECT)
    async def oauth2_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @router.get(ASSETS + "/{name}")
    async def asset(name: str) -> Response:
        if name not in _FILES:
            raise errors.NotFound("no such asset")
        media = mimetypes.guess_type(name)[0] or "application/json"
        return Response(
            (_DIST / name).read_bytes(), media_type=media, headers={"cache-control": "public, max-age=86400"}
        )

    app.include_router(router)
