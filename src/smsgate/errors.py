"""The error tree of smsgate.

Each dialect keeps one table that maps these classes to its own status codes and bodies, so a core rule
is written once and answered in every dialect's format. Lower-level errors (SQLAlchemy, sockets, httpx)
are translated where they occur (``raise X from exc``).

    SmsgateError
    ├── ValidationError            bad input a client can fix
    │   ├── MissingParameter       a required parameter is absent or empty (Vonage status 2)
    │   ├── SignatureAndSecret     a Vonage ``sig`` together with ``api_secret`` (status 32)
    │   ├── EmptyText
    │   ├── TextTooLong            more parts or characters than the dialect allows
    │   ├── InvalidEncoding        forced encoding the text does not fit / bad hex body
    │   ├── InvalidNumber          not a number, or not one this API may send to (``reason`` says which)
    │   ├── InvalidSender
    │   ├── InvalidUrl
    │   └── IdempotencyKeyReused   an Idempotency-Key seen before with another request (our API's 422)
    ├── AuthError                  unknown client, wrong secret, disabled account
    │   ├── TokenError             missing, unknown, expired or revoked bearer token
    │   ├── InvalidSignature       a Vonage request signature that does not verify, is stale or was seen before
    │   └── AccountDisabled        the credentials are right, but the account is disabled
    ├── PolicyError                valid input that this account may not do
    │   ├── DestinationNotAllowed  country not enabled, blocked destination, not the sandbox
    │   │   ├── NotWhitelisted     not on a demo account's allow-list (Vonage status 29)
    │   │   └── Suppressed         on the account's suppression list (opted out, or put there by the account)
    │   ├── SenderNotAllowed       not on the account's list, or a number it does not own
    │   │   └── SenderTaken        another account's number or reserved name
    │   ├── FeatureNotAllowed      silent, SIM data download or class-2 binary without the account's permission
    │   ├── InsufficientScope      a token may send and read; credentials and webhook targets need the secret
    │   ├── InsufficientBalance
    │   ├── QuotaExceeded          ``retry_after`` seconds until the quota window resets
    │   ├── RateLimited            ``retry_after`` seconds until a token is free
    │   └── NotFound               an object that does not exist or belongs to another account
    ├── RouteUnavailable           no connector for this message
    ├── StoreUnavailable           the database refused the write; nothing was half-written
    ├── IdempotencyKeyTaken        another request stored this Idempotency-Key first (its answer is replayed)
    └── DialectRefusal             a refusal a dialect's own parser decided, with that dialect's code (Kaarai's)
"""

from __future__ import annotations

import difflib
from collections.abc import Collection


class SmsgateError(Exception):
    """Something went wrong in smsgate."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or (self.__doc__ or "").strip())

    @property
    def message(self) -> str:
        return str(self)


class ValidationError(SmsgateError):
    """The request is not valid.

    ``field``: the request field at fault, when one is (our API names it in its error body)."""

    field: str | None = None

    def at(self, field: str | None) -> ValidationError:
        """This error, naming ``field`` (for ``raise errors.X(...).at("to")``)."""
        self.field = field
        return self


class MissingParameter(ValidationError):
    """A required parameter is missing."""


class SignatureAndSecret(ValidationError):
    """Signature And API Secret Disallowed"""


class EmptyText(ValidationError):
    """The message text is empty."""


class TextTooLong(ValidationError):
    """The message is longer than allowed."""


class InvalidEncoding(ValidationError):
    """The text or body does not fit the requested encoding."""


class InvalidNumber(ValidationError):
    """The number is not valid for this API.

    ``reason`` is a short machine-readable code (``not_a_number``, ``not_dutch``, ``not_mobile``,
    ``pager``, ``fixed_line``, ``unassigned_range``, ``too_short``, ``too_long``, ``no_country_code``)
    so each dialect can choose its own wording or code.
    """

    def __init__(self, message: str | None = None, *, reason: str = "invalid") -> None:
        super().__init__(message)
        self.reason = reason


class InvalidSender(ValidationError):
    """The sender address is not valid."""


class InvalidUrl(ValidationError):
    """The URL is not an acceptable webhook target."""


class IdempotencyKeyReused(ValidationError):
    """This Idempotency-Key was used with a different request."""


class AuthError(SmsgateError):
    """Authentication failed."""


class TokenError(AuthError):
    """The access token is missing, unknown or expired.

    ``expired`` tells a dialect which fault code to answer with.
    """

    def __init__(self, message: str | None = None, *, expired: bool = False) -> None:
        super().__init__(message)
        self.expired = expired


class InvalidSignature(AuthError):
    """Invalid Signature"""


class AccountDisabled(AuthError):
    """account disabled"""


class PolicyError(SmsgateError):
    """The account may not do this."""


class DestinationNotAllowed(PolicyError):
    """The destination is not allowed for this account."""


class NotWhitelisted(DestinationNotAllowed):
    """Non-Whitelisted Destination"""


class Suppressed(DestinationNotAllowed):
    """The recipient is on this account's suppression list (opted out)."""


