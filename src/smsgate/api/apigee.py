"""What KPN's API gateway (Apigee) answers before a request reaches the API behind it, for the two dialects that
sit behind it (KPN SMS v1 and Vonage via KPN): a bad or expired token, and a used-up product quota.
"""

from __future__ import annotations

from typing import Any

from smsgate import errors


def fault(faultstring: str, errorcode: str) -> dict[str, Any]:
    return {"fault": {"faultstring": faultstring, "detail": {"errorcode": errorcode}}}


INVALID_TOKEN = fault("Invalid access token", "oauth.v2.InvalidAccessToken")
EXPIRED_TOKEN = fault("Access Token expired", "keymanagement.service.access_token_expired")


def token_fault(exc: errors.AuthError) -> dict[str, Any]:
    """The 401 body for a refused credential: expired tokens are told apart (clients renew on that code)."""
    return EXPIRED_TOKEN if isinstance(exc, errors.TokenError) and exc.expired else INVALID_TOKEN


def quota_fault(exc: errors.QuotaExceeded) -> dict[str, Any]:
    return fault(exc.message, "policies.ratelimit.QuotaViolation")
