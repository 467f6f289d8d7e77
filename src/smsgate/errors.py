"""The error tree of smsgate.

Each dialect keeps one table that maps these classes to its own status codes and bodies, so a core rule
is written once and answered in every dialect's format. Lower-level errors (SQLAlchemy, sockets, httpx)
are translated where they occur (``raise X from exc``).

    SmsgateError
    ├── ValidationError            bad input a client can fix
    │   ├── EmptyText
    │   ├── TextTooLong            more parts or characters than the dialect allows
    │   ├── InvalidEncoding        forced encoding the text does not fit / bad hex body
    │   ├── InvalidNumber          not a number, or not one this API may send to (``reason`` says which)
    │   ├── InvalidSender
    │   └── InvalidUrl
    ├── AuthError                  unknown client, wrong secret, disabled account
    │   └── TokenError             missing, unknown or expired bearer token
    ├── PolicyError                valid input that this account may not do
    │   ├── DestinationNotAllowed  demo allow-list, country not enabled, blocked destination
    │   ├── SenderNotAllowed
    │   ├── InsufficientBalance
    │   ├── QuotaExceeded          ``retry_after`` seconds until the quota window resets
    │   ├── RateLimited            ``retry_after`` seconds until a token is free
    │   └── NotFound               an object that does not exist or belongs to another account
    ├── RouteUnavailable           no connector for this message
    └── StoreUnavailable           the database refused the write; nothing was half-written
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
    """The request is not valid."""


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


class AuthError(SmsgateError):
    """Authentication failed."""


class TokenError(AuthError):
    """The access token is missing, unknown or expired.

    ``expired`` tells a dialect which fault code to answer with.
    """

    def __init__(self, message: str | None = None, *, expired: bool = False) -> None:
        super().__init__(message)
        self.expired = expired


class PolicyError(SmsgateError):
    """The account may not do this."""


class DestinationNotAllowed(PolicyError):
    """The destination is not allowed for this account."""


class SenderNotAllowed(PolicyError):
    """This sender is not allowed for this account."""


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


class RouteUnavailable(SmsgateError):
    """No connector can take this message."""


class StoreUnavailable(SmsgateError):
    """The message store is unavailable; nothing was written."""


def did_you_mean(word: str, choices: Collection[str]) -> str:
    """`` (did you mean "x"?)`` with the valid name closest to ``word``, or "" when none is close: for the one-line
    configuration errors that name an unknown key or value."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f' (did you mean "{close[0]}"?)' if close else ""