class SenderNotAllowed(PolicyError):
    """This sender is not allowed for this account."""


class SenderTaken(SenderNotAllowed):
    """This sender belongs to another account."""


class FeatureNotAllowed(PolicyError):
    """This kind of message is not enabled for this account."""


class NotASubAccount(PolicyError):
    """A call named an account (KPN ``SubAccount``, our ``account``) that is not an active sub-account of the caller."""


class InsufficientScope(PolicyError):
    """A token may send and read; this needs the account's api_secret (HTTP Basic) or the operator token."""


class InsufficientBalance(PolicyError):
    """The account balance does not cover this message."""


class QuotaExceeded(PolicyError):
    """The account has used its quota for the current interval."""

    def __init__(self, message: str | None = None, *, retry_after: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class RateLimited(PolicyError):
    """Too many requests; slow down."""

    def __init__(self, message: str | None = None, *, retry_after: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class NotFound(PolicyError):
    """No such object."""


class TooLate(SmsgateError):
    """The request came after the state it needs had passed (canceling a message already submitted)."""


class RouteUnavailable(SmsgateError):
    """No connector can take this message."""


class StoreUnavailable(SmsgateError):
    """The message store is unavailable; nothing was written."""


class IdempotencyKeyTaken(SmsgateError):
    """Another request committed this Idempotency-Key first; its stored answer is the one to give."""


class DialectRefusal(SmsgateError):
    """A refusal decided by a dialect's parser, with that dialect's own code already chosen (Kaarai's 4000...)."""

    def __init__(self, code: int, message: str | None = None) -> None:
        super().__init__(message)
        self.code = code


def json_problem(body: bytes | str, pos: int, reason: str) -> str:
    """A JSON body that does not parse, in words a person can act on: ``the body is not valid UTF-8 (byte 12)``
    or ``Malformed JSON at line 1, column 8: unexpected character``; never a parser's internal wording."""
    if isinstance(body, bytes):
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            return f"the body is not valid UTF-8 (byte {exc.start})"
    else:
        text = body
    if "not valid UTF-8" in reason:  # orjson reads lone surrogates escaped in the text as invalid UTF-8
        return "the body is not valid UTF-8"
    pos = max(0, min(pos, len(text)))
    line = text.count("\n", 0, pos) + 1
    column = pos - (text.rfind("\n", 0, pos) + 1) + 1
    reason = reason[:1].lower() + reason[1:] if reason else "not JSON"
    return f"Malformed JSON at line {line}, column {column}: {reason}"


def did_you_mean(word: str, choices: Collection[str]) -> str:
    """`` (did you mean x?)`` with the valid name closest to ``word``, or the valid names when none is close (and
    they are few): for the one-line configuration errors that name an unknown key or value."""
    options = sorted(choices)
    close = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    if close:
        return f" (did you mean {close[0]}?)"
    return f" (valid: {', '.join(options)})" if len(options) <= 12 else ""
