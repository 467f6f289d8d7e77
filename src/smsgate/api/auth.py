"""Credentials, shared by the dialects: extracting them, checking a key and secret under the login limiter, and
the rule for who may change what.

* Tokens send and read. Changing credentials or account-wide webhook targets on our own API takes the account's
  secret (HTTP Basic) or the operator token (``secret_or_operator``).
* Failed logins are counted per (client address, api_key) (``limits.Failures``, in Redis when configured): after
  ``SMSGATE_AUTH_FAILURE_LIMIT`` failures within the window that pair gets the dialect's throttle answer, and only
  that pair; a key and secret verified in the last seconds pass without consulting the limiter, so another key's
  failures from the same address never refuse a valid credential. The address is the client behind trusted
  proxies only (``peers``).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import logging

from fastapi import Request

from smsgate import errors, limits
from smsgate.api import peers
from smsgate.core import accounts as core_accounts
from smsgate.services import sending

log = logging.getLogger(__name__)
BEARER_SCHEMES = ("bearer", "bearertoken")
_KEY_CHARS = 64  # of an api_key in a limiter key or a log line: a caller chooses it


def gateway(request: Request) -> sending.Gateway:
    gw: sending.Gateway = request.app.state.gateway
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


def client_address(request: Request) -> str:
    """The client's address: the peer, or the client a trusted reverse proxy names (``peers``)."""
    return peers.client(request.client.host if request.client else None, request.headers, request.app.state.proxies)


def is_local(request: Request) -> bool:
    """A request from this machine itself, not passed on by a proxy (``peers.local``)."""
    return peers.local(request.client.host if request.client else None, request.headers, request.app.state.proxies)


def is_operator(request: Request) -> bool:
    """Whether the request carries the operator token (compared in constant time, whatever its characters)."""
    expected: str | None = request.app.state.settings.operator_token
    token = bearer_token(request)
    return bool(expected) and token is not None and hmac.compare_digest(token.encode(), (expected or "").encode())


async def operator(request: Request) -> None:
    """A dependency: the operator token, or AuthError."""
    if not is_operator(request):
        raise errors.AuthError("operator token required")


async def login(request: Request, api_key: str, secret: str) -> core_accounts.Account:
    """The account for a key and secret, under the per-(address, api_key) limiter; failures are logged at INFO
    with the address and the key (never the secret)."""
    gw = gateway(request)
    known = gw.credentials.cached_login(api_key, secret)
    if known is not None:  # the send path: no limiter, no second hash
        if not known.active:
            raise errors.AccountDisabled()
        return known
    limiter: limits.FailureLimiter = request.app.state.auth_failures
    address = client_address(request)
    pair = f"{address}|{api_key[:_KEY_CHARS]}"
    wait = await limiter.blocked(pair)
    if wait > 0:
        raise errors.RateLimited("too many failed logins for this api_key from this address", retry_after=wait)
    try:
        return await gw.authenticate(api_key, secret)
    except errors.AccountDisabled:
        raise
    except errors.AuthError:
        await limiter.failed(pair)
        log.info("failed login from %s for api_key %r", address, api_key[:_KEY_CHARS])
        raise


async def failed_login(request: Request, api_key: str, why: str) -> None:
    """Count a failure decided outside ``login`` (a bad Vonage signature) against (address, api_key)."""
    address = client_address(request)
    await request.app.state.auth_failures.failed(f"{address}|{api_key[:_KEY_CHARS]}")
    log.info("failed login from %s for api_key %r: %s", address, api_key[:_KEY_CHARS], why)


async def login_blocked(request: Request, api_key: str) -> None:
    """RateLimited when (address, api_key) has used up its failures (for checks that do not go through ``login``)."""
    wait = await request.app.state.auth_failures.blocked(f"{client_address(request)}|{api_key[:_KEY_CHARS]}")
    if wait > 0:
        raise errors.RateLimited("too many failed logins for this api_key from this address", retry_after=wait)


async def any_credentials(request: Request) -> core_accounts.Account:
    """Bearer token or Basic key/secret: what our own API (``/v1/messages``...) accepts for reading and sending."""
    token = bearer_token(request)
    if token is not None:
        return await gateway(request).account_for_token(token)
    creds = basic_credentials(request)
    if creds is None:
        raise errors.AuthError("missing credentials: use a Bearer token or HTTP Basic api_key:api_secret")
    return await login(request, *creds)


async def secret_or_operator(request: Request) -> core_accounts.Account:
    """The account a credential or webhook-target change applies to: the caller's own, proven by its secret (HTTP
    Basic), or the one named by ``?account=`` (id or api_key) with the operator token. A token is refused (403):
    a leaked one-hour token must not become a permanent secret or redirect the account's webhooks."""
    if is_operator(request):
        ref = request.query_params.get("account", "")
        if not ref:
            raise errors.ValidationError("the operator names the account: ?account=<id or api_key>")
        acc = await gateway(request).accounts.find(ref)
        if acc is None:
            raise errors.NotFound("no such account")
        return acc
    creds = basic_credentials(request)
    token = bearer_token(request)
    if creds is None:
        if token is not None:
            await gateway(request).account_for_token(token)  # a bad token is still a 401
            raise errors.InsufficientScope()
        raise errors.AuthError("missing credentials: use HTTP Basic api_key:api_secret")
    return await login(request, *creds)
