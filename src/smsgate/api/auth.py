"""Credential extraction shared by the dialects, and the limiter for repeated authentication failures."""

from __future__ import annotations

import base64
import binascii
import time

from fastapi import Request

from smsgate import errors, services
from smsgate.core import accounts as core_accounts

BEARER_SCHEMES = ("bearer", "bearertoken")


def gateway(request: Request) -> services.Gateway:
    gw: services.Gateway = request.app.state.gateway
    return gw


def bearer_token(request: Request) -> str | None:
    """The token of ``Authorization: Bearer <t>`` or Apigee's legacy ``BearerToken <t>`` (any case)."""
    header = request.headers.get("authorization", "")
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() in BEARER_SCHEMES and value.strip():
        return value.strip()
    return None


def basic_credentials(request: Request) -> tuple[str, str] | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "basic" or not value:
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else None


class FailureLimiter:
    """After ``limit`` failed logins from one client address within ``window`` seconds, refuse for a while.

    Counting by address (not by user) means an attacker learns nothing about which users exist.
    """

    def __init__(self, limit: int = 10, window: float = 60.0) -> None:
        self.limit = limit
        self.window = window
        self._fails: dict[str, list[float]] = {}

    def check(self, client: str) -> None:
        now = time.monotonic()
        recent = [t for t in self._fails.get(client, ()) if t > now - self.window]
        if recent:
            self._fails[client] = recent
        else:
            self._fails.pop(client, None)
        if len(recent) >= self.limit:
            raise errors.RateLimited(
                "too many failed authentication attempts", retry_after=recent[0] + self.window - now
            )

    def failed(self, client: str) -> None:
        if len(self._fails) > 100_000:
            self._fails.clear()
        self._fails.setdefault(client, []).append(time.monotonic())


def client_address(request: Request) -> str:
    return request.client.host if request.client else "?"


async def any_credentials(request: Request) -> core_accounts.Account:
    """Bearer token or Basic key/secret: what our own API (``/v1/messages``...) accepts."""
    gw = gateway(request)
    limiter: FailureLimiter = request.app.state.auth_failures
    addr = client_address(request)
    token = bearer_token(request)
    if token is not None:
        return await gw.account_for_token(token)
    creds = basic_credentials(request)
    if creds is None:
        raise errors.AuthError("missing credentials: use a Bearer token or HTTP Basic api_key:api_secret")
    limiter.check(addr)
    try:
        return await gw.authenticate(*creds)
    except errors.AuthError:
        limiter.failed(addr)
        raise
