"""The error half of the OpenAPI document: what each dialect's ``render_error`` answers, declared on its routes.

Errors are rendered by the dialect that owns the path prefix (``api.app``), so they are declared the same way:
``finish`` adds to every operation the error statuses and bodies its dialect can answer with (a route's own
declaration of a status wins), and drops FastAPI's automatic ``422``: request validation errors are answered in
the dialect's format, as a ``400``. The schemathesis run (tests/e2e/test_fuzz.py) checks every answer against
this document, so a status or body added to a renderer without its declaration here fails there.
"""

from __future__ import annotations

import copy
from typing import Any

import orjson

from smsgate.api import vonage_numbers
from smsgate.api.dialects import kpn

Responses = dict[str, dict[str, Any]]


def _strings(*names: str) -> dict[str, Any]:
    """An object whose properties are all required strings."""
    return {"type": "object", "required": list(names), "properties": {n: {"type": "string"} for n in names}}


# -- bodies -----------------------------------------------------------------------------------------------------
OURS = {
    "type": "object",
    "required": ["error"],
    "properties": {"error": _strings("code", "message")},
}
KPN_ERROR = {**kpn.ERROR_SCHEMA, "required": ["errorResponse"]}
APIGEE_FAULT = {
    "type": "object",
    "required": ["fault"],
    "properties": {
        "fault": {
            "type": "object",
            "required": ["faultstring", "detail"],
            "properties": {"faultstring": {"type": "string"}, "detail": _strings("errorcode")},
        }
    },
}
OAUTH_ERROR = _strings("ErrorCode", "Error")
NEXMO_ERROR = _strings("transactionId", "status", "name", "message", "info")  # KPN's flat ErrorResponse
NUMBERS_ERROR = vonage_numbers.NUMBERS_STATUS_SCHEMA  # Vonage Phone Numbers / Account


def _json(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_OURS: Responses = {
    "400": _json("Invalid request: a parameter or the body is not valid", OURS),
    "401": _json("Missing or invalid credentials (Bearer token or Basic api_key:api_secret)", OURS),
    "403": _json("Not allowed for this account", OURS),
    "404": _json("No such object (or it belongs to another account)", OURS),
    "429": _json("Too many requests, or too many failed logins from this address (see Retry-After)", OURS),
    "503": _json("The store is unavailable; try again", OURS),
}
_TOKEN: Responses = {
    "400": _json("Unsupported grant type", OAUTH_ERROR),
    "401": _json("Bad client", OAUTH_ERROR),
    "429": _json("Too many failed logins from this address (see Retry-After)", APIGEE_FAULT),
    "503": _json("The store is unavailable; try again", KPN_ERROR),
}
_KPN_GATEWAY: Responses = {
    "401": _json("Invalid or expired access token", APIGEE_FAULT),
    "429": _json("Quota used up (see Retry-After)", APIGEE_FAULT),
}
_NUMBERS: Responses = {
    "420": _json("Invalid or missing parameter, or the number cannot be bought, changed or cancelled", NUMBERS_ERROR),
    "503": _json("The store is unavailable; try again", NUMBERS_ERROR),
}
_VONAGE_AUTH: Responses = {
    "401": _json("Authentication failed", NUMBERS_ERROR),
    "429": _json("Too many requests, or too many failed logins from this address", NUMBERS_ERROR),
}
_OTHER_LEVEL = _json("Not for this account's level: /register is for demo accounts, number/update for production "
                     "ones (the message names the one to use)", NEXMO_ERROR)  # fmt: skip
_REGISTER: Responses = {
    "400": _json("Missing or invalid parameter (callback_url, to), or a number you do not own", NEXMO_ERROR),
    "403": _OTHER_LEVEL,
    "503": _json("The store is unavailable; try again", NEXMO_ERROR),
}


def errors_for(path: str) -> Responses:
    """The error responses the renderer owning ``path`` answers with (see each dialect's ``render_error``)."""
    if path == kpn.TOKEN_PATH:
        return _TOKEN
    if path.startswith(("/messaging/sms-kpn/", "/communication/kpn/")):
        return {**_KPN_GATEWAY, "400": _json("Bad request", KPN_ERROR), "403": _json("Forbidden", KPN_ERROR)}
    if path.startswith("/communication/nexmo/sms/register"):
        return {**_KPN_GATEWAY, **_REGISTER}
    if path.startswith("/communication/nexmo/sms/"):
        return _KPN_GATEWAY  # SMS errors are HTTP 200 with a Vonage status
    if path.startswith("/communication/nexmo/"):
        # a used-up KPN quota is Apigee's fault, any other limit the Numbers API's own body
        limited = _json(_KPN_GATEWAY["429"]["description"], {"anyOf": [APIGEE_FAULT, NUMBERS_ERROR]})
        levels = {"403": _OTHER_LEVEL} if path.endswith("/number/update") else {}
        return {**_KPN_GATEWAY, **_NUMBERS, "429": limited, **levels}
    if path.startswith("/sms/"):
        return {}  # every SMS error is HTTP 200 with a Vonage status
    if path.startswith(("/number/", "/account/")):
        return {**_VONAGE_AUTH, **_NUMBERS}
    if path == "/v1/send-sms":
        return {}  # Kaarai declares its table of codes on the route
    return _OURS


def finish(schema: dict[str, Any]) -> dict[str, Any]:
    """Declare every operation's dialect errors and drop FastAPI's automatic 422 (``schema`` is changed in place).

    A status the route declares itself keeps its description and examples; it gets the body schema if it has none.
    """
    for path, item in schema.get("paths", {}).items():
        for operation in item.values():
            responses = operation.setdefault("responses", {})
            auto = responses.get("422", {}).get("content", {}).get("application/json", {}).get("schema", {})
            if auto.get("$ref", "").endswith("/HTTPValidationError"):
                del responses["422"]
            for status, response in errors_for(path).items():
                declared = responses.setdefault(status, copy.deepcopy(response))
                for media, body in response["content"].items():
                    declared.setdefault("content", {}).setdefault(media, {}).setdefault("schema", body["schema"])
    components = schema.get("components", {}).get("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):  # FastAPI's, for the 422s just dropped
        if name in components and not _referenced(schema, name):
            del components[name]
    return schema


def _referenced(schema: dict[str, Any], name: str) -> bool:
    """Whether anything but the component itself refers to ``#/components/schemas/<name>``."""
    own = schema["components"]["schemas"].pop(name)
    try:
        return f'"#/components/schemas/{name}"'.encode() in orjson.dumps(schema)
    finally:
        schema["components"]["schemas"][name] = own
