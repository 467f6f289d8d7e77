"""JSON bodies read after the caller is authenticated.

FastAPI parses a route's body model before it resolves the route's dependencies, so an unauthenticated client
could make it read and parse up to the 1 MiB body cap on every request. Routes that take credentials in headers
therefore declare the model only for the OpenAPI document (``doc``) and read it themselves (``parse``) once their
credential dependency has passed.
"""

from __future__ import annotations

import json
from typing import Any, TypeVar

import orjson
import pydantic
from fastapi import Request

from smsgate import errors
from smsgate.api import fastpath

MAX_BODY = 64 * 1024
M = TypeVar("M", bound=pydantic.BaseModel)


def doc(model: type[pydantic.BaseModel]) -> dict[str, Any]:
    """The ``openapi_extra`` that documents ``model`` as the JSON request body."""
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": model.model_json_schema()}}}}


async def parse(request: Request, model: type[M], *, limit: int = MAX_BODY) -> M:
    """The body as ``model``, or ValidationError (each dialect's 400) saying what is wrong with it."""
    return validate(await read(request, limit=limit), model)


async def read(request: Request, *, limit: int = MAX_BODY) -> bytes:
    """The raw body, up to ``limit`` (``MAX_BODY`` unless the route allows more)."""
    return await fastpath.read_body(request, limit)


def validate(raw: bytes, model: type[M]) -> M:
    """``raw`` as ``model``, or ValidationError naming the field (``field``) and what is wrong with it."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise errors.ValidationError(_malformed(raw, exc)) from None
    try:
        return model.model_validate(data)
    except pydantic.ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(x) for x in first.get("loc", ()))
        field = str(first["loc"][0]) if first.get("loc") else None
        raise errors.ValidationError(f"{where}: {first['msg']}" if where else str(first["msg"])).at(field) from None


def _malformed(raw: bytes, exc: orjson.JSONDecodeError) -> str:
    """Worded as the FastAPI-parsed routes word it (the standard parser's reasons), whichever route it was."""
    try:
        json.loads(raw)
    except json.JSONDecodeError as std:
        return errors.json_problem(raw, std.pos, std.msg)
    except ValueError:  # not UTF-8: json_problem says so from the bytes
        pass
    return errors.json_problem(raw, exc.pos, exc.msg)
